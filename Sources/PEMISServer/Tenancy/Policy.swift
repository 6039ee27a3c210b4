internal import GRPCCore
internal import PEMISDomain
internal import PEMISProto

/// The one policy table: for every method, who may call it and how far (scope), and whether
/// calls are written to the audit log. The authorization interceptor enforces it before any
/// handler runs; a method missing from the table is refused (fail closed).
struct MethodPolicy: Sendable {
  enum Access: Sendable {
    /// No session needed (Health, Login).
    case open
    /// Any session, even one that must still change its one-time password.
    case anySession
    /// These roles, each with its scope.
    case roles([Role: Scope])
  }

  enum Audit: Sendable {
    /// Not logged: reveals no personal data and changes nothing.
    case none
    /// Logged: reads personal data or changes state.
    case always
  }

  var access: Access
  var audit: Audit
}

/// The rights of the regulation, by kind of data, each with the article that grants it
/// (docs/TENANCY.md, "Who may see what"). The method table below is built from these, and
/// handlers that serve more than one kind of data in one method (a record's history) ask
/// ``Policy/mayRead(_:_:)`` for the kind they are about to return.
enum DataKind: String, CaseIterable, Sendable {
  /// Basic information, classes, care-and-education staff, the leadership group (Art. 13–14).
  case kindergartenInfo
  /// The kindergarten's finance information (Art. 11, 12(二), 12(三)2).
  case finance
  /// Child records and their history (Art. 12, 15–18; PIPL Art. 28, 31: sensitive).
  case childRecords
  /// District oversight of child records without their contents: transfers, duplicate cases,
  /// key-change requests and monthly audits of a kindergarten (Art. 8(2), 9(2), 16).
  case childOversight
  /// The audit log (Art. 12(一)2: the principal audits monthly; Art. 20: district supervision).
  case auditLog
}

enum Policy {
  static let districtRead: [Role: Scope] = [
    .preschoolOffice: .district, .vocationalOffice: .privateKindergartens, .planningOffice: .district,
    .financeOffice: .district, .districtAdmin: .district,
  ]
  static let responsibleOffice: [Role: Scope] = [
    .preschoolOffice: .publicKindergartens, .vocationalOffice: .privateKindergartens,
  ]
  static func own(_ roles: Role...) -> [Role: Scope] {
    Dictionary(uniqueKeysWithValues: roles.map { ($0, Scope.ownKindergarten) })
  }
  static func merged(_ a: [Role: Scope], _ b: [Role: Scope]) -> [Role: Scope] { a.merging(b) { x, _ in x } }

  /// Who reads each kind of data, and how far.
  static let readers: [DataKind: [Role: Scope]] = [
    // Art. 8–11: every district office works with a kindergarten's institutional information;
    // Art. 12: every member of the leadership group knows its own kindergarten's.
    .kindergartenInfo: merged(districtRead, own(.principal, .administrator, .classLeader, .financeStaff)),
    // Art. 11: the Planning & Finance Office confirms it; Art. 12(二) the administrator and
    // 12(三)2 finance/HR staff maintain it; the principal answers for it (12(一)3). Class leaders
    // have no part in it.
    .finance: merged(districtRead, own(.principal, .administrator, .financeStaff)),
    // Art. 8(2), 12(二)、(三)1, 15–18: the Preschool Education Office verifies children's data
    // every semester (the Vocational Office for private kindergartens, Art. 9); the principal,
    // the administrator and class leaders (their own classes) collect, enter and confirm it.
    // Not the Planning or the Planning & Finance Office, the district administrator or
    // finance/HR staff (Art. 12(三)2 gives them basic, staff and finance information only):
    // they see counts (the district summary), never a child.
    .childRecords: merged(
      [.preschoolOffice: .district, .vocationalOffice: .privateKindergartens], own(.principal, .administrator, .classLeader)),
    // Art. 16 (transfers the Preschool Office watches and ends), the duplicate check it runs
    // and arbitrates, the monthly audits it oversees: child lists with masked numbers, for the
    // offices that act on them and the district administrator who runs the sweeps.
    .childOversight: merged(
      [.preschoolOffice: .district, .vocationalOffice: .privateKindergartens, .districtAdmin: .district],
      own(.principal, .administrator)),
    // Art. 12(一)2: the principal holds the audit account and audits the kindergarten monthly;
    // Art. 20: the district supervises confidentiality.
    .auditLog: merged(
      [.districtAdmin: .district, .preschoolOffice: .district, .vocationalOffice: .privateKindergartens], own(.principal)),
  ]

