internal import Foundation
internal import GRPCCore
internal import PEMISDomain
internal import PEMISProto
internal import PEMISStore
internal import SwiftProtobuf

/// `pemis.v1.Session`: login with throttling, lockout and sealing, one-time passwords, logout.
///
/// A password attempt (Login, and ChangePassword's current password) is first counted in the
/// registry (``Registry/reserveLogin(username:address:now:rules:)``), then checked through the
/// ``LoginGate``, then settled. Every refusal — unknown user, wrong password, locked or throttled,
/// sealed, disabled — gets the same status and message after the same time, so none of them tells
/// a stranger anything (docs/TENANCY.md, "Login").
struct SessionService: Pemis_V1_Session.SimpleServiceProtocol {
  let tenancy: Tenancy

  /// The one answer to every failed login.
  static let refused = RPCError(
    code: .unauthenticated,
    message: "login: username or password is wrong, or the account may not log in now; check both, wait a few minutes, or ask your administrator")
  /// The one answer to every failed current password in ChangePassword.
  static let wrongCurrent = RPCError(
    code: .permissionDenied, message: "current_password: is wrong, or too many wrong attempts; wait a few minutes")
  /// Too many checks running at once (a login flood): refused before anything is counted.
  static let busy = RPCError(
    code: .unavailable, message: "login: the server is checking too many passwords at once; try again in a few seconds")
  /// What a username that breaks the username rules is counted as: all such names share one
  /// counter (none can log in), so junk names add no rows.
  static let invalidUsername = "(invalid)"

  /// The outcome of one counted attempt.
  enum Attempt {
    case passed(AccountRecord)
    case failed(reason: String)
    /// Not checked: the throttle refused the attempt.
    case throttled
  }

  /// Counts, checks and settles one password attempt of `username` from the caller's address,
  /// holding a place at the ``LoginGate`` (refused at once, uncounted, when there is none).
  /// `check` decides with the account (nil when none has the name) whether the attempt passed,
  /// given whether the password matched; `succeed` gives the session a success opens, stored in
  /// the same transaction that settles the count.
  private func attempt(
    username typed: String, password: String, context: ServerContext, refusal: RPCError,
    check: @Sendable (AccountRecord?, Bool) async throws -> Attempt,
    succeed: @Sendable (AccountRecord) -> SessionRecord?
  ) async throws -> AccountRecord {
    let gate = tenancy.logins
    let registry = tenancy.registry
    let now = tenancy.now()
    let address = LoginGate.sourceAddress(ofPeer: context.remotePeer)
    let username = (try? AccountRules.validateUsername(typed)) == nil ? Self.invalidUsername : typed
    let known = try await registry.isFamiliarLogin(username: username, address: address, now: now, rules: gate.rules)
    let result = try await gate.withPermit(familiar: known) { () async throws -> Attempt in
      let reservation = try await registry.reserveLogin(username: username, address: address, now: now, rules: gate.rules)
      guard reservation.admitted else { return .throttled }
      // Counted: from here the attempt is settled whatever happens, even if the call is
      // cancelled (the settle runs in a task of its own, awaited), so no count stays in flight.
      let familiar = reservation.familiar
      let settle: @Sendable (Bool, SessionRecord?) async throws -> AccountRecord? = { succeeded, session in
        try await Task {
          try await registry.settleLogin(
            username: username, address: address, familiar: familiar, succeeded: succeeded, now: now, rules: gate.rules,
            session: session)
        }.value
      }
      let outcome: Attempt
      do {
        let account = username == Self.invalidUsername ? nil : try await registry.account(username)
        outcome = try await check(account, await gate.check(password, against: account?.passwordHash))
      } catch {
        _ = try? await settle(false, nil)
        throw error
      }
      switch outcome {
      case .passed(let account):
        return .passed(try await settle(true, succeed(account)) ?? account)
      case .failed, .throttled:
        _ = try await settle(false, nil)
        return outcome
      }
    }
    switch result {
    case nil:
      tenancy.metrics.loginBusyAttempt()
      throw Self.busy
    case .passed(let account):
      return account
    case .throttled:
      tenancy.metrics.loginThrottledAttempt()
      AuditTargets.add("login:throttled")
      // As long as a check would have taken, outside the gate (sleeping holds no thread).
      await gate.spendCheckTime()
      throw refusal
    case .failed(let reason):
      tenancy.metrics.loginFailed(reason: reason)
      AuditTargets.add("login:\(reason)")
      throw refusal
    }
  }

