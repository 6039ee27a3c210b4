/// A child's record: the national template's fields (MISSION: child records), with their rules.
public struct ChildRecord: Hashable, Sendable, Codable {
  public struct Guardian: Hashable, Sendable, Codable {
    public var name: String
    /// father, mother, grandparent, other
    public var relation: String
    public var phone: String
    public init(name: String, relation: String, phone: String) {
      self.name = name
      self.relation = relation
      self.phone = phone
    }
  }

  public var name: String
  public var gender: Gender
  public var birthDate: CalendarDate
  public var idDocumentType: IDDocumentType
  /// Empty only for `other` (attendance certificate instead).
  public var idDocumentNumber: String
  /// Three-letter code, CHN for China.
  public var nationality: String
  /// Two-digit ethnicity code (01 Han … 56, 97 other, 98 foreign origin).
  public var ethnicity: String
  /// Six-digit administrative-division codes.
  public var birthPlace: String
  public var householdRegister: String
  /// agricultural, non_agricultural, resident (unified), none
  public var householdType: String
  /// none, hong_kong, macao, taiwan, overseas_chinese, foreign
  public var hmtStatus: String
  /// healthy, chronic_condition, disability, other
  public var health: String
  public var onlyChild: Bool
  public var guardians: [Guardian]
  public var entryDate: CalendarDate

  public static let relations: Set<String> = ["father", "mother", "grandparent", "other"]
  public static let householdTypes: Set<String> = ["agricultural", "non_agricultural", "resident", "none"]
  public static let hmtStatuses: Set<String> = ["none", "hong_kong", "macao", "taiwan", "overseas_chinese", "foreign"]
  public static let healthStates: Set<String> = ["healthy", "chronic_condition", "disability", "other"]

  public init(
    name: String, gender: Gender, birthDate: CalendarDate, idDocumentType: IDDocumentType, idDocumentNumber: String,
    nationality: String, ethnicity: String, birthPlace: String, householdRegister: String, householdType: String,
    hmtStatus: String, health: String, onlyChild: Bool, guardians: [Guardian], entryDate: CalendarDate
  ) {
    self.name = name
    self.gender = gender
    self.birthDate = birthDate
    self.idDocumentType = idDocumentType
    self.idDocumentNumber = idDocumentNumber
    self.nationality = nationality
    self.ethnicity = ethnicity
    self.birthPlace = birthPlace
    self.householdRegister = householdRegister
    self.householdType = householdType
    self.hmtStatus = hmtStatus
    self.health = health
    self.onlyChild = onlyChild
    self.guardians = guardians
    self.entryDate = entryDate
  }

  /// Every broken rule, in field order, each naming its field (prefix "child").
  public func violations(today: CalendarDate) -> [DomainError] {
    var errors: [DomainError] = []
    func add(_ field: String, _ rule: String, _ message: String) {
      errors.append(DomainError(field: "child.\(field)", rule: rule, message))
    }
    if name.trimmingWhitespace.isEmpty || name.count > 50 { add("name", "required", "is required, at most 50 characters") }
    if !birthDate.isValid {
      add("birth_date", "date", "is not a valid date")
    } else if birthDate > today {
      add("birth_date", "future", "cannot be after today")
    } else if today.dayNumber - birthDate.dayNumber > 8 * 366 {
      add("birth_date", "age", "a kindergarten child is at most 7 years old")
    }
    if idDocumentType == .other {
      if idDocumentNumber.count > 30 { add("id_document_number", "id.format", "must be at most 30 characters") }
    } else {
      do {
        try IDDocuments.validate(
          type: idDocumentType, number: idDocumentNumber, birthDate: birthDate.isValid ? birthDate : nil, gender: gender,
          field: "child.id_document_number")
      } catch { errors.append(error) }
    }
    if nationality.count != 3 || !nationality.allSatisfy({ $0.isASCII && $0.isUppercase }) {
      add("nationality", "format", "must be a three-letter code like CHN")
    }
    if ethnicity.count != 2 || !ethnicity.allSatisfy({ $0.isASCII && $0.isNumber }) { add("ethnicity", "format", "must be a two-digit code") }
    for (value, field) in [(birthPlace, "birth_place"), (householdRegister, "household_register")]
    where value.count != 6 || !value.allSatisfy({ $0.isASCII && $0.isNumber }) {
      add(field, "format", "must be a six-digit administrative-division code")
    }
    if !Self.householdTypes.contains(householdType) { add("household_type", "enum", "must be one of \(Self.householdTypes.sorted().joined(separator: ", "))") }
    if !Self.hmtStatuses.contains(hmtStatus) { add("hmt_status", "enum", "must be one of \(Self.hmtStatuses.sorted().joined(separator: ", "))") }
    if !Self.healthStates.contains(health) { add("health", "enum", "must be one of \(Self.healthStates.sorted().joined(separator: ", "))") }
    if !(1...4).contains(guardians.count) { add("guardians", "count", "one to four guardians") }
    for (i, guardian) in guardians.enumerated() {
      if guardian.name.trimmingWhitespace.isEmpty || guardian.name.count > 50 {
        add("guardians[\(i)].name", "required", "is required, at most 50 characters")
      }
      if !Self.relations.contains(guardian.relation) {
        add("guardians[\(i)].relation", "enum", "must be one of father, grandparent, mother, other")
      }
      if !(7...20).contains(guardian.phone.count) || !guardian.phone.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == "-" || $0 == "+") }) {
        add("guardians[\(i)].phone", "format", "must be 7-20 digits, '-' or '+'")
      }
    }
    if !entryDate.isValid {
      add("entry_date", "date", "is not a valid date")
    } else if birthDate.isValid && entryDate < birthDate {
      add("entry_date", "order", "cannot be before the birth date")
    }
    return errors
  }

  /// The record number for life (MISSION): "G" + the ID number for children with an 18-character
  /// ID of the resident format; children without one get a "J" number from ``RecordNumbers``.
  public var identityRecordNumber: String? {
    switch idDocumentType {
    case .residentID, .hkMacaoTaiwanPermit, .foreignPermanentResidence: "G" + idDocumentNumber.uppercased()
    case .travelPermit, .passport, .other: nil
    }
  }
}

