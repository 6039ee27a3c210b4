internal import Foundation
internal import GRPCCore
internal import PEMISProto
internal import PEMISWire
internal import Synchronization
public import Logging
public import PEMISDomain
public import PEMISRouting
public import PEMISStore

/// What the tenancy services share: the registry, the shard pool, password hashing and the clock.
public final class Tenancy: Sendable {
  public let registry: Registry
  public let shards: ShardPool
  /// What crosses kindergartens: the child index, transfers, the duplicate check, the summary.
  public let router: Router
  let hasher: PasswordHasher
  /// Where login password checks pass: bounded, throttled, with a decoy for unknown usernames.
  let logins: LoginGate
  /// The working-day calendar every deadline is counted in (the router's: one calendar,
  /// replaced as a whole by ``reloadCalendar(directory:)``).
  public var calendar: WorkingDayCalendar { router.calendar }
  /// Seconds since 1970. Injected so tests can age accounts and sessions.
  let now: @Sendable () -> Int64
  let logger: Logger
  /// One limit on the warnings of calls refused for load, shared by every call (``ErrorStatus``).
  let sheddingLog = RateLimitedLog(linesPerWindow: 60, window: .seconds(60))
  /// The server's metrics: the store reports its commits here, the services their refusals.
  public let metrics: ServerMetrics
  /// The last month whose audits are open (Art. 11), so the registry is asked once a month.
  private let monthlyAuditsOpened = Mutex<YearMonth?>(nil)

  public init(
    dataDirectory: String, keys: DataKeys, store: StoreConfiguration, passwordCostLog2: Int, calendar: WorkingDayCalendar, logger: Logger,
    now: @escaping @Sendable () -> Int64 = Tenancy.systemClock, stuckTransferSeconds: Int64 = 600,
    metrics: ServerMetrics? = nil
  ) throws {
    // Without a server's metrics (tools that open the data directory), nothing is recorded.
    let metrics = metrics ?? ServerMetrics(listeners: [], version: ServerStatus.version, startedAt: now(), recording: false)
    self.metrics = metrics
    registry = try Registry(directory: dataDirectory, keys: keys, configuration: store, observation: metrics.registryObservation)
    shards = try ShardPool(
      directory: (dataDirectory as NSString).appendingPathComponent("shards"), keys: keys, configuration: store,
      observation: metrics.shardObservation)
    hasher = PasswordHasher(costLog2: passwordCostLog2)
    logins = try LoginGate(hasher: hasher, rules: .defaults)
    self.now = now
    self.logger = logger
    router = Router(registry: registry, shards: shards, calendar: calendar, logger: logger, now: now, stuckTransferSeconds: stuckTransferSeconds)
  }

