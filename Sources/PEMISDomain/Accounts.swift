/// Rules for account names and passwords.
public enum AccountRules {
  /// 3–32 characters: lower-case ASCII letters, digits, '.', '_' and '-', starting with a letter.
  public static func validateUsername(_ name: String, field: String = "username") throws(DomainError) {
    let bytes = Array(name.utf8)
    guard (3...32).contains(bytes.count) else {
      throw DomainError(field: field, rule: "length", "must be 3 to 32 characters")
    }
    guard let first = bytes.first, (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(first) else {
      throw DomainError(field: field, rule: "format", "must start with a lower-case letter")
    }
    for byte in bytes {
      let ok = (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
        || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
      guard ok else {
        throw DomainError(field: field, rule: "format", "may contain only a-z, 0-9, '.', '_' and '-'")
      }
    }
  }

  /// At least 10 characters, with at least one letter and one digit, and not the username.
  public static func validatePassword(_ password: String, username: String, field: String = "new_password") throws(DomainError) {
    guard password.count >= 10 else {
      throw DomainError(field: field, rule: "length", "must be at least 10 characters")
    }
    guard password.count <= 128 else {
      throw DomainError(field: field, rule: "length", "must be at most 128 characters")
    }
    guard password.contains(where: \.isLetter), password.contains(where: \.isNumber) else {
      throw DomainError(field: field, rule: "strength", "must contain at least one letter and one digit")
    }
    guard password.lowercased() != username.lowercased() else {
      throw DomainError(field: field, rule: "strength", "must not be the username")
    }
  }

  /// Failed logins that lock an account out from the address they came from (``LoginThrottle``).
  public static let maxFailedLogins = 5
  /// How long a lockout lasts after the last of them.
  public static let lockoutSeconds: Int64 = 15 * 60
  /// Accounts unused this long are sealed until a district administrator unseals them.
  public static let sealAfterSeconds: Int64 = 183 * 24 * 3600
  /// How long a session lasts.
  public static let sessionSeconds: Int64 = 12 * 3600
}

/// Sealing (accounts unused for six months), as a rule with no storage, so it can be tested alone.
public enum Sealing {
  /// Whether an account unused since `lastUsedAt` is to be sealed at `now`. A district
  /// administrator is not sealed when no other active (neither sealed nor disabled) district
  /// administrator would remain: someone must always be able to unseal the others.
  public static func shouldSeal(
    lastUsedAt: Int64, now: Int64, isDistrictAdmin: Bool, otherActiveDistrictAdmins: Int
  ) -> Bool {
    guard now - lastUsedAt > AccountRules.sealAfterSeconds else { return false }
    return !isDistrictAdmin || otherActiveDistrictAdmins > 0
  }
}

/// How password attempts are counted and slowed down (docs/TENANCY.md, "Lockout and
/// throttling"). Three counters, each a ``Bucket``:
/// - one account from one address: ``failuresPerAddress`` failures lock that address (only that
///   one) out of that account for ``lockoutSeconds``;
/// - one address, any account: past ``freeFailuresPerSource`` failures, each next attempt waits
///   an increasing delay (1 s, 2 s, 4 s … ``maxDelaySeconds``);
/// - one account from unfamiliar addresses (where it never logged in successfully): the same
///   after ``freeFailuresPerAccount``, against guessing from many addresses.
/// An address where the account logged in within ``familiarSeconds`` skips the last two, so a
/// stranger elsewhere can slow down the account's strangers but never its owner.
/// An attempt is counted before its password is checked (``Bucket/inFlight``), so guesses sent at
/// once cannot overtake the count.
public struct LoginThrottle: Sendable, Hashable {
  public var failuresPerAddress: Int
  public var lockoutSeconds: Int64
  public var freeFailuresPerSource: Int
  public var freeFailuresPerAccount: Int
  public var maxDelaySeconds: Int64
  /// Quiet time after which a source's or an account's count starts afresh (beyond its delay).
  public var forgetSeconds: Int64
  public var familiarSeconds: Int64

  /// 5 failures lock an address out of an account for 15 min; 20 free failures per address and
  /// per account (unfamiliar addresses), then delays doubling from 1 s up to 15 min; counts
  /// forgotten after an hour of quiet; an address stays familiar 90 days after a login.
  public static let defaults = LoginThrottle(
    failuresPerAddress: AccountRules.maxFailedLogins, lockoutSeconds: AccountRules.lockoutSeconds,
    freeFailuresPerSource: 20, freeFailuresPerAccount: 20, maxDelaySeconds: 15 * 60, forgetSeconds: 3600,
    familiarSeconds: 90 * 24 * 3600)

  public init(
    failuresPerAddress: Int, lockoutSeconds: Int64, freeFailuresPerSource: Int, freeFailuresPerAccount: Int,
    maxDelaySeconds: Int64, forgetSeconds: Int64, familiarSeconds: Int64
  ) {
    self.failuresPerAddress = failuresPerAddress
    self.lockoutSeconds = lockoutSeconds
    self.freeFailuresPerSource = freeFailuresPerSource
    self.freeFailuresPerAccount = freeFailuresPerAccount
    self.maxDelaySeconds = maxDelaySeconds
    self.forgetSeconds = forgetSeconds
    self.familiarSeconds = familiarSeconds
  }

  /// One counter: failures (and attempts still being checked) since it was last forgotten.
  public struct Bucket: Sendable, Hashable {
    /// Attempts that failed (a success amid other attempts counts here too; see ``settle``).
    public var failures: Int
    /// Attempts counted and not yet settled: their passwords are being checked.
    public var inFlight: Int
    /// When the last attempt was counted or settled (seconds since 1970).
    public var lastAt: Int64

    public init(failures: Int = 0, inFlight: Int = 0, lastAt: Int64 = 0) {
      self.failures = failures
      self.inFlight = inFlight
      self.lastAt = lastAt
    }

    /// Whether nothing remains to remember.
    public var isEmpty: Bool { failures == 0 && inFlight == 0 }
  }

  /// The wait before the next attempt after `failures` failures: none while under `free`,
  /// then 1 s, 2 s, 4 s … at most ``maxDelaySeconds``.
  public func delay(failures: Int, free: Int) -> Int64 {
    guard failures >= free else { return 0 }
    let over = failures - free + 1
    guard over <= 30 else { return maxDelaySeconds }
    return min(Int64(1) << Int64(over - 1), maxDelaySeconds)
  }

  /// An account from one address: locked once its failures (counted and in flight) reach the
  /// limit; ``current(_:free:quiet:now:)`` with ``lockoutSeconds`` forgets them after that long.
  public func pairAdmits(_ bucket: Bucket) -> Bool {
    bucket.failures + bucket.inFlight < failuresPerAddress
  }

  /// A source or an account: free attempts while under `free`, then one at a time, each after
  /// its delay.
  public func delayedAdmits(_ bucket: Bucket, free: Int, now: Int64) -> Bool {
    if bucket.failures + bucket.inFlight < free { return true }
    return bucket.inFlight == 0 && now >= bucket.lastAt + delay(failures: bucket.failures, free: free)
  }

  /// An attempt in flight this long was never settled (its check was lost): counted as failed.
  public static let abandonedSeconds: Int64 = 60

  /// The bucket as it is at `now`: attempts left in flight for ``abandonedSeconds`` count as
  /// failures (so losing a call cannot block a counter), and it is forgotten once quiet for
  /// `quiet` plus its delay.
  public func current(_ bucket: Bucket, free: Int, quiet: Int64, now: Int64) -> Bucket {
    var bucket = bucket
    if bucket.inFlight > 0 && now - bucket.lastAt >= Self.abandonedSeconds {
      bucket.failures += bucket.inFlight
      bucket.inFlight = 0
    }
    guard bucket.inFlight == 0, now - bucket.lastAt >= quiet + delay(failures: bucket.failures, free: free) else {
      return bucket
    }
    return Bucket(lastAt: bucket.lastAt)
  }

  /// Counts an attempt before its password is checked.
  public func reserve(_ bucket: inout Bucket, now: Int64) {
    bucket.inFlight += 1
    bucket.lastAt = now
  }

  /// Settles a counted attempt. A failure stays counted. A success (`forgiving`: the counter of
  /// the account at this address) forgives the earlier failures only when no other attempt is
  /// in flight; amid others (guesses sent at once) it stays counted, so a burst never gains fresh
  /// attempts from the right password. Elsewhere a success is simply not counted.
  public func settle(_ bucket: inout Bucket, succeeded: Bool, forgiving: Bool, now: Int64) {
    bucket.inFlight = max(0, bucket.inFlight - 1)
    bucket.lastAt = now
    guard succeeded else {
      bucket.failures += 1
      return
    }
    guard forgiving else { return }
    if bucket.inFlight == 0 { bucket.failures = 0 } else { bucket.failures += 1 }
  }
}