public enum RecordNumbers {
  /// A "J" number for a child without a resident-format ID: an ID-style number made of the
  /// household-register division code, the birth date, a sequence (odd for boys, even for girls,
  /// like an ID) and the GB 11643 check character, so it reads and checks like an ID.
  public static func jNumber(division: String, birthDate: CalendarDate, gender: Gender, sequence: Int) -> String? {
    guard division.count == 6, (0..<500).contains(sequence) else { return nil }
    let number = sequence * 2 + (gender == .male ? 1 : 0)
    let body = division + String(format4(birthDate.year)) + pad2(birthDate.month) + pad2(birthDate.day) + pad3(number)
    guard let check = IDDocuments.checkCharacter(Array(body)) else { return nil }
    return "J" + body + String(check)
  }

  /// A temporary number ("L") while a child's documents are being sorted out.
  public static func temporary(sequence: Int) -> String { "L" + pad(sequence, 9) }

  static func pad(_ n: Int, _ width: Int) -> String {
    let s = String(n)
    return String(repeating: "0", count: max(0, width - s.count)) + s
  }
  static func pad2(_ n: Int) -> String { pad(n, 2) }
  static func pad3(_ n: Int) -> String { pad(n, 3) }
  static func format4(_ n: Int) -> String { pad(n, 4) }
}

/// Where a child stands (MISSION: the national practice and OpenEMIS peers).
public enum ChildState: String, CaseIterable, Hashable, Sendable, Codable {
  case enrolled
  case pendingTransferOut = "pending_transfer_out"
  case transferredOut = "transferred_out"
  case graduated
  case left
  /// Accidental departure for an injury: the record is closed.
  case closed
  /// Accidental departure by death: the record is closed, and its identity is never enrolled
  /// again without the Preschool Education Office (docs/ROUTING.md, identity rules).
  case deceased
  /// Deleted to resolve a duplicate case: kept, and visible to the district and the kindergarten.
  case deleted
}

/// What can happen to a child's record, as one state machine: each event names the states it
/// may follow, and an illegal one is refused naming the state the record is in.
public enum ChildEvent: String, CaseIterable, Hashable, Sendable {
  case assignClass = "assign_class", moveClass = "move_class", promote, graduate, leave
  case accidentalDeparture = "accidental_departure"
  /// An accidental departure by death.
  case recordDeath = "record_death"
  /// Any change of the record's information (key information or other fields).
  case changeInformation = "update"
  /// Resolving a duplicate case by deleting this record (soft: it stays visible).
  case delete
  case requestTransferOut = "request_transfer_out", cancelTransferOut = "cancel_transfer_out", completeTransferOut = "complete_transfer_out"

  public func apply(to state: ChildState) throws(DomainError) -> ChildState {
    let next: ChildState? =
      switch (self, state) {
      case (.assignClass, .enrolled), (.moveClass, .enrolled), (.promote, .enrolled): .enrolled
      case (.changeInformation, .enrolled): .enrolled
      // Not while pending transfer-out: the receiver takes the record as it is when it accepts,
      // so a change made at the sender meanwhile could be lost; the receiver makes it after the
      // transfer-in (or the sender cancels the transfer first).
      case (.graduate, .enrolled): .graduated
      case (.leave, .enrolled): .left
      // A child pending transfer-out is first returned to enrolled by the routing layer, which
      // cancels the transfer, so no transfer is left waiting for a child who left.
      case (.accidentalDeparture, .enrolled): .closed
      case (.recordDeath, .enrolled): .deceased
      case (.delete, .enrolled): .deleted
      case (.requestTransferOut, .enrolled): .pendingTransferOut
      case (.cancelTransferOut, .pendingTransferOut): .enrolled
      case (.completeTransferOut, .pendingTransferOut): .transferredOut
      default: nil
      }
    guard let next else {
      throw DomainError(
        field: "child_id", rule: "state", kind: .failedPrecondition,
        "cannot \(rawValue.replacingUnderscores) a child whose record is \(state.rawValue.replacingUnderscores)")
    }
    return next
  }
}

extension Grade {
  /// The grade after promotion; large classes graduate instead.
  public var promoted: Grade? {
    switch self {
    case .small: .middle
    case .middle: .large
    case .large, .mixed: nil
    }
  }
}

extension String {
  var replacingUnderscores: String { String(map { $0 == "_" ? " " : $0 }) }
}
