import PEMISDomain
import Testing

/// The one masking rule (issue 13): at most a third of any identifier, never its birth date.
@Suite struct MaskingTests {
  static let samples: [(kind: String, value: String)] = [
    ("G record number", "G120116202203151234"),
    ("J record number", "J120116202203150016"),
    ("L record number", "L000000123"),
    ("resident ID", "120116202203151234"),
    ("residence permit", "810000201903120035"),
    ("passport", "E12345678"),
    ("travel permit", "H1234567801"),
    ("staff ID", "12011619900101123X"),
    ("short other document", "AB12"),
    ("two characters", "AB"),
  ]

  @Test("shows at most a third of every kind of identifier, from its ends, and keeps its length", arguments: samples)
  func atMostAThird(sample: (kind: String, value: String)) {
    let masked = IDDocuments.mask(sample.value)
    let shown = masked.filter { $0 != "*" }.count
    #expect(masked.count == sample.value.count, "\(sample.kind)")
    #expect(shown * 3 <= sample.value.count, "\(sample.kind): \(masked) shows \(shown) of \(sample.value.count)")
    for (m, v) in zip(masked, sample.value) where m != "*" { #expect(m == v, "\(sample.kind): only characters of the value show") }
  }

  @Test("a resident-format number hides its birth date and sequence")
  func birthDateHidden() {
    #expect(IDDocuments.mask("G120116202203151234") == "G12*************234")
    #expect(IDDocuments.mask("120116202203151234") == "120************234")
    #expect(IDDocuments.mask("E12345678") == "E******78")
    #expect(!IDDocuments.mask("120116202203151234").contains("20220315"))
  }

  @Test("the visible ends of a mask find the number it came from; text without '*' is no mask")
  func ends() throws {
    let ends = try #require(IDDocuments.maskedEnds(IDDocuments.mask("G120116202203151234")))
    #expect(ends.head == "G12")
    #expect(ends.tail == "234")
    #expect(ends.length == 19)
    #expect(IDDocuments.maskedEnds("G120116202203151234") == nil)
  }
}

/// Cybersecurity Law Art. 21: six months of network logs, counted in calendar months.
@Suite struct AuditRetentionTests {
  @Test("six months back keeps the day of the month, or the month's last day")
  func keptSince() {
    #expect(AuditRetention.keptSince(today: CalendarDate(year: 2026, month: 12, day: 2), months: 6) == CalendarDate(year: 2026, month: 6, day: 2))
    #expect(AuditRetention.keptSince(today: CalendarDate(year: 2026, month: 8, day: 31), months: 6) == CalendarDate(year: 2026, month: 2, day: 28))
    #expect(AuditRetention.keptSince(today: CalendarDate(year: 2026, month: 3, day: 15), months: 6) == CalendarDate(year: 2025, month: 9, day: 15))
    #expect(AuditRetention.keptSince(today: CalendarDate(year: 2028, month: 8, day: 29), months: 6) == CalendarDate(year: 2028, month: 2, day: 29))
  }

  @Test("midnight Beijing time is 16:00 UTC the day before")
  func midnight() {
    #expect(AuditRetention.beijingMidnightMs(CalendarDate(year: 1970, month: 1, day: 2)) == 16 * 3600 * 1000)
  }
}

/// What an export shows of each field, de-identified and in full.
@Suite struct ExportFieldTests {
  static let child = ChildRecord(
    name: "张小明", gender: .male, birthDate: CalendarDate(year: 2022, month: 3, day: 15), idDocumentType: .residentID,
    idDocumentNumber: "120116202203151234", nationality: "CHN", ethnicity: "01", birthPlace: "120116", householdRegister: "120116",
    householdType: "non_agricultural", hmtStatus: "none", health: "healthy", onlyChild: true,
    guardians: [.init(name: "张伟", relation: "father", phone: "13800138000")], entryDate: CalendarDate(year: 2025, month: 9, day: 1))

  @Test("de-identified: initial, age, masked number, province, no health or contacts; full as is")
  func values() {
    let today = CalendarDate(year: 2026, month: 3, day: 14)
    func v(_ f: ExportField, _ full: Bool) -> String { f.value(of: Self.child, classID: "C0001", state: "enrolled", full: full, on: today) }
    #expect(v(.name, false) == "张**" && v(.name, true) == "张小明")
    #expect(v(.birthDate, false) == "3", "the day before the fourth birthday")
    #expect(v(.birthDate, true) == "2022-03-15")
    #expect(v(.idDocument, false) == "resident_id 120************234")
    #expect(v(.householdRegister, false) == "12****")
    #expect(v(.health, false).isEmpty && v(.guardians, false).isEmpty)
    #expect(v(.guardians, true) == "张伟 father 13800138000")
  }

  @Test("CSV: quotes doubled, commas and line breaks quoted, formulas made text, a byte order mark for Excel")
  func csv() {
    let text = ExportRules.csv(header: ["a", "b"], rows: [["x,y", "say \"hi\""], ["=1+1", "line\nbreak"]])
    #expect(text == "\u{FEFF}a,b\r\n\"x,y\",\"say \"\"hi\"\"\"\r\n'=1+1,\"line\nbreak\"\r\n")
  }

  @Test("unknown fields are named with the valid ones")
  func parse() {
    #expect(throws: DomainError.self) { try ExportField.parse(["name", "phone"], field: "fields") }
    #expect((try? ExportField.parse(["Name", " gender ", "name"], field: "fields")) == [.name, .gender])
  }
}
