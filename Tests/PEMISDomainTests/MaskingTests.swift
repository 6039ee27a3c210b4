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
