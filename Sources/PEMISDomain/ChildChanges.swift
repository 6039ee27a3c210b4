/// Changes to a child's record after enrollment (MISSION: key information; Art. 17(2)).
///
/// Key information (name, gender, birth date, ID document type and number) changes only on a
/// written request with proof and a newly signed template, approved by the principal; every
/// other field changes directly and is tracked.
public enum KeyField: String, CaseIterable, Hashable, Sendable, Codable {
  case name
  case gender
  case birthDate = "birth_date"
  case idDocumentType = "id_document_type"
  case idDocumentNumber = "id_document_number"
}

/// The non-key fields that change directly, by their request names.
public enum OtherField: String, CaseIterable, Hashable, Sendable {
  case nationality, ethnicity
  case birthPlace = "birth_place"
  case householdRegister = "household_register"
  case householdType = "household_type"
  case hmtStatus = "hmt_status"
  case health
  case onlyChild = "only_child"
  case guardians
  case entryDate = "entry_date"

  /// Copies this field from `source` into `record`.
  public func copy(from source: ChildRecord, into record: inout ChildRecord) {
    switch self {
    case .nationality: record.nationality = source.nationality
    case .ethnicity: record.ethnicity = source.ethnicity
    case .birthPlace: record.birthPlace = source.birthPlace
    case .householdRegister: record.householdRegister = source.householdRegister
    case .householdType: record.householdType = source.householdType
    case .hmtStatus: record.hmtStatus = source.hmtStatus
    case .health: record.health = source.health
    case .onlyChild: record.onlyChild = source.onlyChild
    case .guardians: record.guardians = source.guardians
    case .entryDate: record.entryDate = source.entryDate
    }
  }

  /// The fields an update names, or the error naming the first it may not change.
  public static func parse(_ names: [String]) throws(DomainError) -> [OtherField] {
    guard !names.isEmpty else {
      throw DomainError(field: "fields", rule: "required", "name the fields to change (\(allCases.map(\.rawValue).joined(separator: ", ")))")
    }
    var fields: [OtherField] = []
    for name in names {
      if let key = KeyField(rawValue: name) {
        throw DomainError(
          field: "fields", rule: "key_information",
          "\(key.rawValue) is key information: it changes only through a request with evidence, approved by the principal")
      }
      guard let field = OtherField(rawValue: name) else {
        throw DomainError(field: "fields", rule: "enum", "unknown field '\(name)'; one of \(allCases.map(\.rawValue).joined(separator: ", "))")
      }
      if !fields.contains(field) { fields.append(field) }
    }
    return fields
  }
}

/// The new values a key-information request asks for; nil leaves a field as it is.
public struct KeyChangeValues: Hashable, Sendable, Codable {
  public var name: String?
  public var gender: Gender?
  public var birthDate: CalendarDate?
  public var idDocumentType: IDDocumentType?
  public var idDocumentNumber: String?

  public init(
    name: String? = nil, gender: Gender? = nil, birthDate: CalendarDate? = nil, idDocumentType: IDDocumentType? = nil,
    idDocumentNumber: String? = nil
  ) {
    self.name = name
    self.gender = gender
    self.birthDate = birthDate
    self.idDocumentType = idDocumentType
    self.idDocumentNumber = idDocumentNumber
  }

  /// The record with the change applied.
  public func applied(to record: ChildRecord) -> ChildRecord {
    var changed = record
    if let name { changed.name = name }
    if let gender { changed.gender = gender }
    if let birthDate { changed.birthDate = birthDate }
    if let idDocumentType { changed.idDocumentType = idDocumentType }
    if let idDocumentNumber { changed.idDocumentNumber = idDocumentNumber }
    return changed
  }

  /// Field by field, old and new (ID numbers masked), for what differs from `record`.
  public func differences(from record: ChildRecord) -> [(field: KeyField, old: String, new: String)] {
    let changed = applied(to: record)
    var result: [(KeyField, String, String)] = []
    if changed.name != record.name { result.append((.name, record.name, changed.name)) }
    if changed.gender != record.gender { result.append((.gender, record.gender.rawValue, changed.gender.rawValue)) }
    if changed.birthDate != record.birthDate { result.append((.birthDate, record.birthDate.description, changed.birthDate.description)) }
    if changed.idDocumentType != record.idDocumentType {
      result.append((.idDocumentType, record.idDocumentType.rawValue, changed.idDocumentType.rawValue))
    }
    if changed.idDocumentNumber != record.idDocumentNumber {
      result.append((.idDocumentNumber, IDDocuments.mask(record.idDocumentNumber), IDDocuments.mask(changed.idDocumentNumber)))
    }
    return result
  }
}

/// Where a key-information change request stands.
public enum KeyChangeState: String, CaseIterable, Hashable, Sendable, Codable {
  case pending, approved, rejected
}

extension ChildRecord {
  /// Who the child is, for finding the same child again (re-imports, the duplicate check): the
  /// ID document when there is a number, else name + gender + birth date (MISSION: problem
  /// record kind c).
  public var identityKey: String {
    idDocumentNumber.isEmpty
      ? "person:\(name)|\(gender.rawValue)|\(birthDate)"
      : "document:\(idDocumentType.rawValue)|\(idDocumentNumber.uppercased())"
  }
}

/// A calendar month, "2026-10", for the monthly audit.
public struct YearMonth: Hashable, Sendable, Comparable, CustomStringConvertible, Codable {
  public var year: Int
  public var month: Int

  public init(year: Int, month: Int) {
    self.year = year
    self.month = month
  }

  public init(_ date: CalendarDate) { self.init(year: date.year, month: date.month) }

  /// Parses "2026-10".
  public init?(text: String) {
    let parts = text.split(separator: "-", omittingEmptySubsequences: false)
    guard parts.count == 2, parts[0].count == 4, parts[1].count == 2, let y = Int(parts[0]), let m = Int(parts[1]),
      (1900...2200).contains(y), (1...12).contains(m)
    else { return nil }
    self.init(year: y, month: m)
  }

  public var first: CalendarDate { CalendarDate(year: year, month: month, day: 1) }
  public var last: CalendarDate { CalendarDate(dayNumber: next.first.dayNumber - 1) }
  public var next: YearMonth { month == 12 ? YearMonth(year: year + 1, month: 1) : YearMonth(year: year, month: month + 1) }
  public var previous: YearMonth { month == 1 ? YearMonth(year: year - 1, month: 12) : YearMonth(year: year, month: month - 1) }

  public static func < (a: Self, b: Self) -> Bool { (a.year, a.month) < (b.year, b.month) }
  public var description: String { "\(year)-\(month < 10 ? "0" : "")\(month)" }
}

extension CalendarDate {
  /// The same day `years` later (or earlier); 29 February becomes 28 February in common years.
  public func addingYears(_ years: Int) -> CalendarDate {
    var date = CalendarDate(year: year + years, month: month, day: day)
    if !date.isValid { date.day = 28 }
    return date
  }
}
