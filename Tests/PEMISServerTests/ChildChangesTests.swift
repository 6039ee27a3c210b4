import GRPCCore
import PEMISClient
import PEMISDomain
import PEMISProto
import PEMISStore
import PEMISWire
import SwiftProtobuf
import Testing

@testable import PEMISServer

/// Changes after enrollment (key information through the principal), the monthly audit and the
/// paper archive, against a real server.
@Suite("Child record changes, monthly audit, paper archive")
struct ChildChangesTests {
  let number = "G" + KindergartenDataFixtures.childID
  let admin = District.user(.administrator)
  let principal = District.user(.principal)

  func children<R: Sendable>(
    _ district: District, _ user: String, _ body: (Pemis_V1_ChildRecords.Client<PEMISWireClientTransport>) async throws -> R
  ) async throws -> R {
    try await district.asUser(user) { try await body(Pemis_V1_ChildRecords.Client(wrapping: $0)) }
  }

  func enrolled(_ district: District) async throws {
    _ = try await children(district, admin) { try await $0.enrollChild(.with { $0.child = KindergartenDataFixtures.child() }) }
  }

  func history(_ district: District) async throws -> [HistoryRecord] {
    let shard = try await district.server.tenancy.shards.shard(try InstitutionCode(validating: District.kindergartenA))
    return try await shard.history(record: "child:\(number)", offset: 0, limit: 500).entries
  }

  @Test("other fields change at once with history and an Art. 17(2) report; key fields are refused there")
  func update() async throws {
    try await withDistrict { district in
      try await enrolled(district)
      let changed = try await children(district, admin) {
        try await $0.updateChild(.with {
          $0.recordNumber = number
          $0.fields = ["health", "guardians"]
          $0.child = .with {
            $0.health = "chronic_condition"
            $0.name = "ignored: not in fields"
            $0.guardians = [
              .with { $0.name = "张伟"; $0.relation = "father"; $0.phone = "13800138000" },
              .with { $0.name = "李娜"; $0.relation = "mother"; $0.phone = "13900001111" },
            ]
          }
        })
      }
      #expect(changed.health == "chronic_condition")
      #expect(changed.name == "张小明")
      #expect(changed.guardians.count == 2)
      let entries = try await history(district)
      #expect(entries.contains { $0.field == "health" && $0.oldValue == "healthy" && $0.newValue == "chronic_condition" && $0.changedBy == admin })
      #expect(entries.contains { $0.field == "guardians[1].name" && $0.newValue == "李娜" })

      let key = await failure {
        _ = try await children(district, admin) {
          try await $0.updateChild(.with {
            $0.recordNumber = number
            $0.fields = ["name"]
            $0.child.name = "张晓明"
          })
        }
      }
      #expect(key?.code == .invalidArgument)
      #expect(key?.message.hasPrefix("fields: name is key information") == true)
      let bad = await failure {
        _ = try await children(district, admin) {
          try await $0.updateChild(.with {
            $0.recordNumber = number
            $0.fields = ["household_register"]
            $0.child.householdRegister = "12"
          })
        }
      }
      #expect(bad?.message.contains("child.household_register: must be a six-digit administrative-division code") == true)
      let reports = try await district.registry.obligations(
        kindergarten: District.kindergartenA, filter: .done, today: CalendarDate(beijingTimeOf: district.clock.now), offset: 0, limit: 50)
      #expect(reports.obligations.contains { $0.kind == .otherChange && $0.subject.hasPrefix(district.registry.childReferences.subject(recordNumber: number, suffix: ":health+guardians")) })
    }
  }

