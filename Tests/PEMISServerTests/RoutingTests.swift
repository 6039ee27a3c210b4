import Foundation
import GRPCCore
import PEMISClient
import PEMISDomain
import PEMISProto
import PEMISRouting
import PEMISWire
import SwiftProtobuf
import Testing

@testable import PEMISServer
@testable import PEMISStore

/// The routing layer against a real server: transfers, the index, the duplicate check, the
/// district summary, the consistency check.
@Suite("Routing layer")
struct RoutingTests {
  let a = District.kindergartenA
  let b = District.kindergartenB
  let adminA = District.user(.administrator)
  let adminB = District.user(.administrator, kindergarten: District.kindergartenB)
  let number = "G" + KindergartenDataFixtures.childID

  func transfers<R: Sendable>(_ district: District, _ user: String, _ body: (Pemis_V1_Transfers.Client<PEMISWireClientTransport>) async throws -> R) async throws -> R {
    try await district.asUser(user) { try await body(.init(wrapping: $0)) }
  }

  func children<R: Sendable>(_ district: District, _ user: String, _ body: (Pemis_V1_ChildRecords.Client<PEMISWireClientTransport>) async throws -> R) async throws -> R {
    try await district.asUser(user) { try await body(.init(wrapping: $0)) }
  }

  func enrollAtA(_ district: District) async throws {
    _ = try await children(district, adminA) { try await $0.enrollChild(.with { $0.child = KindergartenDataFixtures.child() }) }
  }

  func shard(_ district: District, _ code: String) async throws -> TenantShard {
    try await district.server.tenancy.shards.shard(try InstitutionCode(validating: code))
  }

  /// A reservation of a process that is gone (a crash between the index and the shard).
  func reserve(_ district: District, _ recordNumber: String, _ child: ChildRecord, id: String) async throws -> [Registry.IndexConflict] {
    try await district.registry.reserve(
      [ChildIndexRecord(recordNumber: recordNumber, kindergartenCode: a, state: .enrolled, child: child, updatedAt: 0)],
      as: IndexReservation(id: id, kindergartenCode: a, owner: "P-gone", leaseUntil: 0, purpose: "enroll", obligations: [], reportedBy: "test", createdAt: 0))
  }

  func consistent(_ district: District) async throws {
    let report = try await district.server.tenancy.router.check()
    #expect(report.findings.isEmpty, "\(report.findings)")
  }

