internal import Foundation
internal import NIOCore
internal import NIOPosix
internal import PEMISDomain
internal import Synchronization

#if canImport(Glibc)
  internal import Glibc  // sockaddr_in6's fields
#endif

/// Where password checks of logins pass. It bounds how many run at once for unfamiliar
/// attempts (an address the account never logged in from), lets a few more wait, and refuses the
/// rest at once, so a flood of guesses cannot occupy the hashing threads or the CPU: a real user
/// logging in from their usual address waits behind at most ``strangerSlots`` hashes. It also knows how long a
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
  /// All checks running at once, at most; beyond it even familiar ones are refused.
  let totalSlots: Int
  /// Strangers that may wait for a place (a morning's first logins from new addresses); beyond
  /// them a stranger is refused at once.
  let strangerQueue: Int

  private struct State {
    var strangers = 0
    var total = 0
    var queue: [CheckedContinuation<Void, Never>] = []
    /// Recent check time (exponential average), what a refused attempt waits.
    var checkNanoseconds: Double
  }
  private let state: Mutex<State>
  private enum Admission { case now, queued, refused }

  init(hasher: PasswordHasher, rules: LoginThrottle, cores: Int = System.coreCount) throws {
    self.hasher = hasher
    self.rules = rules
    strangerSlots = max(1, cores / 2)
    totalSlots = max(8, 8 * cores)
    strangerQueue = 8 * strangerSlots
    let started = ContinuousClock.now
    decoyHash = try hasher.hash(Secrets.oneTimePassword())
    let elapsed = ContinuousClock.now - started
    state = Mutex(State(checkNanoseconds: Double(elapsed.components.attoseconds) / 1e9 + Double(elapsed.components.seconds) * 1e9))
  }

  /// Runs `body` holding one of the gate's places, or returns nil at once when there is none:
  /// too many checks already, or (for a stranger) the strangers' share and its short queue are
  /// full. A stranger may wait in that queue, first come first served.
  func withPermit<T: Sendable>(familiar: Bool, _ body: () async throws -> T) async throws -> T? {
    let admission = state.withLock { state -> Admission in
      if familiar {
        guard state.total < totalSlots else { return .refused }
        state.total += 1
        return .now
      }
      if state.strangers < strangerSlots && state.total < totalSlots {
        state.strangers += 1
        state.total += 1
        return .now
      }
      return state.queue.count < strangerQueue ? .queued : .refused
    }
    switch admission {
    case .refused:
      return nil
    case .queued:
      // Resumed by a stranger leaving, who hands its place over (the counts stay).
      await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
        let handedOver = state.withLock { state -> Bool in
          // A place may have come free between the check above and here.
          if state.strangers < strangerSlots && state.total < totalSlots {
            state.strangers += 1
            state.total += 1
            return true
          }
          state.queue.append(waiter)
          return false
        }
        if handedOver { waiter.resume() }
      }
    case .now:
      break
    }
    defer {
      let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
        if !familiar, !state.queue.isEmpty { return state.queue.removeFirst() }
        state.total -= 1
        if !familiar { state.strangers -= 1 }
        return nil
      }
      next?.resume()
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
