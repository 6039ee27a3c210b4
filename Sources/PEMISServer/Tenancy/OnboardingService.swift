internal import Foundation
internal import GRPCCore
internal import Logging
internal import PEMISDomain
internal import PEMISProto
internal import PEMISRouting
internal import PEMISStore
internal import SwiftProtobuf

/// `pemis.v1.Onboarding` (Art. 6, Appendix 1). Who may take each step is the policy table's
/// business; the order of the steps is the domain's state machine; every step is recorded with
/// who and when.
struct OnboardingService: Pemis_V1_Onboarding.SimpleServiceProtocol {
  let tenancy: Tenancy

  private func application(_ record: ApplicationRecord) async throws -> Pemis_V1_Application {
    let events = try await tenancy.registry.onboardingEvents(record.id)
    return .with {
      $0.applicationID = record.id
      $0.form = record.form.proto
      $0.state = record.state.proto
      $0.institutionCode = record.institutionCode ?? ""
      $0.returnReason = record.returnReason ?? ""
      if let signatory = record.commitmentSignatory, let date = record.commitmentDate.flatMap(CalendarDate.init(iso:)) {
        $0.commitment = .with {
          $0.signatory = signatory
          $0.signedOn = date.proto
        }
      }
      $0.history = events.map { event in
        .with {
          $0.step = event.step
          $0.actor = event.actor
          $0.actorRole = event.actorRole.proto
          $0.at = event.at
          $0.note = event.note
        }
      }
    }
  }

  private func step(
    _ step: OnboardingStep, _ id: String, note: String = "",
    _ change: @escaping @Sendable (inout ApplicationRecord) throws -> Void = { _ in }
  ) async throws -> Pemis_V1_Application {
    let caller = try Caller.required()
    let record = try await tenancy.registry.takeStep(
      step, application: id, actor: caller.username, actorRole: caller.role, at: tenancy.now(), note: note, change)
    return try await application(record)
  }

  func submitApplication(
    request: Pemis_V1_SubmitApplicationRequest, context: ServerContext
  ) async throws -> Pemis_V1_Application {
    try await handling {
      let caller = try Caller.required()
      let form = try ApplicationForm(request.form)
      let record = try await tenancy.registry.submitApplication(
        form: form, actor: caller.username, actorRole: caller.role, at: tenancy.now())
      AuditTargets.add("application:\(record.id)")
      return try await application(record)
    }
  }

  func reviewApplication(
    request: Pemis_V1_ReviewApplicationRequest, context: ServerContext
  ) async throws -> Pemis_V1_Application {
    try await handling {
      if request.approve {
        return try await step(.approve, request.applicationID)
      }
      let reason = request.reason.trimmingCharacters(in: .whitespacesAndNewlines)
      guard !reason.isEmpty, reason.count <= 500 else {
        throw RPCError(code: .invalidArgument, message: "reason: required when returning an application, at most 500 characters")
      }
      return try await step(.return, request.applicationID, note: reason) { record in record.returnReason = reason }
    }
  }

  func resubmitApplication(
    request: Pemis_V1_ResubmitApplicationRequest, context: ServerContext
  ) async throws -> Pemis_V1_Application {
    try await handling {
      let form = try ApplicationForm(request.form)
      return try await step(.resubmit, request.applicationID) { record in
        guard form.ownership == record.ownership else {
          throw DomainError(
            field: "form.ownership", rule: "immutable",
            "cannot change from \(record.ownership.rawValue); a different ownership needs a new application")
        }
        record.form = form
        record.name = form.name
        record.returnReason = nil
      }
    }
  }

  func admitKindergarten(
    request: Pemis_V1_AdmitKindergartenRequest, context: ServerContext
  ) async throws -> Pemis_V1_Application {
    try await handling {
      let code = try InstitutionCode(validating: request.institutionCode)
      let caller = try Caller.required()
      let record = try await tenancy.registry.admit(
        application: request.applicationID, code: code.rawValue, actor: caller.username, actorRole: caller.role, at: tenancy.now())
      return try await application(record)
    }
  }

  func recordCommitment(
    request: Pemis_V1_RecordCommitmentRequest, context: ServerContext
  ) async throws -> Pemis_V1_Application {
    try await handling {
      let signatory = request.commitment.signatory.trimmingCharacters(in: .whitespacesAndNewlines)
      guard !signatory.isEmpty, signatory.count <= 50 else {
        throw RPCError(code: .invalidArgument, message: "commitment.signatory: required, at most 50 characters")
      }
      let date = CalendarDate(request.commitment.signedOn)
      guard date.isValid else {
        throw RPCError(code: .invalidArgument, message: "commitment.signed_on: is not a valid date")
      }
      return try await step(.recordCommitment, request.applicationID, note: "\(signatory) \(date)") { record in
        record.commitmentSignatory = signatory
        record.commitmentDate = date.description
      }
    }
  }