  @Test("a transfer out and in: the record, its history and the index move; each side's deadline is met")
  func transfer() async throws {
    try await withDistrict { district in
      try await enrollAtA(district)
      let classB = try await KindergartenDataFixtures.seedClass(b)(district)
      let out = try await transfers(district, adminA) {
        try await $0.transferOut(.with {
          $0.recordNumber = number
          $0.toKindergartenCode = b
          $0.appliedOn = .with { $0.year = 2026; $0.month = 9; $0.day = 18 }
        })
      }
      #expect(out.state == "out")
      #expect(try await shard(district, a).child(number)?.state == .pendingTransferOut)
      #expect(try await district.registry.indexRecord(number)?.state == .pendingTransferOut)
      // A second transfer of the same child is refused while this one is open.
      let twice = await failure {
        _ = try await transfers(district, adminA) {
          try await $0.transferOut(.with {
            $0.recordNumber = number
            $0.toKindergartenCode = b
          })
        }
      }
      #expect(twice?.code == .failedPrecondition)
      // The receiver finds the child by ID document and reads the archive; others cannot.
      let archive = try await transfers(district, adminB) {
        try await $0.getTransferArchive(.with { $0.idDocumentNumber = KindergartenDataFixtures.childID })
      }
      #expect(archive.transfer.id == out.id)
      #expect(archive.child.name == "张小明")
      #expect(archive.child.idDocumentNumber == IDDocuments.mask(KindergartenDataFixtures.childID))
      // The receiver's view before transfer-in: what checking the parent's materials needs.
      #expect(archive.child.birthDate.year == 2022 && archive.child.gender == "male")
      #expect(archive.transfer.fromKindergartenCode == a)
      #expect(archive.child.guardians.isEmpty && archive.child.health.isEmpty && archive.child.householdRegister.isEmpty)
      #expect(archive.child.birthPlace.isEmpty && archive.child.classID.isEmpty)
      #expect(archive.history.isEmpty, "the sender's history, with its staff's usernames, arrives with the transfer")
      #expect(!archive.child.recordNumber.contains(KindergartenDataFixtures.childID))
      let notForA = await failure {
        _ = try await transfers(district, adminA) { try await $0.getTransferArchive(.with { $0.recordNumber = number }) }
      }
      #expect(notForA?.code == .notFound)
      // Only the receiver takes it in, into a class that exists.
      let bySender = await failure {
        _ = try await transfers(district, adminA) { try await $0.transferIn(.with { $0.transferID = out.id }) }
      }
      #expect(bySender?.code == .permissionDenied)
      let noClass = await failure {
        _ = try await transfers(district, adminB) {
          try await $0.transferIn(.with {
            $0.transferID = out.id
            $0.classID = "C0099"
          })
        }
      }
      #expect(noClass?.code == .failedPrecondition)
      let done = try await transfers(district, adminB) {
        try await $0.transferIn(.with {
          $0.transferID = out.id
          $0.classID = classB
        })
      }
      #expect(done.state == "completed")
      #expect(try await shard(district, a).child(number)?.state == .transferredOut)
      let arrived = try await shard(district, b).child(number)
      #expect(arrived?.state == .enrolled)
      #expect(arrived?.classId == classB)
      let history = try await shard(district, b).history(record: "child:\(number)", offset: 0, limit: 500).entries
      #expect(history.contains { $0.field == "name" && $0.changedBy.hasSuffix("@\(a)") }, "the history travels with the record")
      #expect(try await district.registry.indexRecord(number)?.kindergartenCode == b)
      let today = CalendarDate(beijingTimeOf: district.clock.now)
      let doneA = try await district.registry.obligations(kindergarten: a, filter: .done, today: today, offset: 0, limit: 50)
      #expect(doneA.obligations.contains { $0.kind == .transferOut && $0.subject == "transfer:\(out.id)" })
      let doneB = try await district.registry.obligations(kindergarten: b, filter: .done, today: today, offset: 0, limit: 50)
      #expect(doneB.obligations.contains { $0.kind == .transferIn && $0.subject == "transfer:\(out.id)" })
      try await consistent(district)
    }
  }

  @Test("cancel by the sender, decline by the receiver: the child is enrolled at the sender again")
  func cancelAndDecline() async throws {
    try await withDistrict { district in
      try await enrollAtA(district)
      let first = try await transfers(district, adminA) {
        try await $0.transferOut(.with {
          $0.recordNumber = number
          $0.toKindergartenCode = b
        })
      }
      let byReceiver = await failure {
        _ = try await transfers(district, adminB) { try await $0.cancelTransfer(.with { $0.transferID = first.id }) }
      }
      #expect(byReceiver?.code == .permissionDenied)
      let cancelled = try await transfers(district, adminA) { try await $0.cancelTransfer(.with { $0.transferID = first.id }) }
      #expect(cancelled.state == "cancelled")
      #expect(try await shard(district, a).child(number)?.state == .enrolled)
      let late = await failure {
        _ = try await transfers(district, adminB) { try await $0.transferIn(.with { $0.transferID = first.id }) }
      }
      #expect(late?.code == .failedPrecondition)

      let second = try await transfers(district, adminA) {
        try await $0.transferOut(.with {
          $0.recordNumber = IDDocuments.mask(number)
          $0.toKindergartenCode = b
          $0.transferID = "T-client-0001"
        })
      }
      #expect(second.id == "T-client-0001")
      // A retry with the same id finds the same transfer.
      let retry = try await transfers(district, adminA) {
        try await $0.transferOut(.with {
          $0.recordNumber = number
          $0.toKindergartenCode = b
          $0.transferID = "T-client-0001"
        })
      }
      #expect(retry.id == second.id && retry.state == "out")
      let noReason = await failure {
        _ = try await transfers(district, adminB) { try await $0.declineTransfer(.with { $0.transferID = second.id }) }
      }
      #expect(noReason?.message.hasPrefix("reason:") == true)
      let declined = try await transfers(district, adminB) {
        try await $0.declineTransfer(.with {
          $0.transferID = second.id
          $0.reason = "no place in a middle class"
        })
      }
      #expect(declined.state == "declined")
      #expect(declined.reason == "no place in a middle class")
      #expect(try await shard(district, a).child(number)?.state == .enrolled)
      let listed = try await transfers(district, District.user(.preschoolOffice)) { try await $0.listTransfers(.init()) }
      #expect(listed.transfers.count == 2)
      let vocational = try await transfers(district, District.user(.vocationalOffice)) { try await $0.listTransfers(.init()) }
      #expect(vocational.transfers.count == 2, "B is private: its transfers are in the Vocational Office's scope")
      try await consistent(district)
    }
  }

