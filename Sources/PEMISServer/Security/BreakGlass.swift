internal import Foundation
internal import Logging
internal import PEMISDomain
internal import PEMISWire
public import PEMISStore

/// Break-glass: what the operator of the server host may do to accounts without logging in
/// (`pemis-server admin …`), when no district administrator can. Only whoever can open the data
/// directory (owner-only, 0700) gets here; every step is written to the audit log, by the same
/// chain the server writes, so `audit verify` stays intact and the step stays visible.
extension Tenancy {
  /// Who the audit log names for these steps: the host's user, not an account.
  static var operatorName: String { "operator:\(NSUserName())" }

  /// Unseals an account (and lets it start afresh: its failed attempts are forgotten).
  public func breakGlassUnseal(_ username: String) async throws -> AccountRecord {
    try AccountRules.validateUsername(username)
    let now = self.now()
    return try await audited("unseal", username: username) {
      let account = try await registry.updateAccount(username) { record in
        guard record.sealed else {
          throw StoreError(.failedPrecondition, "username: account \(record.username) is not sealed")
        }
        record.sealed = false
        record.unsealedAt = now
      }
      try await registry.clearLoginCounters(username: username)
      return account
    }
  }

  /// Sets a one-time password (`password`, or a generated one when nil), to be changed at the
  /// next login; ends the account's sessions and forgets its failed attempts. Returns the
  /// password.
  public func breakGlassResetPassword(_ username: String, password: String?) async throws -> String {
    try AccountRules.validateUsername(username)
    let password = password ?? Secrets.oneTimePassword()
    try AccountRules.validatePassword(password, username: username, field: "password")
    let hash = try await hasher.hashOffPool(password)
    _ = try await audited("reset-password", username: username) {
      let account = try await registry.updateAccount(username) { record in
        record.passwordHash = hash
        record.mustChangePassword = true
        record.failedLogins = 0
        record.lockedUntil = 0
      }
      try await registry.deleteSessions(username: username)
      try await registry.clearLoginCounters(username: username)
      return account
    }
    return password
  }

  /// Creates a district administrator with a one-time password (`password`, or a generated one
  /// when nil). Returns the password.
  public func breakGlassCreateDistrictAdmin(_ username: String, displayName: String, password: String?) async throws -> String {
    try AccountRules.validateUsername(username)
    let name = displayName.trimmingCharacters(in: .whitespacesAndNewlines)
    guard !name.isEmpty, name.count <= 50 else {
      throw DomainError(field: "name", rule: "length", "required, at most 50 characters")
    }
    let password = password ?? Secrets.oneTimePassword()
    try AccountRules.validatePassword(password, username: username, field: "password")
    let account = AccountRecord(
      username: username, role: .districtAdmin, kindergartenCode: nil, displayName: name,
      passwordHash: try await hasher.hashOffPool(password), createdAt: now())
    _ = try await audited("create-district-admin", username: username) {
      try await registry.createAccount(account)
      return account
    }
    return password
  }

  /// Runs a step between its two entries: STARTED before it is taken (no step without its
  /// entry: if that cannot be written, the step is not taken), then its outcome.
  private func audited(_ step: String, username: String, _ body: () async throws -> AccountRecord) async throws -> AccountRecord {
    var entry = AuditRecord(
      atMs: now() * 1000, username: Self.operatorName, role: "operator", kindergartenCode: "",
      method: "pemis-server admin \(step)", targets: ["account:\(username)"], result: AuditRecord.startedResult,
      peer: "host:pid \(ProcessInfo.processInfo.processIdentifier)")
    try await registry.appendAudit(entry)
    do {
      let account = try await body()
      entry.result = "OK"
      entry.kindergartenCode = account.kindergartenCode ?? ""
      entry.atMs = now() * 1000
      try await registry.appendAudit(entry)
      return account
    } catch {
      entry.result = ErrorStatus.code(of: error).grpcName
      _ = try? await registry.appendAudit(entry)
      throw error
    }
  }

  /// At start: attempts a previous process counted but never settled count as failures.
  func prepareLogins() async throws {
    try await registry.settleAbandonedLogins()
    try await registry.pruneLogins(now: now(), rules: logins.rules)
  }

  /// Now and then: expired sessions and forgotten counters go.
  func pruneLogins() async {
    do {
      let pruned = try await registry.pruneLogins(now: now(), rules: logins.rules)
      if pruned.sessions > 0 { logger.debug("removed \(pruned.sessions) expired sessions") }
    } catch {
      logger.error("pruning sessions failed", metadata: ["error": "\(error)"])
    }
  }
}