  /// Whether the caller's role may read this kind of data (its scope was checked at the door).
  static func mayRead(_ kind: DataKind, _ caller: Caller) -> Bool { readers[kind]?[caller.role] != nil }

  /// The method-table entry of a read of this kind.
  static func read(_ kind: DataKind) -> MethodPolicy { .init(access: .roles(readers[kind] ?? [:]), audit: .always) }

  static let table: [String: MethodPolicy] = [
    // Diagnostics and liveness: no personal data.
    path(Pemis_V1_Health.Method.Check.descriptor): .init(access: .open, audit: .none),
    path(Pemis_V1_Echo.Method.Get.descriptor): .init(access: .open, audit: .none),
    path(Pemis_V1_Echo.Method.Expand.descriptor): .init(access: .open, audit: .none),
    path(Pemis_V1_Echo.Method.Collect.descriptor): .init(access: .open, audit: .none),
    path(Pemis_V1_Echo.Method.Update.descriptor): .init(access: .open, audit: .none),

    // Sessions. Login is open but audited, failures included.
    path(Pemis_V1_Session.Method.Login.descriptor): .init(access: .open, audit: .always),
    path(Pemis_V1_Session.Method.ChangePassword.descriptor): .init(access: .anySession, audit: .always),
    path(Pemis_V1_Session.Method.Logout.descriptor): .init(access: .anySession, audit: .always),
    path(Pemis_V1_Session.Method.WhoAmI.descriptor): .init(access: .anySession, audit: .none),

    // Accounts: district administrators for all; principals for their own kindergarten's staff.
    path(Pemis_V1_Accounts.Method.CreateAccount.descriptor): .init(
      access: .roles([.districtAdmin: .district, .principal: .ownKindergarten]), audit: .always),
    path(Pemis_V1_Accounts.Method.DisableAccount.descriptor): .init(
      access: .roles([.districtAdmin: .district, .principal: .ownKindergarten]), audit: .always),
    path(Pemis_V1_Accounts.Method.EnableAccount.descriptor): .init(
      access: .roles([.districtAdmin: .district, .principal: .ownKindergarten]), audit: .always),
    path(Pemis_V1_Accounts.Method.ResetPassword.descriptor): .init(
      access: .roles([.districtAdmin: .district, .principal: .ownKindergarten]), audit: .always),
    path(Pemis_V1_Accounts.Method.UnsealAccount.descriptor): .init(
      access: .roles([.districtAdmin: .district]), audit: .always),
    path(Pemis_V1_Accounts.Method.ListAccounts.descriptor): .init(
      access: .roles([.districtAdmin: .district, .principal: .ownKindergarten]), audit: .always),

    // Onboarding (Appendix 1).
    path(Pemis_V1_Onboarding.Method.SubmitApplication.descriptor): .init(
      access: .roles(responsibleOffice.merging([.districtAdmin: .district]) { a, _ in a }), audit: .always),
    path(Pemis_V1_Onboarding.Method.ReviewApplication.descriptor): .init(
      access: .roles(responsibleOffice), audit: .always),
    path(Pemis_V1_Onboarding.Method.ResubmitApplication.descriptor): .init(
      access: .roles(responsibleOffice.merging([.districtAdmin: .district]) { a, _ in a }), audit: .always),
    path(Pemis_V1_Onboarding.Method.AdmitKindergarten.descriptor): .init(
      access: .roles([.planningOffice: .district]), audit: .always),
    path(Pemis_V1_Onboarding.Method.RecordCommitment.descriptor): .init(
      access: .roles(responsibleOffice.merging([.districtAdmin: .district]) { a, _ in a }), audit: .always),
    path(Pemis_V1_Onboarding.Method.IssueAccounts.descriptor): .init(
      access: .roles([.districtAdmin: .district]), audit: .always),
    path(Pemis_V1_Onboarding.Method.GetApplication.descriptor): .init(
      access: .roles(districtRead), audit: .always),
    path(Pemis_V1_Onboarding.Method.ListApplications.descriptor): .init(
      access: .roles(districtRead), audit: .always),

    // Kindergartens.
    path(Pemis_V1_Kindergartens.Method.GetKindergarten.descriptor): .init(
      access: .roles(merged(districtRead, own(.principal, .administrator, .classLeader, .financeStaff))), audit: .always),
    path(Pemis_V1_Kindergartens.Method.ListKindergartens.descriptor): .init(
      access: .roles(districtRead), audit: .always),

    // Deadlines: the district sets terms and watches what is overdue; a kindergarten sees and
    // discharges its own obligations.
    path(Pemis_V1_Deadlines.Method.StartTerm.descriptor): .init(
      access: .roles([.preschoolOffice: .district, .districtAdmin: .district]), audit: .always),
    path(Pemis_V1_Deadlines.Method.ListObligations.descriptor): .init(
      access: .roles(merged(districtRead, own(.principal, .administrator, .classLeader, .financeStaff))), audit: .always),
    path(Pemis_V1_Deadlines.Method.ListOverdue.descriptor): .init(access: .roles(districtRead), audit: .always),
    path(Pemis_V1_Deadlines.Method.CompleteArea.descriptor): .init(
      access: .roles([.principal: .ownKindergarten, .administrator: .ownKindergarten, .financeStaff: .ownKindergarten]),
      audit: .always),

    // A kindergarten's own information (Art. 13-14): the district reads within its scope; the
    // kindergarten's roles read theirs; who writes follows MISSION's actors (finance/HR staff:
    // basic and staff information; class leaders read).
    path(Pemis_V1_KindergartenData.Method.GetProfile.descriptor): read(.kindergartenInfo),
    path(Pemis_V1_KindergartenData.Method.UpdateProfile.descriptor): .init(
      access: .roles([.principal: .ownKindergarten, .administrator: .ownKindergarten, .financeStaff: .ownKindergarten]),
      audit: .always),
    path(Pemis_V1_KindergartenData.Method.ListClasses.descriptor): read(.kindergartenInfo),
    path(Pemis_V1_KindergartenData.Method.CreateClass.descriptor): .init(
      access: .roles([.principal: .ownKindergarten, .administrator: .ownKindergarten]), audit: .always),
    path(Pemis_V1_KindergartenData.Method.UpdateClass.descriptor): .init(
      access: .roles([.principal: .ownKindergarten, .administrator: .ownKindergarten]), audit: .always),
    path(Pemis_V1_KindergartenData.Method.DeleteClass.descriptor): .init(
      access: .roles([.principal: .ownKindergarten, .administrator: .ownKindergarten]), audit: .always),
    path(Pemis_V1_KindergartenData.Method.ListStaff.descriptor): read(.kindergartenInfo),
    path(Pemis_V1_KindergartenData.Method.CreateStaff.descriptor): .init(
      access: .roles([.principal: .ownKindergarten, .administrator: .ownKindergarten, .financeStaff: .ownKindergarten]),
      audit: .always),
    path(Pemis_V1_KindergartenData.Method.UpdateStaff.descriptor): .init(
      access: .roles([.principal: .ownKindergarten, .administrator: .ownKindergarten, .financeStaff: .ownKindergarten]),
      audit: .always),
    // The history of any record: the door lets in whoever reads some kind of it; the handler
    // holds the caller to the kind of the record asked for (``DataKind``).
    path(Pemis_V1_KindergartenData.Method.GetHistory.descriptor): read(.kindergartenInfo),
    path(Pemis_V1_KindergartenData.Method.GetFinance.descriptor): read(.finance),
    // Art. 12(二): the administrator maintains finance information; 12(三)2: finance/HR staff.
    path(Pemis_V1_KindergartenData.Method.PutFinance.descriptor): .init(
      access: .roles(own(.principal, .administrator, .financeStaff)), audit: .always),
    // Art. 11: the Planning & Finance Office confirms each kindergarten's finance information.
    path(Pemis_V1_KindergartenData.Method.ConfirmFinance.descriptor): .init(
      access: .roles([.financeOffice: .district]), audit: .always),
    path(Pemis_V1_KindergartenData.Method.GetLeadershipGroup.descriptor): read(.kindergartenInfo),
    path(Pemis_V1_KindergartenData.Method.SetLeadershipGroup.descriptor): .init(
      access: .roles([.principal: .ownKindergarten, .administrator: .ownKindergarten]), audit: .always),

    // Child records (Art. 15-18).
    path(Pemis_V1_ChildRecords.Method.EnrollChild.descriptor): .init(
      access: .roles([.principal: .ownKindergarten, .administrator: .ownKindergarten, .classLeader: .ownKindergarten]),
      audit: .always),
    path(Pemis_V1_ChildRecords.Method.ListChildren.descriptor): read(.childRecords),
    path(Pemis_V1_ChildRecords.Method.GetChild.descriptor): read(.childRecords),
    path(Pemis_V1_ChildRecords.Method.AssignClass.descriptor): .init(
      access: .roles([.principal: .ownKindergarten, .administrator: .ownKindergarten]), audit: .always),
    path(Pemis_V1_ChildRecords.Method.PromoteClass.descriptor): .init(
      access: .roles([.principal: .ownKindergarten, .administrator: .ownKindergarten]), audit: .always),
    path(Pemis_V1_ChildRecords.Method.GraduateClass.descriptor): .init(
      access: .roles([.principal: .ownKindergarten, .administrator: .ownKindergarten]), audit: .always),
    path(Pemis_V1_ChildRecords.Method.LeaveChild.descriptor): .init(
      access: .roles([.principal: .ownKindergarten, .administrator: .ownKindergarten]), audit: .always),
    path(Pemis_V1_ChildRecords.Method.RecordAccidentalDeparture.descriptor): .init(
      access: .roles([.principal: .ownKindergarten, .administrator: .ownKindergarten]), audit: .always),

    // Changes after enrollment: other fields directly; key information on a request that
    // only the principal (the audit account) decides.
    path(Pemis_V1_ChildRecords.Method.UpdateChild.descriptor): .init(
      access: .roles([.principal: .ownKindergarten, .administrator: .ownKindergarten, .classLeader: .ownKindergarten]),
      audit: .always),
    path(Pemis_V1_ChildRecords.Method.RequestKeyChange.descriptor): .init(
      access: .roles([.principal: .ownKindergarten, .administrator: .ownKindergarten, .classLeader: .ownKindergarten]),
      audit: .always),
    path(Pemis_V1_ChildRecords.Method.ListKeyChanges.descriptor): read(.childOversight),
    path(Pemis_V1_ChildRecords.Method.DecideKeyChange.descriptor): .init(
      access: .roles([.principal: .ownKindergarten]), audit: .always),
    // Art. 11: the principal audits the month and signs it off; the district can look.
    // The month's changes carry the children's values: the offices that verify children's data
    // and the kindergarten's audit and ordinary accounts, not the district administrator.
    path(Pemis_V1_ChildRecords.Method.GetMonthlyAudit.descriptor): .init(
      access: .roles(merged([.preschoolOffice: .district, .vocationalOffice: .privateKindergartens], own(.principal, .administrator))),
      audit: .always),
    path(Pemis_V1_ChildRecords.Method.SignOffMonth.descriptor): .init(
      access: .roles([.principal: .ownKindergarten]), audit: .always),
    // The paper archive is the administrator's (MISSION: child records).
    path(Pemis_V1_ChildRecords.Method.RecordPaperArchive.descriptor): .init(
      access: .roles([.principal: .ownKindergarten, .administrator: .ownKindergarten]), audit: .always),
    path(Pemis_V1_ChildRecords.Method.ListPaperArchive.descriptor): .init(
      access: .roles([.principal: .ownKindergarten, .administrator: .ownKindergarten]), audit: .always),
    path(Pemis_V1_ChildRecords.Method.RecordPaperShredded.descriptor): .init(
      access: .roles([.principal: .ownKindergarten, .administrator: .ownKindergarten]), audit: .always),
    // Imports are the administrator's (and the principal's).
    path(Pemis_V1_ChildRecords.Method.ImportChildren.descriptor): .init(
      access: .roles([.principal: .ownKindergarten, .administrator: .ownKindergarten]), audit: .always),

    // Transfers (Art. 16): each side acts for its own kindergarten; the district watches.
    path(Pemis_V1_Transfers.Method.TransferOut.descriptor): .init(
      access: .roles([.principal: .ownKindergarten, .administrator: .ownKindergarten]), audit: .always),
    path(Pemis_V1_Transfers.Method.GetTransferArchive.descriptor): .init(
      access: .roles([.principal: .ownKindergarten, .administrator: .ownKindergarten]), audit: .always),
    path(Pemis_V1_Transfers.Method.TransferIn.descriptor): .init(
      access: .roles([.principal: .ownKindergarten, .administrator: .ownKindergarten]), audit: .always),
    path(Pemis_V1_Transfers.Method.CancelTransfer.descriptor): .init(
      access: .roles([.principal: .ownKindergarten, .administrator: .ownKindergarten]), audit: .always),
    path(Pemis_V1_Transfers.Method.DeclineTransfer.descriptor): .init(
      access: .roles([.principal: .ownKindergarten, .administrator: .ownKindergarten]), audit: .always),
    // A transfer that cannot go on is ended by the Preschool Education Office (Art. 16 is its
    // oversight), never by one side alone.
    path(Pemis_V1_Transfers.Method.AbortTransfer.descriptor): .init(
      access: .roles([.preschoolOffice: .district, .districtAdmin: .district]), audit: .always),
    path(Pemis_V1_Transfers.Method.ListTransfers.descriptor): read(.childOversight),

    // The duplicate check: the Preschool Education Office sweeps and arbitrates; kindergartens
    // resolve their own cases.
    path(Pemis_V1_Duplicates.Method.SweepDuplicates.descriptor): .init(
      access: .roles([.preschoolOffice: .district, .districtAdmin: .district]), audit: .always),
    path(Pemis_V1_Duplicates.Method.ListCases.descriptor): read(.childOversight),
    path(Pemis_V1_Duplicates.Method.GetCase.descriptor): read(.childOversight),
    path(Pemis_V1_Duplicates.Method.ResolveCase.descriptor): .init(
      access: .roles([.principal: .ownKindergarten, .administrator: .ownKindergarten]), audit: .always),
    path(Pemis_V1_Duplicates.Method.ArbitrateCase.descriptor): .init(
      access: .roles([.preschoolOffice: .district]), audit: .always),

    // Exports (Art. 20): requested by those who hold the data, decided by the next higher
    // authority (the handler names which), downloaded by the requester.
    path(Pemis_V1_Exports.Method.RequestExport.descriptor): .init(
      access: .roles(merged([.preschoolOffice: .district, .vocationalOffice: .privateKindergartens], own(.principal, .administrator))),
      audit: .always),
    path(Pemis_V1_Exports.Method.DecideExport.descriptor): .init(
      access: .roles([.preschoolOffice: .district, .vocationalOffice: .privateKindergartens, .exportApprover: .district]), audit: .always),
    path(Pemis_V1_Exports.Method.ListExports.descriptor): .init(
      access: .roles(
        merged(
          [.preschoolOffice: .district, .vocationalOffice: .privateKindergartens, .exportApprover: .district], own(.principal, .administrator))),
      audit: .always),
    path(Pemis_V1_Exports.Method.DownloadExport.descriptor): .init(
      access: .roles(merged([.preschoolOffice: .district, .vocationalOffice: .privateKindergartens], own(.principal, .administrator))),
      audit: .always),

    // District oversight (Art. 4, 8): counts only, within scope.
    path(Pemis_V1_District.Method.GetDistrictSummary.descriptor): .init(access: .roles(districtRead), audit: .always),

    // The audit log: district supervision, the district administrator, and the principal for
    // the own kindergarten's entries.
    path(Pemis_V1_Audit.Method.QueryAuditLog.descriptor): read(.auditLog),
  ]

