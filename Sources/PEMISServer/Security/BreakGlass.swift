internal import Foundation
internal import Logging
internal import PEMISDomain
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
    let account = try await registry.updateAccount(username) { record in
      guard record.sealed else {
        throw StoreError(.failedPrecondition, "username: account \(record.username) is not sealed")
      }
      record.sealed = false
      record.unsealedAt = now
    }
    try await registry.clearLoginCounters(username: username)
    try await audit("unseal", account: account)
    return account
  }

  /// Sets a one-time password (`password`, or a generated one when nil), to be changed at the
  /// next login; ends the account's sessions and forgets its failed attempts. Returns the
  /// password.
  public func breakGlassResetPassword(_ username: String, password: String?) async throws -> String {
    try AccountRules.validateUsername(username)
    let password = password ?? Secrets.oneTimePassword()
    try AccountRules.validatePassword(password, username: username, field: "password")
    let hash = try await hasher.hashOffPool(password)
    let account = try await registry.updateAccount(username) { record in
      record.passwordHash = hash
      record.mustChangePassword = true
      record.failedLogins = 0
      record.lockedUntil = 0
    }
    try await registry.deleteSessions(username: username)
    try await registry.clearLoginCounters(username: username)
    try await audit("reset-password", account: account)
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
    try await registry.createAccount(account)
    try await audit("create-district-admin", account: account)
    return password
  }

  private func audit(_ step: String, account: AccountRecord) async throws {
    try await registry.appendAudit(
      AuditRecord(
        atMs: now() * 1000, username: Self.operatorName, role: "operator", kindergartenCode: account.kindergartenCode ?? "",
        method: "pemis-server admin \(step)", targets: ["account:\(account.username)"], result: "OK",
        peer: "host:pid \(ProcessInfo.processInfo.processIdentifier)"))
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
