internal import PEMISDomain
internal import PEMISProto

/// What a request acts on, read from the request before the handler runs so the interceptor can
/// hold the caller to its scope.
enum RequestTarget: Sendable, Equatable {
  /// Nothing beyond the caller itself.
  case none
  /// A login attempt for this username (audited under that name).
  case login(String)
  /// A kindergarten by institution code; empty means the caller's own.
  case kindergarten(String)
  /// An onboarding application by id.
  case application(String)
  /// A new application for a kindergarten of this ownership.
  case newApplication(Ownership?)
  /// An existing account.
  case account(String)
  /// A new account of this role, for this kindergarten (empty for district accounts).
  case newAccount(role: Role?, kindergartenCode: String)
  /// A district-wide list, optionally narrowed to one kindergarten.
  case districtList(kindergartenCode: String)
  /// An export request by id.
  case export(String)
}

extension RequestTarget {
  /// The target as the audit log names it, recorded before authorization so denied attempts
  /// show what they tried to reach.
  var auditID: String? {
    switch self {
    case .none: nil
    case .login(let username), .account(let username): "account:\(username)"
    case .kindergarten(let code), .districtList(let code): code.isEmpty ? nil : "kindergarten:\(code)"
    case .application(let id): "application:\(id)"
    case .newApplication: nil
    case .newAccount(_, let code): code.isEmpty ? nil : "kindergarten:\(code)"
    case .export(let id): "export:\(id)"
    }
  }
}

/// A request message that says what it acts on.
protocol TargetedRequest: Sendable {
  var target: RequestTarget { get }
}

extension Pemis_V1_LoginRequest: TargetedRequest { var target: RequestTarget { .login(username) } }
extension Pemis_V1_CreateAccountRequest: TargetedRequest {
  var target: RequestTarget { .newAccount(role: Role(role), kindergartenCode: kindergartenCode) }
}
extension Pemis_V1_AccountRequest: TargetedRequest { var target: RequestTarget { .account(username) } }
extension Pemis_V1_ListAccountsRequest: TargetedRequest {
  var target: RequestTarget { .districtList(kindergartenCode: kindergartenCode) }
}
extension Pemis_V1_SubmitApplicationRequest: TargetedRequest {
  var target: RequestTarget { .newApplication(Ownership(form.ownership)) }
}
extension Pemis_V1_ReviewApplicationRequest: TargetedRequest { var target: RequestTarget { .application(applicationID) } }
extension Pemis_V1_ResubmitApplicationRequest: TargetedRequest { var target: RequestTarget { .application(applicationID) } }
extension Pemis_V1_AdmitKindergartenRequest: TargetedRequest { var target: RequestTarget { .application(applicationID) } }
extension Pemis_V1_RecordCommitmentRequest: TargetedRequest { var target: RequestTarget { .application(applicationID) } }
extension Pemis_V1_IssueAccountsRequest: TargetedRequest { var target: RequestTarget { .application(applicationID) } }
extension Pemis_V1_GetApplicationRequest: TargetedRequest { var target: RequestTarget { .application(applicationID) } }
extension Pemis_V1_ListApplicationsRequest: TargetedRequest { var target: RequestTarget { .districtList(kindergartenCode: "") } }
extension Pemis_V1_GetKindergartenRequest: TargetedRequest { var target: RequestTarget { .kindergarten(kindergartenCode) } }
extension Pemis_V1_ListKindergartensRequest: TargetedRequest { var target: RequestTarget { .districtList(kindergartenCode: "") } }
extension Pemis_V1_QueryAuditLogRequest: TargetedRequest {
  var target: RequestTarget { .districtList(kindergartenCode: kindergartenCode) }
}

extension Pemis_V1_StartTermRequest: TargetedRequest { var target: RequestTarget { .districtList(kindergartenCode: "") } }
extension Pemis_V1_ListObligationsRequest: TargetedRequest { var target: RequestTarget { .kindergarten(kindergartenCode) } }
extension Pemis_V1_ListOverdueRequest: TargetedRequest { var target: RequestTarget { .districtList(kindergartenCode: "") } }
extension Pemis_V1_CompleteAreaRequest: TargetedRequest { var target: RequestTarget { .kindergarten(kindergartenCode) } }

