import Foundation
import GRDB
import PEMISDomain
import Testing

@testable import PEMISStore

@Suite("Child store")
struct ChildStoreTests {
  static let child = ChildRecord(
    name: "张小明", gender: .male, birthDate: CalendarDate(year: 2022, month: 3, day: 15), idDocumentType: .residentID,
    idDocumentNumber: "120116202203151239", nationality: "CHN", ethnicity: "01", birthPlace: "120116", householdRegister: "120116",
    householdType: "resident", hmtStatus: "none", health: "healthy", onlyChild: true,
    guardians: [.init(name: "张伟", relation: "father", phone: "13800138000")], entryDate: CalendarDate(year: 2026, month: 9, day: 1))

  @Test("a shard written before the change tables gets its children's identity keys on migration")
  func migratesIdentityKeys() throws {
    let path = temporaryDirectory() + ".sqlite"
    let queue = try DatabaseQueue(path: path)
    try TenantShard.migrator(keys: testKeys).migrate(queue, upTo: "v4-children")
    let json = String(decoding: try JSONEncoder().encode(Self.child), as: UTF8.self)
    try queue.write { db in
      try db.execute(
        sql: "INSERT INTO child (recordNumber, data, state, classId, createdAt) VALUES (?, ?, 'enrolled', NULL, 0)",
        arguments: ["G120116202203151239", json])
    }
    try TenantShard.migrator(keys: testKeys).migrate(queue)
    let key = try queue.read { try String.fetchOne($0, sql: "SELECT identityKey FROM child") }
    #expect(key == Self.child.identityKey)
    #expect(try queue.read { try Bool.fetchOne($0, sql: "SELECT leftOn IS NULL FROM child") } == true)
    // v9 sealed what the old version kept in the clear, and it opens again.
    let phone = try queue.read { try String.fetchOne($0, sql: "SELECT json_extract(data, '$.guardians[0].phone') FROM child") }
    #expect(phone?.hasPrefix("enc2:") == true)
    #expect(try testKeys.open(phone ?? "", context: "child.data.guardians.phone") == "13800138000")
  }

  @Test("monthly audits open once per month, from each kindergarten's first month, and only for ended months")
  func monthlyAudits() async throws {
    let registry = try Registry(directory: temporaryDirectory(), keys: testKeys)
    // Activated 2026-08-10 (Beijing).
    // Without its application (foreign keys off for this one row): only the kindergarten matters.
    try await registry.writer.writeWithoutTransaction { db in
      try db.execute(sql: "PRAGMA foreign_keys = OFF")
      defer { try? db.execute(sql: "PRAGMA foreign_keys = ON") }
      try KindergartenRecord(code: "1112000101", name: "一园", ownership: .public, applicationId: "A1", activatedAt: 1_786_320_000).insert(db)
    }
    let calendar = try CalendarFiles.load(directory: URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Config/calendar").path)
    #expect(try await registry.openMonthlyAudits(through: YearMonth(year: 2026, month: 10), calendar: calendar, at: 0) == 3)
    #expect(try await registry.openMonthlyAudits(through: YearMonth(year: 2026, month: 10), calendar: calendar, at: 0) == 0)
    #expect(try await registry.openMonthlyAudits(through: YearMonth(year: 2026, month: 11), calendar: calendar, at: 0) == 1)
    let august = try await registry.obligation(kindergarten: "1112000101", kind: .monthlyAudit, subject: "month:2026-08")
    #expect(august?.triggeredOn == "2026-08-31")
    #expect(august?.dueOn == "2026-09-03")
    let september = try await registry.obligation(kindergarten: "1112000101", kind: .monthlyAudit, subject: "month:2026-09")
    // Three working days after 30 September, past the National Day holidays.
    #expect(september?.dueOn.map { $0 > "2026-10-08" } == true)
  }
}

@Suite("Audit group commit")
struct AuditGroupCommitTests {
  @Test("concurrent appends share commits and still form one unbroken chain, one entry each")
  func concurrentAppends() async throws {
    let registry = try Registry(directory: temporaryDirectory(), keys: testKeys)
    let written = try await withThrowingTaskGroup(of: AuditRecord.self) { group in
      for i in 0..<200 {
        group.addTask {
          try await registry.appendAudit(
            AuditRecord(atMs: Int64(i), username: "u\(i)", role: "principal", kindergartenCode: "", method: "/m", targets: [], result: "OK", peer: ""))
        }
      }
      var all: [AuditRecord] = []
      for try await entry in group { all.append(entry) }
      return all
    }
    #expect(Set(written.compactMap(\.seq)) == Set(1...200))
    #expect(Set(written.map(\.username)).count == 200)
    guard case .intact(let entries, _) = try await registry.verifyAuditChain() else {
      Issue.record("the chain is broken")
      return
    }
    #expect(entries == 200)
  }
}
