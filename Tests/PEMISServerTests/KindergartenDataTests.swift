import GRPCCore
import PEMISClient
import PEMISDomain
import PEMISProto
import PEMISWire
import SwiftProtobuf
import Testing

@testable import PEMISServer

@Suite("Kindergarten data")
struct KindergartenDataTests {
  func data<R: Sendable>(
    _ district: District, _ role: Role, _ body: (Pemis_V1_KindergartenData.Client<PEMISWireClientTransport>) async throws -> R
  ) async throws -> R {
    try await district.as(role) { try await body(Pemis_V1_KindergartenData.Client(wrapping: $0)) }
  }

  @Test("basic information: every broken field named; every change kept with old, new, who and when")
  func profile() async throws {
    try await withDistrict { district in
      var bad = KindergartenDataFixtures.profile
      bad.name = ""
      bad.level = "five-star"
      bad.contactPhone = "call me"
      let error = await failure { _ = try await data(district, .principal) { try await $0.updateProfile(.with { $0.profile = bad }) } }
      #expect(error?.code == .invalidArgument)
      #expect(error?.message == "profile.name: is required; profile.level: must be one of unrated, level3, level2, level1, model; profile.contact_phone: must be 7-20 digits, '-', '+' or spaces")

      _ = try await data(district, .principal) { try await $0.updateProfile(.with { $0.profile = KindergartenDataFixtures.profile }) }
      var changed = KindergartenDataFixtures.profile
      changed.contactPhone = "022-66886699"
      district.clock.advance(3600)
      let after = try await data(district, .financeStaff) { try await $0.updateProfile(.with { $0.profile = changed }) }
      #expect(after.contactPhone == "022-66886699")
      #expect(after.updatedBy == District.user(.financeStaff))
      let history = try await data(district, .preschoolOffice) {
        try await $0.getHistory(.with {
          $0.kindergartenCode = District.kindergartenA
          $0.record = "profile"
        })
      }
      let phone = history.entries.filter { $0.field == "contactPhone" }
      #expect(phone.map(\.oldValue) == ["", "022-66886688"])
      #expect(phone.map(\.newValue) == ["022-66886688", "022-66886699"])
      #expect(phone.last?.changedBy == District.user(.financeStaff))
      #expect(phone.last?.changedAt == district.clock.now)
    }
  }

  @Test("classes: grade, school year and size checked; norms warned; head teacher must be staff")
  func classes() async throws {
    try await withDistrict { district in
      var bad = KindergartenDataFixtures.newClass("")
      bad.grade = "huge"
      let error = await failure { _ = try await data(district, .administrator) { try await $0.createClass(.with { $0.class = bad }) } }
      #expect(error?.message == "class.grade: must be small, middle, large or mixed")
      var year = KindergartenDataFixtures.newClass("小一班")
      year.schoolYear = "2026-2028"
      let yearError = await failure { _ = try await data(district, .administrator) { try await $0.createClass(.with { $0.class = year }) } }
      #expect(yearError?.message == "class.school_year: must be like 2026-2027")

      var big = KindergartenDataFixtures.newClass("大一班")
      big.grade = "large"
      big.capacity = 40
      let created = try await data(district, .administrator) { try await $0.createClass(.with { $0.class = big }) }
      #expect(created.class.classID == "C0001")
      #expect(created.warnings == ["a large class usually has 30-35 children; this one is planned for 40"])
      let duplicate = await failure { _ = try await data(district, .administrator) { try await $0.createClass(.with { $0.class = big }) } }
      #expect(duplicate?.code == .alreadyExists)

      var teacher = KindergartenDataFixtures.newClass("小二班")
      teacher.headTeacherStaffID = "S0009"
      let noStaff = await failure { _ = try await data(district, .administrator) { try await $0.createClass(.with { $0.class = teacher }) } }
      #expect(noStaff?.code == .invalidArgument)
      #expect(noStaff?.message == "class.head_teacher_staff_id: no staff member S0009")

      _ = try await data(district, .principal) { try await $0.deleteClass(.with { $0.classID = "C0001" }) }
      #expect(try await data(district, .principal) { try await $0.listClasses(.init()) }.classes.isEmpty)
      let history = try await data(district, .principal) { try await $0.getHistory(.with { $0.record = "class:C0001" }) }
      #expect(history.entries.last?.field == "deleted")
    }
  }

