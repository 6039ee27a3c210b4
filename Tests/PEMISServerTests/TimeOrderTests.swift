import GRPCCore
import PEMISClient
import PEMISDomain
import PEMISProto
import PEMISWire
import SwiftProtobuf
import Testing

@testable import PEMISServer
@testable import PEMISStore

/// The time-order rules (`PEMISDomain.TimeOrder`) on the real paths, against a real server. The
/// test clock starts on Monday 21 September 2026 (Beijing); the fixture child was born on
/// 2022-03-15 and entered on 2026-09-01.
@Suite("Time order")
struct TimeOrderTests {
  let a = District.kindergartenA
  let b = District.kindergartenB
  let admin = District.user(.administrator)
  let principal = District.user(.principal)
  let number = "G" + KindergartenDataFixtures.childID

  func children<R: Sendable>(
    _ district: District, _ user: String, _ body: (Pemis_V1_ChildRecords.Client<PEMISWireClientTransport>) async throws -> R
  ) async throws -> R {
    try await district.asUser(user) { try await body(Pemis_V1_ChildRecords.Client(wrapping: $0)) }
  }

  func date(_ year: Int, _ month: Int, _ day: Int) -> Pemis_V1_Date {
    .with {
      $0.year = Int32(year)
      $0.month = Int32(month)
      $0.day = Int32(day)
    }
  }

  func shard(_ district: District, _ code: String) async throws -> TenantShard {
    try await district.server.tenancy.shards.shard(try InstitutionCode(validating: code))
  }

  func today(_ district: District) -> CalendarDate { CalendarDate(beijingTimeOf: district.clock.now) }

  /// A class of this grade in kindergarten A, created through the service; returns its id.
  func createClass(_ district: District, _ name: String, grade: String) async throws -> String {
    var newClass = KindergartenDataFixtures.newClass(name)
    newClass.grade = grade
    newClass.capacity = 30
    return try await district.asUser(admin) { client in
      try await Pemis_V1_KindergartenData.Client(wrapping: client).createClass(.with { $0.class = newClass })
    }.class.classID
  }

  /// About a year later, keeping the accounts in `users` in use so they are not sealed.
  func aYearLater(_ district: District, keeping users: [String]) async throws {
    district.clock.advance(175 * 86400)
    for user in users { _ = try await district.login(user) }
    district.clock.advance(175 * 86400)
  }

  @Test("leaving, an accidental departure and graduation dated before entry are refused; the paper archive is never shreddable at once")
  func endingsBeforeEntry() async throws {
    try await withDistrict { district in
      let large = try await createClass(district, "大一班", grade: "large")
      _ = try await children(district, admin) {
        try await $0.enrollChild(.with {
          $0.child = KindergartenDataFixtures.child()
          $0.classID = large
        })
      }
      _ = try await children(district, admin) {
        try await $0.recordPaperArchive(.with {
          $0.recordNumber = number
          $0.parentSignedOn = date(2026, 8, 20)
          $0.checkedBy = "赵敏"
          $0.checkedOn = date(2026, 8, 21)
        })
      }
      let leave = await failure {
        _ = try await children(district, admin) {
          try await $0.leaveChild(.with {
            $0.recordNumber = number
            $0.reason = "moved away"
            $0.leftOn = date(2025, 9, 20)
          })
        }
      }
      #expect(leave?.code == .invalidArgument)
      #expect(leave?.message == "left_on: 2025-09-20 is before the child entered this kindergarten (2026-09-01)")
      let departure = await failure {
        _ = try await children(district, admin) {
          try await $0.recordAccidentalDeparture(.with {
            $0.recordNumber = number
            $0.kind = "injury"
            $0.evidence = "滨海医院诊断证明 2026-123"
            $0.occurredOn = date(2026, 8, 31)
          })
        }
      }
      #expect(departure?.code == .invalidArgument)
      #expect(departure?.message == "occurred_on: 2026-08-31 is before the child entered this kindergarten (2026-09-01)")
      for preview in [true, false] {
        let graduation = await failure {
          _ = try await children(district, admin) {
            try await $0.graduateClass(.with {
              $0.classID = large
              $0.effectiveOn = date(2026, 7, 1)
              $0.preview = preview
            })
          }
        }
        #expect(graduation?.code == .invalidArgument)
        #expect(graduation?.message == "effective_on: 2026-07-01 is before child \(IDDocuments.mask(number)) entered this kindergarten (2026-09-01)")
      }
      let update = await failure {
        _ = try await children(district, admin) {
          try await $0.updateChild(.with {
            $0.recordNumber = number
            $0.fields = ["health"]
            $0.child.health = "chronic_condition"
            $0.changedOn = date(2026, 8, 1)
          })
        }
      }
      #expect(update?.message == "changed_on: 2026-08-01 is before the child entered this kindergarten (2026-09-01)")
      // Nothing happened: still enrolled in its class, nothing to shred.
      let row = try await shard(district, a).child(number)
      #expect(row?.state == .enrolled && row?.classId == large && row?.leftOn == nil)
      #expect(try await district.registry.indexRecord(number)?.state == .enrolled)
      var shreddable = try await children(district, admin) { try await $0.listPaperArchive(.with { $0.filter = "shreddable" }) }
      #expect(shreddable.entries.isEmpty)
      // Leaving on the day it entered is allowed; the paper waits a year from then.
      let left = try await children(district, admin) {
        try await $0.leaveChild(.with {
          $0.recordNumber = number
          $0.reason = "moved away"
          $0.leftOn = date(2026, 9, 1)
        })
      }
      #expect(left.state == "left")
      shreddable = try await children(district, admin) { try await $0.listPaperArchive(.with { $0.filter = "shreddable" }) }
      #expect(shreddable.entries.isEmpty)
      let all = try await children(district, admin) { try await $0.listPaperArchive(.init()) }
      #expect(all.entries.first?.shredAfter == date(2027, 9, 1))
      #expect(all.entries.first?.shreddable == false)
    }
  }

