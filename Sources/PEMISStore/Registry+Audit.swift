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

  /// Entries appended and failed since the registry was opened, for the server's metrics.
  public var auditStatistics: AuditStatistics { auditAppender.statistics }

  /// Writes one batch of entries in one transaction, chained in order.
  func writeAuditBatch(_ entries: [AuditRecord]) async throws -> [AuditRecord] {
    try await writer.write { db in
      let last = try Row.fetchOne(db.cachedStatement(sql: "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1"))
      var seq: Int64 = last?["seq"] ?? 0
      var previous: String = last?["hash"] ?? Self.genesisHash
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

    public init(kindergartenCode: String? = nil, username: String? = nil, fromMs: Int64? = nil, toMs: Int64? = nil, kindergartenScope: Set<String>? = nil) {
      self.kindergartenCode = kindergartenCode
      self.username = username
      self.fromMs = fromMs
      self.toMs = toMs
      self.kindergartenScope = kindergartenScope
    }
  }

  /// Entries matching the query, oldest first.
  public func auditEntries(_ query: AuditQuery, offset: Int, limit: Int) async throws -> (entries: [AuditRecord], total: Int) {
    try await writer.read { db in
      var request = AuditRecord.all()
      if let code = query.kindergartenCode { request = request.filter(Column("kindergartenCode") == code) }
      if let username = query.username { request = request.filter(Column("username") == username) }
      if let from = query.fromMs { request = request.filter(Column("atMs") >= from) }
      if let to = query.toMs { request = request.filter(Column("atMs") <= to) }
      if let scope = query.kindergartenScope { request = request.filter(scope.contains(Column("kindergartenCode"))) }
      return (try request.order(Column("seq")).limit(limit, offset: offset).fetchAll(db), try request.fetchCount(db))
    }
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
      var previous = Self.genesisHash
      var expectedSeq: Int64 = 1
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
      return .intact(entries: Int(expectedSeq - 1), head: previous)
    }
  }
}

/// Group commit for the audit log: the first caller to find no commit under way writes
/// everything queued, then whatever queued meanwhile, until the queue is empty.
final class AuditAppender: Sendable {
  private struct State {
    var pending: [(AuditRecord, CheckedContinuation<AuditRecord, any Error>)] = []
    var writing = false
  }
  private let state = Mutex(State())
  private let appended = Atomic<Int>(0)
  private let failed = Atomic<Int>(0)

  var statistics: AuditStatistics {
    AuditStatistics(appended: appended.load(ordering: .relaxed), failed: failed.load(ordering: .relaxed))
  }

  func append(_ entry: AuditRecord, registry: Registry) async throws -> AuditRecord {
    try await withCheckedThrowingContinuation { continuation in
      let leads = state.withLock { state -> Bool in
        state.pending.append((entry, continuation))
        guard !state.writing else { return false }
        state.writing = true
        return true
      }
      if leads { Task { await self.drain(registry) } }
    }
  }

  private func drain(_ registry: Registry) async {
    while true {
      let batch = state.withLock { state -> [(AuditRecord, CheckedContinuation<AuditRecord, any Error>)] in
        let batch = state.pending
        state.pending = []
        if batch.isEmpty { state.writing = false }
        return batch
      }
      if batch.isEmpty { return }
      do {
        let written = try await registry.writeAuditBatch(batch.map(\.0))
        appended.wrappingAdd(written.count, ordering: .relaxed)
        for (entry, (_, continuation)) in zip(written, batch) { continuation.resume(returning: entry) }
      } catch {
        failed.wrappingAdd(batch.count, ordering: .relaxed)
        for (_, continuation) in batch { continuation.resume(throwing: error) }
      }
    }
  }
}

extension AuditRecord {
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