  /// Seconds since 1970 by the system clock.
  public static let systemClock: @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }

  /// Today in Beijing, for deadlines.
  var today: CalendarDate { CalendarDate(beijingTimeOf: now()) }

  /// The kindergarten a request names, or the caller's own when it names none. The interceptor
  /// has already held the caller to its scope for it.
  func requestedKindergarten(_ requested: String, caller: Caller) throws -> InstitutionCode {
    try InstitutionCode(validating: requested.isEmpty ? caller.kindergarten?.rawValue ?? "" : requested)
  }

  /// The requested kindergarten's shard, with the caller.
  func shard(for requested: String) async throws -> (TenantShard, Caller) {
    let caller = try Caller.required()
    return (try await shards.shard(try requestedKindergarten(requested, caller: caller)), caller)
  }

  /// The date a request gives, or today when it gives none; never after today.
  func pastDate(_ proto: Pemis_V1_Date, field: String) throws -> CalendarDate {
    let date = proto.year == 0 ? today : CalendarDate(proto)
    guard date.isValid, date <= today else {
      throw RPCError(code: .invalidArgument, message: "\(field): must be a valid date, not after today")
    }
    return date
  }

  /// The record number a request names: in full, by the child's reference (``ChildReferences``,
  /// as obligations, cases and lists name it), or masked as lists show it when that matches
  /// exactly one child of the kindergarten.
  func recordNumber(_ text: String, in shard: TenantShard) async throws -> String {
    if let reference = ChildReferences.normalized(text) {
      guard let number = try await shard.recordNumber(forReference: reference, references: registry.childReferences) else {
        throw RPCError(code: .notFound, message: "record_number: no child \(reference) here")
      }
      return number
    }
    let number = text.trimmingCharacters(in: .whitespaces).uppercased()
    guard number.contains("*") else { return number }
    let matches = try await shard.recordNumbers(matchingMasked: number)
    switch matches.count {
    case 1: return matches[0]
    case 0: throw RPCError(code: .notFound, message: "record_number: no child \(number) here")
    default: throw RPCError(code: .invalidArgument, message: "record_number: \(number) matches more than one child; give the full number")
    }
  }

  /// Opens the monthly audit of every month that has ended (Art. 11): at start, and before
  /// anything reads obligations, so a month without sign-off shows as overdue.
  func openMonthlyAudits() async throws {
    let last = YearMonth(today).previous
    if monthlyAuditsOpened.withLock({ $0.map { $0 >= last } ?? false }) { return }
    let opened = try await registry.openMonthlyAudits(through: last, calendar: calendar, at: now())
    if opened > 0 { logger.info("opened \(opened) monthly audits through \(last)") }
    monthlyAuditsOpened.withLock { $0 = last }
  }

  /// At start: builds the district child index from the shards the first time (data written
  /// before the index existed), then finishes what a crash interrupted.
  func prepareRouting() async throws {
    // A check killed mid-way leaves a scratch copy of the index (ID numbers): not kept.
    IndexScratch.removeLeftovers(in: (registry.path as NSString).deletingLastPathComponent)
    if try await registry.meta("childIndexBuilt") == nil {
      let rows = try await router.rebuildIndex()
      try await registry.setMeta("childIndexBuilt", String(now()))
      if rows > 0 { logger.info("built the district child index from the shards: \(rows) records") }
    }
    try await recoverTransfers()
  }

  /// Rereads the calendar folder (SIGHUP): due dates counted from now on use it, and the
  /// obligations whose due date waited for a year the old calendar lacked get theirs. A folder
  /// that cannot be used is refused and the old calendar stays. Returns the years now known and
  /// the due dates filled.
  public func reloadCalendar(directory: String) async throws -> (years: ClosedRange<Int>?, filled: Int) {
    let calendar = try CalendarFiles.load(directory: directory)
    router.replaceCalendar(calendar)
    let filled = try await registry.fillMissingDueDates(calendar)
    return (calendar.knownYears, filled)
  }

  /// Transfer recovery (at start, and every minute while serving), counted in the metrics.
  func recoverTransfers() async throws {
    do {
      try await router.recover()
      metrics.recoveryRan(failed: false)
    } catch {
      metrics.recoveryRan(failed: true)
      throw error
    }
  }

  /// `pemis-server init`: the first district administrator, with a one-time password.
  /// Refuses when the registry already has accounts.
  public func createFirstAdministrator(username: String, displayName: String) async throws -> String {
    try AccountRules.validateUsername(username)
    guard try await registry.accountCount() == 0 else {
      throw StoreError(.alreadyExists, "the data directory is already initialized (it has accounts)")
    }
    let password = Secrets.oneTimePassword()
    try await registry.createAccount(
      AccountRecord(
        username: username, role: .districtAdmin, kindergartenCode: nil, displayName: displayName,
        passwordHash: try hasher.hash(password), createdAt: now()))
    return password
  }
}

/// Runs a handler body. Store and domain errors convert themselves to statuses
/// (`ErrorStatus.swift`) and the interceptor catches the rest, so this only passes the result
/// on; it is kept so that handlers written around it, here and on other branches, need no change.
func handling<T>(_ body: () async throws -> T) async throws -> T {
  try await body()
}
