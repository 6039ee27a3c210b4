internal import Crypto
internal import Foundation
internal import GRDB
internal import PEMISDomain
internal import Synchronization

extension Registry {
  /// The hash before the first entry.
  public static let genesisHash = String(repeating: "0", count: 64)

  /// Appends an entry, chaining its hash to the last one, and returns once it is committed.
  /// Entries that arrive while a commit is under way are written together in the next one
  /// (group commit): under load one transaction carries many calls' entries, in arrival order,
  /// and the chain has no forks because only one batch is written at a time.
  @discardableResult
  public func appendAudit(_ entry: AuditRecord) async throws -> AuditRecord {
    try await auditAppender.append(entry, registry: self)
  }

  /// The audit log's writer while the server runs (its audit service): returns once `stop`
  /// has ended and everything queued before is written.
  public func runAuditAppender(until stop: some AsyncSequence<Void, Never> & Sendable) async {
    await auditAppender.run(registry: self, until: stop)
  }

  /// Entries appended and failed since the registry was opened, for the server's metrics.
  public var auditStatistics: AuditStatistics { auditAppender.statistics }

  /// Writes one batch of entries in one transaction, chained in order.
  func writeAuditBatch(_ entries: [AuditRecord]) async throws -> [AuditRecord] {
    try await writer.write { db in
      let last = try Row.fetchOne(db.cachedStatement(sql: "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1"))
      // An empty log after a prune goes on from the last entry removed.
      let start = last == nil ? try Self.prunedThrough(db) : nil
      var seq: Int64 = last?["seq"] ?? start?.sequence ?? 0
      var previous: String = last?["hash"] ?? start?.hash ?? Self.genesisHash
      var written: [AuditRecord] = []
      for var entry in entries.map(\.stored) {
        seq += 1
        entry.seq = seq
        entry.prevHash = previous
        entry.hash = Self.chainHash(entry)
        try entry.insert(db)
        previous = entry.hash
        written.append(entry)
      }
      return written
    }
  }

  /// SHA-256 over the previous hash and every field, separated so no two entries collide.
  /// Computed over the entry as stored (``AuditRecord/stored``): what `audit verify` reads back is
  /// exactly what was hashed.
  /// The request id is hashed when there is one, so entries written before it existed verify
  /// as they always did, and one cannot be added to them afterwards unnoticed.
  static func chainHash(_ e: AuditRecord) -> String {
    var fields = [
      e.prevHash, String(e.seq ?? 0), String(e.atMs), e.username, e.role, e.kindergartenCode, e.method, e.targets,
      e.result, e.peer,
    ]
    if !e.requestId.isEmpty { fields.append(e.requestId) }
    let digest = SHA256.hash(data: Data(fields.joined(separator: "\u{1F}").utf8))
    return digest.lowercaseHex
  }

  static func registerAuditRequestMigrations(_ migrator: inout DatabaseMigrator) {
    migrator.registerMigration("v9-audit-request-id") { db in
      try db.alter(table: "audit_log") { t in t.add(column: "requestId", .text).notNull().defaults(to: "") }
    }
  }

  public struct AuditQuery: Sendable {
    public var kindergartenCode: String?
    public var username: String?
    public var fromMs: Int64?
    public var toMs: Int64?
    /// Restricts to these kindergartens (the caller's scope); nil for no restriction.
    public var kindergartenScope: Set<String>?
    /// Newest first, as someone reading a log wants it (the RPC's default); the store's default
    /// is the chain's order, oldest first.
    public var newestFirst = false
    /// Continues after this entry (below it newest first, above it oldest first): pages stay put
    /// while the log grows, which it does with every query of it.
    public var continuingAfter: Int64?

    public init(kindergartenCode: String? = nil, username: String? = nil, fromMs: Int64? = nil, toMs: Int64? = nil, kindergartenScope: Set<String>? = nil) {
      self.kindergartenCode = kindergartenCode
      self.username = username
      self.fromMs = fromMs
      self.toMs = toMs
      self.kindergartenScope = kindergartenScope
    }
  }

