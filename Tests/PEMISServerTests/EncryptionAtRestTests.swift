import Foundation
import GRDB
import GRPCCore
import Logging
import PEMISDomain
import PEMISProto
import SwiftProtobuf
import Testing

@testable import PEMISServer
@testable import PEMISStore

/// Issue 13, "Encryption at rest": a copy of the data directory without the key file does not
/// give away a child's health or guardians' phones, and the ID number is sealed in the record;
/// a missing or wrong key stops the server with a message; a rotation re-seals everything
/// while the server runs.
@Suite("Encryption at rest", .serialized)
struct EncryptionAtRestTests {
  static let firstPhone = "13912345678"
  static let secondPhone = "13987654321"
  static let health = "chronic_condition"

  /// Enrolls the fixture child with this test's phone and health, then changes the phone, so the
  /// history holds both.
  static func enrollAndChange(_ district: District) async throws -> String {
    let admin = District.user(.administrator)
    var child = KindergartenDataFixtures.child()
    child.guardians[0].phone = firstPhone
    child.health = health
    let enrolled = try await district.asUser(admin) {
      try await Pemis_V1_ChildRecords.Client(wrapping: $0).enrollChild(.with { $0.child = child })
    }
    child.guardians[0].phone = secondPhone
    _ = try await district.asUser(admin) {
      try await Pemis_V1_ChildRecords.Client(wrapping: $0).updateChild(.with {
        $0.recordNumber = enrolled.recordNumber
        $0.child = child
        $0.fields = ["guardians"]
      })
    }
    return enrolled.recordNumber
  }

  /// Runs `pemis-server key VERB` on the district's data directory, beside its server.
  static func key(_ verb: String, _ district: District) async throws -> ProcessOutput {
    try await run(
      productsDirectory.appendingPathComponent("pemis-server"),
      ["key", verb, "--data-dir", district.dataDirectory, "--calendar-dir", repositoryRoot.appendingPathComponent("Config/calendar").path],
      timeout: 120)
  }

  /// What the last re-seal pass of a key command left, without the counts: "under key 2", or
  /// "under key 1, under key 2", or "NOT sealed, under key 2".
  static func lastPass(_ stdout: String) -> String? {
    guard let line = stdout.split(separator: "\n").last(where: { $0.hasPrefix("pass ") }), let now = line.range(of: "; now ") else { return nil }
    return line[now.upperBound...].split(separator: ", ").map { $0.drop(while: { $0.isNumber || $0 == " " }) }.joined(separator: ", ")
  }

  /// Every byte of a kindergarten's shard: the file and its write-ahead log.
  static func shardBytes(_ district: District, _ code: String) throws -> Data {
    let path = (district.dataDirectory as NSString).appendingPathComponent("shards/\(code).sqlite")
    var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
    if let wal = try? Data(contentsOf: URL(fileURLWithPath: path + "-wal")) { bytes.append(wal) }
    return bytes
  }

