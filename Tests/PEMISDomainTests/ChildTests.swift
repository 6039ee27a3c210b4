import Testing

@testable import PEMISDomain

@Suite("Child records")
struct ChildTests {
  static let today = CalendarDate(year: 2026, month: 11, day: 29)
  /// Born 2022-03-15, boy (sequence 123 is odd), Binhai New Area (120116).
  static let boyID: String = {
    let body = "12011620220315123"
    return body + String(IDDocuments.checkCharacter(Array(body))!)
  }()

  static func child(_ change: (inout ChildRecord) -> Void = { _ in }) -> ChildRecord {
    var c = ChildRecord(
      name: "张小明", gender: .male, birthDate: CalendarDate(year: 2022, month: 3, day: 15), idDocumentType: .residentID,
      idDocumentNumber: boyID, nationality: "CHN", ethnicity: "01", birthPlace: "120116", householdRegister: "120116",
      householdType: "resident", hmtStatus: "none", health: "healthy", onlyChild: true,
      guardians: [.init(name: "张伟", relation: "father", phone: "13800138000")], entryDate: CalendarDate(year: 2025, month: 9, day: 1))
    change(&c)
    return c
  }

  @Test("the examples of the national practice")
  func nationalExamples() throws {
    try IDDocuments.validate(type: .residentID, number: "360426199101010071", birthDate: nil, gender: .male, field: "x")
    try IDDocuments.validate(type: .residentID, number: "120103198806018241", birthDate: nil, gender: .female, field: "x")
    #expect(throws: DomainError(field: "x", rule: "id.checksum", "check character does not match (GB 11643-1999)")) {
      try IDDocuments.validate(type: .residentID, number: "360426199101010072", birthDate: nil, gender: nil, field: "x")
    }
  }

  @Test("the check character X in either case; full-width and other non-ASCII characters are refused")
  func checkCharacterEdges() throws {
    // 11010519491231002X is the standard's own example (check character X).
    try IDDocuments.validate(type: .residentID, number: "11010519491231002X", birthDate: nil, gender: .female, field: "x")
    try IDDocuments.validate(type: .residentID, number: "11010519491231002x", birthDate: nil, gender: .female, field: "x")
    #expect(throws: DomainError(field: "x", rule: "id.format", "the first 17 characters must be digits")) {
      try IDDocuments.validate(type: .residentID, number: "１10105194912310021", birthDate: nil, gender: nil, field: "x")
    }
    #expect(throws: DomainError(field: "x", rule: "id.checksum", "check character does not match (GB 11643-1999)")) {
      try IDDocuments.validate(type: .residentID, number: "11010519491231002Ｘ", birthDate: nil, gender: nil, field: "x")
    }
    #expect(throws: DomainError(field: "x", rule: "id.length", "must be 18 characters, got 19")) {
      try IDDocuments.validate(type: .residentID, number: "11010519491231002X1", birthDate: nil, gender: nil, field: "x")
    }
    let noDate = "12011620221315123"  // month 13
    let badDate = noDate + String(IDDocuments.checkCharacter(Array(noDate))!)
    #expect(throws: DomainError(field: "x", rule: "id.birth_date", "encodes no valid birth date")) {
      try IDDocuments.validate(type: .residentID, number: badDate, birthDate: nil, gender: nil, field: "x")
    }
    let hmt = "81000020220315123"
    let permit = hmt + String(IDDocuments.checkCharacter(Array(hmt))!)
    #expect(throws: DomainError(field: "x", rule: "id.type", "this is not a resident ID number; choose its document type")) {
      try IDDocuments.validate(type: .residentID, number: permit, birthDate: nil, gender: nil, field: "x")
    }
  }

  /// Non-ASCII input, where characters, bytes and uppercasing disagree: the rule each breaks,
  /// as the Character-based validation before the byte path named it.
  @Test(
    "non-ASCII ID input breaks the same rule as it did when validated by Characters",
    arguments: [
      ("11010519491231002ß", "id.length", "must be 18 characters, got 19"),
      ("1101051949123100ß", "id.format", "the first 17 characters must be digits"),
      ("11010519491231002\u{301}X", "id.format", "the first 17 characters must be digits"),
      ("11010519491231002\u{200D}X", "id.format", "the first 17 characters must be digits"),
      ("11010519491231002\u{FE0F}X", "id.format", "the first 17 characters must be digits"),
      ("11010519491231002\u{345}", "id.checksum", "check character does not match (GB 11643-1999)"),
      ("1\u{345}1010519491231002X", "id.length", "must be 18 characters, got 19"),
      ("11010519491231002ŉ", "id.length", "must be 18 characters, got 19"),
      ("ß", "id.length", "must be 18 characters, got 2"),
      ("ﬀ", "id.length", "must be 18 characters, got 2"),
      ("11010519491231002\r\n", "id.checksum", "check character does not match (GB 11643-1999)"),
    ])
  func nonASCII(number: String, rule: String, message: String) {
    #expect(throws: DomainError(field: "x", rule: rule, message)) {
      try IDDocuments.validate(type: .residentID, number: number, birthDate: nil, gender: nil, field: "x")
    }
  }

  @Test("a complete record has no violations, and its record number is G + the ID")
  func valid() {
    #expect(Self.child().violations(today: Self.today).isEmpty)
    #expect(Self.child().identityRecordNumber == "G" + Self.boyID)
  }

  @Test(
    "each invalid ID kind is refused, naming the rule",
    arguments: [
      (IDDocumentType.residentID, "12011620220315123", "id.length"),
      (.residentID, "1201162022031512X9", "id.format"),
      (.residentID, "120116202203151230", "id.checksum"),
      (.hkMacaoTaiwanPermit, boyID, "id.region"),
      (.foreignPermanentResidence, boyID, "id.region"),
      (.passport, "E1", "id.format"),
      (.travelPermit, "H12345678!", "id.format"),
    ])
  func invalidIDs(type: IDDocumentType, number: String, rule: String) {
    let rules = Self.child {
      $0.idDocumentType = type
      $0.idDocumentNumber = number
    }.violations(today: Self.today).map(\.rule)
    #expect(rules == [rule])
  }

  @Test("HK/Macao/Taiwan permits and the foreigner permanent residence ID in resident format")
  func otherResidentFormats() throws {
    for prefix in ["810000", "820000", "830000", "900000"] {
      let body = prefix + "20220315123"
      let number = body + String(IDDocuments.checkCharacter(Array(body))!)
      let type: IDDocumentType = prefix == "900000" ? .foreignPermanentResidence : .hkMacaoTaiwanPermit
      #expect(Self.child { $0.idDocumentType = type; $0.idDocumentNumber = number }.violations(today: Self.today).isEmpty, "\(prefix)")
      // And such a number is not a resident ID.
      #expect(Self.child { $0.idDocumentNumber = number }.violations(today: Self.today).map(\.rule) == ["id.type"])
    }
  }

  @Test("the ID must agree with the record's birth date and gender; 'other' may be empty")
  func agreement() {
    #expect(Self.child { $0.gender = .female }.violations(today: Self.today).map(\.rule) == ["id.gender"])
    #expect(
      Self.child { $0.birthDate = CalendarDate(year: 2022, month: 3, day: 16) }.violations(today: Self.today).map(\.rule)
        == ["id.birth_date"])
    #expect(Self.child { $0.idDocumentType = .other; $0.idDocumentNumber = "" }.violations(today: Self.today).isEmpty)
  }

  @Test("other fields: codes, guardians, dates")
  func fields() {
    let c = Self.child {
      $0.nationality = "cn"
      $0.ethnicity = "1"
      $0.householdRegister = "12011"
      $0.guardians = []
      $0.entryDate = CalendarDate(year: 2020, month: 1, day: 1)
    }
    #expect(c.violations(today: Self.today).map(\.field) == [
      "child.nationality", "child.ethnicity", "child.household_register", "child.guardians", "child.entry_date",
    ])
  }

  @Test("J numbers read and check like an ID; L numbers are temporary")
  func recordNumbers() throws {
    let j = try #require(RecordNumbers.jNumber(division: "120116", birthDate: CalendarDate(year: 2022, month: 3, day: 15), gender: .female, sequence: 7))
    #expect(j.hasPrefix("J12011620220315014"))
    try IDDocuments.validate(type: .residentID, number: String(j.dropFirst()), birthDate: nil, gender: .female, field: "x")
    #expect(RecordNumbers.temporary(sequence: 42) == "L000000042")
  }

  @Test("the lifecycle: legal steps, and illegal ones refused naming the state")
  func lifecycle() throws {
    #expect(try ChildEvent.assignClass.apply(to: .enrolled) == .enrolled)
    #expect(try ChildEvent.graduate.apply(to: .enrolled) == .graduated)
    #expect(try ChildEvent.requestTransferOut.apply(to: .enrolled) == .pendingTransferOut)
    #expect(try ChildEvent.completeTransferOut.apply(to: .pendingTransferOut) == .transferredOut)
    #expect(try ChildEvent.accidentalDeparture.apply(to: .enrolled) == .closed)
    let error = #expect(throws: DomainError.self) { try ChildEvent.promote.apply(to: .graduated) }
    #expect(error?.message == "cannot promote a child whose record is graduated")
    for state in [ChildState.graduated, .left, .closed, .transferredOut] {
      for event in ChildEvent.allCases { #expect(throws: DomainError.self) { try event.apply(to: state) } }
    }
    #expect(Grade.small.promoted == .middle)
    #expect(Grade.large.promoted == nil)
  }
}
