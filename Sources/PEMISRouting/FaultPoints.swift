internal import Synchronization
internal import PEMISStore

/// Named points between the steps of every multi-file operation (`enroll.reserved`,
/// `transfer.received`, …: docs/ROUTING.md lists them), where a test makes the operation fail or
/// "crash" — stop without any cleanup, as a killed process would — to prove that recovery
/// finishes it. Nothing is armed unless a test arms it: in a server, every point is a lock-free
/// check of an empty table.
public final class FaultPoints: Sendable {
  public enum Action: Sendable, Hashable {
    /// The step throws; the operation's own error handling runs (release, compensation).
    case fail
    /// The step throws ``FaultInjected`` with kind `.crash`; the operation does no cleanup.
    case crash
  }

  private struct State {
    var armed: [String: (action: Action, remaining: Int)] = [:]
    var hits: [String: Int] = [:]
    var any = false
  }
  private let state = Mutex(State())

  public init() {}

  /// Arms `point` for its next `times` hits.
  public func arm(_ point: String, _ action: Action, times: Int = 1) {
    state.withLock {
      $0.armed[point] = (action, times)
      $0.any = true
    }
  }

  public func disarmAll() {
    state.withLock {
      $0.armed = [:]
      $0.any = false
    }
  }

  /// How often each point was passed while anything was armed (for the property test's figures).
  public var hits: [String: Int] { state.withLock { $0.hits } }

  /// Called by the router between two steps.
  func hit(_ point: String) throws(FaultInjected) {
    let action: Action? = state.withLock { state in
      guard state.any else { return nil }
      state.hits[point, default: 0] += 1
      guard let armed = state.armed[point] else { return nil }
      if armed.remaining <= 1 { state.armed[point] = nil } else { state.armed[point] = (armed.action, armed.remaining - 1) }
      return armed.action
    }
    if let action { throw FaultInjected(point: point, kind: action) }
  }
}

/// The error an armed fault point throws.
public struct FaultInjected: Error, Sendable, CustomStringConvertible {
  public var point: String
  public var kind: FaultPoints.Action
  public var description: String { "fault injected at \(point) (\(kind == .crash ? "crash" : "failure"))" }
}

extension StoreError.Kind {
  /// Failures that repeating the same step cannot mend: a saga step that meets one ends in a
  /// compensating state with the reason instead of being retried every minute.
  var isPermanent: Bool { [.notFound, .alreadyExists, .failedPrecondition, .invalidArgument, .permissionDenied].contains(self) }
}