  @Test("phones and health never reach the shard's file in the clear, the record's ID number is sealed, and the owner reads them all")
  func sealedOnDisk() async throws {
    try await withDistrict { district in
      let number = try await Self.enrollAndChange(district)
      _ = try await district.asUser(District.user(.administrator)) {
        try await Pemis_V1_KindergartenData.Client(wrapping: $0).createStaff(.with { $0.staff = KindergartenDataFixtures.teacher })
      }
      let bytes = try Self.shardBytes(district, District.kindergartenA)
      for secret in [Self.firstPhone, Self.secondPhone, Self.health, KindergartenDataFixtures.teacher.idDocumentNumber] {
        #expect(bytes.range(of: Data(secret.utf8)) == nil, "\(secret) is in the shard file")
      }
      // The record's own copy of the ID number is sealed (the record number, "G" + the ID, is
      // still the row's key: docs/OPERATIONS.md says what is left).
      let path = (district.dataDirectory as NSString).appendingPathComponent("shards/\(District.kindergartenA).sqlite")
      let stored = try await DatabaseQueue(path: path).read { db in
        try String.fetchOne(db, sql: "SELECT json_extract(data, '$.idDocumentNumber') FROM child")
      }
      #expect(stored?.hasPrefix("enc2:1:") == true, "\(stored ?? "nil")")
      #expect(stored?.contains(KindergartenDataFixtures.childID) == false)

      // The kindergarten reads everything back, history included.
      let child = try await district.asUser(District.user(.principal)) {
        try await Pemis_V1_ChildRecords.Client(wrapping: $0).getChild(.with { $0.recordNumber = number })
      }
      #expect(child.guardians.first?.phone == Self.secondPhone)
      #expect(child.health == Self.health)
      #expect(child.idDocumentNumber == KindergartenDataFixtures.childID)
      let history = try await district.asUser(District.user(.principal)) {
        try await Pemis_V1_KindergartenData.Client(wrapping: $0).getHistory(.with { $0.record = "child:" + child.childRef })
      }
      let phone = history.entries.first { $0.field == "guardians[0].phone" && !$0.oldValue.isEmpty }
      #expect(phone?.oldValue == Self.firstPhone)
      #expect(phone?.newValue == Self.secondPhone)
      #expect(history.entries.contains { $0.field == "health" && $0.newValue == Self.health })
      let staff = try await district.asUser(District.user(.principal)) {
        try await Pemis_V1_KindergartenData.Client(wrapping: $0).listStaff(.init())
      }
      // Answers mask it; the mask is of the opened number, not of its sealed text.
      #expect(staff.staff.map(\.idDocumentNumber) == [IDDocuments.mask(KindergartenDataFixtures.teacher.idDocumentNumber)])
    }
  }

