import Foundation
import Synchronization
import Testing

@testable import PEMISStore

/// The data key file as operators handle it (issue 13, "Encryption at rest"): edited by hand,
/// rotated twice at once, kept behind a symbolic link, broken while the server runs.
@Suite("Data key file")
struct KeyFileTests {
  /// A directory of its own, removed afterwards.
  static func withDirectory<T>(_ body: (String) throws -> T) throws -> T {
    let directory = NSTemporaryDirectory() + "pemis-keys-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    return try body(directory)
  }

  @Test("a key file an operator wrote with tabs rotates to exactly one active key")
  func tabsRotate() throws {
    try Self.withDirectory { directory in
      let file = directory + "/k.key"
      let text = DataKeys.generatedText().replacingOccurrences(of: " ", with: "\t")
      try text.write(toFile: file, atomically: true, encoding: .utf8)
      let keys = try DataKeys.load(file: file, create: false)
      #expect(try keys.rotateFile() == 2)
      let rotated = try String(contentsOfFile: file, encoding: .utf8)
      let keyring = try DataKeys.parse(rotated, from: file)
      #expect(keyring.active == 2 && keyring.data.count == 2)
      #expect(rotated.components(separatedBy: "active").count == 2, "\(rotated)")
    }
  }

  @Test("eight rotations at once, from two holders of the file, add keys 2 to 9, and the file still reads")
  func concurrentRotations() throws {
    try Self.withDirectory { directory in
      let file = directory + "/k.key"
      _ = try DataKeys.load(file: file, create: true)
      // Two processes would each hold their own keys: two instances, one file.
      let operators = try (0..<2).map { _ in try DataKeys.load(file: file, create: false) }
      let added = Mutex<[UInt32]>([])
      DispatchQueue.concurrentPerform(iterations: 8) { turn in
        if let id = try? operators[turn % 2].rotateFile() { added.withLock { $0.append(id) } }
      }
      #expect(added.withLock { $0.sorted() } == Array(2...9))
      let keyring = try DataKeys.parse(try String(contentsOfFile: file, encoding: .utf8), from: file)
      #expect(keyring.data.keys.sorted() == Array(1...9) && keyring.active == 9)
      let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.contains(".new-") }
      #expect(leftovers.isEmpty, "\(leftovers)")
    }
  }

  @Test("rotating a key file reached through a symbolic link replaces the file it points to; the link stays, and the file stays private")
  func symlinkKept() throws {
    try Self.withDirectory { directory in
      let real = directory + "/keys/real.key"
      try FileManager.default.createDirectory(atPath: directory + "/keys", withIntermediateDirectories: true)
      _ = try DataKeys.load(file: real, create: true)
      let link = directory + "/pemis.key"
      try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: real)
      let keys = try DataKeys.load(file: link, create: false)
      #expect(try keys.rotateFile() == 2)
      #expect(try FileManager.default.destinationOfSymbolicLink(atPath: link) == real)
      #expect(try DataKeys.parse(try String(contentsOfFile: real, encoding: .utf8), from: real).active == 2)
      #expect(try FileManager.default.attributesOfItem(atPath: real)[.posixPermissions] as? NSNumber == 0o600)
    }
  }

  @Test("a key file saved with Windows line endings reads, and rotates")
  func windowsLineEndings() throws {
    try Self.withDirectory { directory in
      let file = directory + "/k.key"
      try DataKeys.generatedText().replacingOccurrences(of: "\n", with: "\r\n").write(toFile: file, atomically: true, encoding: .utf8)
      let keys = try DataKeys.load(file: file, create: false)
      #expect(keys.keyNumbers == [1])
      #expect(try keys.rotateFile() == 2)
      #expect(try DataKeys.parse(try String(contentsOfFile: file, encoding: .utf8), from: file).active == 2)
    }
  }

  @Test("a change to the file behind a symbolic link is seen by the recheck; a rotation keeps the file's mode")
  func linkedFileWatched() throws {
    try Self.withDirectory { directory in
      let real = directory + "/real.key"
      _ = try DataKeys.load(file: real, create: true)
      try FileManager.default.setAttributes([.posixPermissions: 0o640], ofItemAtPath: real)
      let link = directory + "/pemis.key"
      try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: real)
      let server = try DataKeys.load(file: link, create: false)
      // Another process rotates (through the real path); the server's recheck sees it.
      #expect(try DataKeys.load(file: real, create: false).rotateFile() == 2)
      try server.reload(force: false)
      #expect(server.keyNumbers == [1, 2])
      #expect(try FileManager.default.attributesOfItem(atPath: real)[.posixPermissions] as? NSNumber == 0o640)
    }
  }

  @Test("a sealed value whose key number is written otherwise than seal writes it is damage, not that key")
  func strictKeyNumber() throws {
    let keys = DataKeys.ephemeral()
    let sealed = keys.seal("13800138000", context: "t")
    #expect(sealed.hasPrefix("enc2:1:"))
    for damaged in [sealed.replacingOccurrences(of: "enc2:1:", with: "enc2:01:"), sealed.replacingOccurrences(of: "enc2:1:", with: "enc2:+1:")] {
      #expect(DataKeys.sealingKey(of: damaged) == nil)
      #expect(!DataKeys.isCurrent(damaged, active: 1))
      do {
        _ = try keys.open(damaged, context: "t")
        Issue.record("\(damaged) opened")
      } catch { #expect("\(error)".contains("damaged"), "\(error)") }
      #expect(throws: StoreError.self) { _ = try keys.resealed(damaged, context: "t", active: 1) }
    }
    let last = "index \(DataKeys.newKey())\ndata \(UInt32.max) \(DataKeys.newKey()) active\n"
    #expect(throws: StoreError.self) { _ = try DataKeys.rotatedText(last, from: "k") }
  }

  @Test("a key file broken while the server runs is reported once, sealing goes on with the keys held, and a repair is read")
  func brokenFileReported() throws {
    try Self.withDirectory { directory in
      let file = directory + "/k.key"
      let keys = try DataKeys.load(file: file, create: true)
      let good = try String(contentsOfFile: file, encoding: .utf8)
      let reports = Mutex<[String]>([])
      keys.onProblem { message in reports.withLock { $0.append(message) } }
      // Each edit gets a modification time of its own: two writes within a clock tick can share one.
      var minute = 0.0
      func edit(_ text: String) throws {
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        minute += 60
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSince1970: 1_700_000_000 + minute)], ofItemAtPath: file)
      }

      try edit("index nonsense\n")
      #expect(throws: StoreError.self) { try keys.reload(force: true) }
      // The same problem again (a later recheck) is not reported again.
      try edit("index nonsense\n\n")
      #expect(throws: StoreError.self) { try keys.reload(force: false) }
      #expect(reports.withLock { $0.count } == 1)
      #expect(reports.withLock { $0.first ?? "" }.contains("line 1"), "\(reports.withLock { $0 })")
      // Sealing still works with the keys held.
      let sealed = keys.seal("13800138000", context: "test")
      #expect(try keys.open(sealed, context: "test") == "13800138000")

      try edit(try DataKeys.rotatedText(good, from: file).text)
      try keys.reload(force: false)
      #expect(keys.keyNumbers == [1, 2])
      // A new problem after the repair is news again.
      try edit("data 1 x\n")
      #expect(throws: StoreError.self) { try keys.reload(force: false) }
      #expect(reports.withLock { $0.count } == 2)
    }
  }

  @Test("a value under a key not held reads the file at most once a second")
  func forcedReadsLimited() throws {
    try Self.withDirectory { directory in
      let file = directory + "/k.key"
      let keys = try DataKeys.load(file: file, create: true)
      let reports = Mutex(0)
      keys.onProblem { _ in reports.withLock { $0 += 1 } }
      // One version for the good file and the broken one (the same file, size and modification
      // time): only a read can tell them apart.
      let stamp = Date(timeIntervalSince1970: 1_700_000_000)
      try FileManager.default.setAttributes([.modificationDate: stamp], ofItemAtPath: file)
      try keys.reload(force: true)
      let size = try String(contentsOfFile: file, encoding: .utf8).utf8.count
      try (String(repeating: "x", count: size - 1) + "\n").write(toFile: file, atomically: false, encoding: .utf8)
      try FileManager.default.setAttributes([.modificationDate: stamp], ofItemAtPath: file)
      // The forced read just happened: the next forced one within a second does not read.
      try keys.reload(force: true)
      #expect(reports.withLock { $0 } == 0)
      try keys.reload(force: false)
      #expect(reports.withLock { $0 } == 0)
      try? keys.reload(force: true)
      try? keys.reload(force: true)
      #expect(reports.withLock { $0 } == 0)
      Thread.sleep(forTimeInterval: 1.1)
      #expect(throws: StoreError.self) { try keys.reload(force: true) }
      #expect(reports.withLock { $0 } == 1)
    }
  }
}