  /// Entries matching the query, oldest first unless the query asks for newest first.
  public func auditEntries(_ query: AuditQuery, offset: Int, limit: Int) async throws -> (entries: [AuditRecord], total: Int) {
    try await writer.read { db in
      var request = AuditRecord.all()
      if let code = query.kindergartenCode { request = request.filter(Column("kindergartenCode") == code) }
      if let username = query.username { request = request.filter(Column("username") == username) }
      if let from = query.fromMs { request = request.filter(Column("atMs") >= from) }
      if let to = query.toMs { request = request.filter(Column("atMs") <= to) }
      if let scope = query.kindergartenScope { request = request.filter(scope.contains(Column("kindergartenCode"))) }
      let total = try request.fetchCount(db)
      if let cursor = query.continuingAfter {
        request = request.filter(query.newestFirst ? Column("seq") < cursor : Column("seq") > cursor)
      }
      let order = query.newestFirst ? Column("seq").desc : Column("seq").asc
      return (try request.order(order).limit(limit, offset: offset).fetchAll(db), total)
    }
  }

  /// The chain's last entry: its sequence number and hash (0 and the genesis hash when empty).
  public struct AuditHead: Sendable, Equatable {
    public var sequence: Int64
    public var hash: String
  }

  public func auditHead() async throws -> AuditHead {
    try await writer.read { db in
      let last = try Row.fetchOne(db.cachedStatement(sql: "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1"))
      if last == nil, let pruned = try Self.prunedThrough(db) { return pruned }
      return AuditHead(sequence: last?["seq"] ?? 0, hash: last?["hash"] ?? Self.genesisHash)
    }
  }

  static let prunedMetaKey = "auditPrunedThrough"

  /// The last entry a prune removed, if any: where the kept chain links to.
  static func prunedThrough(_ db: Database) throws -> AuditHead? {
    guard let text = try String.fetchOne(db, sql: "SELECT value FROM registry_meta WHERE key = ?", arguments: [prunedMetaKey]) else {
      return nil
    }
    let parts = text.split(separator: " ")
    guard parts.count == 2, let sequence = Int64(parts[0]) else { return nil }
    return AuditHead(sequence: sequence, hash: String(parts[1]))
  }

