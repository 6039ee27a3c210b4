internal import Foundation
internal import GRPCCore
internal import PEMISDomain
internal import PEMISProto
internal import PEMISStore
internal import SwiftProtobuf

/// `pemis.v1.Accounts`. District administrators manage every account; a principal manages the
/// staff accounts of its own kindergarten (administrator, class leaders, finance/HR), never a
/// principal's or a district account. Scope is checked by the interceptor; these role rules here.
struct AccountsService: Pemis_V1_Accounts.SimpleServiceProtocol {
  let tenancy: Tenancy

  static let staffRoles: Set<Role> = [.administrator, .classLeader, .financeStaff]

  /// A principal may touch only staff accounts.
  private func checkManageable(_ role: Role, by caller: Caller) throws {
    if caller.role == .principal && !Self.staffRoles.contains(role) {
      throw RPCError(
        code: .permissionDenied,
        message: "a principal manages administrator, class leader and finance staff accounts, not \(role.rawValue)")
    }
  }

  func createAccount(
    request: Pemis_V1_CreateAccountRequest, context: ServerContext
  ) async throws -> Pemis_V1_CreateAccountResponse {
    try await handling {
      let caller = try Caller.required()
      try AccountRules.validateUsername(request.username)
      guard let role = Role(request.role) else { throw RPCError(code: .invalidArgument, message: "role: required") }
      try checkManageable(role, by: caller)
      let name = request.displayName.trimmingCharacters(in: .whitespacesAndNewlines)
      guard !name.isEmpty, name.count <= 50 else {
        throw RPCError(code: .invalidArgument, message: "display_name: required, at most 50 characters")
      }
      if role != .classLeader && !request.classes.isEmpty {
        throw RPCError(code: .invalidArgument, message: "classes: only class leaders are assigned classes")
      }
      let code = role.isDistrict ? nil : (request.kindergartenCode.isEmpty ? caller.kindergarten?.rawValue : request.kindergartenCode)
      let password = Secrets.oneTimePassword()
      let record = AccountRecord(
        username: request.username, role: role, kindergartenCode: code, displayName: name,
        passwordHash: try await tenancy.hasher.hashOffPool(password), createdAt: tenancy.now(), classes: request.classes)
      try await tenancy.registry.createAccount(record)
      AuditTargets.add("account:\(record.username)")
      return .with {
        $0.account = record.proto(now: tenancy.now())
        $0.oneTimePassword = password
      }
    }
  }

  private func change(
    _ username: String, _ body: @escaping @Sendable (inout AccountRecord, Caller) throws -> Void
  ) async throws -> AccountRecord {
    let caller = try Caller.required()
    guard let existing = try await tenancy.registry.account(username) else {
      throw RPCError(code: .notFound, message: "username: no account '\(username)'")
    }
    try checkManageable(existing.role, by: caller)
    return try await tenancy.registry.updateAccount(username) { try body(&$0, caller) }
  }

  func disableAccount(request: Pemis_V1_AccountRequest, context: ServerContext) async throws -> Pemis_V1_Account {
    try await handling {
      let record = try await change(request.username) { record, caller in
        guard record.username != caller.username else {
          throw RPCError(code: .failedPrecondition, message: "username: you cannot disable your own account")
        }
        record.disabled = true
      }
      try await tenancy.registry.deleteSessions(username: record.username)
      return record.proto(now: tenancy.now())
    }
  }

  func enableAccount(request: Pemis_V1_AccountRequest, context: ServerContext) async throws -> Pemis_V1_Account {
    try await handling {
      try await change(request.username) { record, _ in record.disabled = false }.proto(now: tenancy.now())
    }
  }

  func resetPassword(
    request: Pemis_V1_AccountRequest, context: ServerContext
  ) async throws -> Pemis_V1_ResetPasswordResponse {
    try await handling {
      let password = Secrets.oneTimePassword()
      let hash = try await tenancy.hasher.hashOffPool(password)
      let record = try await change(request.username) { record, _ in
        record.passwordHash = hash
        record.mustChangePassword = true
        record.failedLogins = 0
        record.lockedUntil = 0
      }
      try await tenancy.registry.deleteSessions(username: record.username)
      // A reset unlocks everywhere: the owner starts afresh at every address.
      try await tenancy.registry.clearLoginCounters(username: record.username)
      return .with {
        $0.account = record.proto(now: tenancy.now())
        $0.oneTimePassword = password
      }
    }
  }

  func unsealAccount(request: Pemis_V1_AccountRequest, context: ServerContext) async throws -> Pemis_V1_Account {
    try await handling {
      let now = tenancy.now()
      return try await change(request.username) { record, _ in
        guard record.sealed else {
          throw RPCError(code: .failedPrecondition, message: "username: account \(record.username) is not sealed")
        }
        record.sealed = false
        record.unsealedAt = now
      }.proto(now: now)
    }
  }

  func listAccounts(
    request: Pemis_V1_ListAccountsRequest, context: ServerContext
  ) async throws -> Pemis_V1_ListAccountsResponse {
    try await handling {
      let caller = try Caller.required()
      let page = try Page(request.page)
      let code = request.kindergartenCode.isEmpty ? caller.kindergarten?.rawValue : request.kindergartenCode
      let (accounts, total) = try await tenancy.registry.accounts(kindergarten: code, offset: page.offset, limit: page.limit)
      let now = tenancy.now()
      return .with {
        $0.accounts = accounts.map { $0.proto(now: now) }
        $0.page = page.info(total: total, returned: accounts.count)
      }
    }
  }
}