  @Test("a server whose key file is missing, wrong or damaged does not start, and says which and where")
  func missingOrWrongKey() async throws {
    let template = try await DistrictTemplate.directory()
    let data = FileManager.default.temporaryDirectory.appendingPathComponent("pemis-keys-\(UUID())").path
    try DistrictTemplate.copyDataDirectory(template, to: data)
    let keyFile = DataKeys.defaultFile(forDataDirectory: data)
    defer {
      try? FileManager.default.removeItem(atPath: data)
      try? FileManager.default.removeItem(atPath: keyFile)
    }
    var configuration = ServerConfiguration.defaults
    configuration.dataDirectory = data
    configuration.calendarDirectory = repositoryRoot.appendingPathComponent("Config/calendar").path
    func start() -> String {
      do {
        _ = try PEMISServer(configuration: configuration, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        return "started"
      } catch {
        return "\(error)"
      }
    }
    let right = try String(contentsOfFile: keyFile, encoding: .utf8)
    #expect(try FileManager.default.attributesOfItem(atPath: keyFile)[.posixPermissions] as? NSNumber == 0o600)

    try FileManager.default.removeItem(atPath: keyFile)
    let missing = start()
    #expect(missing.contains("数据密钥缺失") && missing.contains(keyFile), "\(missing)")
    #expect(!FileManager.default.fileExists(atPath: keyFile), "a new key must not be made for sealed data")

    try DataKeys.generatedText().write(toFile: keyFile, atomically: true, encoding: .utf8)
    let wrong = start()
    #expect(wrong.contains("数据密钥不符") && wrong.contains(keyFile), "\(wrong)")

    try "index abc\n".write(toFile: keyFile, atomically: true, encoding: .utf8)
    let damaged = start()
    #expect(damaged.contains("line 1") && damaged.contains("base64"), "\(damaged)")

    // The keys in the environment take the file's place.
    configuration.dataKey = right.replacingOccurrences(of: "\n", with: ";")
    #expect(start() == "started")
    configuration.dataKey = nil
    try right.write(toFile: keyFile, atomically: true, encoding: .utf8)
    #expect(start() == "started")
  }

  @Test("the data key file must be outside the data directory")
  func keyFileOutside() throws {
    var configuration = ServerConfiguration.defaults
    configuration.dataDirectory = "/srv/pemis/data"
    configuration.dataKeyFile = "/srv/pemis/data/keys/data.key"
    #expect(throws: ConfigurationError.self) { try configuration.validate() }
    configuration.dataKeyFile = nil
    #expect(configuration.resolvedDataKeyFile == "/srv/pemis/data.key")
    #expect(throws: Never.self) { try configuration.validate() }
  }

  @Test("`pemis-server key rotate` re-seals every value while the server runs; the server reads old and new, and seals with the new key")
  func onlineRotation() async throws {
    try await withDistrict { district in
      let number = try await Self.enrollAndChange(district)
      let before = try await Self.key("status", district)
      #expect(before.status == 0, "\(before.stderr)")
      #expect(before.stdout.contains("active: 1"), "\(before.stdout)")

      let rotate = try await Self.key("rotate", district)
      #expect(rotate.status == 0, "\(rotate.stdout)\n\(rotate.stderr)")
      #expect(rotate.stdout.contains("data key 2 added"), "\(rotate.stdout)")
      #expect(Self.lastPass(rotate.stdout) == "under key 2", "\(rotate.stdout)")
      let path = (district.dataDirectory as NSString).appendingPathComponent("shards/\(District.kindergartenA).sqlite")
      let stored = try await DatabaseQueue(path: path).read { db in
        try String.fetchOne(db, sql: "SELECT json_extract(data, '$.health') FROM child")
      }
      #expect(stored?.hasPrefix("enc2:2:") == true, "\(stored ?? "nil")")

      // The running server opens what key 2 sealed (it re-reads the file for a key it lacks).
      let child = try await district.asUser(District.user(.principal)) {
        try await Pemis_V1_ChildRecords.Client(wrapping: $0).getChild(.with { $0.recordNumber = number })
      }
      #expect(child.health == Self.health)
      #expect(child.guardians.first?.phone == Self.secondPhone)
      // And seals what it writes next with key 2.
      try await Task.sleep(for: DataKeys.recheckInterval + .milliseconds(200))
      var changed = child
      changed.guardians[0].phone = Self.firstPhone
      _ = try await district.asUser(District.user(.administrator)) {
        try await Pemis_V1_ChildRecords.Client(wrapping: $0).updateChild(.with {
          $0.recordNumber = number
          $0.child = changed
          $0.fields = ["guardians"]
        })
      }
      let phone = try await DatabaseQueue(path: path).read { db in
        try String.fetchOne(db, sql: "SELECT json_extract(data, '$.guardians[0].phone') FROM child")
      }
      #expect(phone?.hasPrefix("enc2:2:") == true, "\(phone ?? "nil")")
      let after = try await Self.key("status", district)
      #expect(after.stdout.contains("active: 2") && !after.stdout.contains("under key 1"), "\(after.stdout)")
    }
  }
}


extension EncryptionAtRestTests {
  @Test("a rotation cut short after the new key file is in place (a kill before the re-seal) leaves every value readable, and `key reseal` finishes it")
  func rotationCutShort() async throws {
    try await withDistrict { district in
      let number = try await Self.enrollAndChange(district)
      // What `key rotate` does before its first re-seal pass, and nothing after: the kill point.
      let file = DataKeys.defaultFile(forDataDirectory: district.dataDirectory)
      #expect(try DataKeys.load(file: file, create: false).rotateFile() == 2)

      let status = try await Self.key("status", district)
      #expect(status.status == 0 && status.stdout.contains("active: 2") && status.stdout.contains("under key 1"), "\(status.stdout)\n\(status.stderr)")
      let child = try await district.asUser(District.user(.principal)) {
        try await Pemis_V1_ChildRecords.Client(wrapping: $0).getChild(.with { $0.recordNumber = number })
      }
      #expect(child.health == Self.health && child.guardians.first?.phone == Self.secondPhone)

      let reseal = try await Self.key("reseal", district)
      #expect(reseal.status == 0, "\(reseal.stdout)\n\(reseal.stderr)")
      #expect(Self.lastPass(reseal.stdout) == "under key 2", "\(reseal.stdout)")
    }
  }