  @Test("a child active in one kindergarten cannot be enrolled or imported in another: the answer says where")
  func duplicateRefused() async throws {
    try await withDistrict { district in
      try await enrollAtA(district)
      let again = await failure {
        _ = try await children(district, adminB) { try await $0.enrollChild(.with { $0.child = KindergartenDataFixtures.child() }) }
      }
      #expect(again?.code == .alreadyExists)
      #expect(again?.message.contains("already enrolled at kindergarten \(a) as \(IDDocuments.mask(number))") == true)
      #expect(again?.message.contains("pemis transfer out") == true)
      #expect(try await shard(district, b).child(number) == nil, "nothing was written at B")
      #expect(try await district.registry.openReservations().isEmpty, "the reservation was released")
      try await consistent(district)
    }
  }

  @Test("recovery finishes a transfer interrupted after the receiver's shard was written, and releases stale reservations")
  func recovery() async throws {
    try await withDistrict { district in
      try await enrollAtA(district)
      let router = district.server.tenancy.router
      let out = try await transfers(district, adminA) {
        try await $0.transferOut(.with {
          $0.recordNumber = number
          $0.toKindergartenCode = b
        })
      }
      // The crash: the intention and the receiver's shard are written, the rest is not.
      try await district.registry.advanceTransfer(out.id, from: [.out], to: .accepting, at: district.clock.now) { $0.decidedBy = "crash" }
      let archive = try await shard(district, a).archive(number)
      _ = try await shard(district, b).receiveTransfer(
        archive.child.data, recordNumber: number, history: archive.history, transfer: out.id, from: a, classId: nil, by: "crash",
        at: district.clock.now)
      let before = try await router.check()
      #expect(before.findings.contains { $0.kind == "active twice" })
      #expect(before.findings.contains { $0.kind == "transfer mid-step" })
      // A reservation whose shard write never happened.
      var orphan = KindergartenDataFixtures.child(id: "120116202203071239")
      orphan.birthDate = .with { $0.year = 2022; $0.month = 3; $0.day = 7 }
      _ = try await district.registry.reserve(
        [ChildIndexRecord(
          recordNumber: "G120116202203071239", kindergartenCode: a, state: .enrolled, child: try ChildRecordsService.domain(orphan),
          updatedAt: district.clock.now)],
        as: IndexReservation(
          id: "R-crash", kindergartenCode: a, owner: "P-crashed", leaseUntil: 0, purpose: "enroll", obligations: [], reportedBy: "crash",
          createdAt: district.clock.now))

      #expect(try await router.recover() == 2)
      #expect(try await district.registry.transfer(out.id)?.state == .completed)
      #expect(try await district.registry.indexRecord("G120116202203071239") == nil)
      try await consistent(district)
      // Running it again finds nothing to do.
      #expect(try await router.recover() == 0)
    }
  }

