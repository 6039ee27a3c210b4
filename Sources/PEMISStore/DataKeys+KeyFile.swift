internal import Crypto
internal import Foundation
#if canImport(Glibc)
  internal import Glibc
#endif
internal import PEMISDomain
internal import Synchronization

/// The key file: loading it, writing it so a crash or a second operator cannot damage it,
/// rotating it, and re-reading it while the server runs (``DataKeys``).
extension DataKeys {

  /// The keys of a data directory: `PEMIS_DATA_KEY`'s text when `environment` is set, else the
  /// file. A missing file is created with new keys only when `create` is set (a new data
  /// directory, or one whose data was never sealed): otherwise it is an error that says where
  /// the key was looked for.
  public static func load(file: String, environment: String? = nil, create: Bool) throws -> DataKeys {
    if let environment, !environment.isEmpty {
      return DataKeys(keyring: try parse(environment.replacingOccurrences(of: ";", with: "\n"), from: "PEMIS_DATA_KEY"), source: .environment, version: nil)
    }
    if !FileManager.default.fileExists(atPath: file) {
      guard create else {
        throw StoreError(
          .failedPrecondition,
          "数据密钥缺失 the data key is missing: \(file) does not exist, and the data was sealed with a key (fingerprint in the registry). "
            + "Restore the key file from its backup, set dataKeyFile to where it is, or set PEMIS_DATA_KEY")
      }
      try write(generatedText(), to: file)
    }
    let (text, version) = try read(file)
    return DataKeys(keyring: try parse(text, from: file), source: .file(file), version: version)
  }

  /// Where a data directory's key file is when none is configured: beside the directory, its
  /// path with `.key` (`./data` → `./data.key`), so it is never copied with the data.
  public static func defaultFile(forDataDirectory directory: String) -> String {
    var directory = directory
    while directory.count > 1 && directory.hasSuffix("/") { directory.removeLast() }
    return directory + ".key"
  }

  /// The keys of a data directory for a tool that opens it as the server does: `PEMIS_DATA_KEY`,
  /// or `file` (default ``defaultFile(forDataDirectory:)``), created only for a directory whose
  /// data was never sealed.
  public static func forDataDirectory(_ directory: String, file: String? = nil, environment: String? = nil) throws -> DataKeys {
    let sealed = try Registry.keyFingerprint(directory: directory) != nil
    return try load(file: file ?? defaultFile(forDataDirectory: directory), environment: environment, create: !sealed)
  }

  /// New keys in memory, for tests and tools that make a data directory of their own.
  public static func ephemeral() -> DataKeys {
    DataKeys(keyring: try! parse(generatedText(), from: "memory"), source: .memory, version: nil)
  }

  /// The text of a new key file: an index key and data key 1, active.
  public static func generatedText() -> String {
    """
    # PEMIS data keys (docs/OPERATIONS.md, "Encryption at rest").
    # Keep this file outside the data directory, readable by the server's user only, and back it
    # up apart from the data: without it the sealed fields of every child cannot be read.
    index \(newKey())
    data 1 \(newKey()) active

    """
  }

