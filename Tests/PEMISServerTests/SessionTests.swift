import GRDB
import GRPCCore
import PEMISClient
import PEMISDomain
import PEMISProto
import SwiftProtobuf
import Testing

@testable import PEMISServer
@testable import PEMISStore

@Suite("Sessions and accounts")
struct SessionTests {
  func whoAmI(_ district: District, token: String) async throws -> Pemis_V1_WhoAmIResponse {
    try await withPEMISClient(district.address, token: token) { client in
      try await Pemis_V1_Session.Client(wrapping: client).whoAmI(.init())
    }
  }

  func code(_ body: () async throws -> Void) async -> RPCError.Code? {
    do {
      try await body()
      return nil
    } catch let error as RPCError {
      return error.code
    } catch {
      return .unknown
    }
  }

  @Test("a one-time password opens only ChangePassword, WhoAmI and Logout until it is changed")
  func oneTimePassword() async throws {
    try await withDistrict { district in
      let created = try await district.as(.districtAdmin) { client in
        try await Pemis_V1_Accounts.Client(wrapping: client).createAccount(.with {
          $0.username = "new.clerk"
          $0.role = .preschoolOffice
          $0.displayName = "新职员"
        })
      }
      let login = try await district.login("new.clerk", created.oneTimePassword)
      #expect(login.passwordChangeRequired)
      let denied = await code {
        _ = try await withPEMISClient(district.address, token: login.token) { client in
          try await Pemis_V1_Onboarding.Client(wrapping: client).listApplications(.init())
        }
      }
      #expect(denied == .permissionDenied)
      #expect(try await whoAmI(district, token: login.token).account.passwordChangeRequired)
      // The new password must follow the rules and differ from the old one.
      let weak = await code {
        _ = try await withPEMISClient(district.address, token: login.token) { client in
          try await Pemis_V1_Session.Client(wrapping: client).changePassword(.with {
            $0.currentPassword = created.oneTimePassword
            $0.newPassword = "password"
          })
        }
      }
      #expect(weak == .invalidArgument)
      _ = try await withPEMISClient(district.address, token: login.token) { client in
        try await Pemis_V1_Session.Client(wrapping: client).changePassword(.with {
          $0.currentPassword = created.oneTimePassword
          $0.newPassword = "Clerk-2026-own"
        })
      }
      _ = try await withPEMISClient(district.address, token: login.token) { client in
        try await Pemis_V1_Onboarding.Client(wrapping: client).listApplications(.init())
      }
      // The one-time password no longer works.
      #expect(await code { _ = try await district.login("new.clerk", created.oneTimePassword) } == .unauthenticated)
    }
  }

  @Test("five wrong passwords lock the account for 15 minutes; a reset or the clock unlocks it")
  func lockout() async throws {
    try await withDistrict { district in
      let user = District.user(.financeOffice)
      for _ in 1...4 {
        #expect(await code { _ = try await district.login(user, "wrong-password-1") } == .unauthenticated)
      }
      var message = ""
      do { _ = try await district.login(user, "wrong-password-1") } catch let error as RPCError { message = error.message }
      // The same answer as any failed login: a stranger learns nothing about the lock.
      #expect(message == SessionService.refused.message)
      // Even the right password is refused while locked.
      #expect(await code { _ = try await district.login(user) } == .unauthenticated)
      district.clock.advance(AccountRules.lockoutSeconds + 1)
      _ = try await district.login(user)
    }
  }

  @Test("an account unused for six months is sealed until a district administrator unseals it")
  func sealing() async throws {
    try await withDistrict { district in
      // Keep the administrator's own account in use.
      let adminToken = try await district.login(District.user(.districtAdmin)).token
      district.clock.advance(AccountRules.sealAfterSeconds + 3600)
      let user = District.user(.planningOffice)
      var message = ""
      do { _ = try await district.login(user) } catch let error as RPCError { message = error.message }
      #expect(message == SessionService.refused.message)
      #expect(try await district.registry.account(user)?.sealed == true)
      // The administrator's session is 12 hours old by now: it expired.
      #expect(await code { _ = try await whoAmI(district, token: adminToken) } == .unauthenticated)
      // The administrator is idle too, but the district's last active one is never sealed
      // (AuthenticationTests): it unseals the planning office.
      _ = try await district.as(.districtAdmin) { client in
        try await Pemis_V1_Accounts.Client(wrapping: client).unsealAccount(.with { $0.username = user })
      }
      _ = try await district.login(user)
    }
  }