  @Test("staff: the resident ID is checked against birth date and gender, and shown masked everywhere")
  func staff() async throws {
    try await withDistrict { district in
      var wrongCheck = KindergartenDataFixtures.teacher
      wrongCheck.idDocumentNumber = "120103198806018242"
      #expect(
        await failure { _ = try await data(district, .administrator) { try await $0.createStaff(.with { $0.staff = wrongCheck }) } }?
          .message == "staff.id_document_number: check character does not match (GB 11643-1999)")
      var wrongGender = KindergartenDataFixtures.teacher
      wrongGender.gender = "male"
      #expect(
        await failure { _ = try await data(district, .administrator) { try await $0.createStaff(.with { $0.staff = wrongGender }) } }?
          .message == "staff.id_document_number: sequence number is even (female), not male")
      var wrongBirth = KindergartenDataFixtures.teacher
      wrongBirth.birthDate = .with { $0.year = 1988; $0.month = 6; $0.day = 2 }
      #expect(
        await failure { _ = try await data(district, .administrator) { try await $0.createStaff(.with { $0.staff = wrongBirth }) } }?
          .message == "staff.id_document_number: encodes birth date 1988-06-01, not 1988-06-02")

      let created = try await data(district, .financeStaff) { try await $0.createStaff(.with { $0.staff = KindergartenDataFixtures.teacher }) }
      #expect(created.idDocumentNumber == IDDocuments.mask("120103198806018241"))
      let listed = try await data(district, .preschoolOffice) { try await $0.listStaff(.with { $0.kindergartenCode = District.kindergartenA }) }
      #expect(listed.staff.map(\.idDocumentNumber) == [IDDocuments.mask("120103198806018241")])
      let history = try await data(district, .principal) { try await $0.getHistory(.with { $0.record = "staff:S0001" }) }
      #expect(!history.entries.contains { $0.newValue.contains("120103198806018241") })
      let twice = await failure { _ = try await data(district, .administrator) { try await $0.createStaff(.with { $0.staff = KindergartenDataFixtures.teacher }) } }
      #expect(twice?.code == .alreadyExists)
      // A class leader reads, but does not write, staff.
      #expect(try await data(district, .classLeader) { try await $0.listStaff(.init()) }.staff.count == 1)
    }
  }

  @Test("finance: categories and amounts checked; the Planning & Finance Office confirms; a correction withdraws it")
  func finance() async throws {
    try await withDistrict { district in
      var bad = KindergartenDataFixtures.finance
      bad.income.append(.with { $0.category = "lottery"; $0.fen = 1 })
      bad.expenditure[0].fen = -5
      let error = await failure { _ = try await data(district, .financeStaff) { try await $0.putFinance(.with { $0.finance = bad }) } }
      #expect(error?.message.contains("finance.income[2].category: must be one of") == true)
      #expect(error?.message.contains("finance.expenditure[0].fen: must be 0 to 10,000,000,000 yuan") == true)
      _ = try await data(district, .financeStaff) { try await $0.putFinance(.with { $0.finance = KindergartenDataFixtures.finance }) }
      let confirmed = try await data(district, .financeOffice) {
        try await $0.confirmFinance(.with {
          $0.kindergartenCode = District.kindergartenA
          $0.year = 2026
        })
      }
      #expect(confirmed.confirmedBy == District.user(.financeOffice))
      // The same figures again keep the confirmation; a correction withdraws it.
      let same = try await data(district, .financeStaff) { try await $0.putFinance(.with { $0.finance = KindergartenDataFixtures.finance }) }
      #expect(same.confirmedBy == District.user(.financeOffice))
      var corrected = KindergartenDataFixtures.finance
      corrected.income[0].fen += 100
      let withdrawn = try await data(district, .financeStaff) { try await $0.putFinance(.with { $0.finance = corrected }) }
      #expect(withdrawn.confirmedBy.isEmpty)
      let history = try await data(district, .principal) { try await $0.getHistory(.with { $0.record = "finance:2026" }) }
      #expect(history.entries.contains { $0.field == "confirmation" && $0.newValue == "withdrawn by correction" })
      #expect(history.entries.contains { $0.field == "income[0].fen" && $0.oldValue == "180000000" })
    }
  }

  @Test("leadership group: one leader and the administrator; a change reported late is recorded late (Art. 19)")
  func leadership() async throws {
    try await withDistrict { district in
      let today = CalendarDate(beijingTimeOf: district.clock.now)  // Monday 21 September 2026
      var noLeader = KindergartenDataFixtures.leadership
      noLeader[0].role = "hr"
      let error = await failure {
        _ = try await data(district, .principal) {
          try await $0.setLeadershipGroup(.with {
            $0.members = noLeader
            $0.changedOn = today.proto
          })
        }
      }
      #expect(error?.message == "members: exactly one member leads the group (the principal)")
      let onTime = try await data(district, .principal) {
        try await $0.setLeadershipGroup(.with {
          $0.members = KindergartenDataFixtures.leadership
          $0.changedOn = today.proto
        })
      }
      #expect(onTime.reportStatus == "done")
      // A change that took effect on 1 September, entered on 21 September: 3 working days passed.
      let late = try await data(district, .administrator) {
        try await $0.setLeadershipGroup(.with {
          $0.members = Array(KindergartenDataFixtures.leadership.prefix(2))
          $0.changedOn = .with { $0.year = 2026; $0.month = 9; $0.day = 1 }
        })
      }
      #expect(late.reportStatus == "done_late")
      let obligations = try await district.asUser(District.user(.preschoolOffice)) { client in
        try await Pemis_V1_Deadlines.Client(wrapping: client).listObligations(.with {
          $0.kindergartenCode = District.kindergartenA
          $0.status = "done"
        })
      }
      #expect(obligations.obligations.filter { $0.kind == "leadership_change" }.map(\.status).sorted() == ["done", "done_late"])
      let history = try await data(district, .preschoolOffice) {
        try await $0.getHistory(.with {
          $0.kindergartenCode = District.kindergartenA
          $0.record = "leadership"
        })
      }
      #expect(history.entries.contains { $0.field == "members[2].name" && $0.oldValue == "刘芳" && $0.newValue.isEmpty })
    }
  }
}
