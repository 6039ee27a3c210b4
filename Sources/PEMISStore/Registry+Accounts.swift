internal import Foundation
internal import GRDB
public import PEMISDomain

/// Login attempts, throttling, sealing and session pruning: each decision is one transaction,
/// so concurrent attempts are counted one after the other (docs/TENANCY.md).
extension Registry {
  static func registerLoginThrottleMigration(_ migrator: inout DatabaseMigrator) {
    migrator.registerMigration("v9-login-throttle") { db in
      // One row per counter: kind 'pair' (key: username US address), 'source' (address) or
      // 'account' (username, attempts from unfamiliar addresses). Usernames are counted as
      // typed, whether an account has them or not, so the counters reveal nothing.
      try db.create(table: "login_counter") { t in
        t.column("kind", .text).notNull()
        t.column("key", .text).notNull()
        t.column("failures", .integer).notNull()
        t.column("inFlight", .integer).notNull()
        t.column("lastAt", .integer).notNull().indexed()
        /// Passwords checked under this counter, ever (what a burst of guesses achieved).
        t.column("checked", .integer).notNull()
        t.primaryKey(["kind", "key"])
      }
      try db.create(table: "login_familiar") { t in
        t.column("username", .text).notNull()
        t.column("address", .text).notNull()
        t.column("lastSuccessAt", .integer).notNull().indexed()
        t.primaryKey(["username", "address"])
      }
      try db.create(index: "session_by_expiry", on: "session", columns: ["expiresAt"])
    }
  }

  private enum CounterKind: String {
    case pair, source, account
  }

  private static func pairKey(_ username: String, _ address: String) -> String { "\(username)\u{1F}\(address)" }

  private func counter(_ db: Database, _ kind: CounterKind, _ key: String) throws -> LoginThrottle.Bucket {
    guard
      let row = try Row.fetchOne(
        db.cachedStatement(sql: "SELECT failures, inFlight, lastAt FROM login_counter WHERE kind = ? AND key = ?"),
        arguments: [kind.rawValue, key])
    else { return LoginThrottle.Bucket() }
    return LoginThrottle.Bucket(failures: row["failures"], inFlight: row["inFlight"], lastAt: row["lastAt"])
  }

  private func save(_ db: Database, _ kind: CounterKind, _ key: String, _ bucket: LoginThrottle.Bucket, checked: Int = 0) throws {
    try db.cachedStatement(
      sql: """
        INSERT INTO login_counter (kind, key, failures, inFlight, lastAt, checked) VALUES (?, ?, ?, ?, ?, ?)
        ON CONFLICT (kind, key) DO UPDATE SET failures = excluded.failures, inFlight = excluded.inFlight,
          lastAt = excluded.lastAt, checked = checked + excluded.checked
        """
    ).execute(arguments: [kind.rawValue, key, bucket.failures, bucket.inFlight, bucket.lastAt, checked])
  }

  private func isFamiliar(_ db: Database, _ username: String, _ address: String, now: Int64, rules: LoginThrottle) throws -> Bool {
    let last = try Int64.fetchOne(
      db.cachedStatement(sql: "SELECT lastSuccessAt FROM login_familiar WHERE username = ? AND address = ?"),
      arguments: [username, address])
    return last.map { now - $0 < rules.familiarSeconds } ?? false
  }

  /// Whether this account logged in from this address lately (a read, before a gate is
  /// chosen; ``reserveLogin(username:address:now:rules:)`` decides again in its transaction).
  public func isFamiliarLogin(username: String, address: String, now: Int64, rules: LoginThrottle) async throws -> Bool {
    try await writer.read { db in try self.isFamiliar(db, username, address, now: now, rules: rules) }
  }

  /// What ``reserveLogin(username:address:now:rules:)`` decided.
  public struct LoginReservation: Sendable, Equatable {
    /// Whether the password may be checked; the attempt is counted when it may.
    public var admitted: Bool
    /// Whether this account logged in from this address lately (skips the source and account
    /// throttles, and gets priority for hashing).
    public var familiar: Bool
  }

  /// Whether `username` may try a password from `address` now, and if so counts the attempt
  /// (before the password is checked) on every counter that applies. One transaction, so
  /// attempts sent at once are admitted one by one against the count of those before.
  public func reserveLogin(username: String, address: String, now: Int64, rules: LoginThrottle) async throws -> LoginReservation {
    try await writer.write { db in
      let familiar = try self.isFamiliar(db, username, address, now: now, rules: rules)
      let pairKey = Self.pairKey(username, address)
      var pair = rules.current(try self.counter(db, .pair, pairKey), free: .max, quiet: rules.lockoutSeconds, now: now)
      var source = rules.current(
        try self.counter(db, .source, address), free: rules.freeFailuresPerSource, quiet: rules.forgetSeconds, now: now)
      var account = rules.current(
        try self.counter(db, .account, username), free: rules.freeFailuresPerAccount, quiet: rules.forgetSeconds, now: now)
      var admitted = rules.pairAdmits(pair)
      if !familiar {
        admitted = admitted && rules.delayedAdmits(source, free: rules.freeFailuresPerSource, now: now)
          && rules.delayedAdmits(account, free: rules.freeFailuresPerAccount, now: now)
      }
      guard admitted else { return LoginReservation(admitted: false, familiar: familiar) }
      rules.reserve(&pair, now: now)
      try self.save(db, .pair, pairKey, pair, checked: 1)
      if !familiar {
        rules.reserve(&source, now: now)
        rules.reserve(&account, now: now)
        try self.save(db, .source, address, source)
        try self.save(db, .account, username, account)
      }
      return LoginReservation(admitted: true, familiar: familiar)
    }
  }

