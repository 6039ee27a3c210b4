import Testing

@testable import PEMISDomain

@Suite("Time order")
struct TimeOrderTests {
  static let today = CalendarDate(year: 2026, month: 9, day: 21)
  static let entered = CalendarDate(year: 2026, month: 9, day: 1)

  func d(_ year: Int, _ month: Int, _ day: Int) -> CalendarDate { CalendarDate(year: year, month: month, day: day) }

  /// The error a rule throws, or nil when it allows the date.
  func refusal(_ body: () throws -> Void) -> DomainError? {
    do {
      try body()
      return nil
    } catch let error as DomainError { return error } catch { return DomainError(field: "", rule: "unexpected", "\(error)") }
  }

  @Test("an event on the entry day or today is allowed; the day before entry and tomorrow are refused")
  func eventEdges() {
    #expect(refusal { try TimeOrder.checkEvent(Self.entered, field: "left_on", entered: Self.entered, today: Self.today) } == nil)
    #expect(refusal { try TimeOrder.checkEvent(Self.today, field: "left_on", entered: Self.entered, today: Self.today) } == nil)
    let before = refusal { try TimeOrder.checkEvent(d(2026, 8, 31), field: "left_on", entered: Self.entered, today: Self.today) }
    #expect(before?.rule == "order")
    #expect(before?.description == "left_on: 2026-08-31 is before the child entered this kindergarten (2026-09-01)")
    let tomorrow = refusal { try TimeOrder.checkEvent(d(2026, 9, 22), field: "occurred_on", entered: Self.entered, today: Self.today) }
    #expect(tomorrow?.rule == "future")
    #expect(tomorrow?.description.hasPrefix("occurred_on: 2026-09-22 is after today (2026-09-21)") == true)
    let invalid = refusal { try TimeOrder.checkEvent(d(2026, 2, 30), field: "applied_on", entered: Self.entered, today: Self.today) }
    #expect(invalid?.rule == "date")
  }

  @Test("an event concerning several children names the one it is before")
  func eventNamesTheChild() {
    let error = refusal {
      try TimeOrder.checkEvent(d(2026, 7, 1), field: "effective_on", entered: Self.entered, today: Self.today, child: "child G120***1239")
    }
    #expect(error?.description == "effective_on: 2026-07-01 is before child G120***1239 entered this kindergarten (2026-09-01)")
  }

  @Test("a signature on the birth day or today is allowed; the day before birth and tomorrow are refused; leap days")
  func signedEdges() {
    let birth = d(2022, 3, 15)
    #expect(refusal { try TimeOrder.checkSigned(birth, field: "parent_signed_on", birth: birth, today: Self.today) } == nil)
    #expect(refusal { try TimeOrder.checkSigned(Self.today, field: "parent_signed_on", birth: birth, today: Self.today) } == nil)
    let before = refusal { try TimeOrder.checkSigned(d(2022, 3, 14), field: "parent_signed_on", birth: birth, today: Self.today) }
    #expect(before?.rule == "order")
    #expect(before?.description == "parent_signed_on: 2022-03-14 is before the child was born (2022-03-15)")
    let tomorrow = refusal { try TimeOrder.checkSigned(d(2026, 9, 22), field: "template_signed_on", birth: birth, today: Self.today) }
    #expect(tomorrow?.rule == "future")
    // A child born on a leap day: that day and 1 March are fine, 28 February is before.
    let leap = d(2024, 2, 29)
    #expect(refusal { try TimeOrder.checkSigned(leap, field: "s", birth: leap, today: Self.today) } == nil)
    #expect(refusal { try TimeOrder.checkSigned(d(2024, 3, 1), field: "s", birth: leap, today: Self.today) } == nil)
    #expect(refusal { try TimeOrder.checkSigned(d(2024, 2, 28), field: "s", birth: leap, today: Self.today) }?.rule == "order")
    // 29 February of a common year is no date at all.
    #expect(refusal { try TimeOrder.checkSigned(d(2025, 2, 29), field: "s", birth: leap, today: Self.today) }?.rule == "date")
  }

  @Test("school years run 1 September to 31 August")
  func schoolYears() {
    #expect(SchoolYear(containing: d(2026, 8, 31)).description == "2025-2026")
    #expect(SchoolYear(containing: d(2026, 9, 1)).description == "2026-2027")
    #expect(SchoolYear(containing: d(2024, 2, 29)).description == "2023-2024")
    #expect(SchoolYear(containing: d(2026, 12, 31)) == SchoolYear(startYear: 2026))
    #expect(SchoolYear(startYear: 2026).first == d(2026, 9, 1))
    #expect(SchoolYear(startYear: 2026).last == d(2027, 8, 31))
    #expect(SchoolYear(startYear: 2025) < SchoolYear(startYear: 2026))
  }

  @Test("a class is promoted once a school year: twice the same day or year is refused, 31 August then 1 September is not")
  func promotionOncePerSchoolYear() {
    #expect(refusal { try TimeOrder.checkPromotion(classId: "C0001", on: Self.today, lastPromotedOn: nil) } == nil)
    let sameDay = refusal { try TimeOrder.checkPromotion(classId: "C0001", on: Self.today, lastPromotedOn: Self.today) }
    #expect(sameDay?.rule == "state")
    #expect(
      sameDay?.description
        == "class_id: class C0001 was already promoted in school year 2026-2027 (on 2026-09-21); a class is promoted once a school year")
    // 1 September and the next 31 August are the same school year.
    #expect(refusal { try TimeOrder.checkPromotion(classId: "C0001", on: d(2027, 8, 31), lastPromotedOn: d(2026, 9, 1)) }?.rule == "state")
    // 31 August, then 1 September: two school years.
    #expect(refusal { try TimeOrder.checkPromotion(classId: "C0001", on: d(2026, 9, 1), lastPromotedOn: d(2026, 8, 31)) } == nil)
    #expect(refusal { try TimeOrder.checkPromotion(classId: "C0001", on: d(2027, 7, 1), lastPromotedOn: d(2026, 7, 1)) } == nil)
    // Never before the last promotion.
    let earlier = refusal { try TimeOrder.checkPromotion(classId: "C0001", on: d(2025, 7, 1), lastPromotedOn: d(2026, 7, 1)) }
    #expect(earlier?.rule == "order")
    #expect(earlier?.field == "effective_on")
  }

  @Test("a term's re-verification is owed by kindergartens that had accounts by its start, the start day included")
  func termVerification() {
    let starts = d(2026, 9, 1)
    #expect(TimeOrder.owesTermVerification(accountsIssuedOn: d(2026, 3, 1), termStartsOn: starts))
    #expect(TimeOrder.owesTermVerification(accountsIssuedOn: starts, termStartsOn: starts))
    #expect(!TimeOrder.owesTermVerification(accountsIssuedOn: d(2026, 9, 2), termStartsOn: starts))
  }

  @Test("a key-information change is due from the request, not the approval")
  func keyChangeClock() {
    #expect(TimeOrder.keyChangeClockStart(requestedOn: d(2026, 9, 14), decidedOn: Self.today) == d(2026, 9, 14))
    #expect(TimeOrder.keyChangeClockStart(requestedOn: Self.today, decidedOn: Self.today) == Self.today)
  }

  @Test("each dated event names the field its date came in")
  func dateFields() {
    #expect(ChildEvent.leave.dateField == "left_on")
    #expect(ChildEvent.accidentalDeparture.dateField == "occurred_on")
    #expect(ChildEvent.graduate.dateField == "effective_on")
    #expect(ChildEvent.requestTransferOut.dateField == "applied_on")
  }
}
