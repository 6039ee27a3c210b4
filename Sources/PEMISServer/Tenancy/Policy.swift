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

enum Policy {
  static let districtRead: [Role: Scope] = [
    .preschoolOffice: .district, .vocationalOffice: .privateKindergartens, .planningOffice: .district,
    .financeOffice: .district, .districtAdmin: .district,
  ]
  static let responsibleOffice: [Role: Scope] = [
    .preschoolOffice: .publicKindergartens, .vocationalOffice: .privateKindergartens,
  ]

  /// District read roles plus every role of the kindergarten itself.
  static let kindergartenRead: [Role: Scope] = districtRead.merging(
    Dictionary(uniqueKeysWithValues: Role.kindergarten.map { ($0, Scope.ownKindergarten) })) { a, _ in a }

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
      access: .roles(
        districtRead.merging(Dictionary(uniqueKeysWithValues: Role.kindergarten.map { ($0, Scope.ownKindergarten) })) { a, _ in a }),
      audit: .always),
    path(Pemis_V1_Kindergartens.Method.ListKindergartens.descriptor): .init(
      access: .roles(districtRead), audit: .always),

    // Deadlines: the district sets terms and watches what is overdue; a kindergarten sees and
    // discharges its own obligations.
    path(Pemis_V1_Deadlines.Method.StartTerm.descriptor): .init(
      access: .roles([.preschoolOffice: .district, .districtAdmin: .district]), audit: .always),
    path(Pemis_V1_Deadlines.Method.ListObligations.descriptor): .init(
      access: .roles(
        districtRead.merging(Dictionary(uniqueKeysWithValues: Role.kindergarten.map { ($0, Scope.ownKindergarten) })) { a, _ in a }),
      audit: .always),
    path(Pemis_V1_Deadlines.Method.ListOverdue.descriptor): .init(access: .roles(districtRead), audit: .always),
    path(Pemis_V1_Deadlines.Method.CompleteArea.descriptor): .init(
      access: .roles([.principal: .ownKindergarten, .administrator: .ownKindergarten, .financeStaff: .ownKindergarten]),
      audit: .always),

    // A kindergarten's own information (Art. 13-14): the district reads within its scope; the
    // kindergarten's roles read theirs; who writes follows MISSION's actors (finance/HR staff:
    // basic and staff information; class leaders read).
    path(Pemis_V1_KindergartenData.Method.GetProfile.descriptor): .init(access: .roles(kindergartenRead), audit: .always),
    path(Pemis_V1_KindergartenData.Method.UpdateProfile.descriptor): .init(
      access: .roles([.principal: .ownKindergarten, .administrator: .ownKindergarten, .financeStaff: .ownKindergarten]),
      audit: .always),
    path(Pemis_V1_KindergartenData.Method.ListClasses.descriptor): .init(access: .roles(kindergartenRead), audit: .always),
    path(Pemis_V1_KindergartenData.Method.CreateClass.descriptor): .init(
      access: .roles([.principal: .ownKindergarten, .administrator: .ownKindergarten]), audit: .always),
    path(Pemis_V1_KindergartenData.Method.UpdateClass.descriptor): .init(
      access: .roles([.principal: .ownKindergarten, .administrator: .ownKindergarten]), audit: .always),
    path(Pemis_V1_KindergartenData.Method.DeleteClass.descriptor): .init(
      access: .roles([.principal: .ownKindergarten, .administrator: .ownKindergarten]), audit: .always),
    path(Pemis_V1_KindergartenData.Method.ListStaff.descriptor): .init(access: .roles(kindergartenRead), audit: .always),
    path(Pemis_V1_KindergartenData.Method.CreateStaff.descriptor): .init(
      access: .roles([.principal: .ownKindergarten, .administrator: .ownKindergarten, .financeStaff: .ownKindergarten]),
      audit: .always),
    path(Pemis_V1_KindergartenData.Method.UpdateStaff.descriptor): .init(
      access: .roles([.principal: .ownKindergarten, .administrator: .ownKindergarten, .financeStaff: .ownKindergarten]),
      audit: .always),
    path(Pemis_V1_KindergartenData.Method.GetHistory.descriptor): .init(access: .roles(kindergartenRead), audit: .always),
    path(Pemis_V1_KindergartenData.Method.GetFinance.descriptor): .init(access: .roles(kindergartenRead), audit: .always),
    path(Pemis_V1_KindergartenData.Method.PutFinance.descriptor): .init(
      access: .roles([.principal: .ownKindergarten, .financeStaff: .ownKindergarten]), audit: .always),
    // Art. 11: the Planning & Finance Office confirms each kindergarten's finance information.
    path(Pemis_V1_KindergartenData.Method.ConfirmFinance.descriptor): .init(
      access: .roles([.financeOffice: .district]), audit: .always),
    path(Pemis_V1_KindergartenData.Method.GetLeadershipGroup.descriptor): .init(access: .roles(kindergartenRead), audit: .always),
    path(Pemis_V1_KindergartenData.Method.SetLeadershipGroup.descriptor): .init(
      access: .roles([.principal: .ownKindergarten, .administrator: .ownKindergarten]), audit: .always),

    // Child records (Art. 15-18).
    path(Pemis_V1_ChildRecords.Method.EnrollChild.descriptor): .init(
      access: .roles([.principal: .ownKindergarten, .administrator: .ownKindergarten, .classLeader: .ownKindergarten]),
      audit: .always),
    path(Pemis_V1_ChildRecords.Method.ListChildren.descriptor): .init(access: .roles(kindergartenRead), audit: .always),
    path(Pemis_V1_ChildRecords.Method.GetChild.descriptor): .init(access: .roles(kindergartenRead), audit: .always),
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
    path(Pemis_V1_ChildRecords.Method.ListKeyChanges.descriptor): .init(
      access: .roles(districtRead.merging([.principal: .ownKindergarten, .administrator: .ownKindergarten]) { a, _ in a }),
      audit: .always),
    path(Pemis_V1_ChildRecords.Method.DecideKeyChange.descriptor): .init(
      access: .roles([.principal: .ownKindergarten]), audit: .always),
    // Art. 11: the principal audits the month and signs it off; the district can look.
    path(Pemis_V1_ChildRecords.Method.GetMonthlyAudit.descriptor): .init(
      access: .roles(districtRead.merging([.principal: .ownKindergarten, .administrator: .ownKindergarten]) { a, _ in a }),
      audit: .always),
    path(Pemis_V1_ChildRecords.Method.SignOffMonth.descriptor): .init(
      access: .roles([.principal: .ownKindergarten]), audit: .always),
    // The paper archive is the administrator's (MISSION: child records).
    path(Pemis_V1_ChildRecords.Method.RecordPaperArchive.descriptor): .init(
      access: .roles([.principal: .ownKindergarten, .administrator: .ownKindergarten]), audit: .always),
    path(Pemis_V1_ChildRecords.Method.ListPaperArchive.descriptor): .init(
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
    path(Pemis_V1_Transfers.Method.ListTransfers.descriptor): .init(
      access: .roles(districtRead.merging([.principal: .ownKindergarten, .administrator: .ownKindergarten]) { a, _ in a }),
      audit: .always),

    // The duplicate check: the Preschool Education Office sweeps and arbitrates; kindergartens
    // resolve their own cases.
    path(Pemis_V1_Duplicates.Method.SweepDuplicates.descriptor): .init(
      access: .roles([.preschoolOffice: .district, .districtAdmin: .district]), audit: .always),
    path(Pemis_V1_Duplicates.Method.ListCases.descriptor): .init(
      access: .roles(districtRead.merging([.principal: .ownKindergarten, .administrator: .ownKindergarten]) { a, _ in a }),
      audit: .always),
    path(Pemis_V1_Duplicates.Method.GetCase.descriptor): .init(
      access: .roles(districtRead.merging([.principal: .ownKindergarten, .administrator: .ownKindergarten]) { a, _ in a }),
      audit: .always),
    path(Pemis_V1_Duplicates.Method.ResolveCase.descriptor): .init(
      access: .roles([.principal: .ownKindergarten, .administrator: .ownKindergarten]), audit: .always),
    path(Pemis_V1_Duplicates.Method.ArbitrateCase.descriptor): .init(
      access: .roles([.preschoolOffice: .district]), audit: .always),

    // District oversight (Art. 4, 8): counts only, within scope.
    path(Pemis_V1_District.Method.GetDistrictSummary.descriptor): .init(access: .roles(districtRead), audit: .always),

    // The audit log: district supervision and the district administrator.
    path(Pemis_V1_Audit.Method.QueryAuditLog.descriptor): .init(
      access: .roles([.districtAdmin: .district, .preschoolOffice: .district, .vocationalOffice: .privateKindergartens]),
      audit: .always),
  ]

  static func path(_ descriptor: MethodDescriptor) -> String { "/\(descriptor.fullyQualifiedMethod)" }
}
