import Testing

@testable import PEMISDomain

@Suite("Institution codes")
struct InstitutionCodeTests {
  @Test("ten digits starting with 1 are accepted", arguments: ["1112000101", "1000000000", "1999999999"])
  func valid(code: String) throws {
    #expect(try InstitutionCode(validating: code).rawValue == code)
  }

  @Test(
    "anything else is refused before any file is touched",
    arguments: [
      "", "111200010", "11120001011", "2112000101", "111200010a", "../../etc", "1112/00101", "11120001.1",
      "１１１２０００１０１", "1112000101\n", " 1112000101", "..\\..\\x12",
    ])
  func invalid(code: String) {
    let error = #expect(throws: DomainError.self) { try InstitutionCode(validating: code) }
    #expect(error?.field == "institution_code")
    #expect(error?.rule == "format")
  }
}

@Suite("Onboarding state machine")
struct OnboardingTests {
  static let path: [(OnboardingStep, OnboardingState)] = [
    (.submit, .submitted), (.approve, .approved), (.admit, .admitted), (.recordCommitment, .committed),
    (.issueAccounts, .active),
  ]

  @Test("the regulation's order leads from submission to an active kindergarten")
  func happyPath() throws {
    var state: OnboardingState? = nil
    for (step, expected) in Self.path {
      state = try step.apply(to: state)
      #expect(state == expected)
    }
  }

  @Test("a returned application goes back to review after resubmission")
  func returnAndResubmit() throws {
    var state = try OnboardingStep.submit.apply(to: nil)
    state = try OnboardingStep.return.apply(to: state)
    #expect(state == .returned)
    state = try OnboardingStep.resubmit.apply(to: state)
    #expect(state == .submitted)
  }

  @Test("every step out of order is refused, naming the state", arguments: OnboardingStep.allCases)
  func illegal(step: OnboardingStep) {
    for state in [nil] + OnboardingState.allCases.map(Optional.some) where state != step.requiredState {
      let error = #expect(throws: DomainError.self) { try step.apply(to: state) }
      #expect(error?.rule == "state")
      #expect(error?.message.contains(state.map { "is \($0.rawValue)" } ?? "does not exist") == true)
    }
  }
}

@Suite("Application form")
struct ApplicationFormTests {
  static let good = ApplicationForm(
    name: "滨海新区第一幼儿园", ownership: .public, licenceNumber: "教民112011号", address: "中心大道1号",
    sponsor: "教育体育局", approvalDate: CalendarDate(year: 2024, month: 3, day: 1),
    openingDate: CalendarDate(year: 2024, month: 9, day: 1), childrenCount: 180, staffCount: 32, property: "owned")

  @Test("a complete form has no violations")
  func good() { #expect(Self.good.violations().isEmpty) }

  @Test("each broken rule names its field")
  func violations() {
    var form = Self.good
    form.name = "  "
    form.approvalDate = CalendarDate(year: 2024, month: 2, day: 30)
    form.childrenCount = -1
    form.property = "borrowed"
    let fields = form.violations().map(\.field)
    #expect(fields == ["form.name", "form.approval_date", "form.children_count", "form.property"])
    var order = Self.good
    order.openingDate = CalendarDate(year: 2023, month: 1, day: 1)
    #expect(order.violations().map(\.rule) == ["order"])
  }

  @Test("calendar dates know leap years")
  func dates() {
    #expect(CalendarDate(year: 2024, month: 2, day: 29).isValid)
    #expect(!CalendarDate(year: 2023, month: 2, day: 29).isValid)
    #expect(!CalendarDate(year: 2100, month: 2, day: 29).isValid)
    #expect(CalendarDate(iso: "2026-02-15") == CalendarDate(year: 2026, month: 2, day: 15))
    #expect(CalendarDate(iso: "2026-13-01") == nil)
  }
}

@Suite("Account rules")
struct AccountRuleTests {
  @Test("usernames", arguments: [("wang.li", true), ("a1_", true), ("ab", false), ("1abc", false), ("Wang", false), ("wang li", false), ("王丽", false)])
  func usernames(name: String, ok: Bool) {
    #expect(((try? AccountRules.validateUsername(name)) != nil) == ok)
  }

  @Test("passwords", arguments: [("Pemis-2026-ok", true), ("short1", false), ("onlyletterslong", false), ("1234567890", false), ("wang.li2026", true)])
  func passwords(password: String, ok: Bool) {
    #expect(((try? AccountRules.validatePassword(password, username: "someone")) != nil) == ok)
  }

  @Test("a password may not be the username")
  func notUsername() {
    #expect(throws: DomainError.self) { try AccountRules.validatePassword("wang.li2026", username: "Wang.Li2026") }
  }

  @Test("roles split into district and kindergarten, and ownership names its reviewing office")
  func roles() {
    #expect(Set(Role.district) == [.preschoolOffice, .vocationalOffice, .planningOffice, .financeOffice, .districtAdmin, .exportApprover])
    #expect(Set(Role.kindergarten) == [.principal, .administrator, .classLeader, .financeStaff])
    #expect(Ownership.public.reviewingOffice == .preschoolOffice)
    #expect(Ownership.private.reviewingOffice == .vocationalOffice)
    // Art. 20: a kindergarten's own export is approved by the office over it; a district
    // office's by the district's export approver.
    #expect(ExportRules.approver(requestedBy: .principal, kindergartenOwnership: .public) == .preschoolOffice)
    #expect(ExportRules.approver(requestedBy: .administrator, kindergartenOwnership: .private) == .vocationalOffice)
    #expect(ExportRules.approver(requestedBy: .preschoolOffice, kindergartenOwnership: .public) == .exportApprover)
    #expect(ExportRules.approver(requestedBy: .vocationalOffice, kindergartenOwnership: nil) == .exportApprover)
  }
}