  static func path(_ descriptor: MethodDescriptor) -> String { "/\(descriptor.fullyQualifiedMethod)" }

  /// Whether a method changes state (and its call is written to the audit log before it runs)
  /// or only reads: by its name, which says so for every method of the table (Get…, List…,
  /// Query…, WhoAmI read; the rest change).
  static func changesState(_ path: String) -> Bool {
    let name = path.split(separator: "/").last.map(String.init) ?? ""
    return !(["Get", "List", "Query"].contains { name.hasPrefix($0) } || name == "WhoAmI" || name == "Check")
  }
}

/// What of a child record a reader is shown (PIPL Art. 51: least privilege), decided here for
/// every method that returns a child. Lists show who the child is and where; the single record
/// shows what the reader's part in the regulation needs; the receiving kindergarten, before
/// transfer-in, sees only what checking the parent's materials needs.
struct ChildView: Sendable, Equatable {
  /// The record number and ID document number in full (else masked, ``IDDocuments/mask(_:)``).
  var fullIdentifiers = false
  /// Nationality, ethnicity, only child, entry date, class.
  var details = true
  /// Birth place, household register and type, Hong Kong/Macao/Taiwan status.
  var household = false
  var health = false
  var guardians = false

  /// Lists, and what a write returns.
  static let listing = ChildView()
  /// Before transfer-in (Art. 16): name, gender, birth date, the masked document.
  static let receiver = ChildView(details: false)