  @Test("the duplicate sweep opens a case per problem; delete, modify, evidence and arbitration resolve them")
  func duplicateCases() async throws {
    try await withDistrict { district in
      // Records from before the rules (written to the shards directly, then indexed from them):
      // the same ID active at A and B (under two numbers), an invalid ID at A, and two children without an ID sharing
      // name, gender and birth date.
      let shardA = try await shard(district, a)
      let shardB = try await shard(district, b)
      let child = try ChildRecordsService.domain(KindergartenDataFixtures.child())
      _ = try await shardA.enroll(child, recordNumber: number, classId: nil, by: "legacy", at: 0)
      // B's copy carries a temporary number from before it was checked.
      _ = try await shardB.enroll(child, recordNumber: "L000000001", classId: nil, by: "legacy", at: 0)
      var invalid = child
      invalid.idDocumentNumber = "120116202203151230"
      invalid.name = "王五"
      _ = try await shardA.enroll(invalid, recordNumber: "G120116202203151230", classId: nil, by: "legacy", at: 0)
      var noID = child
      noID.idDocumentType = .other
      noID.idDocumentNumber = ""
      noID.name = "李雷"
      _ = try await shardA.enroll(noID, recordNumber: "J120116202203150011", classId: nil, by: "legacy", at: 0)
      _ = try await shardB.enroll(noID, recordNumber: "J120116202203150029", classId: nil, by: "legacy", at: 0)
      _ = try await district.server.tenancy.router.rebuildIndex()

      let sweep = try await district.asUser(District.user(.preschoolOffice)) {
        try await Pemis_V1_Duplicates.Client(wrapping: $0).sweepDuplicates(.init())
      }
      #expect(sweep.opened == 3)
      let again = try await district.asUser(District.user(.districtAdmin)) {
        try await Pemis_V1_Duplicates.Client(wrapping: $0).sweepDuplicates(.init())
      }
      #expect(again.opened == 0 && again.stillOpen == 3, "sweeping again opens nothing new")
      // Read a row per page, the sweep finds the same problems as in one page.
      let paged = try await district.server.tenancy.router.sweep(by: "test", pageSize: 1)
      #expect(paged.opened == 0 && paged.unchanged == 3 && paged.resolved == 0)
      let casesB = try await district.asUser(adminB) { try await Pemis_V1_Duplicates.Client(wrapping: $0).listCases(.init()) }
      #expect(Set(casesB.cases.map(\.kind)) == ["same_id", "same_person"])
      #expect(casesB.cases.allSatisfy { !$0.key.contains(KindergartenDataFixtures.childID) }, "keys are masked")
      // Issue 13: each kindergarten can tell which of its records to act on — its own in full —
      // and sees the other kindergarten's masked; every record has its child reference.
      let records = casesB.cases.flatMap(\.records)
      #expect(records.filter { $0.kindergartenCode == b }.map(\.recordNumber).sorted() == ["J120116202203150029", "L000000001"])
      #expect(records.filter { $0.kindergartenCode == a }.allSatisfy { $0.recordNumber.contains("*") })
      #expect(records.allSatisfy { $0.childRef.hasPrefix("C-") })
      let office = try await district.asUser(District.user(.preschoolOffice)) { try await Pemis_V1_Duplicates.Client(wrapping: $0).listCases(.init()) }
      #expect(office.cases.flatMap(\.records).allSatisfy { $0.recordNumber.contains("*") }, "the district sees masks and references")
      let sameID = try #require(casesB.cases.first { $0.kind == "same_id" })
      let samePerson = try #require(casesB.cases.first { $0.kind == "same_person" })

      // Modified while the problem is still there: refused.
      let notYet = await failure {
        _ = try await district.asUser(adminB) {
          try await Pemis_V1_Duplicates.Client(wrapping: $0).resolveCase(.with {
            $0.id = sameID.id
            $0.action = "modified"
          })
        }
      }
      #expect(notYet?.code == .failedPrecondition)
      // B deletes its copy: soft, still visible, and the case is resolved.
      let deleted = try await district.asUser(adminB) {
        try await Pemis_V1_Duplicates.Client(wrapping: $0).resolveCase(.with {
          $0.id = sameID.id
          $0.action = "delete"
          $0.recordNumber = "L000000001"
        })
      }
      #expect(deleted.state == "resolved" && deleted.resolution == "deleted")
      #expect(try await shardB.child("L000000001")?.state == .deleted)

      // Evidence for the same-person case: rejected once, then accepted.
      _ = try await district.asUser(District.user(.administrator)) {
        try await Pemis_V1_Duplicates.Client(wrapping: $0).resolveCase(.with {
          $0.id = samePerson.id
          $0.action = "evidence"
          $0.evidence = "two different children: birth certificates"
        })
      }
      let notByA = await failure {
        _ = try await district.asUser(District.user(.principal)) {
          try await Pemis_V1_Duplicates.Client(wrapping: $0).arbitrateCase(.with {
            $0.id = samePerson.id
            $0.accept = true
          })
        }
      }
      #expect(notByA?.code == .permissionDenied)
      let rejected = try await district.asUser(District.user(.preschoolOffice)) {
        try await Pemis_V1_Duplicates.Client(wrapping: $0).arbitrateCase(.with {
          $0.id = samePerson.id
          $0.note = "the certificates are not attached"
        })
      }
      #expect(rejected.state == "open")
      _ = try await district.asUser(adminB) {
        try await Pemis_V1_Duplicates.Client(wrapping: $0).resolveCase(.with {
          $0.id = samePerson.id
          $0.action = "evidence"
          $0.evidence = "birth certificates attached"
        })
      }
      let accepted = try await district.asUser(District.user(.preschoolOffice)) {
        try await Pemis_V1_Duplicates.Client(wrapping: $0).arbitrateCase(.with {
          $0.id = samePerson.id
          $0.accept = true
        })
      }
      #expect(accepted.state == "resolved" && accepted.resolution == "evidence_accepted")
      let shown = try await district.asUser(District.user(.preschoolOffice)) {
        try await Pemis_V1_Duplicates.Client(wrapping: $0).getCase(.with { $0.id = samePerson.id })
      }
      #expect(shown.events.map(\.action) == ["opened", "evidence", "evidence rejected", "evidence", "evidence accepted"])
      let open = try await district.asUser(District.user(.preschoolOffice)) {
        try await Pemis_V1_Duplicates.Client(wrapping: $0).listCases(.with { $0.state = "open" })
      }
      #expect(open.cases.map(\.kind) == ["invalid_id"])
      // A deletes the record with the invalid ID: the case is re-checked by its record alone.
      let invalidCase = try #require(open.cases.first)
      let gone = try await district.asUser(District.user(.administrator)) {
        try await Pemis_V1_Duplicates.Client(wrapping: $0).resolveCase(.with {
          $0.id = invalidCase.id
          $0.action = "delete"
          $0.recordNumber = "G120116202203151230"
        })
      }
      #expect(gone.state == "resolved" && gone.resolution == "deleted")
    }
  }