  @Test("a transfer applied for before the child entered is refused, and nothing moves")
  func transferBeforeEntry() async throws {
    try await withDistrict { district in
      _ = try await children(district, admin) { try await $0.enrollChild(.with { $0.child = KindergartenDataFixtures.child() }) }
      let early = await failure {
        _ = try await district.asUser(admin) { client in
          try await Pemis_V1_Transfers.Client(wrapping: client).transferOut(.with {
            $0.recordNumber = number
            $0.toKindergartenCode = b
            $0.appliedOn = date(2026, 8, 20)
          })
        }
      }
      #expect(early?.code == .invalidArgument)
      #expect(early?.message == "applied_on: 2026-08-20 is before the child entered this kindergarten (2026-09-01)")
      #expect(try await shard(district, a).child(number)?.state == .enrolled)
      #expect(try await district.registry.indexRecord(number)?.state == .enrolled)
      let obligations = try await district.registry.obligations(kindergarten: a, filter: .all, today: today(district), offset: 0, limit: 100)
      #expect(!obligations.obligations.contains { $0.kind == .transferOut })
      // Applied on the entry day: accepted.
      let out = try await district.asUser(admin) { client in
        try await Pemis_V1_Transfers.Client(wrapping: client).transferOut(.with {
          $0.recordNumber = number
          $0.toKindergartenCode = b
          $0.appliedOn = date(2026, 9, 1)
        })
      }
      #expect(out.state == "out")
    }
  }

  @Test("a template signed before the child was born is refused, for the paper archive and a key-information change")
  func signedBeforeBirth() async throws {
    try await withDistrict { district in
      _ = try await children(district, admin) { try await $0.enrollChild(.with { $0.child = KindergartenDataFixtures.child() }) }
      let archive = await failure {
        _ = try await children(district, admin) {
          try await $0.recordPaperArchive(.with {
            $0.recordNumber = number
            $0.parentSignedOn = date(2022, 3, 14)
            $0.checkedBy = "赵敏"
            $0.checkedOn = date(2026, 9, 2)
          })
        }
      }
      #expect(archive?.code == .invalidArgument)
      #expect(archive?.message == "parent_signed_on: 2022-03-14 is before the child was born (2022-03-15)")
      let missing = try await children(district, admin) { try await $0.listPaperArchive(.with { $0.filter = "missing" }) }
      #expect(missing.entries.count == 1)
      let keyChange = await failure {
        _ = try await children(district, admin) {
          try await $0.requestKeyChange(.with {
            $0.recordNumber = number
            $0.fields = ["name"]
            $0.name = "张晓明"
            $0.evidence = "家长书面申请及户口簿"
            $0.templateSignedOn = date(2021, 12, 1)
          })
        }
      }
      #expect(keyChange?.code == .invalidArgument)
      #expect(keyChange?.message == "template_signed_on: 2021-12-01 is before the child was born (2022-03-15)")
      let pending = try await children(district, principal) { try await $0.listKeyChanges(.init()) }
      #expect(pending.changes.isEmpty)
      // Signed on the birth day itself: a real date.
      let entry = try await children(district, admin) {
        try await $0.recordPaperArchive(.with {
          $0.recordNumber = number
          $0.parentSignedOn = date(2022, 3, 15)
          $0.checkedBy = "赵敏"
          $0.checkedOn = date(2026, 9, 2)
        })
      }
      #expect(entry.recorded)
    }
  }