  func issueAccounts(
    request: Pemis_V1_IssueAccountsRequest, context: ServerContext
  ) async throws -> Pemis_V1_IssueAccountsResponse {
    try await handling {
      let caller = try Caller.required()
      try AccountRules.validateUsername(request.principalUsername, field: "principal_username")
      try AccountRules.validateUsername(request.administratorUsername, field: "administrator_username")
      guard request.principalUsername != request.administratorUsername else {
        throw RPCError(code: .invalidArgument, message: "administrator_username: must differ from principal_username")
      }
      for (field, name) in [("principal_name", request.principalName), ("administrator_name", request.administratorName)] {
        let trimmed = name.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty, trimmed.count <= 50 else {
          throw RPCError(code: .invalidArgument, message: "\(field): required, at most 50 characters")
        }
      }
      guard let current = try await tenancy.registry.application(request.applicationID) else {
        throw RPCError(code: .notFound, message: "application_id: no application '\(request.applicationID)'")
      }
      _ = try OnboardingStep.issueAccounts.apply(to: current.state)
      guard let codeText = current.institutionCode else {
        throw RPCError(code: .failedPrecondition, message: "application_id: has no institution code")
      }
      let code = try InstitutionCode(validating: codeText)
      let now = tenancy.now()
      let principalPassword = Secrets.oneTimePassword()
      let administratorPassword = Secrets.oneTimePassword()
      let principal = AccountRecord(
        username: request.principalUsername, role: .principal, kindergartenCode: code.rawValue,
        displayName: request.principalName.trimmingCharacters(in: .whitespacesAndNewlines),
        passwordHash: try await tenancy.hasher.hashOffPool(principalPassword), createdAt: now)
      let administrator = AccountRecord(
        username: request.administratorUsername, role: .administrator, kindergartenCode: code.rawValue,
        displayName: request.administratorName.trimmingCharacters(in: .whitespacesAndNewlines),
        passwordHash: try await tenancy.hasher.hashOffPool(administratorPassword), createdAt: now)

      AuditTargets.add("account:\(principal.username)")
      AuditTargets.add("account:\(administrator.username)")
      // Art. 13: with its accounts, the kindergarten owes its four areas within 30 working days.
      // If the due date falls in a year the calendar does not know yet, it stays open until
      // that year's file is added (never guessed).
      let activatedOn = tenancy.today
      let due = try? ObligationKind.initialData.due(after: activatedOn, in: tenancy.calendar)
      if due == nil {
        tenancy.logger.warning(
          "initial-data deadlines for \(code) wait for a calendar file: add Config/calendar/\(activatedOn.year + 1).json")
      }
      // Through the routing layer: the shard, then the accounts, the activation and its
      // obligations in one registry transaction.
      let record = try await tenancy.router.issueAccounts(
        application: current.id, code: code, accounts: [principal, administrator],
        obligations: DataArea.allCases.map {
          ObligationRecord(
            kindergartenCode: code.rawValue, kind: .initialData, subject: $0.rawValue, triggeredOn: activatedOn, dueOn: due, createdAt: now)
        }, actor: caller.username, actorRole: caller.role)
      let application = try await application(record)
      return .with {
        $0.application = application
        $0.principal = principal.proto(now: now)
        $0.principalOneTimePassword = principalPassword
        $0.administrator = administrator.proto(now: now)
        $0.administratorOneTimePassword = administratorPassword
      }
    }
  }

  func getApplication(
    request: Pemis_V1_GetApplicationRequest, context: ServerContext
  ) async throws -> Pemis_V1_Application {
    try await handling {
      guard let record = try await tenancy.registry.application(request.applicationID) else {
        throw RPCError(code: .notFound, message: "application_id: no application '\(request.applicationID)'")
      }
      return try await application(record)
    }
  }

  func listApplications(
    request: Pemis_V1_ListApplicationsRequest, context: ServerContext
  ) async throws -> Pemis_V1_ListApplicationsResponse {
    try await handling {
      let caller = try Caller.required()
      let page = try Page(request.page)
      let (records, total) = try await tenancy.registry.applications(
        state: OnboardingState(request.state), ownership: caller.scope.ownershipFilter, offset: page.offset, limit: page.limit)
      var applications: [Pemis_V1_Application] = []
      for record in records { applications.append(try await application(record)) }
      return .with {
        $0.applications = applications
        $0.page = page.info(total: total, returned: records.count)
      }
    }
  }
}