extension Pemis_V1_GetProfileRequest: TargetedRequest { var target: RequestTarget { .kindergarten(kindergartenCode) } }
extension Pemis_V1_UpdateProfileRequest: TargetedRequest { var target: RequestTarget { .kindergarten(kindergartenCode) } }
extension Pemis_V1_ListClassesRequest: TargetedRequest { var target: RequestTarget { .kindergarten(kindergartenCode) } }
extension Pemis_V1_CreateClassRequest: TargetedRequest { var target: RequestTarget { .kindergarten(kindergartenCode) } }
extension Pemis_V1_UpdateClassRequest: TargetedRequest { var target: RequestTarget { .kindergarten(kindergartenCode) } }
extension Pemis_V1_DeleteClassRequest: TargetedRequest { var target: RequestTarget { .kindergarten(kindergartenCode) } }
extension Pemis_V1_ListStaffRequest: TargetedRequest { var target: RequestTarget { .kindergarten(kindergartenCode) } }
extension Pemis_V1_CreateStaffRequest: TargetedRequest { var target: RequestTarget { .kindergarten(kindergartenCode) } }
extension Pemis_V1_UpdateStaffRequest: TargetedRequest { var target: RequestTarget { .kindergarten(kindergartenCode) } }
extension Pemis_V1_GetFinanceRequest: TargetedRequest { var target: RequestTarget { .kindergarten(kindergartenCode) } }
extension Pemis_V1_PutFinanceRequest: TargetedRequest { var target: RequestTarget { .kindergarten(kindergartenCode) } }
extension Pemis_V1_ConfirmFinanceRequest: TargetedRequest { var target: RequestTarget { .kindergarten(kindergartenCode) } }
extension Pemis_V1_GetLeadershipGroupRequest: TargetedRequest { var target: RequestTarget { .kindergarten(kindergartenCode) } }
extension Pemis_V1_SetLeadershipGroupRequest: TargetedRequest { var target: RequestTarget { .kindergarten(kindergartenCode) } }
extension Pemis_V1_EnrollChildRequest: TargetedRequest { var target: RequestTarget { .kindergarten(kindergartenCode) } }
extension Pemis_V1_ListChildrenRequest: TargetedRequest { var target: RequestTarget { .kindergarten(kindergartenCode) } }
extension Pemis_V1_GetChildRequest: TargetedRequest { var target: RequestTarget { .kindergarten(kindergartenCode) } }
extension Pemis_V1_AssignClassRequest: TargetedRequest { var target: RequestTarget { .kindergarten(kindergartenCode) } }
extension Pemis_V1_ClassStepRequest: TargetedRequest { var target: RequestTarget { .kindergarten(kindergartenCode) } }
extension Pemis_V1_LeaveChildRequest: TargetedRequest { var target: RequestTarget { .kindergarten(kindergartenCode) } }
extension Pemis_V1_AccidentalDepartureRequest: TargetedRequest { var target: RequestTarget { .kindergarten(kindergartenCode) } }
extension Pemis_V1_RequestExportRequest: TargetedRequest {
  var target: RequestTarget { .districtList(kindergartenCode: kindergartenCode) }
}
extension Pemis_V1_ListExportsRequest: TargetedRequest {
  var target: RequestTarget { .districtList(kindergartenCode: kindergartenCode) }
}
extension Pemis_V1_DecideExportRequest: TargetedRequest { var target: RequestTarget { .export(id) } }
extension Pemis_V1_DownloadExportRequest: TargetedRequest { var target: RequestTarget { .export(id) } }
extension Pemis_V1_PaperShreddedRequest: TargetedRequest { var target: RequestTarget { .kindergarten(kindergartenCode) } }
extension Pemis_V1_GetHistoryRequest: TargetedRequest { var target: RequestTarget { .kindergarten(kindergartenCode) } }

// MARK: - Proto ↔ domain

extension Role {
  init?(_ proto: Pemis_V1_Role) {
    switch proto {
    case .preschoolOffice: self = .preschoolOffice
    case .vocationalOffice: self = .vocationalOffice
    case .planningOffice: self = .planningOffice
    case .financeOffice: self = .financeOffice
    case .districtAdmin: self = .districtAdmin
    case .exportApprover: self = .exportApprover
    case .principal: self = .principal
    case .administrator: self = .administrator
    case .classLeader: self = .classLeader
    case .financeStaff: self = .financeStaff
    case .unspecified, .UNRECOGNIZED: return nil
    }
  }

