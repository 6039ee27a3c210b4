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

/// Issue 13, tried as each role would: what a role may not see never reaches it, and what a
/// kindergarten must act on it can find.
@Suite("Data protection")
struct DataProtectionTests {
  @Test("obligations name children by reference: no district office or finance staff sees a record number, and the kindergarten opens the reference")
  func obligationSubjects() async throws {
    try await withDistrict { district in
      let admin = District.user(.administrator)
      let number = "G" + KindergartenDataFixtures.childID
      _ = try await district.asUser(admin) {
        try await Pemis_V1_ChildRecords.Client(wrapping: $0).enrollChild(.with { $0.child = KindergartenDataFixtures.child() })
      }
      // A change of other information opens an Art. 17(2) report, open until done.
      _ = try await district.asUser(admin) {
        try await Pemis_V1_ChildRecords.Client(wrapping: $0).leaveChild(.with {
          $0.recordNumber = number
          $0.reason = "moved away"
        })
      }
      var subjects: [String] = []
      for role in [Role.planningOffice, .vocationalOffice, .financeOffice, .preschoolOffice, .districtAdmin] {
        let code = role == .vocationalOffice ? District.kindergartenB : District.kindergartenA
        let listed = try await district.asUser(District.user(role)) {
          try await Pemis_V1_Deadlines.Client(wrapping: $0).listObligations(.with { $0.kindergartenCode = code })
        }
        subjects += listed.obligations.map(\.subject)
      }
      let own = try await district.asUser(District.user(.financeStaff)) {
        try await Pemis_V1_Deadlines.Client(wrapping: $0).listObligations(.init())
      }
      subjects += own.obligations.map(\.subject)
      #expect(!subjects.isEmpty)
      #expect(subjects.allSatisfy { !$0.contains(KindergartenDataFixtures.childID) }, "\(subjects)")
      let reference = district.registry.childReferences.reference(number)
      #expect(subjects.contains("child:\(reference)"))
      #expect(subjects.contains("child:\(reference):left"))
      // Nothing in the registry's obligations holds the number either.
      let stored = try await district.registry.obligations(
        kindergarten: District.kindergartenA, filter: .all, today: CalendarDate(beijingTimeOf: district.clock.now), offset: 0, limit: 100)
      #expect(stored.obligations.allSatisfy { !$0.subject.contains(KindergartenDataFixtures.childID) })
      // The kindergarten resolves the reference, in any case and without the hyphen.
      for text in [reference, reference.lowercased(), reference.replacingOccurrences(of: "-", with: "")] {
        let child = try await district.asUser(District.user(.principal)) {
          try await Pemis_V1_ChildRecords.Client(wrapping: $0).getChild(.with { $0.recordNumber = text })
        }
        #expect(child.recordNumber == number)
      }
      // Another kindergarten cannot: the child is not there.
      let elsewhere = await failure {
        _ = try await district.asUser(District.user(.administrator, kindergarten: District.kindergartenB)) {
          try await Pemis_V1_ChildRecords.Client(wrapping: $0).getChild(.with { $0.recordNumber = reference })
        }
      }
      #expect(elsewhere?.code == .notFound)
      // A "mask" showing more than the list's reveals nothing: only the exact mask finds a child
      // (else a masks-only reader could find the rest of a number a digit at a time).
      let longer = await failure {
        _ = try await district.asUser(District.user(.principal)) {
          try await Pemis_V1_ChildRecords.Client(wrapping: $0).getChild(.with { $0.recordNumber = "G1201162022" + String(repeating: "*", count: 5) + "1239" })
        }
      }
      #expect(longer?.code == .notFound)
      // The district office reading the child's history sees no contacts or health there either.
      let history = try await district.asUser(District.user(.preschoolOffice)) {
        try await Pemis_V1_KindergartenData.Client(wrapping: $0).getHistory(.with {
          $0.kindergartenCode = District.kindergartenA
          $0.record = "child:" + reference
        })
      }
      #expect(!history.entries.isEmpty)
      #expect(history.entries.filter { $0.field == "health" || $0.field.hasPrefix("guardians") }.allSatisfy {
        $0.oldValue == ChildView.withheld && $0.newValue == ChildView.withheld
      })
      #expect(history.entries.contains { $0.field.hasPrefix("guardians") })
      // The audit log names the child by reference too.
      let (entries, _) = try await district.registry.auditEntries(.init(username: admin), offset: 0, limit: 100)
      #expect(entries.allSatisfy { !$0.targets.contains(KindergartenDataFixtures.childID) })
      #expect(entries.contains { $0.targets.contains("child:\(reference)") })
    }
  }

  @Test("references: stable per record number, distinct, and unknown to anyone without the registry's key")
  func references() throws {
    let one = ChildReferences(keyHex: String(repeating: "ab", count: 32))
    let other = ChildReferences(keyHex: String(repeating: "cd", count: 32))
    let number = "G120116202203151234"
    #expect(one.reference(number) == one.reference(number))
    #expect(one.reference(number) != other.reference(number))
    #expect(one.reference(number) != one.reference("G120116202203151242"))
    var seen = Set<String>()
    for i in 0..<5000 { seen.insert(one.reference("J12011620220315\(String(format: "%04d", i))")) }
    #expect(seen.count == 5000)
    #expect(ChildReferences.normalized(" c-0123456789 ") == "C-0123456789")
    #expect(ChildReferences.normalized("C0123456789") == "C-0123456789")
    #expect(ChildReferences.normalized("C-01234567I9") == nil, "I is not in Crockford's alphabet")
    #expect(ChildReferences.normalized(number) == nil)
  }

  @Test("migration v10 rewrites the subjects that named a child by record number")
  func subjectMigration() async throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pemis-v10-\(UUID())").path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let path = (directory as NSString).appendingPathComponent("registry.sqlite")
    do {
      let queue = try DatabaseQueue(path: path)
      try Registry.migrator(keys: testKeys).migrate(queue, upTo: "v9-audit-request-id")
      try await queue.write { db in
        for subject in ["child:G120116202203151234", "child:G120116202203151234:key-change#4", "child:J120116202203150011:left", "month:2026-09"] {
          try db.execute(
            sql: "INSERT INTO obligation (kindergartenCode, kind, subject, triggeredOn, createdAt) VALUES ('1112000101', 'other_change', ?, '2026-09-01', 0)",
            arguments: [subject])
        }
      }
    }
    let registry = try Registry(directory: directory, keys: testKeys)
    let refs = registry.childReferences
    let subjects = try await registry.obligations(
      kindergarten: "1112000101", filter: .all, today: CalendarDate(year: 2026, month: 10, day: 1), offset: 0, limit: 10
    ).obligations.map(\.subject)
    #expect(
      Set(subjects)
        == [
          "child:\(refs.reference("G120116202203151234"))", "child:\(refs.reference("G120116202203151234")):key-change#4",
          "child:\(refs.reference("J120116202203150011")):left", "month:2026-09",
        ])
  }

  @Test("the principal reads the own kindergarten's audit log, and no other's")
  func principalAudit() async throws {
    try await withDistrict { district in
      let principal = District.user(.principal)
      _ = try await district.asUser(District.user(.administrator)) {
        try await Pemis_V1_KindergartenData.Client(wrapping: $0).listClasses(.init())
      }
      _ = try await district.asUser(District.user(.administrator, kindergarten: District.kindergartenB)) {
        try await Pemis_V1_KindergartenData.Client(wrapping: $0).listClasses(.init())
      }
      let own = try await district.asUser(principal) { try await Pemis_V1_Audit.Client(wrapping: $0).queryAuditLog(.init()) }
      #expect(!own.entries.isEmpty)
      #expect(own.entries.allSatisfy { $0.kindergartenCode == District.kindergartenA })
      #expect(own.entries.contains { $0.username == District.user(.administrator) && $0.method.hasSuffix("ListClasses") })
      let other = await failure {
        _ = try await district.asUser(principal) {
          try await Pemis_V1_Audit.Client(wrapping: $0).queryAuditLog(.with { $0.kindergartenCode = District.kindergartenB })
        }
      }
      #expect(other?.code == .permissionDenied)
      for role in [Role.administrator, .classLeader, .financeStaff, .planningOffice, .financeOffice] {
        let refused = await failure {
          _ = try await district.asUser(District.user(role)) { try await Pemis_V1_Audit.Client(wrapping: $0).queryAuditLog(.init()) }
        }
        #expect(refused?.code == .permissionDenied, "\(role)")
      }
    }
  }

  @Test("retention: children who left more than the configured years ago lose contacts, health and household details, from record and history; audited; once")
  func retentionScrub() async throws {
    try await withDistrict { district in
      let admin = District.user(.administrator)
      func children<R: Sendable>(_ body: (Pemis_V1_ChildRecords.Client<PEMISWireClientTransport>) async throws -> R) async throws -> R {
        try await district.asUser(admin) { try await body(Pemis_V1_ChildRecords.Client(wrapping: $0)) }
      }
      var old = KindergartenDataFixtures.child()
      old.entryDate = .with { $0.year = 2024; $0.month = 9; $0.day = 1 }
      _ = try await children { try await $0.enrollChild(.with { $0.child = old }) }
      let number = "G" + KindergartenDataFixtures.childID
      // A change of contacts and health, so the history holds them too.
      _ = try await children {
        try await $0.updateChild(.with {
          $0.recordNumber = number
          $0.fields = ["health", "guardians"]
          $0.child.health = "chronic_condition"
          $0.child.guardians = [.with { $0.name = "张伟"; $0.relation = "father"; $0.phone = "13800138000" }]
        })
      }
      _ = try await children {
        try await $0.leaveChild(.with {
          $0.recordNumber = number
          $0.reason = "moved away"
          $0.leftOn = .with { $0.year = 2025; $0.month = 9; $0.day = 20 }
        })
      }
      // Another child is still here.
      let recentBody = "12011620220315124"
      let recentID = recentBody + String(try #require(IDDocuments.checkCharacter(Array(recentBody))))
      var recent = KindergartenDataFixtures.child(id: recentID)
      recent.name = "李小花"
      recent.gender = "female"
      _ = try await children { try await $0.enrollChild(.with { $0.child = recent }) }
      let shard = try await district.server.tenancy.shards.shard(try InstitutionCode(validating: District.kindergartenA))
      let auditBefore = try await district.registry.auditHead().sequence

      // One year: the child who left on 2025-09-20 (today is 2026-09-21) is scrubbed.
      let result = try await district.server.tenancy.scrubRetention(years: 1)
      #expect(result.children == 1 && result.kindergartens == 1)
      let row = try #require(try await shard.child(number))
      #expect(row.data.guardians.isEmpty && row.data.health.isEmpty && row.data.householdRegister.isEmpty && row.data.birthPlace.isEmpty)
      #expect(row.data.name == "张小明" && row.recordNumber == number && row.leftOn == "2025-09-20" && row.state == .left)
      let history = try await shard.history(record: "child:\(number)", offset: 0, limit: 500).entries
      #expect(!history.contains { $0.oldValue.contains("13800138000") || $0.newValue.contains("13800138000") || $0.newValue == "chronic_condition" })
      #expect(history.contains { $0.field == "retention scrub" && $0.changedBy == "system:retention" })
      #expect(history.contains { $0.field == "health" && $0.newValue == TenantShard.scrubbedMark })
      let still = try #require(try await shard.child("G" + recentID))
      #expect(!still.data.guardians.isEmpty && !still.data.health.isEmpty)
      // Audited: STARTED first, then the child by reference.
      let entries = try await district.auditEntries(after: auditBefore)
      #expect(entries.map(\.result) == [AuditRecord.startedResult, "OK"])
      #expect(entries.allSatisfy { $0.method == "retention scrub" && $0.kindergartenCode == District.kindergartenA })
      #expect(entries.last?.targets.contains("child:" + district.registry.childReferences.reference(number)) == true)
      #expect(entries.allSatisfy { !$0.targets.contains(KindergartenDataFixtures.childID) })
      // Once: a second run scrubs and writes nothing.
      let again = try await district.server.tenancy.scrubRetention(years: 1)
      #expect(again.children == 0)
      #expect(try await district.registry.auditHead().sequence == entries.last?.seq)
      // Three years, the default: nobody else is due.
      #expect(try await district.server.tenancy.scrubRetention(years: 3).children == 0)
    }
  }
}