  /// The single record (GetChild) for a role that may read child records.
  static func record(for role: Role) -> ChildView {
    switch role {
    // The audit and ordinary accounts keep the whole record (Art. 12(一)、(二), 17).
    case .principal, .administrator: ChildView(fullIdentifiers: true, household: true, health: true, guardians: true)
    // Class leaders collect and confirm their class's children (Art. 12(三)1): contacts and
    // health for the class, the document number masked.
    case .classLeader: ChildView(household: true, health: true, guardians: true)
    // The Preschool Education Office verifies identities every semester (Art. 8(2)); contacts,
    // health and household details stay in the kindergarten.
    case .preschoolOffice: ChildView(fullIdentifiers: true)
    default: .listing
    }
  }

  /// Whether this view shows a history entry's values for `field` (the record's keys as the
  /// history names them: "health", "guardians[0].phone", "householdRegister", …). History and
  /// the monthly audit carry every value a record ever had; they are held to the same view.
  func shows(historyField field: String) -> Bool {
    if field.hasPrefix("guardians") { return guardians }
    switch field {
    case "health": return health
    case "birthPlace", "householdRegister", "householdType", "hmtStatus": return household
    default: return true
    }
  }

  /// What a history entry's value becomes when the view does not show it.
  static let withheld = "(not shown)"

  /// The personal data this view discloses beyond a list, for the personal-data access entry
  /// (who, whose, which fields, when) the audit log records.
  var disclosed: [String] {
    var fields: [String] = []
    if fullIdentifiers { fields.append("id_document_number") }
    if household { fields.append("household") }
    if health { fields.append("health") }
    if guardians { fields.append("guardians") }
    return fields
  }
}
