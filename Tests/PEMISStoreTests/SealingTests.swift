import Crypto
import Foundation
import GRDB
import PEMISDomain
import Testing

@testable import PEMISStore

/// What a copy of a shard file without the key file still gives away (issue 13, "Encryption at
/// rest"): not a value's length, not the plaintext a migration replaced.
@Suite("Sealing at rest")
struct SealingTests {
  static let phone = "13800138000"

  /// The child of ``ChildStoreTests`` with a health status and an ID document of its own.
  static func child(health: String = "healthy", type: IDDocumentType = .residentID, number: String = "120116202203151239") -> ChildRecord {
    var child = ChildStoreTests.child
    child.health = health
    child.idDocumentType = type
    child.idDocumentNumber = number
    return child
  }

  /// Every byte of a shard: the file and its write-ahead log.
  static func bytes(_ path: String) throws -> Data {
    var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
    if let wal = try? Data(contentsOf: URL(fileURLWithPath: path + "-wal")) { bytes.append(wal) }
    return bytes
  }

  /// A value as stop 25 sealed it: no padding, the `enc:` prefix.
  static func unpaddedSeal(_ text: String, context: String, keyText: String) throws -> String {
    let keyring = try DataKeys.parse(keyText, from: "test")
    let box = try AES.GCM.seal(Data(text.utf8), using: keyring.data[keyring.active]!, authenticating: Data(context.utf8))
    return "enc:\(keyring.active):\(box.combined!.base64EncodedString())"
  }

  @Test("every health status, and ID numbers of every length, seal to values of one length")
  func paddedLengths() throws {
    let context = TenantShard.sealingContext("health")
    let lengths = Set(ChildRecord.healthStates.map { testKeys.seal($0, context: context).count })
    #expect(lengths.count == 1, "\(lengths)")
    let numbers = ["120116202203151239", "E12345678", "H1234567801", "9110002022031512"]
    #expect(Set(numbers.map { testKeys.seal($0, context: "child.data.idDocumentNumber").count }).count == 1)
    for status in ChildRecord.healthStates {
      #expect(try testKeys.open(testKeys.seal(status, context: context), context: context) == status)
    }
    // A longer text takes whole blocks more; it still opens to itself.
    let long = String(repeating: "慢性病 ", count: 20)
    #expect(try testKeys.open(testKeys.seal(long, context: context), context: context) == long)
    #expect(testKeys.seal(long, context: context).count > lengths.first!)
  }

  @Test("a value in stop 25's unpadded format still opens, and re-sealing brings every kind of value to the current format")
  func resealRules() throws {
    let text = DataKeys.generatedText()
    let file = temporaryDirectory() + ".key"
    try text.write(toFile: file, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(atPath: file) }
    let keys = try DataKeys.load(file: file, create: false)
    let context = "child.data.guardians.phone"
    let legacy = try Self.unpaddedSeal(Self.phone, context: context, keyText: text)
    #expect(try keys.open(legacy, context: context) == Self.phone)
    #expect(DataKeys.sealingKey(of: legacy) == 1 && !DataKeys.isCurrent(legacy, active: 1))

    let current = keys.seal(Self.phone, context: context)
    #expect(current.hasPrefix("enc2:1:") && DataKeys.isCurrent(current, active: 1))
    #expect(try keys.resealed(current, context: context, active: 1) == nil)
    #expect(try keys.resealed("", context: context, active: 1) == nil)
    for stored in [legacy, Self.phone] {
      let resealed = try #require(try keys.resealed(stored, context: context, active: 1))
      #expect(DataKeys.isCurrent(resealed, active: 1))
      #expect(try keys.open(resealed, context: context) == Self.phone)
    }
    // A damaged padding is refused, not read as text.
    let key = try DataKeys.parse(text, from: "test").data[1]!
    let box = try AES.GCM.seal(Data(Self.phone.utf8), using: key, authenticating: Data(context.utf8))
    #expect(throws: StoreError.self) { try keys.open("enc2:1:\(box.combined!.base64EncodedString())", context: context) }
  }

