import Foundation
import GRDB
import PEMISDomain
import Testing

@testable import PEMISStore

func temporaryDirectory() -> String {
  FileManager.default.temporaryDirectory.appendingPathComponent("pemis-store-\(UUID())").path
}

@Suite("Registry")
struct RegistryTests {
  @Test("opens twice on the same directory without re-running migrations, owner-only")
  func reopen() throws {
    let dir = temporaryDirectory()
    _ = try Registry(directory: dir, keys: testKeys)
    let again = try Registry(directory: dir, keys: testKeys)
    #expect(FileManager.default.fileExists(atPath: again.path))
    let attributes = try FileManager.default.attributesOfItem(atPath: dir)
    #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o700)
  }

  @Test("synchronous is FULL by default and NORMAL when asked")
  func durability() async throws {
    let full = try Registry(directory: temporaryDirectory(), keys: testKeys)
    #expect(try await full.writer.read { try Int.fetchOne($0, sql: "PRAGMA synchronous") } == 2)
    #expect(try await full.writer.read { try String.fetchOne($0, sql: "PRAGMA journal_mode") } == "wal")
    let normal = try Registry(directory: temporaryDirectory(), keys: testKeys, configuration: .init(durability: .normal))
    #expect(try await normal.writer.read { try Int.fetchOne($0, sql: "PRAGMA synchronous") } == 1)
  }

  @Test("a taken username is refused")
  func duplicateUsername() async throws {
    let registry = try Registry(directory: temporaryDirectory(), keys: testKeys)
    let account = AccountRecord(
      username: "wang.li", role: .principal, kindergartenCode: "1112000101", displayName: "王丽", passwordHash: "x",
      createdAt: 1)
    try await registry.createAccount(account)
    let error = await #expect(throws: StoreError.self) { try await registry.createAccount(account) }
    #expect(error?.kind == .alreadyExists)
  }

  func auditEntry(_ n: Int) -> AuditRecord {
    AuditRecord(
      atMs: Int64(n), username: "u\(n)", role: "district_admin", kindergartenCode: "", method: "/m", targets: ["t\(n)"],
      result: "OK", peer: "ipv4:127.0.0.1:1")
  }

  @Test("the audit chain verifies, and shows a changed, removed or inserted entry")
  func auditChain() async throws {
    let registry = try Registry(directory: temporaryDirectory(), keys: testKeys)
    #expect(try await registry.verifyAuditChain() == .intact(entries: 0, head: Registry.genesisHash))
    for n in 1...5 { try await registry.appendAudit(auditEntry(n)) }
    guard case .intact(5, let head) = try await registry.verifyAuditChain() else { Issue.record("not intact"); return }
    #expect(head.count == 64)

    try await registry.writer.write { try $0.execute(sql: "UPDATE audit_log SET result = 'PERMISSION_DENIED' WHERE seq = 3") }
    #expect(try await registry.verifyAuditChain() == .broken(atSequence: 3, reason: "its contents do not match its hash"))
    try await registry.writer.write { try $0.execute(sql: "UPDATE audit_log SET result = 'OK' WHERE seq = 3") }
    #expect(try await registry.verifyAuditChain() == .intact(entries: 5, head: head))

    try await registry.writer.write { try $0.execute(sql: "DELETE FROM audit_log WHERE seq = 2") }
    if case .broken(let seq, _) = try await registry.verifyAuditChain() { #expect(seq == 2) } else { Issue.record("deletion not detected") }
  }
}

@Suite("Shard pool")
struct ShardPoolTests {
  let code1 = try! InstitutionCode(validating: "1112000101")

  @Test("creates a shard under shards/<code>.sqlite that knows whose it is")
  func create() async throws {
    let pool = try ShardPool(directory: temporaryDirectory(), keys: testKeys)
    let shard = try await pool.create(code1, createdAt: 42)
    #expect(pool.path(for: code1).hasSuffix("/1112000101.sqlite"))
    #expect(pool.exists(code1))
    let info = try await shard.info()
    #expect(info == .init(code: "1112000101", schemaVersion: 1, createdAt: 42))
  }

  @Test("opening a kindergarten without a shard is NOT_FOUND and creates no file")
  func missing() async throws {
    let pool = try ShardPool(directory: temporaryDirectory(), keys: testKeys)
    let error = await #expect(throws: StoreError.self) { try await pool.shard(code1) }
    #expect(error?.kind == .notFound)
    #expect(!pool.exists(code1))
  }

  @Test("keeps at most maxOpenShards open, dropping the least recently used")
  func lru() async throws {
    let pool = try ShardPool(directory: temporaryDirectory(), keys: testKeys, configuration: .init(maxOpenShards: 3))
    let codes = try (1...5).map { try InstitutionCode(validating: "11120001\(String(format: "%02d", $0))") }
    for code in codes { try await pool.create(code, createdAt: 1) }
    #expect(pool.openCount == 3)
    // Every shard still opens on demand, and works.
    for code in codes { #expect(try await pool.shard(code).info().code == code.rawValue) }
    #expect(pool.openCount == 3)
  }

  @Test("concurrent first calls to one shard share one open")
  func concurrentOpen() async throws {
    let dir = temporaryDirectory()
    try await ShardPool(directory: dir, keys: testKeys).create(code1, createdAt: 1)
    let pool = try ShardPool(directory: dir, keys: testKeys)
    let shards = try await withThrowingTaskGroup(of: ObjectIdentifier.self) { group in
      for _ in 0..<100 { group.addTask { ObjectIdentifier(try await pool.shard(code1)) } }
      return try await group.reduce(into: Set<ObjectIdentifier>()) { $0.insert($1) }
    }
    #expect(shards.count == 1)
    #expect(pool.openCount == 1)
  }

  @Test("a shard file that belongs to another kindergarten is detected")
  func misplaced() async throws {
    let dir = temporaryDirectory()
    let pool = try ShardPool(directory: dir, keys: testKeys)
    try await pool.create(code1, createdAt: 1)
    let other = try InstitutionCode(validating: "1112000199")
    for suffix in ["", "-wal"] where FileManager.default.fileExists(atPath: pool.path(for: code1) + suffix) {
      try FileManager.default.copyItem(atPath: pool.path(for: code1) + suffix, toPath: pool.path(for: other) + suffix)
    }
    let fresh = try ShardPool(directory: dir, keys: testKeys)
    let error = await #expect(throws: StoreError.self) { try await fresh.shard(other).info() }
    #expect(error?.message.contains("belongs to 1112000101") == true)
  }
}
