internal import Foundation
internal import NIOCore
internal import NIOPosix
internal import PEMISDomain
internal import Synchronization

/// Where password checks of logins pass. It bounds how many run at once for unfamiliar
/// attempts (an address the account never logged in from) and refuses the rest at once, so a
/// flood of guesses cannot occupy the hashing threads or the CPU: a real user logging in from
/// their usual address waits behind at most ``strangerSlots`` hashes. It also knows how long a
/// check takes, so attempts refused without a check cost the same time.
final class LoginGate: Sendable {
  let hasher: PasswordHasher
  let rules: LoginThrottle
  /// A hash of a random password, checked when a login names no account, so the answer takes
  /// as long as for a real account.
  let decoyHash: String
  /// Unfamiliar checks running at once, at most: half the blocking pool (NIO's, one thread a
  /// core), at least one.
  let strangerSlots: Int
  /// All checks running or queued at once, at most; beyond it even familiar ones are refused.
  let totalSlots: Int

  private struct State {
    var strangers = 0
    var total = 0
    /// Recent check time (exponential average), what a refused attempt waits.
    var checkNanoseconds: Double
  }
  private let state: Mutex<State>

  init(hasher: PasswordHasher, rules: LoginThrottle, cores: Int = System.coreCount) throws {
    self.hasher = hasher
    self.rules = rules
    strangerSlots = max(1, cores / 2)
    totalSlots = max(8, 8 * cores)
    let started = ContinuousClock.now
    decoyHash = try hasher.hash(Secrets.oneTimePassword())
    let elapsed = ContinuousClock.now - started
    state = Mutex(State(checkNanoseconds: Double(elapsed.components.attoseconds) / 1e9 + Double(elapsed.components.seconds) * 1e9))
  }

  /// Runs `body` holding one of the gate's places, or returns nil at once when none is free
  /// (too many checks already, or this is a stranger and the strangers' share is taken).
  func withPermit<T: Sendable>(familiar: Bool, _ body: () async throws -> T) async throws -> T? {
    let admitted = state.withLock { state -> Bool in
      guard state.total < totalSlots, familiar || state.strangers < strangerSlots else { return false }
      state.total += 1
      if !familiar { state.strangers += 1 }
      return true
    }
    guard admitted else { return nil }
    defer {
      state.withLock { state in
        state.total -= 1
        if !familiar { state.strangers -= 1 }
      }
    }
    return try await body()
  }

  /// Whether `password` matches `stored` (checked against the decoy when nil, so it takes as
  /// long), on the blocking pool. Call it holding a permit.
  func check(_ password: String, against stored: String?) async -> Bool {
    let started = ContinuousClock.now
    let matches = await hasher.verifyOffPool(password, against: stored ?? decoyHash)
    let elapsed = ContinuousClock.now - started
    let nanoseconds = Double(elapsed.components.seconds) * 1e9 + Double(elapsed.components.attoseconds) / 1e9
    state.withLock { $0.checkNanoseconds = 0.9 * $0.checkNanoseconds + 0.1 * nanoseconds }
    return matches && stored != nil
  }

  /// Waits as long as a check takes, without hashing: what an attempt refused by the throttle
  /// costs, so its answer comes no sooner than a wrong password's.
  func spendCheckTime() async {
    let nanoseconds = state.withLock { $0.checkNanoseconds }
    try? await Task.sleep(for: .nanoseconds(Int64(min(nanoseconds, 5e9))))
  }

  /// The address an attempt is counted against: the peer without its port. IPv6 peers are
  /// counted per /64, the block one host or household usually gets, so rotating addresses
  /// within it gains nothing.
  static func sourceAddress(ofPeer peer: String) -> String {
    if peer.hasPrefix("ipv4:") {
      let rest = peer.dropFirst(5)
      return "ipv4:" + (rest.lastIndex(of: ":").map { String(rest[..<$0]) } ?? String(rest))
    }
    if peer.hasPrefix("ipv6:") {
      var host = String(peer.dropFirst(5))
      if host.hasPrefix("["), let end = host.firstIndex(of: "]") {
        host = String(host[host.index(after: host.startIndex)..<end])
      }
      if let zone = host.firstIndex(of: "%") { host = String(host[..<zone]) }
      if let address = try? SocketAddress(ipAddress: host, port: 0), case .v6(let v6) = address {
        let bytes = withUnsafeBytes(of: v6.address.sin6_addr) { Array($0.prefix(8)) }
        let groups = stride(from: 0, to: 8, by: 2).map { String(format: "%x", Int(bytes[$0]) << 8 | Int(bytes[$0 + 1])) }
        return "ipv6:\(groups.joined(separator: ":"))::/64"
      }
      return "ipv6:\(host)"
    }
    return peer
  }
}