  @Test("key information: a request with evidence, one at a time, decided by the principal, applied with history")
  func keyChange() async throws {
    try await withDistrict { district in
      try await enrolled(district)
      let noEvidence = await failure {
        _ = try await children(district, admin) {
          try await $0.requestKeyChange(.with {
            $0.recordNumber = number
            $0.name = "张晓明"
            $0.fields = ["name"]
            $0.templateSignedOn = .with { $0.year = 2026; $0.month = 9; $0.day = 20 }
          })
        }
      }
      #expect(noEvidence?.message.hasPrefix("evidence: required") == true)
      // A new ID number must keep the record's rules: this one's check character is wrong.
      let badID = await failure {
        _ = try await children(district, admin) {
          try await $0.requestKeyChange(.with {
            $0.recordNumber = number
            $0.idDocumentNumber = "120116202203151230"
            $0.fields = ["id_document_number"]
            $0.evidence = "户口簿"
            $0.templateSignedOn = .with { $0.year = 2026; $0.month = 9; $0.day = 20 }
          })
        }
      }
      #expect(badID?.message.contains("child.id_document_number: check character does not match") == true)
      // A birth date that no longer agrees with the ID number is refused the same way.
      let badBirth = await failure {
        _ = try await children(district, admin) {
          try await $0.requestKeyChange(.with {
            $0.recordNumber = number
            $0.birthDate = .with { $0.year = 2022; $0.month = 3; $0.day = 16 }
            $0.fields = ["birth_date"]
            $0.evidence = "出生医学证明"
            $0.templateSignedOn = .with { $0.year = 2026; $0.month = 9; $0.day = 20 }
          })
        }
      }
      #expect(badBirth?.message.contains("child.id_document_number") == true)

      let request = try await children(district, admin) {
        try await $0.requestKeyChange(.with {
          $0.recordNumber = number
          $0.name = "张晓明"
          $0.fields = ["name"]
          $0.evidence = "户口簿变更页"
          $0.templateSignedOn = .with { $0.year = 2026; $0.month = 9; $0.day = 20 }
        })
      }
      #expect(request.state == "pending")
      #expect(request.changes.map(\.field) == ["name"])
      #expect(request.changes.first?.oldValue == "张小明")
      #expect(request.recordNumber == IDDocuments.mask(number))
      let second = await failure {
        _ = try await children(district, admin) {
          try await $0.requestKeyChange(.with {
            $0.recordNumber = number
            $0.name = "张大明"
            $0.fields = ["name"]
            $0.evidence = "x"
            $0.templateSignedOn = .with { $0.year = 2026; $0.month = 9; $0.day = 20 }
          })
        }
      }
      #expect(second?.code == .failedPrecondition)
      // Nothing changed yet.
      let before = try await children(district, principal) { try await $0.getChild(.with { $0.recordNumber = number }) }
      #expect(before.name == "张小明")

      let noReason = await failure {
        _ = try await children(district, principal) { try await $0.decideKeyChange(.with { $0.id = request.id }) }
      }
      #expect(noReason?.message == "note: a rejection says why")
      let approved = try await children(district, principal) {
        try await $0.decideKeyChange(.with {
          $0.id = request.id
          $0.approve = true
        })
      }
      #expect(approved.state == "approved")
      #expect(approved.decidedBy == principal)
      let after = try await children(district, principal) { try await $0.getChild(.with { $0.recordNumber = number }) }
      #expect(after.name == "张晓明")
      #expect(after.recordNumber == number, "the record number is for life")
      let entries = try await history(district)
      #expect(entries.contains { $0.field == "name" && $0.oldValue == "张小明" && $0.newValue == "张晓明" && $0.changedBy == "\(principal) (request #\(request.id) by \(admin))" })
      let again = await failure {
        _ = try await children(district, principal) {
          try await $0.decideKeyChange(.with {
            $0.id = request.id
            $0.note = "too late"
          })
        }
      }
      #expect(again?.code == .failedPrecondition)

      // A rejected request changes nothing.
      let other = try await children(district, admin) {
        try await $0.requestKeyChange(.with {
          $0.recordNumber = number
          $0.name = "张大明"
          $0.fields = ["name"]
          $0.evidence = "家长申请"
          $0.templateSignedOn = .with { $0.year = 2026; $0.month = 9; $0.day = 21 }
        })
      }
      let rejected = try await children(district, principal) {
        try await $0.decideKeyChange(.with {
          $0.id = other.id
          $0.note = "no household-register page attached"
        })
      }
      #expect(rejected.state == "rejected")
      let listed = try await children(district, principal) { try await $0.listKeyChanges(.init()) }
      #expect(listed.changes.map(\.state) == ["rejected", "approved"])

      // Four eyes: the principal may ask for a change but not approve that same request;
      // withdrawing it (a rejection) is allowed.
      let own = try await children(district, principal) {
        try await $0.requestKeyChange(.with {
          $0.recordNumber = number
          $0.name = "张小明"
          $0.fields = ["name"]
          $0.evidence = "家长书面申请"
          $0.templateSignedOn = .with { $0.year = 2026; $0.month = 9; $0.day = 21 }
        })
      }
      let selfApproved = await failure {
        _ = try await children(district, principal) {
          try await $0.decideKeyChange(.with {
            $0.id = own.id
            $0.approve = true
          })
        }
      }
      #expect(selfApproved?.code == .permissionDenied)
      #expect(selfApproved?.message.contains("approved by another account than the one that asked for it") == true)
      let stillPending = try await children(district, principal) { try await $0.listKeyChanges(.with { $0.state = "pending" }) }
      #expect(stillPending.changes.map(\.id) == [own.id])
      let withdrawn = try await children(district, principal) {
        try await $0.decideKeyChange(.with {
          $0.id = own.id
          $0.note = "withdrawn: asked by mistake"
        })
      }
      #expect(withdrawn.state == "rejected")
      let unchanged = try await children(district, principal) { try await $0.getChild(.with { $0.recordNumber = number }) }
      #expect(unchanged.name == "张晓明")
    }
  }

