import GRDB
import GRPCCore
import PEMISClient
import PEMISDomain
import PEMISProto
import SwiftProtobuf
import Testing

@testable import PEMISServer
@testable import PEMISStore

/// Authentication as an attacker tries it: guesses sent at once, names probed, accounts locked
/// from elsewhere (docs/TENANCY.md, "Login").
@Suite("Authentication that holds")
struct AuthenticationTests {
  struct Answer: Sendable, Hashable {
    var code: RPCError.Code?
    var message: String
  }

  func login(_ district: District, _ username: String, _ password: String) async -> Answer {
    do {
      _ = try await district.login(username, password)
      return Answer(code: nil, message: "")
    } catch let error as RPCError {
      return Answer(code: error.code, message: error.message)
    } catch {
      return Answer(code: .unknown, message: "\(error)")
    }
  }

  /// 100 logins of `username` at once on one connection, the right password (sent last) among
  /// them.
  func burst(_ district: District, _ username: String) async throws -> [Answer] {
    try await withPEMISClient(district.address) { client in
      let session = Pemis_V1_Session.Client(wrapping: client)
      return await withTaskGroup(of: Answer.self) { group in
        for n in 0..<100 {
          group.addTask {
            do {
              _ = try await session.login(.with {
                $0.username = username
                $0.password = n == 99 ? District.password : "Wrong-guess-\(n)"
              })
              return Answer(code: nil, message: "")
            } catch let error as RPCError {
              return Answer(code: error.code, message: error.message)
            } catch {
              return Answer(code: .unknown, message: "\(error)")
            }
          }
        }
        var answers: [Answer] = []
        for await answer in group { answers.append(answer) }
        return answers
      }
    }
  }

  func pairFailures(_ district: District, _ username: String) async throws -> Int {
    try await district.registry.writer.read { db in
      try Int.fetchOne(
        db, sql: "SELECT COALESCE(SUM(failures), 0) FROM login_counter WHERE kind = 'pair' AND key LIKE ?",
        arguments: ["\(username)\u{1F}%"]) ?? 0
    }
  }

  @Test(
    "100 guesses at once, the right one among them: at most the lockout limit are checked",
    arguments: [false, true])
  func concurrentGuesses(familiar: Bool) async throws {
    try await withDistrict { district in
      let user = "burst.target"
      try await district.seedAccount(user, .planningOffice)
      // Familiar: the account logged in from this address before, so the gate lets many checks
      // run at once and only the count in the registry stands between the guesses and the hash.
      if familiar { _ = try await district.login(user) }
      let before = try await district.registry.checkedPasswords(username: user)
      let answers = try await burst(district, user)
      let checked = try await district.registry.checkedPasswords(username: user) - before
      #expect(answers.count == 100)
      #expect(checked <= AccountRules.maxFailedLogins, "checked \(checked) passwords")
      #expect(checked >= 1)
      #expect(answers.filter { $0.code == nil }.count <= 1)
      for answer in answers where answer.code != nil {
        #expect(answer.code == .unauthenticated || answer.code == .unavailable, "\(answer)")
      }
      // Once the limit is reached, the right password no longer gets in from here.
      if try await pairFailures(district, user) >= AccountRules.maxFailedLogins {
        #expect(await login(district, user, District.password).code == .unauthenticated)
      }
      // Nothing stays counted as in flight.
      let inFlight = try await district.registry.writer.read { db in
        try Int.fetchOne(db, sql: "SELECT COALESCE(SUM(inFlight), 0) FROM login_counter") ?? 0
      }
      #expect(inFlight == 0)
    }
  }