  /// Settles an attempt ``reserveLogin(username:address:now:rules:)`` admitted. A success makes
  /// the address familiar; with a `session` (a login) it also records the login on the account,
  /// stores the session and removes the account's expired ones, and returns the account.
  @discardableResult
  public func settleLogin(
    username: String, address: String, familiar: Bool, succeeded: Bool, now: Int64, rules: LoginThrottle,
    session: SessionRecord?
  ) async throws -> AccountRecord? {
    try await writer.write { db in
      let pairKey = Self.pairKey(username, address)
      var pair = try self.counter(db, .pair, pairKey)
      rules.settle(&pair, succeeded: succeeded, forgiving: true, now: now)
      try self.save(db, .pair, pairKey, pair)
      if !familiar {
        for (kind, key) in [(CounterKind.source, address), (.account, username)] {
          var bucket = try self.counter(db, kind, key)
          rules.settle(&bucket, succeeded: succeeded, forgiving: false, now: now)
          try self.save(db, kind, key, bucket)
        }
      }
      guard succeeded else { return nil }
      try db.cachedStatement(
        sql: """
          INSERT INTO login_familiar (username, address, lastSuccessAt) VALUES (?, ?, ?)
          ON CONFLICT (username, address) DO UPDATE SET lastSuccessAt = excluded.lastSuccessAt
          """
      ).execute(arguments: [username, address, now])
      guard let session, var account = try AccountRecord.fetchOne(db, key: username) else { return nil }
      account.failedLogins = 0
      account.lockedUntil = 0
      account.lastLoginAt = now
      try account.update(db)
      try db.cachedStatement(sql: "DELETE FROM session WHERE username = ? AND expiresAt <= ?").execute(arguments: [username, now])
      try session.insert(db)
      return account
    }
  }

  /// Passwords checked for `username` (every address), ever: what a burst of guesses got.
  public func checkedPasswords(username: String) async throws -> Int {
    try await writer.read { db in
      try Int.fetchOne(
        db, sql: "SELECT COALESCE(SUM(checked), 0) FROM login_counter WHERE kind = 'pair' AND key LIKE ? ESCAPE '!'",
        arguments: [Self.likePrefix(username) + "\u{1F}%"]) ?? 0
    }
  }

  private static func likePrefix(_ text: String) -> String {
    text.replacingOccurrences(of: "!", with: "!!").replacingOccurrences(of: "%", with: "!%").replacingOccurrences(of: "_", with: "!_")
  }

  /// Forgets every count against `username` (a password reset, an unsealing): its owner starts
  /// afresh everywhere.
  public func clearLoginCounters(username: String) async throws {
    try await writer.write { db in
      try db.execute(
        sql: "DELETE FROM login_counter WHERE (kind = 'pair' AND key LIKE ? ESCAPE '!') OR (kind = 'account' AND key = ?)",
        arguments: [Self.likePrefix(username) + "\u{1F}%", username])
    }
  }

  /// Removes expired sessions, counters quiet long enough to be forgotten, and addresses no
  /// longer familiar: the tables stay as small as the district's recent activity.
  @discardableResult
  public func pruneLogins(now: Int64, rules: LoginThrottle) async throws -> (sessions: Int, counters: Int) {
    try await writer.write { db in
      try db.execute(sql: "DELETE FROM session WHERE expiresAt <= ?", arguments: [now])
      let sessions = db.changesCount
      // The longest a counter is remembered: its quiet time plus the largest delay.
      let horizon = max(rules.lockoutSeconds, rules.forgetSeconds + rules.maxDelaySeconds)
      try db.execute(sql: "DELETE FROM login_counter WHERE inFlight = 0 AND lastAt <= ?", arguments: [now - horizon])
      let counters = db.changesCount
      try db.execute(sql: "DELETE FROM login_familiar WHERE lastSuccessAt <= ?", arguments: [now - rules.familiarSeconds])
      return (sessions, counters)
    }
  }

  /// Attempts still counted as in flight after a restart were never settled: the process that
  /// checked them is gone. Counted as failures, so a crash cannot be used to gain attempts.
  public func settleAbandonedLogins() async throws {
    try await writer.write { db in
      try db.execute(sql: "UPDATE login_counter SET failures = failures + inFlight, inFlight = 0 WHERE inFlight > 0")
    }
  }

  /// Seals `username` if ``Sealing/shouldSeal(lastUsedAt:now:isDistrictAdmin:otherActiveDistrictAdmins:)``
  /// says so, counting the other active district administrators in the same transaction, so two
  /// idle administrators cannot both be sealed. Returns the account as it is now.
  public func sealIfDue(_ username: String, now: Int64) async throws -> AccountRecord? {
    try await writer.write { db in
      guard var account = try AccountRecord.fetchOne(db, key: username) else { return nil }
      guard !account.sealed else { return account }
      let others = try Int.fetchOne(
        db,
        sql: "SELECT COUNT(*) FROM account WHERE role = ? AND sealed = 0 AND disabled = 0 AND username != ?",
        arguments: [Role.districtAdmin.rawValue, username]) ?? 0
      if Sealing.shouldSeal(
        lastUsedAt: account.lastUsedAt, now: now, isDistrictAdmin: account.role == .districtAdmin,
        otherActiveDistrictAdmins: others)
      {
        account.sealed = true
        try account.update(db)
      }
      return account
    }
  }
}
