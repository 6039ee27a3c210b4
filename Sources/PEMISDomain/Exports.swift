internal import Foundation
/// Exports of children's data (Art. 20: nothing leaves without the written approval of the next
/// higher education authority). Pure rules: which fields there are, what each shows de-identified
/// and in full, and who approves.
public enum ExportField: String, CaseIterable, Hashable, Sendable, Codable {
  case name
  case gender
  /// De-identified: the age in whole years on the export day.
  case birthDate = "birth_date"
  /// De-identified: the type and the masked number (``IDDocuments/mask(_:)``).
  case idDocument = "id_document"
  case nationality
  case ethnicity
  /// De-identified: the province (first two digits) only.
  case householdRegister = "household_register"
  /// Sensitive (PIPL Art. 28): empty unless approved in full.
  case health
  /// Contacts: empty unless approved in full.
  case guardians
  case entryDate = "entry_date"
  case classID = "class"
  case state

  /// Fields that carry nothing personal beyond what a de-identified export shows anyway.
  public var deidentifiedHeader: String {
    switch self {
    case .birthDate: "age"
    default: rawValue
    }
  }

  /// Whether a full value differs from the de-identified one (the fields an approver decides
  /// on one by one).
  public var hasFullForm: Bool {
    switch self {
    case .name, .birthDate, .idDocument, .householdRegister, .health, .guardians: true
    case .gender, .nationality, .ethnicity, .entryDate, .classID, .state: false
    }
  }

  /// Parses a comma-separated list, every unknown name reported with the valid ones.
  public static func parse(_ names: [String], field: String) throws(DomainError) -> [ExportField] {
    var fields: [ExportField] = []
    for name in names.map({ $0.trimmingCharacters(in: .whitespaces).lowercased() }) where !name.isEmpty {
      guard let value = ExportField(rawValue: name) else {
        throw DomainError(field: field, rule: "enum", "'\(name)' is not a field; choose from \(allCases.map(\.rawValue).joined(separator: ", "))")
      }
      if !fields.contains(value) { fields.append(value) }
    }
    return fields
  }

  /// The value of this field for a child: in full when `full`, else de-identified.
  public func value(of child: ChildRecord, classID: String?, state: String, full: Bool, on today: CalendarDate) -> String {
    switch self {
    case .name:
      return full ? child.name : String(child.name.prefix(1)) + String(repeating: "*", count: max(1, child.name.count - 1))
    case .gender: return child.gender.rawValue
    case .birthDate:
      if full { return child.birthDate.description }
      var age = today.year - child.birthDate.year
      if (today.month, today.day) < (child.birthDate.month, child.birthDate.day) { age -= 1 }
      return String(max(0, age))
    case .idDocument:
      return "\(child.idDocumentType.rawValue) \(full ? child.idDocumentNumber : IDDocuments.mask(child.idDocumentNumber))"
    case .nationality: return child.nationality
    case .ethnicity: return child.ethnicity
    case .householdRegister: return full ? child.householdRegister : String(child.householdRegister.prefix(2)) + "****"
    case .health: return full ? child.health : ""
    case .guardians: return full ? child.guardians.map { "\($0.name) \($0.relation) \($0.phone)" }.joined(separator: "; ") : ""
    case .entryDate: return child.entryDate.description
    case .classID: return classID ?? ""
    case .state: return state
    }
  }
}

/// The life of an export request.
public enum ExportState: String, CaseIterable, Sendable, Codable {
  /// Waiting for the approver.
  case requested
  /// Approved and produced: the requester may download it until it expires.
  case approved
  case rejected
  /// Past its download window: the file is gone.
  case expired
}

public enum ExportRules {
  /// Days the requester may download an approved export.
  public static let downloadDays = 7
  /// At most this many rows: an export is a district's or a kindergarten's children, not more.
  public static let maxRows = 200_000

  /// Who approves an export (Art. 20: the next higher education authority): a kindergarten's
  /// own request, the office that oversees it (the Preschool Education Office for public
  /// kindergartens, the Vocational & Adult Education Office for private ones); a district
  /// office's request, the district's designated export approver.
  public static func approver(requestedBy role: Role, kindergartenOwnership ownership: Ownership?) -> Role {
    guard !role.isDistrict, let ownership else { return .exportApprover }
    return ownership.reviewingOffice
  }

  /// The CSV text of rows (RFC 4180: quotes doubled, fields with comma, quote or line break
  /// quoted), with a UTF-8 byte order mark so Excel reads the Chinese.
  public static func csv(header: [String], rows: [[String]]) -> String {
    func cell(_ value: String) -> String {
      // A cell a spreadsheet would run as a formula is written as text.
      var value = value
      if let first = value.first, "=+-@".contains(first) { value = "'" + value }
      guard value.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return value }
      return "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
    var text = "\u{FEFF}"
    for row in [header] + rows { text += row.map(cell).joined(separator: ",") + "\r\n" }
    return text
  }
}
