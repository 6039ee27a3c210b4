/// Time order of the records: what happens to a record happens after it exists and not after
/// today, papers are signed by someone alive, a class steps up once a school year, and a clock
/// starts when the duty it measures started. Each rule is a small pure function so every path
/// that writes a date (a service, the store, the routing layer) asks the same rule, and the
/// refusal names the field and says in words why (docs/CHILDREN.md, docs/DEADLINES.md).
public enum TimeOrder {
  /// An event of a child's record — leaving, graduation, an accidental departure (Art. 17(3)), a
  /// parent's transfer application (Art. 16), a change of information (Art. 17(2)) — happens
  /// while the record exists: on or after the day the child entered this kindergarten, and not
  /// after today. An event dated before the entry would also make the paper archive shreddable
  /// at once (it may be shredded one year after the child left), and one dated in the future
  /// would start a deadline that has not begun. The entry day itself is allowed: a child may
  /// leave on the day it came.
  ///
  /// - Parameters:
  ///   - field: the request field the date came in, e.g. "left_on".
  ///   - child: who, when one date concerns several children (a class's graduation), e.g.
  ///     "child G120***********1239"; nil for "the child".
  public static func checkEvent(
    _ date: CalendarDate, field: String, entered: CalendarDate, today: CalendarDate, child: String? = nil
  ) throws(DomainError) {
    guard date.isValid else { throw DomainError(field: field, rule: "date", "is not a valid date") }
    if date > today {
      throw DomainError(field: field, rule: "future", "\(date) is after today (\(today)); enter an event once it has happened")
    }
    if date < entered {
      throw DomainError(field: field, rule: "order", "\(date) is before \(child ?? "the child") entered this kindergarten (\(entered))")
    }
  }

  /// A parent's signature — on the paper archive's information template (Art. 15) or on the
  /// newly signed template of a key-information change — is dated on or after the child's birth
  /// and not after today: a template signed before the child was born, or in the future, is not
  /// a real signature of this child's information. The birth day itself is allowed.
  ///
  /// - Parameters:
  ///   - field: the request field, e.g. "parent_signed_on".
  ///   - birth: the child's birth date as the signed template states it.
  public static func checkSigned(_ date: CalendarDate, field: String, birth: CalendarDate, today: CalendarDate) throws(DomainError) {
    guard date.isValid else { throw DomainError(field: field, rule: "date", "is not a valid date") }
    if date > today {
      throw DomainError(field: field, rule: "future", "\(date) is after today (\(today)); a template is signed before it is recorded")
    }
    if date < birth {
      throw DomainError(field: field, rule: "order", "\(date) is before the child was born (\(birth))")
    }
  }

  /// Art. 15(5): promotion (升班) moves a class up one grade for the next school year, so a
  /// class is promoted at most once in a school year (1 September – 31 August, ``SchoolYear``),
  /// and never dated before its last promotion. Promoting twice the same day or year would put
  /// the children two grades up. A promotion on 31 August and the next on 1 September are in
  /// different school years and both allowed.
  ///
  /// Already promoted this school year is a state of the class (rule "state", so
  /// FAILED_PRECONDITION); a date before the last promotion is a wrong date (rule "order").
  ///
  /// - Parameters:
  ///   - date: the promotion's effective date.
  ///   - lastPromotedOn: the effective date of the class's last promotion, nil if never.
  public static func checkPromotion(
    classId: String, on date: CalendarDate, lastPromotedOn: CalendarDate?
  ) throws(DomainError) {
    guard let last = lastPromotedOn else { return }
    if date < last {
      throw DomainError(field: "effective_on", rule: "order", "\(date) is before class \(classId)'s last promotion (\(last))")
    }
    let year = SchoolYear(containing: date)
    if year == SchoolYear(containing: last) {
      throw DomainError(
        field: "class_id", rule: "state", kind: .failedPrecondition,
        "class \(classId) was already promoted in school year \(year) (on \(last)); a class is promoted once a school year")
    }
  }

  /// Art. 14: the re-verification within 3 working days of a term's start is owed by the
  /// kindergartens that had their accounts by then. One that got its accounts later has nothing
  /// to re-verify for that term — it owes its initial data within 30 working days (Art. 13) —
  /// so a term started late in the system, with a back-dated start, must not make it overdue at
  /// once. Accounts issued on the start day itself owe it.
  public static func owesTermVerification(accountsIssuedOn: CalendarDate, termStartsOn: CalendarDate) -> Bool {
    accountsIssuedOn <= termStartsOn
  }

  /// Art. 17(2): a change to a child's information is entered within 3 working days. For key
  /// information the change is the parent's written request; the principal's approval is the
  /// kindergarten entering it. So the clock runs from the day the request was filed, not from
  /// the approval: an approval that waits a week is a late entry, not a fresh deadline.
  public static func keyChangeClockStart(requestedOn: CalendarDate, decidedOn: CalendarDate) -> CalendarDate {
    min(requestedOn, decidedOn)
  }
}

/// A school year: 1 September to 31 August (the national statistics count as of 1 September;
/// classes are labelled "2026-2027"). The same definition as the district summary's
/// age-on date.
public struct SchoolYear: Hashable, Sendable, Comparable, CustomStringConvertible {
  /// The calendar year in which the school year starts (its 1 September).
  public var startYear: Int

  public init(startYear: Int) { self.startYear = startYear }

  /// The school year `date` falls in: from 1 September on, the one starting that year.
  public init(containing date: CalendarDate) {
    startYear = date.month >= 9 ? date.year : date.year - 1
  }

  /// 1 September.
  public var first: CalendarDate { CalendarDate(year: startYear, month: 9, day: 1) }
  /// 31 August of the next year.
  public var last: CalendarDate { CalendarDate(year: startYear + 1, month: 8, day: 31) }

  public static func < (a: Self, b: Self) -> Bool { a.startYear < b.startYear }
  /// "2026-2027", as classes write it.
  public var description: String { "\(startYear)-\(startYear + 1)" }
}

extension ChildEvent {
  /// The request field that dates this event, for messages naming it.
  public var dateField: String {
    switch self {
    case .leave: "left_on"
    case .accidentalDeparture, .recordDeath: "occurred_on"
    case .graduate, .promote: "effective_on"
    case .requestTransferOut: "applied_on"
    case .changeInformation: "changed_on"
    case .assignClass, .moveClass, .delete, .cancelTransferOut, .completeTransferOut: "date"
    }
  }
}