  @Test("a case is re-checked by the rows its key names: 'modified' without a change is refused for every kind")
  func recheckByKey() async throws {
    try await withDistrict { district in
      let shardA = try await shard(district, a)
      let shardB = try await shard(district, b)
      let child = try ChildRecordsService.domain(KindergartenDataFixtures.child())
      var invalid = child
      invalid.idDocumentNumber = "120116202203151230"
      _ = try await shardA.enroll(invalid, recordNumber: "G120116202203151230", classId: nil, by: "legacy", at: 0)
      var noID = child
      noID.idDocumentType = .other
      noID.idDocumentNumber = ""
      noID.name = "李雷"
      _ = try await shardA.enroll(noID, recordNumber: "J120116202203150011", classId: nil, by: "legacy", at: 0)
      _ = try await shardB.enroll(noID, recordNumber: "J120116202203150029", classId: nil, by: "legacy", at: 0)
      // An "other" document whose number holds the key's separator.
      var certificate = child
      certificate.idDocumentType = .other
      certificate.idDocumentNumber = "CERT|7"
      certificate.name = "韩梅梅"
      _ = try await shardA.enroll(certificate, recordNumber: "J120116202203150037", classId: nil, by: "legacy", at: 0)
      _ = try await shardB.enroll(certificate, recordNumber: "J120116202203150045", classId: nil, by: "legacy", at: 0)
      _ = try await district.server.tenancy.router.rebuildIndex()

      let sweep = try await district.asUser(District.user(.preschoolOffice)) {
        try await Pemis_V1_Duplicates.Client(wrapping: $0).sweepDuplicates(.init())
      }
      #expect(sweep.opened == 3)
      let cases = try await district.asUser(adminA) { try await Pemis_V1_Duplicates.Client(wrapping: $0).listCases(.init()) }
      #expect(cases.cases.map(\.kind).sorted() == ["invalid_id", "same_id", "same_person"])
      for problem in cases.cases {
        let refused = await failure {
          _ = try await district.asUser(adminA) {
            try await Pemis_V1_Duplicates.Client(wrapping: $0).resolveCase(.with {
              $0.id = problem.id
              $0.action = "modified"
            })
          }
        }
        #expect(refused?.code == .failedPrecondition, "\(problem.kind): the problem is still there")
      }
      // B corrects its certificate number (a key-information change, approved by its principal):
      // the same-ID case is gone, and only that one.
      let request = try await children(district, adminB) {
        try await $0.requestKeyChange(.with {
          $0.recordNumber = "J120116202203150045"
          $0.idDocumentNumber = "CERT|8"
          $0.fields = ["id_document_number"]
          $0.evidence = "出生医学证明"
          $0.templateSignedOn = .with { $0.year = 2026; $0.month = 9; $0.day = 20 }
        })
      }
      _ = try await children(district, District.user(.principal, kindergarten: b)) {
        try await $0.decideKeyChange(.with {
          $0.id = request.id
          $0.approve = true
        })
      }
      let sameID = try #require(cases.cases.first { $0.kind == "same_id" })
      let resolved = try await district.asUser(adminB) {
        try await Pemis_V1_Duplicates.Client(wrapping: $0).resolveCase(.with {
          $0.id = sameID.id
          $0.action = "modified"
        })
      }
      #expect(resolved.state == "resolved" && resolved.resolution == "modified")
      let again = try await district.asUser(District.user(.preschoolOffice)) {
        try await Pemis_V1_Duplicates.Client(wrapping: $0).sweepDuplicates(.init())
      }
      #expect(again.opened == 0 && again.stillOpen == 2 && again.resolved == 0)
    }
  }