  @Test("a kindergarten whose shard is missing does not stop `key rotate` re-sealing the others; the command names it and fails")
  func rotationPastMissingShard() async throws {
    try await withDistrict { district in
      _ = try await Self.enrollAndChange(district)
      let missing = (district.dataDirectory as NSString).appendingPathComponent("shards/\(District.kindergartenB).sqlite")
      for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: missing + suffix) }

      let status = try await Self.key("status", district)
      #expect(status.status == 1 && status.stderr.contains(District.kindergartenB), "\(status.stdout)\n\(status.stderr)")
      #expect(status.stdout.contains("under key 1"), "\(status.stdout)")

      let rotate = try await Self.key("rotate", district)
      #expect(rotate.status == 1, "\(rotate.stdout)\n\(rotate.stderr)")
      #expect(rotate.stderr.contains("kindergarten \(District.kindergartenB) could not be read"), "\(rotate.stderr)")
      #expect(!rotate.stderr.contains(District.kindergartenA) && !rotate.stderr.contains("ExitCode"), "\(rotate.stderr)")
      #expect(Self.lastPass(rotate.stdout) == "under key 2", "\(rotate.stdout)")
      let path = (district.dataDirectory as NSString).appendingPathComponent("shards/\(District.kindergartenA).sqlite")
      let stored = try await DatabaseQueue(path: path).read { db in
        try String.fetchOne(db, sql: "SELECT json_extract(data, '$.health') FROM child")
      }
      #expect(stored?.hasPrefix("enc2:2:") == true, "\(stored ?? "nil")")
      #expect(!FileManager.default.fileExists(atPath: missing), "a missing shard must not be made anew, empty")
      let audit = try DatabaseQueue(path: (district.dataDirectory as NSString).appendingPathComponent("registry.sqlite")).read { db in
        try Row.fetchOne(db, sql: "SELECT targets, result FROM audit_log WHERE method = 'data key reseal' ORDER BY seq DESC LIMIT 1")
      }
      #expect(audit?["result"] == "FAILED_PRECONDITION", "\(String(describing: audit))")
      #expect((audit?["targets"] as String?)?.contains("kindergarten:\(District.kindergartenB)") == true, "\(String(describing: audit))")
    }
  }
}

