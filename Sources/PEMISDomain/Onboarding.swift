/// The onboarding of a kindergarten (Art. 6, Appendix 1) as one state machine. Each step names the
/// state it needs; an illegal step is refused with the state the application is in.
public enum OnboardingState: String, CaseIterable, Hashable, Sendable, Codable {
  /// Entered from the paper application and recognition form.
  case submitted
  /// Sent back by the reviewing office with a reason; may be corrected and resubmitted.
  case returned
  case approved
  /// In the statistics database, with an institution code.
  case admitted
  /// Commitment letter recorded.
  case committed
  /// Accounts issued, shard created.
  case active
}

public enum OnboardingStep: String, Hashable, Sendable, CaseIterable {
  case submit, approve, `return`, resubmit, admit, recordCommitment = "record_commitment", issueAccounts = "issue_accounts"

  /// The step in words, for messages.
  public var displayName: String {
    switch self {
    case .recordCommitment: "record commitment"
    case .issueAccounts: "issue accounts"
    default: rawValue
    }
  }

  /// The state the application must be in for this step.
  public var requiredState: OnboardingState? {
    switch self {
    case .submit: nil
    case .approve, .return: .submitted
    case .resubmit: .returned
    case .admit: .approved
    case .recordCommitment: .admitted
    case .issueAccounts: .committed
    }
  }

  /// The state after the step.
  public var resultingState: OnboardingState {
    switch self {
    case .submit, .resubmit: .submitted
    case .approve: .approved
    case .return: .returned
    case .admit: .admitted
    case .recordCommitment: .committed
    case .issueAccounts: .active
    }
  }


  /// Checks that the step may follow `state`; returns the new state.
  public func apply(to state: OnboardingState?) throws(DomainError) -> OnboardingState {
    guard state == requiredState else {
      let now = state.map { "is \($0.rawValue)" } ?? "does not exist yet"
      let needed = requiredState.map { "must be \($0.rawValue)" } ?? "must not exist yet"
      throw DomainError(
        field: "application_id", rule: "state", kind: .failedPrecondition,
        "cannot \(displayName): the application \(now); it \(needed)")
    }
    return resultingState
  }
}

/// The paper form's fields, checked the way the district office checks the paper.
public struct ApplicationForm: Hashable, Sendable, Codable {
  public var name: String
  public var ownership: Ownership
  public var licenceNumber: String
  public var address: String
  public var sponsor: String
  public var approvalDate: CalendarDate
  public var openingDate: CalendarDate
  public var childrenCount: Int
  public var staffCount: Int
  public var property: String

  public static let properties: Set<String> = ["owned", "rented", "lent"]

  public init(
    name: String, ownership: Ownership, licenceNumber: String, address: String, sponsor: String,
    approvalDate: CalendarDate, openingDate: CalendarDate, childrenCount: Int, staffCount: Int, property: String
  ) {
    self.name = name
    self.ownership = ownership
    self.licenceNumber = licenceNumber
    self.address = address
    self.sponsor = sponsor
    self.approvalDate = approvalDate
    self.openingDate = openingDate
    self.childrenCount = childrenCount
    self.staffCount = staffCount
    self.property = property
  }

  /// Every broken rule, in field order.
  public func violations(prefix: String = "form") -> [DomainError] {
    var errors: [DomainError] = []
    func text(_ value: String, _ field: String, max: Int) {
      let trimmed = value.trimmingWhitespace
      if trimmed.isEmpty {
        errors.append(DomainError(field: "\(prefix).\(field)", rule: "required", "is required"))
      } else if trimmed.count > max {
        errors.append(DomainError(field: "\(prefix).\(field)", rule: "max_length", "must be at most \(max) characters"))
      }
    }
    text(name, "name", max: 100)
    text(licenceNumber, "licence_number", max: 50)
    text(address, "address", max: 200)
    text(sponsor, "sponsor", max: 100)
    if !approvalDate.isValid {
      errors.append(DomainError(field: "\(prefix).approval_date", rule: "date", "is not a valid date"))
    }
    if !openingDate.isValid {
      errors.append(DomainError(field: "\(prefix).opening_date", rule: "date", "is not a valid date"))
    }
    if approvalDate.isValid && openingDate.isValid && openingDate < approvalDate {
      errors.append(DomainError(field: "\(prefix).opening_date", rule: "order", "must not be before the approval date"))
    }
    if !(0...5000).contains(childrenCount) {
      errors.append(DomainError(field: "\(prefix).children_count", rule: "range", "must be between 0 and 5000"))
    }
    if !(0...1000).contains(staffCount) {
      errors.append(DomainError(field: "\(prefix).staff_count", rule: "range", "must be between 0 and 1000"))
    }
    if !Self.properties.contains(property) {
      errors.append(DomainError(field: "\(prefix).property", rule: "enum", "must be one of owned, rented, lent"))
    }
    return errors
  }
}

/// A date without time zone (dates of birth, approval dates).
public struct CalendarDate: Hashable, Sendable, Codable, Comparable, CustomStringConvertible {
  public var year: Int
  public var month: Int
  public var day: Int

  public init(year: Int, month: Int, day: Int) {
    self.year = year
    self.month = month
    self.day = day
  }

  /// Parses "2024-09-01".
  public init?(iso text: String) {
    let parts = text.split(separator: "-")
    guard parts.count == 3, let y = Int(parts[0]), let m = Int(parts[1]), let d = Int(parts[2]) else { return nil }
    self.init(year: y, month: m, day: d)
    guard isValid else { return nil }
  }

  public var isValid: Bool {
    guard (1900...2200).contains(year), (1...12).contains(month), day >= 1 else { return false }
    let days = [31, Self.isLeap(year) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    return day <= days[month - 1]
  }

  static func isLeap(_ y: Int) -> Bool { (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 }

  public static func < (a: Self, b: Self) -> Bool { (a.year, a.month, a.day) < (b.year, b.month, b.day) }

  public var description: String {
    let m = month < 10 ? "0\(month)" : "\(month)"
    let d = day < 10 ? "0\(day)" : "\(day)"
    return "\(year)-\(m)-\(d)"
  }
}

extension String {
  var trimmingWhitespace: String {
    var s = Substring(self)
    while let f = s.first, f.isWhitespace { s.removeFirst() }
    while let l = s.last, l.isWhitespace { s.removeLast() }
    return String(s)
  }
}