  @Test("a masked number from a list names the child when it matches exactly one")
  func maskedNumbers() async throws {
    try await withDistrict { district in
      try await enrolled(district)
      let masked = IDDocuments.mask(number)
      let shown = try await children(district, principal) { try await $0.getChild(.with { $0.recordNumber = masked }) }
      #expect(shown.recordNumber == number)
      // A twin-like number with the same first and last four characters makes it ambiguous.
      var other = KindergartenDataFixtures.child(id: "120116202203071239")
      other.birthDate = .with { $0.year = 2022; $0.month = 3; $0.day = 7 }
      _ = try await children(district, admin) { try await $0.enrollChild(.with { $0.child = other }) }
      let ambiguous = await failure {
        _ = try await children(district, admin) {
          try await $0.leaveChild(.with {
            $0.recordNumber = masked
            $0.reason = "moved"
          })
        }
      }
      #expect(ambiguous?.message == "record_number: \(masked) matches more than one child; give the full number")
      let none = await failure { _ = try await children(district, admin) { try await $0.getChild(.with { $0.recordNumber = "G999**********9999" }) } }
      #expect(none?.code == .notFound)
    }
  }

  @Test("a closed record takes no changes")
  func closedRecord() async throws {
    try await withDistrict { district in
      try await enrolled(district)
      _ = try await children(district, admin) {
        try await $0.leaveChild(.with {
          $0.recordNumber = number
          $0.reason = "moved to Beijing"
        })
      }
      let update = await failure {
        _ = try await children(district, admin) {
          try await $0.updateChild(.with {
            $0.recordNumber = number
            $0.fields = ["health"]
            $0.child.health = "other"
          })
        }
      }
      #expect(update?.code == .failedPrecondition)
      #expect(update?.message == "child_id: cannot update a child whose record is left")
    }
  }

  @Test("monthly audit: a month without sign-off is overdue; the principal signs it off once it has ended")
  func monthlyAudit() async throws {
    try await withDistrict { district in
      try await enrolled(district)
      // 2026-09-21: September is running.
      let running = await failure {
        _ = try await children(district, principal) { try await $0.signOffMonth(.with { $0.month = "2026-09" }) }
      }
      #expect(running?.message == "month: 2026-09 has not ended; it is signed off once it has")
      let before = await failure {
        _ = try await children(district, principal) { try await $0.signOffMonth(.with { $0.month = "2026-08" }) }
      }
      #expect(before?.code == .failedPrecondition)
      let badMonth = await failure {
        _ = try await children(district, principal) { try await $0.getMonthlyAudit(.with { $0.month = "2026-9" }) }
      }
      #expect(badMonth?.message == "month: must be YYYY-MM, e.g. 2026-10")

      // To 2026-10-20: September's audit was due 3 working days after the month (National Day
      // holidays not counted) and is overdue.
      district.clock.advance(29 * 86400)
      let audit = try await children(district, principal) { try await $0.getMonthlyAudit(.with { $0.month = "2026-09" }) }
      #expect(audit.status == "overdue")
      #expect(audit.page.totalCount > 0)
      #expect(audit.changes.allSatisfy { !$0.record.contains(KindergartenDataFixtures.childID) }, "record numbers are masked")
      #expect(audit.hasDueOn)
      let overdue = try await district.asUser(District.user(.preschoolOffice)) { client in
        try await Pemis_V1_Deadlines.Client(wrapping: client).listOverdue(.init())
      }
      #expect(overdue.obligations.contains { $0.kindergartenCode == District.kindergartenA && $0.kind == "monthly_audit" && $0.subject == "month:2026-09" })
      // Only the principal signs off.
      let byAdmin = await failure {
        _ = try await children(district, admin) { try await $0.signOffMonth(.with { $0.month = "2026-09" }) }
      }
      #expect(byAdmin?.code == .permissionDenied)
      let signed = try await children(district, principal) {
        try await $0.signOffMonth(.with {
          $0.month = "2026-09"
          $0.note = "checked against the paper archive"
        })
      }
      #expect(signed.status == "signed_off")
      #expect(signed.signedOffBy == principal)
      let twice = await failure {
        _ = try await children(district, principal) { try await $0.signOffMonth(.with { $0.month = "2026-09" }) }
      }
      #expect(twice?.code == .alreadyExists)
      let obligation = try await district.registry.obligation(kindergarten: District.kindergartenA, kind: .monthlyAudit, subject: "month:2026-09")
      #expect(obligation?.doneBy == principal)
      #expect(obligation?.status(today: CalendarDate(beijingTimeOf: district.clock.now)) == .done(onTime: false))
    }
  }