  @Test("a class is promoted once a school year: twice is refused, the next school year it steps up again")
  func promoteOncePerSchoolYear() async throws {
    try await withDistrict { district in
      let small = try await createClass(district, "小一班", grade: "small")
      _ = try await children(district, admin) {
        try await $0.enrollChild(.with {
          $0.child = KindergartenDataFixtures.child()
          $0.classID = small
        })
      }
      let first = try await children(district, admin) { try await $0.promoteClass(.with { $0.classID = small }) }
      #expect(first.grade == "middle")
      for preview in [true, false] {
        let twice = await failure {
          _ = try await children(district, admin) {
            try await $0.promoteClass(.with {
              $0.classID = small
              $0.preview = preview
            })
          }
        }
        #expect(twice?.code == .failedPrecondition)
        #expect(
          twice?.message
            == "class_id: class \(small) was already promoted in school year 2026-2027 (on 2026-09-21); a class is promoted once a school year")
      }
      let backDated = await failure {
        _ = try await children(district, admin) {
          try await $0.promoteClass(.with {
            $0.classID = small
            $0.effectiveOn = date(2026, 8, 31)
          })
        }
      }
      #expect(backDated?.code == .invalidArgument)
      #expect(backDated?.message == "effective_on: 2026-08-31 is before class \(small)'s last promotion (2026-09-21)")
      let listed = try await district.asUser(admin) { try await Pemis_V1_KindergartenData.Client(wrapping: $0).listClasses(.init()) }
      #expect(listed.classes.first?.grade == "middle")
      #expect(listed.classes.first?.schoolYear == "2027-2028")
      let promotions = try await district.registry.obligations(kindergarten: a, filter: .done, today: today(district), offset: 0, limit: 50)
      #expect(promotions.obligations.filter { $0.kind == .promotion }.count == 1)

      // The next school year (2027-2028), it is promoted again.
      try await aYearLater(district, keeping: [admin])
      let next = try await children(district, admin) { try await $0.promoteClass(.with { $0.classID = small }) }
      #expect(next.grade == "large")
      let history = try await shard(district, a).history(record: "class:\(small)", offset: 0, limit: 100).entries
      #expect(history.filter { $0.field == "promoted on" }.map(\.newValue) == ["2026-09-21", today(district).description])
    }
  }

  @Test("a term started with a back-dated start is not owed by a kindergarten that got its accounts after it")
  func backDatedTerm() async throws {
    try await withDistrict { district in
      // A and B got their accounts on 21 September; C a month later.
      district.clock.advance(30 * 86400)
      let c = "1112000103"
      _ = try await district.application(.public, to: .active, code: c)
      let started = try await district.asUser(District.user(.preschoolOffice)) { client in
        try await Pemis_V1_Deadlines.Client(wrapping: client).startTerm(.with {
          $0.term = "2026-autumn"
          $0.startsOn = date(2026, 9, 30)
        })
      }
      #expect(started.kindergartens == 2)
      let now = today(district)
      let owedByC = try await district.registry.obligations(kindergarten: c, filter: .all, today: now, offset: 0, limit: 100)
      #expect(!owedByC.obligations.contains { $0.kind == .termVerification })
      let overdueC = try await district.registry.obligations(kindergarten: c, filter: .overdue, today: now, offset: 0, limit: 100)
      #expect(overdueC.obligations.isEmpty, "\(overdueC.obligations.map(\.subject))")
      // A had its accounts by the start: it owes the re-verification, late by now.
      let overdueA = try await district.registry.obligations(kindergarten: a, filter: .overdue, today: now, offset: 0, limit: 100)
      #expect(overdueA.obligations.filter { $0.kind == .termVerification }.count == 4)
    }
  }

  @Test("a key-information change requested, then approved a week later, is due from the request date")
  func keyChangeDueFromRequest() async throws {
    try await withDistrict { district in
      _ = try await children(district, admin) { try await $0.enrollChild(.with { $0.child = KindergartenDataFixtures.child() }) }
      let requestedOn = today(district)
      let request = try await children(district, admin) {
        try await $0.requestKeyChange(.with {
          $0.recordNumber = number
          $0.fields = ["name"]
          $0.name = "张晓明"
          $0.evidence = "家长书面申请及户口簿"
          $0.templateSignedOn = requestedOn.proto
        })
      }
      district.clock.advance(7 * 86400)
      let approved = try await children(district, principal) {
        try await $0.decideKeyChange(.with {
          $0.id = request.id
          $0.approve = true
        })
      }
      #expect(approved.state == "approved")
      let obligation = try await district.registry.obligation(
        kindergarten: a, kind: .otherChange, subject: district.registry.childReferences.subject(recordNumber: number, suffix: ":key-change#\(request.id)"))
      #expect(obligation?.triggeredOn == requestedOn.description)
      let due = try ObligationKind.otherChange.due(after: requestedOn, in: district.server.tenancy.calendar)
      #expect(obligation?.dueOn == due.description)
      #expect(obligation?.status(today: today(district)) == .done(onTime: false))
    }
  }
}
