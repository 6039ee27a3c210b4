import Foundation
import GRDB
import GRPCCore
import PEMISClient
import PEMISDomain
import PEMISProto
import PEMISWire
import SwiftProtobuf
import Testing

@testable import PEMISServer
@testable import PEMISStore

/// Issue 13, item 7: the audit log cannot fail open, is written by a service of the server,
/// keeps its head outside the data directory, is kept six months and reads newest first.
@Suite("Audit log")
struct AuditLogTests {
  /// A second connection to the registry that makes audit inserts fail, as a full or failing
  /// disk would; `when` narrows which.
  func blockAudit(_ district: District, when condition: String = "1") async throws {
    let path = (district.dataDirectory as NSString).appendingPathComponent("registry.sqlite")
    try await DatabaseQueue(path: path).write { db in
      try db.execute(sql: "CREATE TRIGGER audit_blocked BEFORE INSERT ON audit_log WHEN \(condition) BEGIN SELECT RAISE(FAIL, 'disk I/O error'); END")
    }
  }

  func unblockAudit(_ district: District) async throws {
    let path = (district.dataDirectory as NSString).appendingPathComponent("registry.sqlite")
    try await DatabaseQueue(path: path).write { db in try db.execute(sql: "DROP TRIGGER audit_blocked") }
  }

  func classes(_ district: District) async throws -> [String] {
    try await district.server.tenancy.shards.shard(try InstitutionCode(validating: District.kindergartenA)).classes().map(\.data.name)
  }

  @Test("when no entry can be written, a change is refused before it is made, a read shows nothing, a login gives no session")
  func failsClosed() async throws {
    try await withDistrict { district in
      let admin = District.user(.administrator)
      // Logged in before the disk fills.
      let token = try await district.login(admin).token
      let before = try await classes(district)
      try await blockAudit(district)
      let change = await failure {
        _ = try await withPEMISClient(district.address, token: token) {
          try await Pemis_V1_KindergartenData.Client(wrapping: $0).createClass(.with { $0.class = KindergartenDataFixtures.newClass("小三班") })
        }
      }
      #expect(change?.code == .unavailable)
      #expect(change?.message == "audit log: cannot be written, so nothing was done; try again later")
      #expect(try await classes(district) == before, "the class was not created")
      let read = await failure {
        _ = try await withPEMISClient(district.address, token: token) {
          try await Pemis_V1_KindergartenData.Client(wrapping: $0).listClasses(.init())
        }
      }
      #expect(read?.code == .unavailable)
      #expect(read?.message == "audit log: cannot be written, so nothing is shown; try again later")
      let login = await failure { _ = try await district.login(admin) }
      #expect(login?.code == .unavailable, "no session token leaves without its entry")
      // When the disk has room again, everything works, and the chain is whole.
      try await unblockAudit(district)
      _ = try await district.asUser(admin) {
        try await Pemis_V1_KindergartenData.Client(wrapping: $0).createClass(.with { $0.class = KindergartenDataFixtures.newClass("小三班") })
      }
      #expect(try await classes(district) == before + ["小三班"])
      guard case .intact = try await district.registry.verifyAuditChain() else {
        Issue.record("the chain broke")
        return
      }
    }
  }

  @Test("a change is in the log before it is made: if only its outcome cannot be written, its STARTED entry stands")
  func intentFirst() async throws {
    try await withDistrict { district in
      let admin = District.user(.administrator)
      try await blockAudit(district, when: "NEW.result <> 'STARTED' AND NEW.method LIKE '%CreateClass'")
      _ = try await district.asUser(admin) {
        try await Pemis_V1_KindergartenData.Client(wrapping: $0).createClass(.with { $0.class = KindergartenDataFixtures.newClass("小四班") })
      }
      #expect(try await classes(district).contains("小四班"))
      let entries = try await district.auditEntries(after: 0).filter { $0.method.hasSuffix("CreateClass") }
      #expect(entries.map(\.result) == [AuditRecord.startedResult])
      #expect(entries.first?.username == admin)
      #expect(entries.first?.targets.contains("kindergarten:\(District.kindergartenA)") == true)
      try await unblockAudit(district)
      // Unblocked, a change leaves its two entries, one request id.
      _ = try await district.asUser(admin) {
        try await Pemis_V1_KindergartenData.Client(wrapping: $0).createClass(.with { $0.class = KindergartenDataFixtures.newClass("小五班") })
      }
      let pair = try await district.auditEntries(after: 0).filter { $0.method.hasSuffix("CreateClass") }.suffix(2)
      #expect(pair.map(\.result) == [AuditRecord.startedResult, "OK"])
      #expect(Set(pair.map(\.requestId)).count == 1)
    }
  }

