/// The regulation's time limits, each one named rule: an event starts the clock, and the
/// obligation is due the given number of working days later (docs/DEADLINES.md).
public enum ObligationKind: String, CaseIterable, Hashable, Sendable, Codable {
  /// Art. 13: a new kindergarten enters basic, class, staff and finance information.
  case initialData = "initial_data"
  /// Art. 14: every semester the kindergarten re-verifies the four areas.
  case termVerification = "term_verification"
  /// Art. 15(3): new children collected, entered, confirmed and imported.
  case enrollment
  /// Art. 15(5): promotion or graduation recorded.
  case promotion
  /// Art. 16: the sending kindergarten transfers the record out.
  case transferOut = "transfer_out"
  /// Art. 16: the receiving kindergarten transfers it in.
  case transferIn = "transfer_in"
  /// Art. 17(2): any other change to a child's information.
  case otherChange = "other_change"
  /// Art. 17(3): an accidental departure (injury or death) entered and the record closed.
  case accidentalDeparture = "accidental_departure"
  /// Art. 19: a change of the leadership group reported to the Preschool Education Office.
  case leadershipChange = "leadership_change"
  /// Art. 11: the principal's monthly audit of the system (due 3 working days after the month).
  case monthlyAudit = "monthly_audit"

  public var rule: DeadlineRule {
    switch self {
    case .initialData: DeadlineRule(workingDays: 30, article: "Art. 13", summary: "new kindergarten completes its data")
    case .termVerification: DeadlineRule(workingDays: 3, article: "Art. 14", summary: "semester re-verification after term start")
    case .enrollment: DeadlineRule(workingDays: 30, article: "Art. 15(3)", summary: "enrollment records from entry")
    case .promotion: DeadlineRule(workingDays: 3, article: "Art. 15(5)", summary: "promotion or graduation")
    case .transferOut: DeadlineRule(workingDays: 3, article: "Art. 16", summary: "transfer out after the application")
    case .transferIn: DeadlineRule(workingDays: 3, article: "Art. 16", summary: "transfer in after the application")
    case .otherChange: DeadlineRule(workingDays: 3, article: "Art. 17(2)", summary: "other change to a child's information")
    case .accidentalDeparture: DeadlineRule(workingDays: 30, article: "Art. 17(3)", summary: "accidental departure entered")
    case .leadershipChange: DeadlineRule(workingDays: 3, article: "Art. 19", summary: "leadership-group change reported")
    case .monthlyAudit: DeadlineRule(workingDays: 3, article: "Art. 11", summary: "principal's monthly audit, after the month ends")
    }
  }

  /// The due date for an event on `date`.
  public func due(after date: CalendarDate, in calendar: WorkingDayCalendar) throws(CalendarError) -> CalendarDate {
    try calendar.adding(workingDays: rule.workingDays, to: date)
  }
}

public struct DeadlineRule: Hashable, Sendable {
  public var workingDays: Int
  public var article: String
  public var summary: String
}

/// The four areas of a kindergarten's own information (Art. 13, 14).
public enum DataArea: String, CaseIterable, Hashable, Sendable, Codable {
  case basic, classes, staff, finance
}

/// Where an obligation stands on a given day.
public enum ObligationStatus: Hashable, Sendable {
  /// Not done, not yet late.
  case due
  /// Not done, and past its due date.
  case overdue
  case done(onTime: Bool)

  public static func of(due: CalendarDate, doneOn: CalendarDate?, today: CalendarDate) -> ObligationStatus {
    if let doneOn { return .done(onTime: doneOn <= due) }
    return today > due ? .overdue : .due
  }
}

extension CalendarDate {
  /// The date in Beijing time (UTC+8, no daylight saving) of a moment given in seconds since 1970.
  public init(beijingTimeOf seconds: Int64) {
    let local = seconds + 8 * 3600
    self.init(dayNumber: Int(local >= 0 ? local / 86400 : (local - 86399) / 86400))
  }

  /// The moment the date begins in Beijing time, in seconds since 1970: the inverse of
  /// ``init(beijingTimeOf:)``.
  public var beijingMidnight: Int64 { Int64(dayNumber) * 86400 - 8 * 3600 }
}
