/// Working days of mainland China: Monday to Friday, except public holidays, plus the official
/// make-up workdays (调休) that fall on weekends. The regulation's time limits count these days.
///
/// The calendar knows only the years it was given (one file per year in `Config/calendar/`);
/// asking about any other year is an error, never a guess.
public struct WorkingDayCalendar: Sendable {
  /// One year's announcement.
  public struct Year: Sendable, Equatable {
    public var year: Int
    /// Days off, by date; some fall on weekends and change nothing.
    public var holidays: [CalendarDate: String]
    /// Weekend days that are worked, by date.
    public var workdays: [CalendarDate: String]

    public init(year: Int, holidays: [CalendarDate: String], workdays: [CalendarDate: String]) {
      self.year = year
      self.holidays = holidays
      self.workdays = workdays
    }

    /// Checks the year's own consistency: every date in the year, no date both off and worked.
    public func validate() throws(CalendarError) {
      for date in Array(holidays.keys) + Array(workdays.keys) where date.year != year || !date.isValid {
        throw CalendarError.invalid(year: year, reason: "\(date) does not belong to \(year)")
      }
      if let both = Set(holidays.keys).intersection(workdays.keys).min() {
        throw CalendarError.invalid(year: year, reason: "\(both) is both a holiday and a make-up workday")
      }
    }
  }

  public private(set) var years: [Int: Year]

  public init(years: [Year]) throws(CalendarError) {
    var byYear: [Int: Year] = [:]
    for year in years {
      try year.validate()
      guard byYear[year.year] == nil else { throw CalendarError.invalid(year: year.year, reason: "given twice") }
      byYear[year.year] = year
    }
    self.years = byYear
  }

  public var knownYears: ClosedRange<Int>? {
    guard let first = years.keys.min(), let last = years.keys.max() else { return nil }
    return first...last
  }

  private func year(_ date: CalendarDate) throws(CalendarError) -> Year {
    guard let year = years[date.year] else { throw CalendarError.noData(year: date.year) }
    return year
  }

  public func isWorkingDay(_ date: CalendarDate) throws(CalendarError) -> Bool {
    let data = try year(date)
    if data.workdays[date] != nil { return true }
    if data.holidays[date] != nil { return false }
    return !date.weekday.isWeekend
  }

  /// What kind of day it is, with the holiday's name.
  public func describe(_ date: CalendarDate) throws(CalendarError) -> String {
    let data = try year(date)
    if let name = data.workdays[date] { return "make-up workday (\(name))" }
    if let name = data.holidays[date] { return "holiday (\(name))" }
    return date.weekday.isWeekend ? "weekend" : "working day"
  }

  /// The `n`-th working day after `date` (n ≥ 1): the due date of "within n working days of
  /// `date`". `n` = 0 gives `date` itself.
  public func adding(workingDays n: Int, to date: CalendarDate) throws(CalendarError) -> CalendarDate {
    precondition(n >= 0, "counting backwards is not a deadline")
    var current = date
    var left = n
    while left > 0 {
      current = current.next
      if try isWorkingDay(current) { left -= 1 }
    }
    return current
  }

  /// Working days after `start` up to and including `end` (0 when `end` is not after `start`).
  public func workingDays(from start: CalendarDate, to end: CalendarDate) throws(CalendarError) -> Int {
    guard start < end else { return 0 }
    var count = 0
    var current = start
    while current < end {
      current = current.next
      if try isWorkingDay(current) { count += 1 }
    }
    return count
  }
}

public enum CalendarError: Error, Hashable, Sendable, CustomStringConvertible {
  /// No calendar file for this year: add `Config/calendar/<year>.json`.
  case noData(year: Int)
  case invalid(year: Int, reason: String)

  public var description: String {
    switch self {
    case .noData(let year):
      "the working-day calendar has no data for \(year): add Config/calendar/\(year).json (docs/CALENDAR.md)"
    case .invalid(let year, let reason):
      "the calendar for \(year) is invalid: \(reason)"
    }
  }
}

public enum Weekday: Int, Sendable, CaseIterable {
  case monday = 1, tuesday, wednesday, thursday, friday, saturday, sunday
  public var isWeekend: Bool { self == .saturday || self == .sunday }
}

extension CalendarDate {
  /// Days since 1970-01-01 (proleptic Gregorian), by Howard Hinnant's days-from-civil.
  public var dayNumber: Int {
    let y = month <= 2 ? year - 1 : year
    let era = (y >= 0 ? y : y - 399) / 400
    let yoe = y - era * 400
    let mp = (month + 9) % 12
    let doy = (153 * mp + 2) / 5 + day - 1
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
    return era * 146097 + doe - 719468
  }

  public init(dayNumber: Int) {
    let z = dayNumber + 719468
    let era = (z >= 0 ? z : z - 146096) / 146097
    let doe = z - era * 146097
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
    let mp = (5 * doy + 2) / 153
    let d = doy - (153 * mp + 2) / 5 + 1
    let m = mp < 10 ? mp + 3 : mp - 9
    self.init(year: yoe + era * 400 + (m <= 2 ? 1 : 0), month: m, day: d)
  }

  public var next: CalendarDate { CalendarDate(dayNumber: dayNumber + 1) }

  /// 1970-01-01 was a Thursday.
  public var weekday: Weekday {
    Weekday(rawValue: ((dayNumber % 7 + 7) % 7 + 3) % 7 + 1)!
  }
}