  @Test("unknown user, wrong password, locked, sealed and disabled get the same status and message")
  func identicalRefusals() async throws {
    try await withDistrict { district in
      for name in ["probe.wrong", "probe.locked", "probe.sealed", "probe.disabled"] {
        try await district.seedAccount(name, .financeOffice)
      }
      let unknown = await login(district, "probe.nobody", "Wrong-guess-1")
      let wrong = await login(district, "probe.wrong", "Wrong-guess-1")
      for _ in 1...AccountRules.maxFailedLogins { _ = await login(district, "probe.locked", "Wrong-guess-1") }
      let locked = await login(district, "probe.locked", District.password)
      try await district.registry.updateAccount("probe.sealed") { $0.sealed = true }
      let sealed = await login(district, "probe.sealed", District.password)
      try await district.registry.updateAccount("probe.disabled") { $0.disabled = true }
      let disabled = await login(district, "probe.disabled", District.password)
      let invalid = await login(district, "Not A Name", "Wrong-guess-1")
      #expect(unknown.code == .unauthenticated)
      for answer in [wrong, locked, sealed, disabled, invalid] {
        #expect(answer == unknown)
      }
      #expect(!unknown.message.contains("probe"))
      #expect(!unknown.message.isEmpty)
    }
  }

  @Test("wrong current passwords in ChangePassword count like failed logins")
  func changePasswordCounts() async throws {
    try await withDistrict { district in
      let user = "clerk.change"
      try await district.seedAccount(user, .preschoolOffice)
      let token = try await district.login(user).token
      func change(_ current: String) async -> RPCError.Code? {
        do {
          _ = try await withPEMISClient(district.address, token: token) { client in
            try await Pemis_V1_Session.Client(wrapping: client).changePassword(.with {
              $0.currentPassword = current
              $0.newPassword = "Clerk-2026-new"
            })
          }
          return nil
        } catch let error as RPCError {
          return error.code
        } catch {
          return .unknown
        }
      }
      for _ in 1...AccountRules.maxFailedLogins { #expect(await change("Wrong-guess-1") == .permissionDenied) }
      // Locked at this address: the right current password, and a login, are refused too.
      #expect(await change(District.password) == .permissionDenied)
      #expect(await login(district, user, District.password).code == .unauthenticated)
      district.clock.advance(AccountRules.lockoutSeconds + 1)
      #expect(await change(District.password) == nil)
    }
  }

  @Test("a stranger's failures lock only the stranger's address; the owner's usual address still gets in")
  func strangerCannotKeepAccountLocked() async throws {
    try await withDistrict { district in
      let registry = district.registry
      let rules = LoginThrottle.defaults
      let user = "owner.account"
      let owner = "ipv4:10.1.1.10"
      let now = district.clock.now
      // The owner logged in from their office before.
      let first = try await registry.reserveLogin(username: user, address: owner, now: now, rules: rules)
      #expect(first.admitted && !first.familiar)
      try await registry.settleLogin(username: user, address: owner, familiar: false, succeeded: true, now: now, rules: rules, session: nil)
      // A stranger fails at one address until it is locked out there.
      let stranger = "ipv4:203.0.113.7"
      for _ in 1...rules.failuresPerAddress {
        let reservation = try await registry.reserveLogin(username: user, address: stranger, now: now, rules: rules)
        #expect(reservation.admitted)
        try await registry.settleLogin(
          username: user, address: stranger, familiar: reservation.familiar, succeeded: false, now: now, rules: rules, session: nil)
      }
      #expect(try await registry.reserveLogin(username: user, address: stranger, now: now, rules: rules).admitted == false)
      // Then from many addresses, past the account's free failures: strangers are slowed down.
      for n in 1...rules.freeFailuresPerAccount {
        let address = "ipv4:198.51.100.\(n)"
        let reservation = try await registry.reserveLogin(username: user, address: address, now: now, rules: rules)
        if reservation.admitted {
          try await registry.settleLogin(
            username: user, address: address, familiar: false, succeeded: false, now: now, rules: rules, session: nil)
        }
      }
      #expect(try await registry.reserveLogin(username: user, address: "ipv4:192.0.2.1", now: now, rules: rules).admitted == false)
      // The owner's address is neither locked nor slowed down.
      let ownerAgain = try await registry.reserveLogin(username: user, address: owner, now: now, rules: rules)
      #expect(ownerAgain.admitted && ownerAgain.familiar)
      try await registry.settleLogin(username: user, address: owner, familiar: true, succeeded: true, now: now, rules: rules, session: nil)
      // A reset forgets every count.
      try await registry.clearLoginCounters(username: user)
      #expect(try await registry.reserveLogin(username: user, address: stranger, now: now, rules: rules).admitted)
    }
  }

  @Test("one address guessing many accounts is slowed down after its free failures")
  func sourceThrottle() async throws {
    try await withDistrict { district in
      let registry = district.registry
      let rules = LoginThrottle.defaults
      let address = "ipv4:203.0.113.9"
      let now = district.clock.now
      for n in 1...rules.freeFailuresPerSource {
        let reservation = try await registry.reserveLogin(username: "spray\(n)", address: address, now: now, rules: rules)
        #expect(reservation.admitted)
        try await registry.settleLogin(
          username: "spray\(n)", address: address, familiar: false, succeeded: false, now: now, rules: rules, session: nil)
      }
      #expect(try await registry.reserveLogin(username: "spray.next", address: address, now: now, rules: rules).admitted == false)
      // After the delay one more attempt, then a longer delay.
      district.clock.advance(1)
      let later = district.clock.now
      #expect(try await registry.reserveLogin(username: "spray.next", address: address, now: later, rules: rules).admitted)
      try await registry.settleLogin(
        username: "spray.next", address: address, familiar: false, succeeded: false, now: later, rules: rules, session: nil)
      #expect(try await registry.reserveLogin(username: "spray.last", address: address, now: later + 1, rules: rules).admitted == false)
      #expect(try await registry.reserveLogin(username: "spray.last", address: address, now: later + 2, rules: rules).admitted)
    }
  }

  @Test("expired sessions are removed at login and by pruning; forgotten counters go too")
  func sessionPruning() async throws {
    try await withDistrict { district in
      let user = District.user(.preschoolOffice)
      _ = try await district.login(user)
      _ = try await district.login(District.user(.planningOffice))
      _ = await login(district, "nobody.here", "Wrong-guess-1")
      func sessions(_ username: String? = nil) async throws -> Int {
        try await district.registry.writer.read { db in
          try Int.fetchOne(
            db, sql: "SELECT COUNT(*) FROM session WHERE expiresAt <= ? AND (? IS NULL OR username = ?)",
            arguments: [district.clock.now, username, username]) ?? 0
        }
      }
      district.clock.advance(AccountRules.sessionSeconds + 1)
      #expect(try await sessions(user) > 0)
      _ = try await district.login(user)
      #expect(try await sessions(user) == 0)
      #expect(try await sessions() > 0)
      district.clock.advance(2 * 3600)
      let pruned = try await district.registry.pruneLogins(now: district.clock.now, rules: .defaults)
      #expect(pruned.sessions > 0)
      #expect(pruned.counters > 0)
      #expect(try await sessions() == 0)
    }
  }

  @Test("after six months unused accounts are sealed, but never the last active district administrator")
  func lastAdministratorIsNotSealed() async throws {
    try await withDistrict { district in
      district.clock.advance(AccountRules.sealAfterSeconds + 3600)
      let admin = District.user(.districtAdmin)
      // The only district administrator: still gets in.
      _ = try await district.login(admin)
      #expect(try await district.registry.account(admin)?.sealed == false)
      let planning = District.user(.planningOffice)
      #expect(await login(district, planning, District.password).code == .unauthenticated)
      #expect(try await district.registry.account(planning)?.sealed == true)
    }
  }

  @Test("of two idle district administrators only one is sealed")
  func oneOfTwoAdministrators() async throws {
    try await withDistrict { district in
      try await district.seedAccount("second.admin", .districtAdmin)
      district.clock.advance(AccountRules.sealAfterSeconds + 3600)
      let admin = District.user(.districtAdmin)
      #expect(await login(district, admin, District.password).code == .unauthenticated)
      #expect(try await district.registry.account(admin)?.sealed == true)
      _ = try await district.login("second.admin")
      #expect(try await district.registry.account("second.admin")?.sealed == false)
    }
  }

  // MARK: The rules alone

  @Test("sealing: after six months, except the last active district administrator")
  func sealingRule() {
    let now: Int64 = 1_800_000_000
    let idle = now - AccountRules.sealAfterSeconds - 1
    #expect(!Sealing.shouldSeal(lastUsedAt: now - 86400, now: now, isDistrictAdmin: false, otherActiveDistrictAdmins: 0))
    #expect(Sealing.shouldSeal(lastUsedAt: idle, now: now, isDistrictAdmin: false, otherActiveDistrictAdmins: 0))
    #expect(!Sealing.shouldSeal(lastUsedAt: idle, now: now, isDistrictAdmin: true, otherActiveDistrictAdmins: 0))
    #expect(Sealing.shouldSeal(lastUsedAt: idle, now: now, isDistrictAdmin: true, otherActiveDistrictAdmins: 1))
    #expect(
      !Sealing.shouldSeal(
        lastUsedAt: now - AccountRules.sealAfterSeconds, now: now, isDistrictAdmin: false, otherActiveDistrictAdmins: 0))
  }

