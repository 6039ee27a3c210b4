import Testing

@testable import PEMISDomain

/// A small calendar written here, so the domain's arithmetic is tested on its own; the shipped
/// files are tested in PEMISStoreTests.
@Suite("Working-day arithmetic")
struct WorkingDayTests {
  static func d(_ y: Int, _ m: Int, _ day: Int) -> CalendarDate { CalendarDate(year: y, month: m, day: day) }

  static let calendar = try! WorkingDayCalendar(years: [
    .init(
      year: 2026,
      holidays: Dictionary(uniqueKeysWithValues: (15...23).map { (d(2026, 2, $0), "Spring Festival") }),
      workdays: [d(2026, 2, 14): "Spring Festival", d(2026, 2, 28): "Spring Festival"])
  ])

  @Test("day numbers and weekdays")
  func weekdays() {
    #expect(CalendarDate(year: 1970, month: 1, day: 1).dayNumber == 0)
    #expect(CalendarDate(year: 1970, month: 1, day: 1).weekday == .thursday)
    #expect(Self.d(2026, 2, 14).weekday == .saturday)
    #expect(Self.d(2024, 2, 29).next == Self.d(2024, 3, 1))
    #expect(Self.d(2025, 12, 31).next == Self.d(2026, 1, 1))
    for n in [-1000, 0, 20_000, 30_000] { #expect(CalendarDate(dayNumber: n).dayNumber == n) }
  }

  @Test("weekends, holidays and make-up workdays")
  func kinds() throws {
    #expect(try Self.calendar.isWorkingDay(Self.d(2026, 2, 13)))  // Friday
    #expect(try Self.calendar.isWorkingDay(Self.d(2026, 2, 14)))  // Saturday, make-up
    #expect(try !Self.calendar.isWorkingDay(Self.d(2026, 2, 16)))  // Monday, holiday
    #expect(try !Self.calendar.isWorkingDay(Self.d(2026, 3, 1)))  // Sunday
    #expect(try Self.calendar.describe(Self.d(2026, 2, 28)) == "make-up workday (Spring Festival)")
  }

  @Test("adding working days skips the holiday and counts the make-up days")
  func adding() throws {
    // Friday 13 Feb + 3 working days: Sat 14 (make-up), then Tue 24, Wed 25.
    #expect(try Self.calendar.adding(workingDays: 3, to: Self.d(2026, 2, 13)) == Self.d(2026, 2, 25))
    #expect(try Self.calendar.adding(workingDays: 0, to: Self.d(2026, 2, 16)) == Self.d(2026, 2, 16))
    #expect(try Self.calendar.workingDays(from: Self.d(2026, 2, 13), to: Self.d(2026, 2, 28)) == 6)
    #expect(try Self.calendar.workingDays(from: Self.d(2026, 3, 1), to: Self.d(2026, 2, 1)) == 0)
  }

  @Test("a year with no data is an error, never a guess")
  func noData() {
    #expect(throws: CalendarError.noData(year: 2027)) { try Self.calendar.isWorkingDay(Self.d(2027, 1, 4)) }
    // Running off the end of the known years while counting is the same error.
    #expect(throws: CalendarError.noData(year: 2027)) { try Self.calendar.adding(workingDays: 10, to: Self.d(2026, 12, 28)) }
  }

  @Test("inconsistent data is refused")
  func invalid() {
    #expect(throws: CalendarError.self) {
      try WorkingDayCalendar(years: [.init(year: 2026, holidays: [Self.d(2025, 1, 1): "x"], workdays: [:])])
    }
    #expect(throws: CalendarError.self) {
      try WorkingDayCalendar(years: [.init(year: 2026, holidays: [Self.d(2026, 1, 1): "x"], workdays: [Self.d(2026, 1, 1): "y"])])
    }
  }
}

@Suite("Deadline rules")
struct DeadlineRuleTests {
  typealias W = WorkingDayTests

  @Test("each rule's working days, as the regulation sets them")
  func rules() {
    let days = Dictionary(uniqueKeysWithValues: ObligationKind.allCases.map { ($0, $0.rule.workingDays) })
    #expect(days == [
      .initialData: 30, .termVerification: 3, .enrollment: 30, .promotion: 3, .transferOut: 3, .transferIn: 3,
      .otherChange: 3, .accidentalDeparture: 30, .leadershipChange: 3, .monthlyAudit: 3,
    ])
  }

  @Test("a transfer applied for on the Friday before Spring Festival is due after the holiday")
  func transferOverHoliday() throws {
    #expect(try ObligationKind.transferOut.due(after: W.d(2026, 2, 13), in: W.calendar) == W.d(2026, 2, 25))
  }

  @Test("status: due, overdue, done on time or late")
  func status() {
    let due = W.d(2026, 2, 25)
    #expect(ObligationStatus.of(due: due, doneOn: nil, today: W.d(2026, 2, 25)) == .due)
    #expect(ObligationStatus.of(due: due, doneOn: nil, today: W.d(2026, 2, 26)) == .overdue)
    #expect(ObligationStatus.of(due: due, doneOn: W.d(2026, 2, 24), today: W.d(2026, 3, 1)) == .done(onTime: true))
    #expect(ObligationStatus.of(due: due, doneOn: W.d(2026, 2, 27), today: W.d(2026, 3, 1)) == .done(onTime: false))
  }

  @Test("Beijing dates from UTC seconds")
  func beijing() {
    // 2026-02-13 16:30 UTC is already 14 February in Beijing.
    #expect(CalendarDate(beijingTimeOf: 1_771_000_200) == W.d(2026, 2, 14))
    #expect(CalendarDate(beijingTimeOf: 0) == CalendarDate(year: 1970, month: 1, day: 1))
  }
}
