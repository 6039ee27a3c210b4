internal import Foundation
internal import GRPCCore
internal import PEMISDomain
internal import PEMISProto
internal import PEMISStore
internal import SwiftProtobuf

/// `pemis.v1.Session`: login with lockout and sealing, one-time passwords, logout.
struct SessionService: Pemis_V1_Session.SimpleServiceProtocol {
  let tenancy: Tenancy

  func login(request: Pemis_V1_LoginRequest, context: ServerContext) async throws -> Pemis_V1_LoginResponse {
    try await handling {
      let now = tenancy.now()
      let wrong = RPCError(code: .unauthenticated, message: "login: username or password is wrong")
      guard let account = try await tenancy.registry.account(request.username) else {
        // Spend the same time as a real check, so timing does not reveal which usernames exist.
        _ = await tenancy.hasher.verifyOffPool(request.password, against: tenancy.decoyHash)
        throw wrong
      }
      AuditTargets.add("account:\(account.username)")
      if account.disabled {
        throw RPCError(code: .unauthenticated, message: "login: account \(account.username) is disabled; ask your administrator")
      }
      if account.sealed || now - account.lastUsedAt > AccountRules.sealAfterSeconds {
        if !account.sealed { try await tenancy.registry.updateAccount(account.username) { $0.sealed = true } }
        throw RPCError(
          code: .unauthenticated,
          message: "login: account \(account.username) is sealed after six months unused; a district administrator must unseal it")
      }
      if account.lockedUntil > now {
        throw RPCError(
          code: .unauthenticated,
          message: "login: account \(account.username) is locked after \(AccountRules.maxFailedLogins) failed logins; try again in \((account.lockedUntil - now + 59) / 60) min or have the password reset")
      }
      guard await tenancy.hasher.verifyOffPool(request.password, against: account.passwordHash) else {
        let updated = try await tenancy.registry.updateAccount(account.username) { record in
          record.failedLogins += 1
          if record.failedLogins >= AccountRules.maxFailedLogins {
            record.failedLogins = 0
            record.lockedUntil = now + AccountRules.lockoutSeconds
          }
        }
        if updated.lockedUntil > now {
          throw RPCError(
            code: .unauthenticated,
            message: "login: username or password is wrong; the account is now locked for \(AccountRules.lockoutSeconds / 60) min")
        }
        throw wrong
      }
      let updated = try await tenancy.registry.updateAccount(account.username) { record in
        record.failedLogins = 0
        record.lockedUntil = 0
        record.lastLoginAt = now
      }
      let token = Secrets.sessionToken()
      let expires = now + AccountRules.sessionSeconds
      try await tenancy.registry.createSession(
        SessionRecord(tokenHash: Secrets.tokenHash(token), username: account.username, createdAt: now, expiresAt: expires))
      return .with {
        $0.token = token
        $0.expiresAt = expires
        $0.account = updated.proto(now: now)
        $0.passwordChangeRequired = updated.mustChangePassword
      }
    }
  }

  func changePassword(
    request: Pemis_V1_ChangePasswordRequest, context: ServerContext
  ) async throws -> Pemis_V1_ChangePasswordResponse {
    try await handling {
      let caller = try Caller.required()
      guard let account = try await tenancy.registry.account(caller.username),
        await tenancy.hasher.verifyOffPool(request.currentPassword, against: account.passwordHash)
      else {
        throw RPCError(code: .permissionDenied, message: "current_password: is wrong")
      }
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