  @Test("a record active in two shards is indexed at the lower kindergarten code, whichever row is newer")
  func activeTwiceRebuild() async throws {
    try await withDistrict { district in
      #expect(a < b)
      let child = try ChildRecordsService.domain(KindergartenDataFixtures.child())
      _ = try await shard(district, b).enroll(child, recordNumber: number, classId: nil, by: "legacy", at: 200)
      _ = try await shard(district, a).enroll(child, recordNumber: number, classId: nil, by: "legacy", at: 100)
      #expect(try await district.server.tenancy.router.rebuildIndex() == 1)
      #expect(try await district.registry.indexRecord(number)?.kindergartenCode == a)
      let report = try await district.server.tenancy.router.check()
      #expect(report.findings.map(\.description) == ["active twice: \(IDDocuments.mask(number)) is active in \(a) and \(b)"])
    }
  }

  @Test("the district summary counts within the caller's scope, and reads only the shards that changed")
  func summary() async throws {
    try await withDistrict { district in
      let classA = try await KindergartenDataFixtures.seedClass(a)(district)
      _ = try await children(district, adminA) {
        try await $0.enrollChild(.with {
          $0.child = KindergartenDataFixtures.child()
          $0.classID = classA
        })
      }
      let summary = { (user: String, codes: [String]) in
        try await district.asUser(user) {
          try await Pemis_V1_District.Client(wrapping: $0).getDistrictSummary(.with {
            $0.kindergartenCodes = codes
            $0.byKindergarten = true
          })
        }
      }
      let all = try await summary(District.user(.preschoolOffice), [])
      #expect(all.kindergartens == 2)
      #expect(all.total.children == 1)
      #expect(all.total.byGender.map(\.key) == ["male"])
      #expect(all.total.byGrade.map(\.key) == ["middle"])
      // Born 2022-03-15: 4 on 1 September 2026.
      #expect(all.total.byAge.first?.key == "4")
      #expect(all.total.classes == 1 && all.total.classesOutsideNorm == 1, "one child in a class meant for 25-30")
      #expect(all.shardsRead == 2)
      let warm = try await summary(District.user(.preschoolOffice), [])
      #expect(warm.shardsRead == 0, "nothing changed: every count from the cache")
      _ = try await children(district, adminA) { try await $0.leaveChild(.with { $0.recordNumber = number; $0.reason = "moved" }) }
      let after = try await summary(District.user(.preschoolOffice), [])
      #expect(after.shardsRead == 1 && after.total.children == 0)
      let privateOnly = try await summary(District.user(.vocationalOffice), [])
      #expect(privateOnly.rows.map(\.kindergartenCode) == [b])
      let outOfScope = await failure { _ = try await summary(District.user(.vocationalOffice), [a]) }
      #expect(outOfScope?.code == .notFound)
    }
  }