  /// Whether a checked attempt passed: the password matched an account that may log in now.
  /// An account unused for six months is sealed here (never the last active district
  /// administrator: ``Registry/sealIfDue(_:now:)``).
  private func verdict(_ account: AccountRecord?, matched: Bool) async throws -> Attempt {
    guard let account else { return .failed(reason: "unknown-user") }
    let now = tenancy.now()
    var current = account
    // Only an account past six months takes the sealing transaction, so an attempt on a live
    // account costs what one on an unknown name does.
    if !account.sealed && now - account.lastUsedAt > AccountRules.sealAfterSeconds {
      current = try await tenancy.registry.sealIfDue(account.username, now: now) ?? account
    }
    if current.disabled { return .failed(reason: "disabled") }
    if current.sealed { return .failed(reason: "sealed") }
    return matched ? .passed(current) : .failed(reason: "wrong-password")
  }

  func login(request: Pemis_V1_LoginRequest, context: ServerContext) async throws -> Pemis_V1_LoginResponse {
    try await handling {
      let now = tenancy.now()
      let token = Secrets.sessionToken()
      let expires = now + AccountRules.sessionSeconds
      let account = try await attempt(
        username: request.username, password: request.password, context: context, refusal: Self.refused,
        check: { account, matched in try await verdict(account, matched: matched) },
        succeed: { account in
          SessionRecord(tokenHash: Secrets.tokenHash(token), username: account.username, createdAt: now, expiresAt: expires)
        })
      AuditTargets.add("account:\(account.username)")
      return .with {
        $0.token = token
        $0.expiresAt = expires
        $0.account = account.proto(now: now)
        $0.passwordChangeRequired = account.mustChangePassword
      }
    }
  }

  func changePassword(
    request: Pemis_V1_ChangePasswordRequest, context: ServerContext
  ) async throws -> Pemis_V1_ChangePasswordResponse {
    try await handling {
      let caller = try Caller.required()
      // The current password is an attempt like a login's: counted first, throttled, and its
      // failures lock this address out of the account like failed logins.
      _ = try await attempt(
        username: caller.username, password: request.currentPassword, context: context, refusal: Self.wrongCurrent,
        check: { account, matched in
          guard let account else { return .failed(reason: "unknown-user") }
          return matched ? .passed(account) : .failed(reason: "wrong-password")
        },
        succeed: { _ in nil })
      try AccountRules.validatePassword(request.newPassword, username: caller.username)
      guard request.newPassword != request.currentPassword else {
        throw RPCError(code: .invalidArgument, message: "new_password: must differ from the current password")
      }
      let hash = try await tenancy.hasher.hashOffPool(request.newPassword)
      let updated = try await tenancy.registry.updateAccount(caller.username) { record in
        record.passwordHash = hash
        record.mustChangePassword = false
      }
      return .with { $0.account = updated.proto(now: tenancy.now()) }
    }
  }

  func logout(request: Pemis_V1_LogoutRequest, context: ServerContext) async throws -> Pemis_V1_LogoutResponse {
    try await handling {
      let caller = try Caller.required()
      try await tenancy.registry.deleteSession(tokenHash: caller.tokenHash)
      return .init()
    }
  }

  func whoAmI(request: Pemis_V1_WhoAmIRequest, context: ServerContext) async throws -> Pemis_V1_WhoAmIResponse {
    try await handling {
      let caller = try Caller.required()
      guard let account = try await tenancy.registry.account(caller.username) else {
        throw RPCError(code: .unauthenticated, message: "authorization: the account no longer exists")
      }
      return .with {
        $0.account = account.proto(now: tenancy.now())
        $0.sessionExpiresAt = caller.sessionExpiresAt
      }
    }
  }
}