  static func newKey() -> String { SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }.base64EncodedString() }

  /// The file a path names, through any symbolic links (the path itself when it does not exist).
  static func resolved(_ file: String) -> String {
    realpath(file, nil).map { pointer in defer { free(pointer) }; return String(cString: pointer) } ?? file
  }

  /// Of the file a link points to (Foundation's attributes are the link's own): a rotation
  /// through a link, or a hand edit of the same size within a clock tick, is still seen.
  static func version(_ file: String) -> FileVersion? {
    guard let attributes = try? FileManager.default.attributesOfItem(atPath: resolved(file)) else { return nil }
    return FileVersion(
      modified: attributes[.modificationDate] as? Date, inode: (attributes[.systemFileNumber] as? NSNumber)?.uint64Value,
      size: (attributes[.size] as? NSNumber)?.uint64Value)
  }

  static func read(_ file: String) throws -> (String, FileVersion?) {
    do {
      let version = version(file)
      let text = try String(contentsOfFile: file, encoding: .utf8)
      return (text, version)
    } catch {
      throw StoreError(.failedPrecondition, "数据密钥无法读取 the data key file \(file) cannot be read by this user: \(error.localizedDescription)")
    }
  }

  /// Writes a key file readable by its owner only, atomically and durably: a new file beside
  /// the old one (its owner kept, for a rotation run with sudo), flushed, renamed over it, and
  /// the directory flushed, so a crash leaves the old file or the new one. A symbolic link is
  /// followed: the file it points to is replaced, the link stays.
  static func write(_ text: String, to file: String) throws {
    let target = resolved(file)
    let directory = (target as NSString).deletingLastPathComponent
    let temporary = "\(target).new-\(getpid())-\(UUID().uuidString)"
    func failure(_ what: String) -> StoreError {
      StoreError(.failedPrecondition, "the data key file \(file) cannot be \(what): \(String(cString: strerror(errno)))")
    }
    let fd = Glibc.open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
    guard fd >= 0 else { throw failure("written here (a missing directory, or no permission; set dataKeyFile to a file in a directory this user may write, docs/OPERATIONS.md \"Encryption at rest\")") }
    // The old file's owner and mode are kept (a key file root:pemis 0640 stays so after a
    // rotation run with sudo); a new file is its creator's, 0600.
    if let old = try? FileManager.default.attributesOfItem(atPath: target) {
      if let uid = (old[.ownerAccountID] as? NSNumber)?.uint32Value, let gid = (old[.groupOwnerAccountID] as? NSNumber)?.uint32Value,
        uid != geteuid() || gid != getegid(), fchown(fd, uid, gid) != 0
      {
        let error = failure("given back to its owner \(uid):\(gid) (run the rotation as that user)")
        close(fd)
        unlink(temporary)
        throw error
      }
      if let mode = (old[.posixPermissions] as? NSNumber)?.uint32Value { _ = fchmod(fd, mode_t(mode & 0o7777)) }
    }
    let bytes = Array(text.utf8)
    var written = 0
    while written < bytes.count {
      let n = bytes[written...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
      guard n > 0 else {
        let error = failure("written")
        close(fd)
        unlink(temporary)
        throw error
      }
      written += n
    }
    let flushed = fsync(fd) == 0
    let closed = close(fd) == 0
    guard flushed, closed else {
      let error = failure("flushed to disk")
      unlink(temporary)
      throw error
    }
    // rename(2) replaces the old file in one step; Foundation's replaceItemAt does not on Linux.
    guard rename(temporary, target) == 0 else {
      let error = failure("replaced")
      unlink(temporary)
      throw error
    }
    let directoryFD = Glibc.open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if directoryFD >= 0 {
      _ = fsync(directoryFD)
      close(directoryFD)
    }
  }

  /// Runs `body` holding an exclusive lock on `<file>.lock`, so two rotations (two operators,
  /// or a retry) do not both add key N+1.
  static func withFileLock<T>(_ file: String, _ body: () throws -> T) throws -> T {
    // Beside the file a link points to: the link's path and the real one take the same lock.
    let target = resolved(file)
    let path = target + ".lock"
    let lock = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
    guard lock >= 0 else {
      throw StoreError(.failedPrecondition, "the data key file's lock \(path) cannot be opened: \(String(cString: strerror(errno)))")
    }
    defer { close(lock) }
    // Made under sudo, it would be root's and stop the key file's owner from rotating next time.
    if let owner = try? FileManager.default.attributesOfItem(atPath: target),
      let uid = (owner[.ownerAccountID] as? NSNumber)?.uint32Value, let gid = (owner[.groupOwnerAccountID] as? NSNumber)?.uint32Value,
      uid != geteuid() || gid != getegid()
    {
      _ = fchown(lock, uid, gid)
    }
    guard flock(lock, LOCK_EX) == 0 else {
      throw StoreError(.failedPrecondition, "the data key file's lock \(path) cannot be taken: \(String(cString: strerror(errno)))")
    }
    defer { flock(lock, LOCK_UN) }
    return try body()
  }

  /// A key file's lines: "\r\n" (a file saved on Windows) is one Character, not "\n" and another.
  static func lines(_ text: String) -> [Substring] {
    text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
  }

  /// A key file line's words, as ``parse(_:from:)`` reads them.
  static func words(_ line: Substring) -> [Substring] {
    line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
  }

  /// Parses a key file; every mistake names its line.
  static func parse(_ text: String, from name: String) throws -> Keyring {
    var index: SymmetricKey?
    var data: [UInt32: SymmetricKey] = [:]
    var active: [UInt32] = []
    func key(_ text: Substring, line: Int) throws -> SymmetricKey {
      guard let bytes = Data(base64Encoded: String(text)), bytes.count == 32 else {
        throw StoreError(.failedPrecondition, "\(name), line \(line): a key is 32 bytes in base64 (44 characters)")
      }
      return SymmetricKey(data: bytes)
    }
    for (number, raw) in lines(text).enumerated() {
      let line = number + 1
      let words = Self.words(raw)
      guard let first = words.first, !first.hasPrefix("#") else { continue }
      switch first {
      case "index" where words.count == 2:
        guard index == nil else { throw StoreError(.failedPrecondition, "\(name), line \(line): a second index key") }
        index = try key(words[1], line: line)
      case "data" where words.count == 3 || (words.count == 4 && words[3] == "active"):
        guard let id = UInt32(words[1]), id > 0 else {
          throw StoreError(.failedPrecondition, "\(name), line \(line): a data key's number is a whole number from 1")
        }
        guard data[id] == nil else { throw StoreError(.failedPrecondition, "\(name), line \(line): data key \(id) appears twice") }
        data[id] = try key(words[2], line: line)
        if words.count == 4 { active.append(id) }
      default:
        throw StoreError(
          .failedPrecondition, "\(name), line \(line): expected 'index KEY' or 'data NUMBER KEY [active]'")
      }
    }
    guard let index else { throw StoreError(.failedPrecondition, "\(name): no index key ('index KEY')") }
    guard !data.isEmpty else { throw StoreError(.failedPrecondition, "\(name): no data key ('data 1 KEY active')") }
    guard active.count <= 1 else { throw StoreError(.failedPrecondition, "\(name): more than one data key is marked active") }
    return Keyring(index: index, data: data, active: active.first ?? data.keys.max()!)
  }

  /// The file's text with a new data key, active; the others stay, to read what they sealed.
  static func rotatedText(_ text: String, from name: String) throws -> (text: String, id: UInt32) {
    let keyring = try parse(text, from: name)
    let (id, overflow) = keyring.data.keys.max()!.addingReportingOverflow(1)
    guard !overflow else { throw StoreError(.failedPrecondition, "\(name): data key \(UInt32.max) is the last number there is; renumber the keys by hand") }
    // Every data line is written again as parse reads it (tabs and all), without "active".
    var lines = Self.lines(text).map { line -> String in
      let words = Self.words(line)
      guard words.first == "data", words.count == 4 else { return String(line) }
      return words.prefix(3).joined(separator: " ")
    }
    while lines.last == "" { lines.removeLast() }
    lines.append("data \(id) \(newKey()) active")
    return (lines.joined(separator: "\n") + "\n", id)
  }

  /// Adds a new active data key to the key file (`pemis-server key rotate`): from now on the
  /// server seals with it, once it re-read the file.
  public func rotateFile() throws -> UInt32 {
    guard case .file(let file) = source else {
      throw StoreError(
        .failedPrecondition,
        "the keys come from PEMIS_DATA_KEY: add a data key to its text ('data N KEY active'), restart the server, then re-seal with `pemis-server key reseal`")
    }
    let rotated = try Self.withFileLock(file) {
      let (text, _) = try Self.read(file)
      let rotated = try Self.rotatedText(text, from: file)
      let keyring = try Self.parse(rotated.text, from: file)
      guard Self.fingerprint(of: keyring.index) == fingerprint else {
        throw StoreError(.failedPrecondition, "\(file): the index key changed; it is never rotated (lookup keys depend on it)")
      }
      try Self.write(rotated.text, to: file)
      // What was just written is held at once: no re-read that a recent forced read could skip.
      let version = Self.version(file)
      state.withLock { state in
        state.keyring = keyring
        state.version = version
        state.problem = nil
      }
      return rotated
    }
    return rotated.id
  }

  /// Reads the file again when it changed. `force` (a value under a key not held) reads it even
  /// when it seems unchanged, at most once a second. The read happens under the lock, so two
  /// reloads cannot leave the older of two files in place. The index key must be the same:
  /// another one would make every lookup key miss.
  func reload(force: Bool) throws {
    guard case .file(let file) = source else { return }
    do {
      try state.withLock { state throws(StoreError) in
        let now = ContinuousClock.now
        state.checked = now
        let version = Self.version(file)
        let forced = force && state.forcedRead.map { now - $0 >= .seconds(1) } ?? force
        guard forced || version != state.version else { return }
        if forced { state.forcedRead = now }
        do {
          let (text, readVersion) = try Self.read(file)
          let keyring = try Self.parse(text, from: file)
          guard Self.fingerprint(of: keyring.index) == fingerprint else {
            throw StoreError(.failedPrecondition, "\(file): the index key changed; it is never rotated (lookup keys depend on it)")
          }
          state.keyring = keyring
          state.version = readVersion
          state.problem = nil
        } catch let error as StoreError {
          throw error
        } catch {
          throw StoreError(.failedPrecondition, "\(file): \(error)")
        }
      }
    } catch {
      report(error.message)
      throw error
    }
  }

  /// Where reload problems go (``problems``).
  public func onProblem(_ report: @escaping @Sendable (String) -> Void) {
    problems.withLock { $0 = report }
  }

  /// Reports a problem once, until it changes or a reload succeeds.
  func report(_ message: String) {
    let new = state.withLock { state -> Bool in
      defer { state.problem = message }
      return state.problem != message
    }
    guard new, let report = problems.withLock({ $0 }) else { return }
    report("data keys: the key file cannot be re-read; sealing goes on with the keys held: \(message)")
  }

  /// The number of the key new values are sealed with.
  public var activeKey: UInt32 {
    refreshIfDue()
    return state.withLock { $0.keyring.active }
  }

  /// The numbers of the data keys held.
  public var keyNumbers: [UInt32] { state.withLock { $0.keyring.data.keys.sorted() } }

  func refreshIfDue() {
    let due = state.withLock { ContinuousClock.now - $0.checked >= Self.recheckInterval }
    if due { try? reload(force: false) }
  }
}
