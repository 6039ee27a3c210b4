internal import Foundation
internal import Synchronization
public import Logging
public import PEMISDomain
public import PEMISStore

/// The routing layer: everything that crosses kindergartens (docs/ROUTING.md). It owns the order
/// of writes between the registry and the shards, since two SQLite files cannot commit together:
/// the district child index, the transfer saga and its recovery, the duplicate sweep, and the
/// district summary fanned out over the shards.
public final class Router: Sendable {
  public let registry: Registry
  public let shards: ShardPool
  /// The working-day calendar every due date is counted in; the server replaces it when the
  /// operator reloads the calendar folder (SIGHUP).
  public var calendar: WorkingDayCalendar { calendars.withLock { $0 } }
  private let calendars: Mutex<WorkingDayCalendar>
  /// Seconds since 1970 (injected for tests).
  let now: @Sendable () -> Int64
  let logger: Logger
  let summaries = SummaryCache()
  /// This process's name on the reservations it makes: recovery leaves a live process's
  /// reservations alone until their lease runs out.
  public let instance: String
  /// Seconds a reservation is left to its owner before recovery may end it.
  let leaseSeconds: Int64
  /// A transfer mid-step for longer than this is reported by the check and warned of in the log.
  public let stuckTransferSeconds: Int64
  /// Fault points between the steps of every multi-file operation, for tests.
  public let faults: FaultPoints

  /// Due dates counted from now on use `calendar` (a reloaded calendar folder).
  public func replaceCalendar(_ calendar: WorkingDayCalendar) { calendars.withLock { $0 = calendar } }

  public init(
    registry: Registry, shards: ShardPool, calendar: WorkingDayCalendar, logger: Logger, now: @escaping @Sendable () -> Int64,
    leaseSeconds: Int64 = 600, stuckTransferSeconds: Int64 = 600, faults: FaultPoints = FaultPoints()
  ) {
    self.registry = registry
    self.shards = shards
    self.calendars = Mutex(calendar)
    self.logger = logger
    self.now = now
    self.instance = "P" + UUID().uuidString
    self.leaseSeconds = leaseSeconds
    self.stuckTransferSeconds = stuckTransferSeconds
    self.faults = faults
  }

  var today: CalendarDate { CalendarDate(beijingTimeOf: now()) }

  func shard(_ code: String) async throws -> TenantShard {
    try await shards.shard(try InstitutionCode(validating: code))
  }

  /// Finishes what a crash interrupted: reservations of new children, then transfers mid-step.
  /// Run at start and periodically. Returns how many items it finished.
  @discardableResult
  public func recover() async throws -> Int {
    var finished = 0
    finished += try await recoverReservations()
    for transfer in try await registry.inFlightTransfers() {
      do {
        _ = try await drive(transfer.id)
        finished += 1
      } catch {
        let stuck = now() - transfer.updatedAt
        if stuck >= stuckTransferSeconds {
          logger.warning(
            "transfer stuck mid-step",
            metadata: ["transfer.id": "\(transfer.id)", "state": "\(transfer.state.rawValue)", "seconds": "\(stuck)", "error": "\(error)"])
        } else {
          logger.error("transfer recovery failed", metadata: ["transfer.id": "\(transfer.id)", "error": "\(error)"])
        }
      }
    }
    if finished > 0 { logger.info("recovery finished \(finished) interrupted steps") }
    return finished
  }
}
