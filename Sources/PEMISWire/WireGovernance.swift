public import Logging
internal import NIOCore
internal import Synchronization

#if canImport(Glibc)
  internal import Glibc
#elseif canImport(Darwin)
  internal import Darwin
#endif

/// What every connection of one server shares: the memory budget, the timeouts that reclaim
/// calls and connections that make no progress, and the rate limit on logging bad connections.
final class WireGovernance: Sendable {
  let budget: WireMemoryBudget
  let badConnectionLog: RateLimitedLog
  /// A call must half-close within this (nil: no limit).
  let halfCloseTimeout: TimeAmount?
  /// A connection whose answers stay unwritten this long is closed (nil: never).
  let unreadResponseTimeout: TimeAmount?
  /// Unwritten response bytes of one connection above which its writers wait.
  let maxUnwrittenBytesPerConnection: Int
  /// Unread request bytes one connection may hold.
  let maxBufferedRequestBytesPerConnection: Int

  init(
    budgetBytes: Int, halfCloseTimeout: TimeAmount?, unreadResponseTimeout: TimeAmount?,
    maxUnwrittenBytesPerConnection: Int, maxBufferedRequestBytesPerConnection: Int, logLinesPerMinute: Int
  ) {
    self.budget = WireMemoryBudget(limit: budgetBytes)
    self.badConnectionLog = RateLimitedLog(linesPerWindow: logLinesPerMinute, window: .seconds(60))
    self.halfCloseTimeout = halfCloseTimeout
    self.unreadResponseTimeout = unreadResponseTimeout
    self.maxUnwrittenBytesPerConnection = maxUnwrittenBytesPerConnection
    self.maxBufferedRequestBytesPerConnection = maxBufferedRequestBytesPerConnection
  }
}

/// Bytes of requests and responses buffered by all connections of a server, against one limit.
///
/// Connections report what they hold after every change; a request that would go over is
/// refused, and a writer waits until others drain, so a crowd of clients that never read cannot
/// push the process past the budget.
///
/// The bytes counted are the messages themselves; the process holds more for them (decoded
/// copies, buffers rounded up to a power of two, the state of each connection), so a server with
/// a memory limit also watches its resident size (``ProcessMemoryWatch``): under memory pressure
/// the budget counts as spent whatever it holds.
final class WireMemoryBudget: Sendable {
  let limit: Int
  private let used = Atomic<Int>(0)
  private let memoryPressure = Atomic<Bool>(false)

  init(limit: Int) { self.limit = limit }

  var bytesInUse: Int { used.load(ordering: .relaxed) }

  /// Whether the process is short of memory (``ProcessMemoryWatch``).
  var underMemoryPressure: Bool { memoryPressure.load(ordering: .relaxed) }

  func setMemoryPressure(_ pressure: Bool) { memoryPressure.store(pressure, ordering: .relaxed) }

  /// Whether `bytes` more would go over the limit, or the process is short of memory.
  func wouldExceed(_ bytes: Int) -> Bool { underMemoryPressure || used.load(ordering: .relaxed) + bytes > limit }

  func adjust(by delta: Int) {
    if delta != 0 { used.wrappingAdd(delta, ordering: .relaxed) }
  }
}

/// At most `linesPerWindow` log lines per window; what is held back is counted and reported
/// once the next line gets through, so a flood of bad connections (or of calls refused for load)
/// cannot fill the log.
public final class RateLimitedLog: Sendable {
  private let linesPerWindow: Int
  private let window: Duration
  private let state: Mutex<(start: ContinuousClock.Instant, lines: Int, suppressed: Int)>

  public init(linesPerWindow: Int, window: Duration, start: ContinuousClock.Instant = .now) {
    self.linesPerWindow = linesPerWindow
    self.window = window
    self.state = Mutex((start, 0, 0))
  }

  /// Logs `message` unless this window's lines are used up.
  public func log(_ logger: Logger, _ level: Logger.Level, _ message: @autoclosure () -> String, metadata: Logger.Metadata = [:]) {
    guard let suppressed = admit(at: .now) else { return }
    var metadata = metadata
    if suppressed > 0 { metadata["wire.log.suppressed"] = "\(suppressed)" }
    logger.log(level: level, "\(message())", metadata: metadata)
  }

  /// Whether a line may go out at `now`: nil if not, else how many were held back before it.
  func admit(at now: ContinuousClock.Instant) -> Int? {
    state.withLock { state -> Int? in
      if now - state.start >= window {
        state.start = now
        state.lines = 0
      }
      guard state.lines < linesPerWindow else {
        state.suppressed += 1
        return nil
      }
      state.lines += 1
      defer { state.suppressed = 0 }
      return state.suppressed
    }
  }
}

/// On the listening channel, ahead of NIO's acceptor: refuses a connection over the server-wide
/// or per-address limit by closing it before it is set up, so it never costs more than a
/// moment of its descriptor and is never served.
final class ConnectionAdmission: ChannelInboundHandler, Sendable {
  typealias InboundIn = any Channel
  typealias InboundOut = any Channel

  private let maxConnections: Int
  private let maxPerAddress: Int
  private let budget: WireMemoryBudget?
  private let log: RateLimitedLog
  private let logger: Logger
  private let counts = Mutex<(total: Int, perAddress: [String: Int])>((0, [:]))

  /// `budget`: while it reports memory pressure, new connections are refused too.
  init(maxConnections: Int, maxPerAddress: Int, budget: WireMemoryBudget? = nil, log: RateLimitedLog, logger: Logger) {
    self.maxConnections = maxConnections
    self.maxPerAddress = maxPerAddress
    self.budget = budget
    self.log = log
    self.logger = logger
  }

  /// Connections admitted and not yet closed.
  var openConnections: Int { counts.withLock { $0.total } }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    let child = unwrapInboundIn(data)
    // The IP address without the port: one client machine, however many sockets.
    let address = child.remoteAddress?.ipAddress ?? "unknown"
    let refusal = counts.withLock { counts -> String? in
      if budget?.underMemoryPressure == true { return "server is short of memory" }
      if counts.total >= maxConnections { return "server connection limit reached (\(maxConnections))" }
      if counts.perAddress[address, default: 0] >= maxPerAddress {
        return "connection limit for one address reached (\(maxPerAddress))"
      }
      counts.total += 1
      counts.perAddress[address, default: 0] += 1
      return nil
    }
    if let refusal {
      log.log(logger, .warning, "refusing connection: \(refusal)", metadata: ["wire.peer": "\(address)"])
      child.close(promise: nil)
      return
    }
    child.closeFuture.whenComplete { _ in self.release(address) }
    context.fireChannelRead(data)
  }

  private func release(_ address: String) {
    counts.withLock { counts in
      counts.total -= 1
      counts.perAddress[address, default: 1] -= 1
      if counts.perAddress[address] == 0 { counts.perAddress.removeValue(forKey: address) }
    }
  }
}

/// The process's descriptor limit, which bounds how many connections can be open.
enum DescriptorLimit {
  /// Raises the soft RLIMIT_NOFILE to the hard limit (a server may use what it is allowed) and
  /// returns the soft limit now in force, or nil if it cannot be read.
  static func raiseSoftLimit() -> Int? {
    #if os(Linux)
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return nil }
    if limit.rlim_cur < limit.rlim_max {
      var raised = limit
      raised.rlim_cur = min(limit.rlim_max, 1 << 20)
      if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
    }
    return limit.rlim_cur == rlim_t.max ? Int.max : Int(clamping: limit.rlim_cur)
    #else
    return nil
    #endif
  }
}