  @Test("the head file is written outside the data directory; entries cut off the end are found")
  func headFile() async throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("pemis-head-\(UUID())").path
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let headPath = (folder as NSString).appendingPathComponent("audit-head.json")
    try await withDistrict({
      $0.auditHeadFile = headPath
      $0.auditHeadIntervalSeconds = 1
    }) { district in
      _ = try await district.asUser(District.user(.administrator)) {
        try await Pemis_V1_KindergartenData.Client(wrapping: $0).listClasses(.init())
      }
      let last = try await district.registry.auditHead()
      var kept: AuditHeadFile?
      for _ in 0..<100 {
        if let file = try? AuditHeadFile.read(from: headPath), file.sequence >= last.sequence {
          kept = file
          break
        }
        try await Task.sleep(for: .milliseconds(100))
      }
      let head = try #require(kept, "the head file was not written within 10 s")
      #expect(try await head.check(district.registry) == .contained)
      // Someone with the database cuts the last entries: the chain alone still verifies…
      let path = (district.dataDirectory as NSString).appendingPathComponent("registry.sqlite")
      try await DatabaseQueue(path: path).write { db in try db.execute(sql: "DELETE FROM audit_log WHERE seq > ?", arguments: [head.sequence - 2]) }
      guard case .intact = try await district.registry.verifyAuditChain() else {
        Issue.record("a cut chain should still link")
        return
      }
      // …the head kept outside does not.
      #expect(try await head.check(district.registry) == .cut(missing: 2, logEndsAt: head.sequence - 2))
      var forged = head
      forged.sequence = 1
      #expect(try await forged.check(district.registry) == .differs)
    }
  }

  @Test("the head file inside the data directory is refused, naming the setting")
  func headFileInside() {
    var configuration = ServerConfiguration.defaults
    configuration.dataDirectory = "/var/lib/pemis"
    configuration.auditHeadFile = "/var/lib/pemis/../pemis/head.json"
    #expect(throws: ConfigurationError.self) { try configuration.validate() }
    configuration.auditHeadFile = "/var/lib/pemis-audit/head.json"
    #expect(throws: Never.self) { try configuration.validate() }
    configuration.auditRetentionMonths = 5
    #expect((try? configuration.validate()) == nil)
  }

  @Test("entries are kept six months: a prune within them is refused; an older one keeps the chain verifiable and is audited")
  func retention() async throws {
    try await withDistrict { district in
      let tenancy = district.server.tenancy
      let before = try await district.registry.auditHead()
      let firstDay = CalendarDate(beijingTimeOf: district.clock.now)
      let refused = await #expect(throws: StoreError.self) {
        _ = try await tenancy.pruneAuditLog(before: firstDay.next, retentionMonths: 6)
      }
      #expect(refused?.message.contains("Cybersecurity Law Art. 21") == true)
      #expect(try await district.registry.auditHead().sequence == before.sequence, "a refused prune removes nothing")
      // Seven months later, the entries of that first day may go.
      district.clock.advance(213 * 86400)
      _ = try await district.asUser(District.user(.districtAdmin)) { try await Pemis_V1_Audit.Client(wrapping: $0).queryAuditLog(.init()) }
      let removed = try await tenancy.pruneAuditLog(before: firstDay.next, retentionMonths: 6)
      #expect(removed == Int(before.sequence))
      guard case .intact(entries: let entries, head: _) = try await district.registry.verifyAuditChain() else {
        Issue.record("the chain after a prune should verify")
        return
      }
      #expect(entries >= 3, "the query and the prune's own two entries remain")
      let kept = try await district.auditEntries(after: 0)
      #expect(kept.first?.seq == before.sequence + 1)
      #expect(kept.suffix(2).map(\.method) == ["pemis-server audit prune", "pemis-server audit prune"])
      #expect(kept.last?.targets.contains("removed \(removed)") == true)
      // A head file written before the prune names a removed entry: not "broken", but pruned.
      let oldHead = AuditHeadFile(head: .init(sequence: 2, hash: "x"), at: Date())
      #expect(try await oldHead.check(district.registry) == .pruned(through: before.sequence))
      // A year's setting keeps a year.
      let longer = await #expect(throws: StoreError.self) { _ = try await tenancy.pruneAuditLog(before: firstDay.next, retentionMonths: 12) }
      #expect(longer != nil)
    }
  }

  @Test("audit query: newest first by default, oldest first on request, in pages")
  func query() async throws {
    try await withDistrict { district in
      let admin = District.user(.districtAdmin)
      func query(_ build: @escaping @Sendable (inout Pemis_V1_QueryAuditLogRequest) -> Void) async throws -> Pemis_V1_QueryAuditLogResponse {
        try await district.asUser(admin) { try await Pemis_V1_Audit.Client(wrapping: $0).queryAuditLog(.with(build)) }
      }
      let newest = try await query { $0.page.pageSize = 5 }
      let sequences = newest.entries.map(\.sequence)
      #expect(sequences == sequences.sorted(by: >))
      #expect(newest.entries.count == 5 && !newest.page.nextPageToken.isEmpty)
      let token = newest.page.nextPageToken
      let next = try await query {
        $0.page.pageSize = 5
        $0.page.pageToken = token
      }
      #expect(next.entries.first.map(\.sequence) ?? 0 < sequences.last ?? 0)
      let oldest = try await query {
        $0.page.pageSize = 3
        $0.oldestFirst = true
      }
      #expect(oldest.entries.map(\.sequence) == [1, 2, 3])
    }
  }

  @Test("the appender as a service: concurrent entries all land, chained, and what is queued at shutdown is written")
  func appenderService() async throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pemis-appender-\(UUID())").path
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let registry = try Registry(directory: directory, keys: testKeys)
    let (stop, stopping) = AsyncStream<Void>.makeStream()
    async let service: Void = registry.runAuditAppender(until: stop)
    try await withThrowingTaskGroup(of: Void.self) { group in
      for i in 0..<200 {
        group.addTask {
          _ = try await registry.appendAudit(
            AuditRecord(atMs: Int64(i), username: "u\(i)", role: "test", kindergartenCode: "", method: "m", targets: [], result: "OK", peer: ""))
        }
      }
      try await group.waitForAll()
    }
    stopping.finish()
    await service
    // After the service stopped, callers write their own.
    _ = try await registry.appendAudit(AuditRecord(atMs: 1, username: "after", role: "test", kindergartenCode: "", method: "m", targets: [], result: "OK", peer: ""))
    #expect(try await registry.verifyAuditChain() == .intact(entries: 201, head: try await registry.auditHead().hash))
    #expect(registry.auditStatistics.appended == 201)
  }
}
