/// The roles of the regulation (Art. 8–12, 19). Stored by their raw values.
public enum Role: String, CaseIterable, Hashable, Sendable, Codable {
  case preschoolOffice = "preschool_office"
  case vocationalOffice = "vocational_office"
  case planningOffice = "planning_office"
  case financeOffice = "finance_office"
  case districtAdmin = "district_admin"
  /// The district's designated approver of exports (Art. 20: "who approves is responsible"):
  /// approves or rejects the district's exports, and nothing else.
  case exportApprover = "export_approver"
  case principal
  case administrator
  case classLeader = "class_leader"
  case financeStaff = "finance_staff"

  /// District offices act across kindergartens within their scope; kindergarten roles act on their
  /// own kindergarten only.
  public var isDistrict: Bool {
    switch self {
    case .preschoolOffice, .vocationalOffice, .planningOffice, .financeOffice, .districtAdmin, .exportApprover: true
    case .principal, .administrator, .classLeader, .financeStaff: false
    }
  }

  public static let district: [Role] = allCases.filter(\.isDistrict)
  public static let kindergarten: [Role] = allCases.filter { !$0.isDistrict }
}

/// Public (公办) or private (民办): decides which district office onboards and oversees a
/// kindergarten.
public enum Ownership: String, CaseIterable, Hashable, Sendable, Codable {
  case `public`
  case `private`

  /// The office that reviews this kindergarten's application (Art. 8(3), 9(1)).
  public var reviewingOffice: Role {
    switch self {
    case .public: .preschoolOffice
    case .private: .vocationalOffice
    }
  }
}
