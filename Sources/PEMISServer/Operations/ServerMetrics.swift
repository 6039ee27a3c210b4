internal import Foundation
internal import GRPCCore
internal import PEMISDomain
internal import PEMISStore
internal import PEMISWire
public import Prometheus
internal import Synchronization

/// The server's metrics in Prometheus's exposition format (docs/OPERATIONS.md, "Metrics"), one
/// registry per server so several servers in one process (the tests) never mix their figures.
///
/// Two kinds of figure:
/// - events recorded as they happen: calls (by listener, service, method and status, with their
///   latency), commits, recovery runs, login refusals;
/// - state read when Prometheus scrapes (``refresh(_:)``): transfers, reservations, cases,
///   overdue obligations, the shard pool, connections, the audit log's appends, the certificate.
///
/// No label carries a personal identifier or an unbounded value: services and methods are those
/// the server registers, codes are gRPC's, listeners are two, states and kinds are enums.
public final class ServerMetrics: Sendable {
  /// Where every metric lives; `/metrics` renders it.
  public let registry: PrometheusCollectorRegistry

  /// Call latencies: a fast read is a millisecond, an import of hundreds of children seconds.
  static let callBuckets: [Duration] = [
    .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
    .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10),
  ]
  /// Commit latencies: SQLite commits with fsync are a millisecond or a few on a good disk.
  static let commitBuckets: [Duration] = [
    .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
    .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .seconds(1),
  ]

  private let inFlight: [String: Gauge]
  private let registryCommits: DurationHistogram
  private let shardCommits: DurationHistogram
  private let recoveryRuns: Counter
  private let recoveryFailures: Counter
  private let loginThrottled: Counter
  private let loginBusy: Counter
  /// Scrapes are rendered one at a time: the state gauges are set, then the registry emitted.
  private let scraping = Mutex<Void>(())

  /// Whether calls and commits are recorded (the metrics listener is on). Off, nothing can read
  /// them, so the server spends nothing on them; the scrape-time state is read only by a scrape.
  let recording: Bool

  /// - Parameters:
  ///   - listeners: the listeners' names ("wire", "http2"), for their in-flight gauges.
  ///   - startedAt: the process's start, seconds since 1970.
  init(listeners: [String], version: String, startedAt: Int64, recording: Bool = true) {
    self.recording = recording
    let registry = PrometheusCollectorRegistry()
    self.registry = registry
    inFlight = Dictionary(
      uniqueKeysWithValues: listeners.map { listener in
        (
          listener,
          registry.makeGauge(
            descriptor: .init(name: "pemis_rpc_calls_in_flight", help: "Calls started and not yet finished, by listener."),
            labels: [("listener", listener)])
        )
      })
    registryCommits = registry.makeDurationHistogram(
      descriptor: .init(
        name: "pemis_store_commit_duration_seconds", help: "Time of each committed write transaction, by database file kind."),
      labels: [("database", "registry")], buckets: Self.commitBuckets)
    shardCommits = registry.makeDurationHistogram(
      descriptor: .init(
        name: "pemis_store_commit_duration_seconds", help: "Time of each committed write transaction, by database file kind."),
      labels: [("database", "shard")], buckets: Self.commitBuckets)
    recoveryRuns = registry.makeCounter(
      descriptor: .init(name: "pemis_recovery_runs_total", help: "Runs of transfer recovery (at start and every minute)."))
    recoveryFailures = registry.makeCounter(
      descriptor: .init(name: "pemis_recovery_failures_total", help: "Runs of transfer recovery that failed."))
    loginThrottled = registry.makeCounter(
      descriptor: .init(name: "pemis_login_throttled_total", help: "Password attempts refused by the throttle or a lockout."))
    loginBusy = registry.makeCounter(
      descriptor: .init(
        name: "pemis_login_busy_total", help: "Password attempts refused because too many checks were running (a flood)."))
    registry.makeGauge(
      descriptor: .init(name: "pemis_build_info", help: "The server's version, as a label; the value is 1."),
      labels: [("version", version)]
    ).set(1.0)
    registry.makeGauge(
      descriptor: .init(name: "pemis_start_time_seconds", help: "When the server started, seconds since 1970.")
    ).set(Double(startedAt))
  }

  // MARK: Events

  /// The registry's and the shards' commit hooks.
  var registryObservation: StoreObservation {
    recording ? StoreObservation { [registryCommits] in registryCommits.record($0) } : .none
  }
  var shardObservation: StoreObservation { recording ? StoreObservation { [shardCommits] in shardCommits.record($0) } : .none }

  func callStarted(listener: String) { inFlight[listener]?.increment() }

  /// A call ended with `code` after `duration`.
  func callFinished(listener: String, service: String, method: String, code: RPCError.Code?, duration: Duration) {
    inFlight[listener]?.decrement()
    let (counter, histogram) = callMetrics(CallKey(listener: listener, service: service, method: method, code: code?.grpcName ?? "OK"))
    counter.increment()
    histogram.record(duration)
  }

  private struct CallKey: Hashable, Sendable {
    var listener, service, method, code: String
  }

  /// Each call's counter and histogram, looked up once per kind of call: asking the registry
  /// (labels sorted and joined, under its lock) on every call cost the Echo benchmark a tenth of
  /// its calls per second.
  private let calls = Mutex<[CallKey: (Counter, DurationHistogram)]>([:])

  private func callMetrics(_ key: CallKey) -> (Counter, DurationHistogram) {
    if let known = calls.withLock({ $0[key] }) { return known }
    let labels = [("listener", key.listener), ("service", key.service), ("method", key.method)]
    let made = (
      registry.makeCounter(
        descriptor: .init(name: "pemis_rpc_calls_total", help: "Calls finished, by listener, service, method and gRPC status."),
        labels: labels + [("code", key.code)]),
      registry.makeDurationHistogram(
        descriptor: .init(
          name: "pemis_rpc_call_duration_seconds", help: "Time from a call's start to its end, by listener, service and method."),
        labels: labels, buckets: Self.callBuckets)
    )
    calls.withLock { $0[key] = made }
    return made
  }

  func recoveryRan(failed: Bool) {
    recoveryRuns.increment()
    if failed { recoveryFailures.increment() }
  }

  /// A password attempt refused: `reason` is one of the few the session service names
  /// (unknown-user, wrong-password, disabled, sealed).
  func loginFailed(reason: String) {
    registry.makeCounter(
      descriptor: .init(name: "pemis_login_failures_total", help: "Password attempts that failed, by reason."),
      labels: [("reason", reason)]
    ).increment()
  }

  func loginThrottledAttempt() { loginThrottled.increment() }
  func loginBusyAttempt() { loginBusy.increment() }

  // MARK: State, at each scrape

  /// What a scrape reads besides the events.
  struct State: Sendable {
    /// Nil when reading the registry failed (the scrape still answers, saying so).
    var registry: RegistryOperationalState?
    var shards: ShardPoolStatistics
    var audit: AuditStatistics
    var wire: WireListenerStatistics?
    var certificateNotValidAfter: Int64?
  }

  /// Sets the state gauges and renders every metric.
  func render(_ state: State) -> [UInt8] {
    scraping.withLock { _ in
      if let registryState = state.registry {
        for (transferState, count) in registryState.transfersByState {
          gauge("pemis_transfers", "Transfers in each state.", [("state", transferState.rawValue)]).set(Double(count))
        }
        gauge(
          "pemis_transfer_oldest_in_flight_age_seconds",
          "How long the oldest transfer mid-step has been in that step (0: none). Steps take milliseconds; recovery finishes any a crash left."
        ).set(Double(registryState.oldestInFlightTransferAge))
        gauge(
          "pemis_transfer_oldest_awaiting_receiver_age_seconds",
          "How long the oldest transfer waiting for its receiver has waited (0: none); Art. 16 gives three working days."
        ).set(Double(registryState.oldestAwaitingTransferAge))
        gauge("pemis_index_reservations_open", "District child index reservations not yet released.").set(
          Double(registryState.openReservations))
        gauge("pemis_duplicate_cases_open", "Duplicate-record cases open.").set(Double(registryState.openDuplicateCases))
        for kind in ObligationKind.allCases {
          gauge(
            "pemis_obligations_overdue", "Obligations past their due date and not done, by kind and article of the regulation.",
            [("kind", kind.rawValue), ("article", kind.rule.article)]
          ).set(Double(registryState.overdueObligations[kind] ?? 0))
        }
      }
      gauge("pemis_registry_unreadable", "1 when the last scrape could not read the registry, else 0.").set(
        state.registry == nil ? 1.0 : 0.0)
      gauge("pemis_shards_open", "Kindergarten shards open now.").set(Double(state.shards.open))
      gauge("pemis_shards_open_limit", "Most shards kept open at once (maxOpenShards).").set(Double(state.shards.maxOpen))
      mirror("pemis_shard_pool_hits_total", "Calls that found their kindergarten's shard already open.", state.shards.hits)
      mirror("pemis_shard_pool_opens_total", "Shard files opened.", state.shards.opens)
      mirror("pemis_shard_pool_evictions_total", "Shards closed to stay under the open limit.", state.shards.evictions)
      mirror("pemis_audit_appends_total", "Audit log entries committed.", state.audit.appended)
      mirror("pemis_audit_append_failures_total", "Audit log entries whose commit failed.", state.audit.failed)
      if let wire = state.wire {
        gauge("pemis_wire_connections_open", "PEMIS wire connections open.").set(Double(wire.openConnections))
        gauge("pemis_wire_connections_limit", "Most PEMIS wire connections admitted at once (maxConnections).").set(
          Double(wire.maxConnections))
        gauge("pemis_wire_buffered_bytes", "Request and response bytes the PEMIS wire connections hold, against the budget.").set(
          Double(wire.bufferedBytes))
        gauge("pemis_wire_buffer_budget_bytes", "The PEMIS wire memory budget (wireMemoryBudgetBytes).").set(Double(wire.budgetBytes))
        if let resident = wire.residentBytes {
          gauge("pemis_process_resident_memory_bytes", "The server process's resident memory (RSS).").set(Double(resident))
        }
        if let limit = wire.memoryLimitBytes {
          gauge(
            "pemis_process_memory_limit_bytes",
            "The resident memory the server keeps under (memoryLimitBytes); from 7/8 of it new work is refused."
          ).set(Double(limit))
        }
      }
      if let expiry = state.certificateNotValidAfter {
        gauge("pemis_tls_certificate_not_after_seconds", "When the TLS certificate presented now expires, seconds since 1970.").set(
          Double(expiry))
      }
      return registry.emitToBuffer()
    }
  }

  private func gauge(_ name: String, _ help: String, _ labels: [(String, String)] = []) -> Gauge {
    registry.makeGauge(descriptor: .init(name: name, help: help), labels: labels)
  }

  /// A counter whose count is kept elsewhere (the store's): set to that count.
  private func mirror(_ name: String, _ help: String, _ value: Int) {
    let counter = registry.makeCounter(descriptor: .init(name: name, help: help))
    counter.reset()
    counter.increment(by: Int64(value))
  }
}

extension MetricNameDescriptor {
  /// The whole name as Prometheus shows it (units already in it), with its help line.
  init(name: String, help: String) { self.init(metricName: name, unitName: "", helpText: help) }
}