  @Test("sessions expire after 12 hours and end at logout; the token is stored only hashed")
  func sessions() async throws {
    try await withDistrict { district in
      let login = try await district.login(District.user(.preschoolOffice))
      #expect(try await whoAmI(district, token: login.token).account.username == District.user(.preschoolOffice))
      // Only the hash is in the registry.
      #expect(try await district.registry.session(tokenHash: Secrets.tokenHash(login.token)) != nil)
      let stored = try await district.registry.writer.read { db in try String.fetchAll(db, sql: "SELECT tokenHash FROM session") }
      #expect(!stored.contains(login.token))
      _ = try await withPEMISClient(district.address, token: login.token) { client in
        try await Pemis_V1_Session.Client(wrapping: client).logout(.init())
      }
      #expect(await code { _ = try await whoAmI(district, token: login.token) } == .unauthenticated)

      let second = try await district.login(District.user(.preschoolOffice))
      district.clock.advance(AccountRules.sessionSeconds + 1)
      #expect(await code { _ = try await whoAmI(district, token: second.token) } == .unauthenticated)
      #expect(await code { _ = try await whoAmI(district, token: "forged-token") } == .unauthenticated)
    }
  }

  @Test("disabling an account ends its sessions and refuses login; a principal may not disable a principal")
  func disable() async throws {
    try await withDistrict { district in
      let user = District.user(.classLeader)
      let token = try await district.login(user).token
      _ = try await district.as(.principal) { client in
        try await Pemis_V1_Accounts.Client(wrapping: client).disableAccount(.with { $0.username = user })
      }
      #expect(await code { _ = try await whoAmI(district, token: token) } == .unauthenticated)
      #expect(await code { _ = try await district.login(user) } == .unauthenticated)
      let principalB = District.user(.principal, kindergarten: District.kindergartenB)
      #expect(
        await code {
          _ = try await district.as(.principal) { client in
            try await Pemis_V1_Accounts.Client(wrapping: client).disableAccount(.with { $0.username = District.user(.principal) })
          }
        } == .permissionDenied)
      #expect(
        await code {
          _ = try await district.as(.principal) { client in
            try await Pemis_V1_Accounts.Client(wrapping: client).disableAccount(.with { $0.username = principalB })
          }
        } == .permissionDenied)
      #expect(
        await code {
          _ = try await district.as(.districtAdmin) { client in
            try await Pemis_V1_Accounts.Client(wrapping: client).disableAccount(.with { $0.username = District.user(.districtAdmin) })
          }
        } == .failedPrecondition)
    }
  }

  @Test("a principal creates staff accounts for its own kindergarten only, never a principal or district account")
  func principalCreates() async throws {
    try await withDistrict { district in
      let created = try await district.as(.principal) { client in
        try await Pemis_V1_Accounts.Client(wrapping: client).createAccount(.with {
          $0.username = "leader.small1"
          $0.role = .classLeader
          $0.displayName = "小一班班长"
          $0.classes = ["small-1"]
        })
      }
      #expect(created.account.kindergartenCode == District.kindergartenA)
      #expect(created.account.classes == ["small-1"])
      for role in [Pemis_V1_Role.principal, .districtAdmin] {
        #expect(
          await code {
            _ = try await district.as(.principal) { client in
              try await Pemis_V1_Accounts.Client(wrapping: client).createAccount(.with {
                $0.username = "x\(role.rawValue)"
                $0.role = role
                $0.displayName = "x"
              })
            }
          } == .permissionDenied)
      }
      #expect(
        await code {
          _ = try await district.as(.districtAdmin) { client in
            try await Pemis_V1_Accounts.Client(wrapping: client).createAccount(.with {
              $0.username = "leader.small1"
              $0.role = .classLeader
              $0.kindergartenCode = District.kindergartenA
              $0.displayName = "重名"
            })
          }
        } == .alreadyExists)
    }
  }
}