@Suite("Data keys")
struct DataKeysTests {
  @Test("migration v12 seals the child reference key and export files an older registry kept in the clear, and references stay the same")
  func registryMigration() async throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pemis-v12-\(UUID())").path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let path = (directory as NSString).appendingPathComponent("registry.sqlite")
    let keys = DataKeys.ephemeral()
    let (plainKey, before) = try await {
      let queue = try DatabaseQueue(path: path)
      try Registry.migrator(keys: keys).migrate(queue, upTo: "v9-login-throttle")
      return try await queue.write { db -> (String, String) in
        try db.execute(
          sql: """
            INSERT INTO export_request (id, purpose, recipient, fields, fullRequested, fullApproved, state, requestedBy, requestedRole,
              requestedAt, rows, downloads, file) VALUES ('E1', 'p', 'r', 'name', '', '', 'approved', 'u', 'principal', 0, 1, 0, ?)
            """, arguments: [Data("name\n张小明\n".utf8)])
        let key = try String.fetchOne(db, sql: "SELECT value FROM registry_meta WHERE key = 'childReferenceKey'") ?? ""
        return (key, ChildReferences(keyHex: key).reference("G120116202203151234"))
      }
    }()
    let registry = try Registry(directory: directory, keys: keys)
    #expect(registry.childReferences.reference("G120116202203151234") == before)
    let queue = try DatabaseQueue(path: path)
    let (storedKey, file) = try await queue.read { db in
      (try String.fetchOne(db, sql: "SELECT value FROM registry_meta WHERE key = 'childReferenceKey'") ?? "",
       try Data.fetchOne(db, sql: "SELECT file FROM export_request WHERE id = 'E1'") ?? Data())
    }
    #expect(storedKey.hasPrefix("enc2:1:") && !storedKey.contains(plainKey))
    #expect(file.range(of: Data("张小明".utf8)) == nil)
    #expect(try keys.open(data: file, context: "export_request.file") == Data("name\n张小明\n".utf8))
    #expect(try await registry.sealedValueCounts() == [1: 2])
    // Another key now is a wrong key, refused before anything is read.
    #expect(throws: StoreError.self) { _ = try Registry(directory: directory, keys: DataKeys.ephemeral()) }
  }

  @Test("sealed values open under their key and context only; rotation keeps older keys readable")
  func sealAndRotate() throws {
    let text = DataKeys.generatedText()
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("pemis-keytest-\(UUID()).key").path
    try text.write(toFile: file, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(atPath: file) }
    let keys = try DataKeys.load(file: file, create: false)
    let sealed = keys.seal("13800138000", context: "child.data.guardians.phone")
    #expect(sealed.hasPrefix("enc2:1:") && !sealed.contains("13800138000"))
    #expect(keys.seal("13800138000", context: "child.data.guardians.phone") != sealed, "a fresh nonce each time")
    #expect(try keys.open(sealed, context: "child.data.guardians.phone") == "13800138000")
    #expect(throws: StoreError.self) { try keys.open(sealed, context: "child.data.health") }
    #expect(throws: StoreError.self) { try keys.open("13800138000", context: "child.data.guardians.phone") }
    #expect(keys.seal("", context: "x") == "")

    #expect(try keys.rotateFile() == 2)
    #expect(keys.activeKey == 2 && keys.keyNumbers == [1, 2])
    #expect(keys.seal("x", context: "c").hasPrefix("enc2:2:"))
    #expect(try keys.open(sealed, context: "child.data.guardians.phone") == "13800138000")
    let reloaded = try DataKeys.load(file: file, create: false)
    #expect(reloaded.fingerprint == keys.fingerprint && reloaded.activeKey == 2)
    #expect(reloaded.lookupKey("G1", purpose: "record") == keys.lookupKey("G1", purpose: "record"))
    #expect(reloaded.lookupKey("G1", purpose: "record") != keys.lookupKey("G1", purpose: "document"))

    // Another key file opens nothing.
    let other = DataKeys.ephemeral()
    #expect(other.fingerprint != keys.fingerprint)
    #expect(throws: StoreError.self) { try other.open(sealed, context: "child.data.guardians.phone") }
    let file2 = other.seal(data: Data("a,b\n".utf8), context: "export_request.file")
    #expect(try other.open(data: file2, context: "export_request.file") == Data("a,b\n".utf8))
    #expect(throws: StoreError.self) { try keys.open(data: file2, context: "export_request.file") }
  }

  @Test("every mistake in a key file names its line")
  func parseErrors() {
    let key = Data(repeating: 7, count: 32).base64EncodedString()
    let cases: [(String, String)] = [
      ("data 1 \(key) active\n", "no index key"),
      ("index \(key)\n", "no data key"),
      ("index \(key)\nindex \(key)\ndata 1 \(key)\n", "line 2"),
      ("index \(key)\ndata 1 short\n", "line 2"),
      ("index \(key)\ndata 0 \(key)\n", "line 2"),
      ("index \(key)\ndata 1 \(key) active\ndata 2 \(key) active\n", "more than one"),
      ("index \(key)\nsecret \(key)\n", "line 2"),
    ]
    for (text, expected) in cases {
      #expect(throws: StoreError.self) { _ = try DataKeys.parse(text, from: "k") }
      do { _ = try DataKeys.parse(text, from: "k") } catch { #expect("\(error)".contains(expected), "\(error)") }
    }
    #expect((try? DataKeys.parse("# comment\nindex \(key)\n\ndata 3 \(key)\ndata 4 \(key)\n", from: "k"))?.active == 4)
  }
}
