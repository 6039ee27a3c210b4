import GRPCCore
import PEMISClient
import PEMISDomain
import PEMISProto
import PEMISWire
import SwiftProtobuf
import Testing

@testable import PEMISServer
@testable import PEMISStore

@Suite("Deadline engine")
struct DeadlineTests {
  func deadlines<R: Sendable>(
    _ district: District, _ user: String, _ body: (Pemis_V1_Deadlines.Client<PEMISWireClientTransport>) async throws -> R
  ) async throws -> R {
    try await district.asUser(user) { try await body(Pemis_V1_Deadlines.Client(wrapping: $0)) }
  }

  @Test("a new kindergarten owes its four areas within 30 working days, and discharges them one by one")
  func initialData() async throws {
    try await withDistrict { district in
      let principal = District.user(.principal)
      let owed = try await deadlines(district, principal) { try await $0.listObligations(.with { $0.status = "open" }) }
      #expect(Set(owed.obligations.map(\.subject)) == ["basic", "classes", "staff", "finance"])
      #expect(owed.obligations.allSatisfy { $0.kind == "initial_data" && $0.status == "due" && $0.article == "Art. 13" })
      // Activated on the test clock's day (2026-09-21, a Monday): 30 working days, skipping National Day.
      let activated = CalendarDate(beijingTimeOf: district.clock.now)
      let expected = try district.server.tenancy.calendar.adding(workingDays: 30, to: activated)
      #expect(owed.obligations.first.map { CalendarDate($0.dueOn) } == expected)

      // Declaring an area complete needs its data first.
      let empty = await #expect(throws: RPCError.self) {
        try await deadlines(district, District.user(.administrator)) { try await $0.completeArea(.with { $0.area = "classes" }) }
      }
      #expect(empty?.code == .failedPrecondition)
      #expect(empty?.message.contains("no class") == true)
      _ = try await district.asUser(District.user(.administrator)) { client in
        try await Pemis_V1_KindergartenData.Client(wrapping: client).createClass(.with { $0.class = KindergartenDataFixtures.newClass("小一班") })
      }
      let done = try await deadlines(district, District.user(.administrator)) { try await $0.completeArea(.with { $0.area = "classes" }) }
      #expect(done.completed.map(\.subject) == ["classes"])
      #expect(done.completed.first?.status == "done")
      #expect(done.completed.first?.doneBy == District.user(.administrator))
      let again = await #expect(throws: RPCError.self) {
        try await deadlines(district, District.user(.administrator)) { try await $0.completeArea(.with { $0.area = "classes" }) }
      }
      #expect(again?.code == .failedPrecondition)
      let bad = await #expect(throws: RPCError.self) {
        try await deadlines(district, principal) { try await $0.completeArea(.with { $0.area = "toys" }) }
      }
      #expect(bad?.message.hasPrefix("area:") == true)
    }
  }

  @Test("past the due date, what is left shows as overdue to the district, within its scope")
  func overdue() async throws {
    try await withDistrict { district in
      _ = try await district.asUser(District.user(.principal)) { client in
        try await Pemis_V1_KindergartenData.Client(wrapping: client).updateProfile(.with { $0.profile = KindergartenDataFixtures.profile })
      }
      _ = try await deadlines(district, District.user(.principal)) { try await $0.completeArea(.with { $0.area = "basic" }) }
      district.clock.advance(60 * 86400)  // 60 days later: past 30 working days, still in 2026
      let all = try await deadlines(district, District.user(.preschoolOffice)) { try await $0.listOverdue(.init()) }
      #expect(all.obligations.filter { $0.kind == "initial_data" }.count == 7)  // 3 of A, 4 of B
      // September's and October's monthly audits (Art. 11), never signed off, of both.
      #expect(all.obligations.filter { $0.kind == "monthly_audit" }.map(\.subject).sorted() == [
        "month:2026-09", "month:2026-09", "month:2026-10", "month:2026-10",
      ])
      #expect(all.obligations.allSatisfy { $0.status == "overdue" })
      let privateOnly = try await deadlines(district, District.user(.vocationalOffice)) { try await $0.listOverdue(.init()) }
      #expect(privateOnly.obligations.count == 6)
      #expect(privateOnly.obligations.allSatisfy { $0.kindergartenCode == District.kindergartenB })
      // Done late is recorded as such.
      _ = try await district.asUser(District.user(.principal)) { client in
        try await Pemis_V1_KindergartenData.Client(wrapping: client).createStaff(.with { $0.staff = KindergartenDataFixtures.teacher })
      }
      let late = try await deadlines(district, District.user(.principal)) { try await $0.completeArea(.with { $0.area = "staff" }) }
      #expect(late.completed.first?.status == "done_late")
    }
  }

  @Test("a term start opens every kindergarten's re-verification, due 3 working days later")
  func termStart() async throws {
    try await withDistrict { district in
      let started = try await deadlines(district, District.user(.preschoolOffice)) {
        try await $0.startTerm(.with {
          $0.term = "2026-autumn"
          $0.startsOn = .with { $0.year = 2026; $0.month = 9; $0.day = 30 }  // before National Day
        })
      }
      #expect(started.kindergartens == 2)
      // 30 September + 3 working days: 1-7 October are off; 8 (Thu), 9 (Fri), 10 (Sat, a make-up workday).
      #expect(CalendarDate(started.verificationDueOn) == CalendarDate(year: 2026, month: 10, day: 10))
      let owed = try await deadlines(district, District.user(.financeStaff, kindergarten: District.kindergartenB)) {
        try await $0.listObligations(.with { $0.status = "open" })
      }
      #expect(owed.obligations.filter { $0.kind == "term_verification" }.map(\.subject).sorted() == [
        "2026-autumn:basic", "2026-autumn:classes", "2026-autumn:finance", "2026-autumn:staff",
      ])
      let twice = await #expect(throws: RPCError.self) {
        try await deadlines(district, District.user(.districtAdmin)) {
          try await $0.startTerm(.with {
            $0.term = "2026-autumn"
            $0.startsOn = .with { $0.year = 2026; $0.month = 9; $0.day = 30 }
          })
        }
      }
      #expect(twice?.code == .alreadyExists)
      // A term in a year without a calendar file is refused, naming the file to add.
      let future = await #expect(throws: RPCError.self) {
        try await deadlines(district, District.user(.districtAdmin)) {
          try await $0.startTerm(.with {
            $0.term = "2027-spring"
            $0.startsOn = .with { $0.year = 2027; $0.month = 2; $0.day = 22 }
          })
        }
      }
      #expect(future?.code == .failedPrecondition)
      #expect(future?.message.contains("Config/calendar/2027.json") == true)
    }
  }

  @Test("a due date in a year without calendar data waits for the file instead of being guessed")
  func awaitsCalendar() async throws {
    try await withDistrict { district in
      district.clock.advance(67 * 86400)  // 2026-11-27: 30 working days later is in 2027
      let id = try await district.application(.public, to: .active, code: "1112000900")
      _ = id
      let owed = try await deadlines(district, District.user(.preschoolOffice)) {
        try await $0.listObligations(.with { $0.kindergartenCode = "1112000900" })
      }
      #expect(owed.obligations.count == 4)
      #expect(owed.obligations.allSatisfy { !$0.hasDueOn && $0.status == "due" })
      // Months later it is still not overdue: nothing can be late against an unknown calendar.
      district.clock.advance(30 * 86400)
      let later = try await deadlines(district, District.user(.preschoolOffice)) { try await $0.listOverdue(.init()) }
      #expect(!later.obligations.contains { $0.kindergartenCode == "1112000900" && $0.kind == "initial_data" })
      // Once 2027 is known, the due dates are computed.
      var years = Array(district.server.tenancy.calendar.years.values)
      years.append(.init(year: 2027, holidays: [CalendarDate(year: 2027, month: 1, day: 1): "New Year's Day"], workdays: [:]))
      let extended = try WorkingDayCalendar(years: years)
      #expect(try await district.registry.fillMissingDueDates(extended) == 4)
      let filled = try await district.registry.obligations(
        kindergarten: "1112000900", filter: .all, today: CalendarDate(year: 2026, month: 11, day: 27), offset: 0, limit: 10)
      #expect(filled.obligations.filter { $0.kind == .initialData }.allSatisfy { $0.dueOn?.hasPrefix("2027-01") == true })
    }
  }
}