  @Test("throttle: delays double from 1 s to the cap; a success amid a burst gains no attempts")
  func throttleRules() {
    let rules = LoginThrottle.defaults
    #expect(rules.delay(failures: 19, free: 20) == 0)
    #expect(rules.delay(failures: 20, free: 20) == 1)
    #expect(rules.delay(failures: 22, free: 20) == 4)
    #expect(rules.delay(failures: 200, free: 20) == rules.maxDelaySeconds)
    var bucket = LoginThrottle.Bucket()
    for _ in 0..<rules.failuresPerAddress {
      #expect(rules.pairAdmits(bucket))
      rules.reserve(&bucket, now: 100)
    }
    // All five in flight: a sixth is refused before any is checked.
    #expect(!rules.pairAdmits(bucket))
    // The right password settles amid the others: it stays counted.
    rules.settle(&bucket, succeeded: true, forgiving: true, now: 101)
    #expect(!rules.pairAdmits(bucket))
    for _ in 1..<rules.failuresPerAddress { rules.settle(&bucket, succeeded: false, forgiving: true, now: 101) }
    #expect(!rules.pairAdmits(rules.current(bucket, free: .max, quiet: rules.lockoutSeconds, now: 102)))
    #expect(rules.pairAdmits(rules.current(bucket, free: .max, quiet: rules.lockoutSeconds, now: 101 + rules.lockoutSeconds)))
    // A success alone forgives earlier typos.
    var typos = LoginThrottle.Bucket()
    for _ in 0..<3 {
      rules.reserve(&typos, now: 100)
      rules.settle(&typos, succeeded: false, forgiving: true, now: 100)
    }
    rules.reserve(&typos, now: 100)
    rules.settle(&typos, succeeded: true, forgiving: true, now: 100)
    #expect(typos.failures == 0)
    // An attempt never settled counts as a failure after a while, so it cannot block a counter.
    var lost = LoginThrottle.Bucket()
    rules.reserve(&lost, now: 100)
    let later = rules.current(lost, free: 20, quiet: rules.forgetSeconds, now: 100 + LoginThrottle.abandonedSeconds)
    #expect(later.inFlight == 0 && later.failures == 1)
  }

  @Test("the source address is the peer without its port; IPv6 counted per /64")
  func sourceAddress() {
    #expect(LoginGate.sourceAddress(ofPeer: "ipv4:10.0.0.5:51234") == "ipv4:10.0.0.5")
    #expect(LoginGate.sourceAddress(ofPeer: "ipv6:[2001:db8:1:2:3:4:5:6]:443") == "ipv6:2001:db8:1:2::/64")
    #expect(
      LoginGate.sourceAddress(ofPeer: "ipv6:[2001:db8:1:2::9]:1") == LoginGate.sourceAddress(ofPeer: "ipv6:[2001:db8:1:2:ffff::1]:2"))
    #expect(LoginGate.sourceAddress(ofPeer: "ipv6:[::1]:7") == "ipv6:0:0:0:0::/64")
  }
}