  /// Removes the entries written before `beforeMs`, in one transaction that also records where
  /// the kept chain now starts. Refused when `beforeMs` is after `keptSinceMs` (entries are kept
  /// at least six months: Cybersecurity Law Art. 21). Returns how many went and the last one.
  public func pruneAuditLog(beforeMs: Int64, keptSinceMs: Int64) async throws -> (removed: Int, through: AuditHead?) {
    guard beforeMs <= keptSinceMs else {
      throw StoreError(.failedPrecondition, "--before: entries of the last six months (or the configured auditRetentionMonths) are kept; nothing was removed")
    }
    return try await writer.write { db in
      // Up to the entry before the first one written on or after the day: an entry's time is
      // when its call began, so times do not rise strictly with sequence numbers, and nothing
      // after the first kept entry may go.
      let firstKept = try Int64.fetchOne(db, sql: "SELECT MIN(seq) FROM audit_log WHERE atMs >= ?", arguments: [beforeMs])
      let through = try firstKept.map { $0 - 1 } ?? Int64.fetchOne(db, sql: "SELECT MAX(seq) FROM audit_log") ?? 0
      guard let last = try Row.fetchOne(db, sql: "SELECT seq, hash FROM audit_log WHERE seq = ?", arguments: [through])
      else { return (0, nil) }
      let head = AuditHead(sequence: last["seq"], hash: last["hash"])
      try db.execute(sql: "DELETE FROM audit_log WHERE seq <= ?", arguments: [head.sequence])
      let removed = db.changesCount
      try db.execute(
        sql: "INSERT INTO registry_meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        arguments: [Self.prunedMetaKey, "\(head.sequence) \(head.hash)"])
      return (removed, head)
    }
  }

  /// The last entry a prune removed, if any.
  public func auditPrunedThrough() async throws -> AuditHead? {
    try await writer.read { db in try Self.prunedThrough(db) }
  }

  /// The hash of entry `sequence`, or nil when the log has no such entry.
  public func auditHash(at sequence: Int64) async throws -> String? {
    try await writer.read { db in try String.fetchOne(db, sql: "SELECT hash FROM audit_log WHERE seq = ?", arguments: [sequence]) }
  }

  public enum ChainVerification: Sendable, Equatable {
    /// Every entry checks out; `head` is the last entry's hash (the genesis hash when empty).
    case intact(entries: Int, head: String)
    /// The first entry whose stored hash, or link to the previous one, does not check out.
    case broken(atSequence: Int64, reason: String)
  }

  /// Recomputes the whole chain.
  public func verifyAuditChain() async throws -> ChainVerification {
    try await writer.read { db in
      // After a prune the chain starts at the first kept entry, linked to the last one removed.
      let pruned = try Self.prunedThrough(db)
      var previous = pruned?.hash ?? Self.genesisHash
      let first = (pruned?.sequence ?? 0) + 1
      var expectedSeq: Int64 = first
      let cursor = try AuditRecord.order(Column("seq")).fetchCursor(db)
      while let entry = try cursor.next() {
        let seq = entry.seq ?? 0
        if seq != expectedSeq {
          return .broken(atSequence: expectedSeq, reason: "entry \(expectedSeq) is missing (next is \(seq))")
        }
        if entry.prevHash != previous {
          return .broken(atSequence: seq, reason: "does not link to the hash of entry \(seq - 1)")
        }
        if Self.chainHash(entry) != entry.hash {
          return .broken(atSequence: seq, reason: "its contents do not match its hash")
        }
        previous = entry.hash
        expectedSeq += 1
      }
      return .intact(entries: Int(expectedSeq - first), head: previous)
    }
  }
}

/// Group commit for the audit log. While the server's audit service runs
/// (``Registry/runAuditAppender(until:)``), it writes everything queued, one batch at a time;
/// without it (the command-line tools, a server starting or stopping) the first caller to find
/// no batch under way writes the queue in its own task. Either way no unstructured task writes
/// an entry, and a caller returns only once its entry is committed, or with the error that kept
/// it from being written.
final class AuditAppender: Sendable {
  typealias Waiter = CheckedContinuation<Slot, any Error>
  enum Slot: Sendable {
    case written(AuditRecord)
    /// Nobody is writing and the service is not running: this caller writes.
    case lead
  }
  private struct State {
    var pending: [(AuditRecord, Waiter)] = []
    var writing = false
    /// Wakes the service, while it runs.
    var service: AsyncStream<Void>.Continuation?
  }
  private let state = Mutex(State())
  private let appended = Atomic<Int>(0)
  private let failed = Atomic<Int>(0)

  var statistics: AuditStatistics {
    AuditStatistics(appended: appended.load(ordering: .relaxed), failed: failed.load(ordering: .relaxed))
  }

  func append(_ entry: AuditRecord, registry: Registry) async throws -> AuditRecord {
    enum Action { case signal(AsyncStream<Void>.Continuation), wait, lead }
    let slot: Slot = try await withCheckedThrowingContinuation { waiter in
      let action = state.withLock { state -> Action in
        if let service = state.service {
          state.pending.append((entry, waiter))
          return .signal(service)
        }
        if state.writing {
          state.pending.append((entry, waiter))
          return .wait
        }
        state.writing = true
        return .lead
      }
      switch action {
      case .signal(let service): service.yield()
      case .wait: break
      case .lead: waiter.resume(returning: .lead)
      }
    }
    switch slot {
    case .written(let written):
      return written
    case .lead:
      // This caller's entry only, in its own task; then the next caller waiting leads, in its
      // task. A caller whose task was cancelled (GRDB then refuses the write) fails only its own
      // entry, and nobody writes for everyone while new entries keep coming.
      defer {
        let next = state.withLock { state -> Waiter? in
          guard !state.pending.isEmpty else {
            state.writing = false
            return nil
          }
          return state.pending.removeFirst().1
        }
        next?.resume(returning: .lead)
      }
      return try await write([entry], registry: registry)[0]
    }
  }