  var proto: Pemis_V1_Role {
    switch self {
    case .preschoolOffice: .preschoolOffice
    case .vocationalOffice: .vocationalOffice
    case .planningOffice: .planningOffice
    case .financeOffice: .financeOffice
    case .districtAdmin: .districtAdmin
    case .exportApprover: .exportApprover
    case .principal: .principal
    case .administrator: .administrator
    case .classLeader: .classLeader
    case .financeStaff: .financeStaff
    }
  }
}

extension Ownership {
  init?(_ proto: Pemis_V1_Ownership) {
    switch proto {
    case .public: self = .public
    case .private: self = .private
    case .unspecified, .UNRECOGNIZED: return nil
    }
  }

  var proto: Pemis_V1_Ownership {
    switch self {
    case .public: .public
    case .private: .private
    }
  }
}
extension Pemis_V1_UpdateChildRequest: TargetedRequest { var target: RequestTarget { .kindergarten(kindergartenCode) } }
extension Pemis_V1_RequestKeyChangeRequest: TargetedRequest { var target: RequestTarget { .kindergarten(kindergartenCode) } }
extension Pemis_V1_ListKeyChangesRequest: TargetedRequest { var target: RequestTarget { .kindergarten(kindergartenCode) } }
extension Pemis_V1_DecideKeyChangeRequest: TargetedRequest { var target: RequestTarget { .kindergarten(kindergartenCode) } }
extension Pemis_V1_MonthlyAuditRequest: TargetedRequest { var target: RequestTarget { .kindergarten(kindergartenCode) } }
extension Pemis_V1_SignOffMonthRequest: TargetedRequest { var target: RequestTarget { .kindergarten(kindergartenCode) } }
extension Pemis_V1_PaperArchiveRequest: TargetedRequest { var target: RequestTarget { .kindergarten(kindergartenCode) } }
extension Pemis_V1_ListPaperArchiveRequest: TargetedRequest { var target: RequestTarget { .kindergarten(kindergartenCode) } }
/// An import names its kindergarten in the first message, which is the one the interceptor reads.
extension Pemis_V1_ImportChildrenRequest: TargetedRequest { var target: RequestTarget { .kindergarten(kindergartenCode) } }
extension Pemis_V1_TransferOutRequest: TargetedRequest { var target: RequestTarget { .kindergarten(kindergartenCode) } }
extension Pemis_V1_GetTransferArchiveRequest: TargetedRequest { var target: RequestTarget { .kindergarten(kindergartenCode) } }
extension Pemis_V1_TransferInRequest: TargetedRequest { var target: RequestTarget { .kindergarten(kindergartenCode) } }
extension Pemis_V1_TransferActionRequest: TargetedRequest { var target: RequestTarget { .kindergarten(kindergartenCode) } }
/// District-wide: the roles table alone decides.
extension Pemis_V1_AbortTransferRequest: TargetedRequest { var target: RequestTarget { .none } }
extension Pemis_V1_ListTransfersRequest: TargetedRequest { var target: RequestTarget { .districtList(kindergartenCode: kindergartenCode) } }
/// District-wide: the roles table alone decides.
extension Pemis_V1_SweepDuplicatesRequest: TargetedRequest { var target: RequestTarget { .none } }
extension Pemis_V1_ListCasesRequest: TargetedRequest { var target: RequestTarget { .districtList(kindergartenCode: kindergartenCode) } }
extension Pemis_V1_GetCaseRequest: TargetedRequest { var target: RequestTarget { .districtList(kindergartenCode: kindergartenCode) } }
extension Pemis_V1_ResolveCaseRequest: TargetedRequest { var target: RequestTarget { .kindergarten(kindergartenCode) } }
extension Pemis_V1_ArbitrateCaseRequest: TargetedRequest { var target: RequestTarget { .none } }
/// The summary narrows itself to the caller's scope (ownership) and checks each code named.
extension Pemis_V1_DistrictSummaryRequest: TargetedRequest { var target: RequestTarget { .none } }
