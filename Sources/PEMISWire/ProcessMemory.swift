internal import CPEMISSystem
internal import Logging
internal import NIOCore
internal import NIOPosix
internal import Synchronization

#if canImport(Glibc)
  internal import Glibc
#elseif canImport(Darwin)
  internal import Darwin
#endif

/// The process's resident memory (RSS), as the system counts it.
enum ProcessMemory {
  /// Bytes resident now, from `/proc/self/statm` (Linux); nil where it cannot be read.
  static func residentBytes() -> Int? {
    #if os(Linux)
    let fd = open("/proc/self/statm", O_RDONLY)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 128)
    let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
    guard count > 0 else { return nil }
    return parseStatm(buffer[0..<count]).map { $0 * Int(sysconf(Int32(_SC_PAGESIZE))) }
    #else
    return nil
    #endif
  }

  /// The resident pages of a `statm` line ("size resident shared text lib data dt").
  static func parseStatm(_ line: some Collection<UInt8>) -> Int? {
    let fields = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: true)
    guard fields.count >= 2 else { return nil }
    var pages = 0
    for digit in fields[1] {
      guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(digit) else { return nil }
      let (times, overflow) = pages.multipliedReportingOverflow(by: 10)
      guard !overflow else { return nil }
      pages = times + Int(digit - UInt8(ascii: "0"))
    }
    return pages
  }
}

/// When the process is short of memory, decided from samples of its resident size: pure, so
/// the thresholds are tested without a process to fill.
///
/// Under pressure (resident at 7/8 of the limit or more, leaving room for what arrives between
/// two samples) the server treats its budget as spent: connections that hold memory get no new
/// request messages, their writers wait for the socket to drain, and new connections are
/// refused. Freed memory is handed back to the system (at most once a second while resident is
/// over half the limit), so the resident size falls once the crowd has gone instead of staying
/// at its peak and keeping the server refusing.
struct MemoryPressurePolicy: Sendable, Equatable {
  let limit: Int
  private(set) var underPressure = false
  private(set) var lastRelease: ContinuousClock.Instant?

  init(limit: Int) { self.limit = limit }

  var threshold: Int { limit - limit / 8 }

  enum Change: Equatable {
    case began
    case ended
  }

  /// One sample: whether pressure began or ended, and whether to release free memory now.
  mutating func sample(resident: Int, at now: ContinuousClock.Instant) -> (change: Change?, release: Bool) {
    let pressure = resident >= threshold
    let change: Change? = pressure == underPressure ? nil : (pressure ? .began : .ended)
    underPressure = pressure
    var release = false
    if resident >= limit / 2, lastRelease.map({ now - $0 >= .seconds(1) }) ?? true {
      lastRelease = now
      release = true
    }
    return (change, release)
  }
}

/// Samples the process's resident size for one server and sets its budget's pressure flag.
final class ProcessMemoryWatch: Sendable {
  /// Samples a second: what can arrive between two is what the 1/8 headroom must hold.
  static let interval = TimeAmount.milliseconds(20)

  private let policy: Mutex<MemoryPressurePolicy>
  private let budget: WireMemoryBudget
  private let logger: Logger
  private let resident: @Sendable () -> Int?

  init(limit: Int, budget: WireMemoryBudget, logger: Logger, resident: @escaping @Sendable () -> Int? = ProcessMemory.residentBytes) {
    self.policy = Mutex(MemoryPressurePolicy(limit: limit))
    self.budget = budget
    self.logger = logger
    self.resident = resident
  }

  func sample() {
    guard let bytes = resident() else { return }
    let (change, release, pressure, limit) = policy.withLock { policy in
      let (change, release) = policy.sample(resident: bytes, at: .now)
      return (change, release, policy.underPressure, policy.limit)
    }
    budget.setMemoryPressure(pressure)
    let metadata: Logger.Metadata = [
      "memory.resident_mb": "\(bytes >> 20)", "memory.limit_mb": "\(limit >> 20)",
      "wire.budget_in_use_mb": "\(budget.bytesInUse >> 20)",
    ]
    switch change {
    case .began?:
      logger.warning("server is short of memory: refusing new connections and requests from connections that hold memory", metadata: metadata)
    case .ended?:
      logger.notice("memory pressure is over", metadata: metadata)
    case nil:
      break
    }
    if release {
      // Off the event loops: it walks the heap.
      NIOThreadPool.singleton.submit { _ in _ = cpemis_release_free_memory() }
    }
  }

  /// Samples every ``interval`` on `loop` until the returned task is cancelled.
  func start(on loop: any EventLoop) -> RepeatedTask {
    loop.scheduleRepeatedTask(initialDelay: .zero, delay: Self.interval) { _ in self.sample() }
  }
}