  @Test("the check reports an index that disagrees with the shards; repair rebuilds it from them")
  func check() async throws {
    try await withDistrict { district in
      try await enrollAtA(district)
      try await consistent(district)
      var wrong = try #require(try await district.registry.indexRecord(number))
      wrong.kindergartenCode = b
      try await district.registry.syncIndex([wrong])
      // A child written to B's shard behind the index's back: not indexed.
      var other = try ChildRecordsService.domain(KindergartenDataFixtures.child(id: "120116202203071239"))
      other.birthDate = CalendarDate(year: 2022, month: 3, day: 7)
      _ = try await shard(district, b).enroll(other, recordNumber: "G120116202203071239", classId: nil, by: "test", at: 0)
      // A reservation whose shard write never happened: an index row without a record.
      var ghost = other
      ghost.idDocumentNumber = "120116202203071220"
      ghost.gender = .female
      _ = try await reserve(district, "G120116202203071220", ghost, id: "R-ghost")
      // A reservation whose shard write happened but was never confirmed.
      var unconfirmed = ghost
      unconfirmed.idDocumentNumber = "120116202203071247"
      unconfirmed.gender = .female
      _ = try await reserve(district, "G120116202203071247", unconfirmed, id: "R-half")
      _ = try await shard(district, a).enroll(unconfirmed, recordNumber: "G120116202203071247", classId: nil, by: "test", at: 0)

      let report = try await district.server.tenancy.router.check(collectEnrolled: true)
      #expect(report.findings.map(\.kind).sorted() == ["index disagrees", "index without record", "not indexed", "open reservation", "open reservation"])
      #expect(report.findings.allSatisfy { !$0.detail.contains("120116202203071239") }, "record numbers are masked")
      #expect((report.children, report.activeChildren, report.indexRows) == (3, 3, 3))
      #expect(report.enrolled == [number: a, "G120116202203071239": b, "G120116202203071247": a])
      #expect(try await district.server.tenancy.router.rebuildIndex() == 3)
      try await consistent(district)
      // The scratch files of the check and the rebuild are gone.
      let files = try FileManager.default.contentsOfDirectory(atPath: district.dataDirectory)
      #expect(!files.contains { $0.hasPrefix("index-check-") }, "\(files)")
    }
  }
}