  /// Runs until `stop` ends: writes each batch as entries arrive. Once it stops, what is still
  /// queued is written before it returns, and callers write their own again.
  func run(registry: Registry, until stop: some AsyncSequence<Void, Never> & Sendable) async {
    let (wakeups, wake) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    state.withLock { $0.service = wake }
    await withTaskGroup(of: Void.self) { group in
      group.addTask {
        for await _ in stop {}
        wake.finish()
      }
      for await _ in wakeups { await drain(registry) }
      group.cancelAll()
    }
    state.withLock { $0.service = nil }
    await drain(registry)
  }

  /// Writes the queue, batch by batch, unless a caller is writing it already.
  private func drain(_ registry: Registry) async {
    while true {
      let batch = state.withLock { state -> [(AuditRecord, Waiter)] in
        guard !state.writing else { return [] }
        let batch = state.pending
        state.pending = []
        return batch
      }
      if batch.isEmpty { return }
      await write(batch, registry: registry)
    }
  }

  /// One batch in one transaction; each waiter learns its entry or the error.
  private func write(_ batch: [(AuditRecord, Waiter)], registry: Registry) async {
    do {
      let written = try await write(batch.map(\.0), registry: registry)
      for (entry, (_, waiter)) in zip(written, batch) { waiter.resume(returning: .written(entry)) }
    } catch {
      for (_, waiter) in batch { waiter.resume(throwing: error) }
    }
  }

  private func write(_ entries: [AuditRecord], registry: Registry) async throws -> [AuditRecord] {
    do {
      let written = try await registry.writeAuditBatch(entries)
      appended.wrappingAdd(written.count, ordering: .relaxed)
      return written
    } catch {
      failed.wrappingAdd(entries.count, ordering: .relaxed)
      throw error
    }
  }
}

extension AuditRecord {
  /// The result of a change's first entry, written before the change is made (fail closed:
  /// docs/TENANCY.md, "Audit log"); its outcome follows in a second entry with the same request id.
  public static let startedResult = "STARTED"

  /// Longest value of each field in UTF-8 bytes as stored: a row of the audit log never exceeds
  /// about 3 KiB, whatever a caller sent (docs/TENANCY.md, "The input boundary").
  public static let storedFieldLimits = (
    username: 128, role: 64, kindergartenCode: 64, method: 256, targets: 2048, result: 64, peer: 256, requestId: 64
  )

  /// The entry as the log stores it: every text field escaped and bounded
  /// (``InputText/escaped(_:maxBytes:)``). No control character reaches the database, so SQLite
  /// cannot cut a value short of what was hashed (a NUL once did), nothing printed from the log
  /// can forge a line, and no call can grow the log by more than one small row. Values the
  /// input boundary let through come out unchanged.
  var stored: AuditRecord {
    var entry = self
    let limits = Self.storedFieldLimits
    entry.username = InputText.escaped(username, maxBytes: limits.username)
    entry.role = InputText.escaped(role, maxBytes: limits.role)
    entry.kindergartenCode = InputText.escaped(kindergartenCode, maxBytes: limits.kindergartenCode)
    entry.method = InputText.escaped(method, maxBytes: limits.method)
    entry.targets = InputText.escaped(targets, maxBytes: limits.targets)
    entry.result = InputText.escaped(result, maxBytes: limits.result)
    entry.peer = InputText.escaped(peer, maxBytes: limits.peer)
    entry.requestId = InputText.escaped(requestId, maxBytes: limits.requestId)
    return entry
  }
}