  /// A shard as it was before sealing (migrations up to v8), holding one child whose phone and
  /// health are in the clear.
  static func fillBeforeSealing(_ queue: DatabaseQueue) throws {
    try TenantShard.migrator(keys: testKeys).migrate(queue, upTo: "v8-retention")
    let json = String(decoding: try JSONEncoder().encode(child(health: "chronic_condition")), as: UTF8.self)
    try queue.write { db in
      try db.execute(
        sql: "INSERT INTO child (recordNumber, data, state, classId, createdAt, identityKey) VALUES ('G120116202203151239', ?, 'enrolled', NULL, 0, '')",
        arguments: [json])
    }
  }

  @Test("a shard that kept phones in the clear is sealed on opening, and the old plaintext is not left in the file")
  func migrationScrubs() throws {
    let path = temporaryDirectory() + ".sqlite"
    defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
    do { try Self.fillBeforeSealing(try DatabaseQueue(path: path)) }
    #expect(try Self.bytes(path).range(of: Data(Self.phone.utf8)) != nil, "the old shard holds the phone")
    let shard = try TenantShard(code: InstitutionCode(validating: "1112000101"), path: path, keys: testKeys, configuration: .defaults)
    _ = shard
    let bytes = try Self.bytes(path)
    #expect(bytes.range(of: Data(Self.phone.utf8)) == nil, "the phone is left in a free page")
    #expect(bytes.range(of: Data("chronic_condition".utf8)) == nil, "the health status is left in a free page")
  }

  @Test("a scrub cut short (killed after the sealing migration committed, before the VACUUM) is done at the next opening")
  func scrubOwed() throws {
    let path = temporaryDirectory() + ".sqlite"
    defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
    // Never closed, like a killed process's, and in WAL mode as the store runs: its write-ahead
    // log keeps the old frames.
    var configuration = Configuration()
    configuration.journalMode = .wal
    let killed = try DatabaseQueue(path: path, configuration: configuration)
    try Self.fillBeforeSealing(killed)
    // What the opening that was killed had done: the scrub owed, then every migration.
    try killed.write { db in
      try db.execute(sql: "CREATE TABLE scrub_pending (reason TEXT NOT NULL)")
      try db.execute(sql: "INSERT INTO scrub_pending (reason) VALUES ('v9-sealed-fields,v10-padded-sealing')")
    }
    try TenantShard.migrator(keys: testKeys).migrate(killed)
    #expect(try Self.bytes(path).range(of: Data(Self.phone.utf8)) != nil, "the killed opening left the phone in the files")

    let shard = try TenantShard(code: InstitutionCode(validating: "1112000101"), path: path, keys: testKeys, configuration: .defaults)
    _ = shard
    #expect(try Self.bytes(path).range(of: Data(Self.phone.utf8)) == nil, "the owed scrub was not done")
    #expect(try !killed.read { db in try db.tableExists("scrub_pending") })
    withExtendedLifetime(killed) {}
  }

  @Test("a value written in the clear behind the server's back is sealed by `key reseal`, and one in the unpadded format too")
  func resealRepairs() async throws {
    let path = temporaryDirectory() + ".sqlite"
    defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
    let text = DataKeys.generatedText()
    try text.write(toFile: path + ".key", atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(atPath: path + ".key") }
    let keys = try DataKeys.load(file: path + ".key", create: false)
    let shard = try TenantShard(code: InstitutionCode(validating: "1112000101"), path: path, keys: keys, configuration: .defaults)
    _ = try await shard.enroll(Self.child(), recordNumber: "G120116202203151239", classId: nil, by: "t", at: 0)
    let legacyHealth = try Self.unpaddedSeal("healthy", context: TenantShard.sealingContext("health"), keyText: text)
    try await shard.writer.write { db in
      try db.execute(
        sql: "UPDATE child SET data = json_set(json_set(data, '$.guardians[0].phone', ?), '$.health', ?)",
        arguments: [Self.phone, legacyHealth])
    }
    let before = try await shard.sealedValueCounts()
    #expect(before[0] == 1, "\(before)")
    #expect(try await shard.reseal() == 2)
    let data = try await shard.writer.read { db in try String.fetchOne(db, sql: "SELECT data FROM child") ?? "" }
    #expect(!data.contains(Self.phone) && !data.contains("\"enc:"), "\(data)")
    let row = try #require(try await shard.child("G120116202203151239"))
    #expect(row.data.guardians[0].phone == Self.phone && row.data.health == "healthy")
    #expect(try await shard.reseal() == 0)
  }
}