  @Test("paper archive: who checked the signed template; shreddable one year after the child left")
  func paperArchive() async throws {
    try await withDistrict { district in
      // A child that entered two school years ago, so it can have left more than a year ago.
      var child = KindergartenDataFixtures.child()
      child.entryDate = .with { $0.year = 2024; $0.month = 9; $0.day = 1 }
      _ = try await children(district, admin) { try await $0.enrollChild(.with { $0.child = child }) }
      let missing = try await children(district, admin) { try await $0.listPaperArchive(.with { $0.filter = "missing" }) }
      #expect(missing.entries.map(\.recordNumber) == [IDDocuments.mask(number)])
      let noChecker = await failure {
        _ = try await children(district, admin) {
          try await $0.recordPaperArchive(.with {
            $0.recordNumber = number
            $0.parentSignedOn = .with { $0.year = 2026; $0.month = 9; $0.day = 1 }
          })
        }
      }
      #expect(noChecker?.message.hasPrefix("checked_by: required") == true)
      let entry = try await children(district, admin) {
        try await $0.recordPaperArchive(.with {
          $0.recordNumber = number
          $0.parentSignedOn = .with { $0.year = 2025; $0.month = 9; $0.day = 1 }
          $0.checkedBy = "赵敏"
          $0.checkedOn = .with { $0.year = 2025; $0.month = 9; $0.day = 2 }
        })
      }
      #expect(entry.recorded && !entry.hasLeftOn && !entry.shreddable)
      // Left a year and more ago: the paper may now be shredded.
      _ = try await children(district, admin) {
        try await $0.leaveChild(.with {
          $0.recordNumber = number
          $0.reason = "moved away"
          $0.leftOn = .with { $0.year = 2025; $0.month = 9; $0.day = 20 }
        })
      }
      let shreddable = try await children(district, admin) { try await $0.listPaperArchive(.with { $0.filter = "shreddable" }) }
      #expect(shreddable.entries.count == 1)
      #expect(shreddable.entries.first?.shredAfter == .with { $0.year = 2026; $0.month = 9; $0.day = 20 })
      #expect(shreddable.entries.first?.shreddable == true)
      // The shred list (issue 13): that the paper was destroyed, when and by whom — not before
      // the year is out, once, and the archive cannot be "corrected" afterwards.
      let early = await failure {
        _ = try await children(district, admin) {
          try await $0.recordPaperShredded(.with {
            $0.recordNumber = number
            $0.shreddedOn = .with { $0.year = 2026; $0.month = 9; $0.day = 19 }
            $0.shreddedBy = "赵敏"
          })
        }
      }
      #expect(early?.code == .failedPrecondition)
      #expect(early?.message == "shredded_on: the child left on 2025-09-20; the paper may be destroyed from 2026-09-20, not 2026-09-19")
      let nobody = await failure {
        _ = try await children(district, admin) { try await $0.recordPaperShredded(.with { $0.recordNumber = number }) }
      }
      #expect(nobody?.message.hasPrefix("shredded_by: required") == true)
      let shredded = try await children(district, admin) {
        try await $0.recordPaperShredded(.with {
          $0.recordNumber = number
          $0.shreddedBy = "赵敏、王芳"
        })
      }
      #expect(shredded.shreddedBy == "赵敏、王芳" && shredded.shreddedOn == .with { $0.year = 2026; $0.month = 9; $0.day = 21 })
      #expect(!shredded.shreddable)
      let twice = await failure {
        _ = try await children(district, principal) {
          try await $0.recordPaperShredded(.with {
            $0.recordNumber = number
            $0.shreddedBy = "赵敏"
          })
        }
      }
      #expect(twice?.code == .alreadyExists)
      let list = try await children(district, admin) { try await $0.listPaperArchive(.with { $0.filter = "shredded" }) }
      #expect(list.entries.map(\.shreddedBy) == ["赵敏、王芳"])
      #expect(try await children(district, admin) { try await $0.listPaperArchive(.with { $0.filter = "shreddable" }) }.entries.isEmpty)
      let correction = await failure {
        _ = try await children(district, admin) {
          try await $0.recordPaperArchive(.with {
            $0.recordNumber = number
            $0.parentSignedOn = .with { $0.year = 2025; $0.month = 9; $0.day = 1 }
            $0.checkedBy = "赵敏"
          })
        }
      }
      #expect(correction?.code == .failedPrecondition)
      #expect(try await history(district).contains { $0.field == "paper archive" && $0.newValue == "destroyed on 2026-09-21 by 赵敏、王芳" })
      let teachers = await failure {
        _ = try await children(district, District.user(.financeStaff)) { try await $0.listPaperArchive(.init()) }
      }
      #expect(teachers?.code == .permissionDenied)
    }
  }
}
