internal import Foundation
public import GRDB
public import PEMISDomain

/// Where a transfer stands (docs/ROUTING.md). The `-ing` states are intentions written before
/// the shards are touched: recovery finishes them by repeating the steps, each idempotent and
/// keyed by the transfer id.
public enum TransferState: String, CaseIterable, Hashable, Sendable, Codable {
  /// Recorded; the sending shard is being marked.
  case requested
  /// The child is pending transfer-out at the sender; waiting for the receiver.
  case out
  /// The receiver accepted: the child is being written to its shard.
  case accepting
  case completed
  case cancelling, cancelled
  case declining, declined
  /// The sending shard refused the first step (the child was not enrolled): nothing happened.
  case failed
  /// The Preschool Education Office ends a transfer that cannot go on (`pemis transfer abort`):
  /// the child is enrolled at the sender again, or — when the receiver already holds it — the
  /// transfer completes instead.
  case aborting, aborted

  /// Still moving: recovery drives these to an end.
  public var isInFlight: Bool { [.requested, .accepting, .cancelling, .declining, .aborting].contains(self) }
  public var isFinal: Bool { Self.finalStates.contains(self) }
  public static let finalStates: [TransferState] = [.completed, .cancelled, .declined, .failed, .aborted]
  /// The final states as an SQL list, for `state NOT IN (…)`.
  public static let finalStatesSQL = "(" + finalStates.map { "'\($0.rawValue)'" }.joined(separator: ", ") + ")"
}

public struct TransferRecord: Codable, Sendable, Hashable, FetchableRecord, PersistableRecord {
  public static let databaseTableName = "transfer"
  public var id: String
  public var recordNumber: String
  public var fromCode: String
  public var toCode: String
  /// When the parent applied to the sending kindergarten.
  public var appliedOn: String
  public var state: TransferState
  public var requestedBy: String
  public var requestedAt: Int64
  /// The receiver's class for the child.
  public var classId: String?
  public var decidedBy: String?
  public var decidedAt: Int64?
  public var reason: String?
  public var updatedAt: Int64

  public init(id: String, recordNumber: String, fromCode: String, toCode: String, appliedOn: CalendarDate, requestedBy: String, at: Int64) {
    self.id = id
    self.recordNumber = recordNumber
    self.fromCode = fromCode
    self.toCode = toCode
    self.appliedOn = appliedOn.description
    self.state = .requested
    self.requestedBy = requestedBy
    self.requestedAt = at
    self.updatedAt = at
  }
}

extension Registry {
  static func registerTransferMigrations(_ migrator: inout DatabaseMigrator) {
    migrator.registerMigration("v6-transfers") { db in
      try db.create(table: "transfer") { t in
        t.primaryKey("id", .text)
        t.column("recordNumber", .text).notNull().indexed()
        t.column("fromCode", .text).notNull().indexed()
        t.column("toCode", .text).notNull().indexed()
        t.column("appliedOn", .text).notNull()
        t.column("state", .text).notNull().indexed()
        t.column("requestedBy", .text).notNull()
        t.column("requestedAt", .integer).notNull()
        t.column("classId", .text)
        t.column("decidedBy", .text)
        t.column("decidedAt", .integer)
        t.column("reason", .text)
        t.column("updatedAt", .integer).notNull()
      }
      // One open transfer per child at a time.
      try db.execute(
        sql: "CREATE UNIQUE INDEX transfer_open_per_child ON transfer(recordNumber) WHERE state NOT IN ('completed', 'cancelled', 'declined', 'failed')")
    }
  }

  static func registerTransferAbortMigration(_ migrator: inout DatabaseMigrator) {
    migrator.registerMigration("v8-transfer-abort") { db in
      // An aborted transfer is closed too: the child may be transferred again.
      try db.execute(sql: "DROP INDEX transfer_open_per_child")
      try db.execute(sql: "CREATE UNIQUE INDEX transfer_open_per_child ON transfer(recordNumber) WHERE state NOT IN \(TransferState.finalStatesSQL)")
    }
  }

  /// Records a new transfer (state `requested`); refused while the child has an open one.
  /// When a transfer with this id exists already (a client's retry), returns it instead.
  @discardableResult
  public func createTransfer(_ transfer: TransferRecord) async throws -> TransferRecord? {
    try await writer.write { db in
      if let existing = try db.cachedRecord(TransferRecord.self, "SELECT * FROM transfer WHERE id = ?", [transfer.id]) { return existing }
      if let open = try Self.openTransfer(db, recordNumber: transfer.recordNumber) {
        throw StoreError(.failedPrecondition, "record_number: transfer \(open.id) of this child is still open (\(open.state.rawValue))")
      }
      try transfer.insert(db)
      return nil
    }
  }

  /// The record's transfer that has not ended, if any (at most one: `transfer_open_per_child`).
  static func openTransfer(_ db: Database, recordNumber: String) throws -> TransferRecord? {
    try db.cachedRecord(
      TransferRecord.self, "SELECT * FROM transfer WHERE recordNumber = ? AND state NOT IN \(TransferState.finalStatesSQL) LIMIT 1",
      [recordNumber])
  }

  public func transfer(_ id: String) async throws -> TransferRecord? {
    try await writer.read { db in try db.cachedRecord(TransferRecord.self, "SELECT * FROM transfer WHERE id = ?", [id]) }
  }

  /// Moves a transfer from one of `from` to `to`, with the changes `update` makes, in one
  /// transaction; index rows and obligations that go with the step are written in the same
  /// transaction. Returns the transfer as it is after (or unchanged, when it is already in `to`:
  /// steps repeat safely).
  @discardableResult
  public func advanceTransfer(
    _ id: String, from: Set<TransferState>, to: TransferState, at: Int64, index: [ChildIndexRecord] = [],
    obligations: [ObligationRecord] = [], complete: [(kind: ObligationKind, code: String, subject: String)] = [], by: String = "",
    on day: CalendarDate? = nil, update: @escaping @Sendable (inout TransferRecord) -> Void = { _ in }
  ) async throws -> TransferRecord {
    try await writer.write { db in
      guard var transfer = try db.cachedRecord(TransferRecord.self, "SELECT * FROM transfer WHERE id = ?", [id]) else {
        throw StoreError(.notFound, "transfer_id: no transfer \(id)")
      }
      if transfer.state == to { return transfer }
      guard from.contains(transfer.state) else {
        throw StoreError(.failedPrecondition, "transfer_id: transfer \(id) is \(transfer.state.rawValue); it cannot become \(to.rawValue)")
      }
      transfer.state = to
      transfer.updatedAt = at
      update(&transfer)
      try transfer.update(db)
      for row in index { try row.save(db) }
      for obligation in obligations { try obligation.insert(db, onConflict: .ignore) }
      for item in complete {
        try db.cachedStatement(
          sql: "UPDATE obligation SET doneAt = ?, doneBy = ?, doneOn = ? WHERE kindergartenCode = ? AND kind = ? AND subject = ? AND doneAt IS NULL"
        ).execute(arguments: [at, by, (day ?? CalendarDate(beijingTimeOf: at)).description, item.code, item.kind.rawValue, item.subject])
      }
      return transfer
    }
  }

  /// Transfers that are mid-step, for recovery.
  public func inFlightTransfers() async throws -> [TransferRecord] {
    try await writer.read { db in
      try TransferRecord.filter(TransferState.allCases.filter(\.isInFlight).map(\.rawValue).contains(Column("state"))).fetchAll(db)
    }
  }

  /// Transfers touching a kindergarten (either side), or all of them in `codes`, newest first.
  public func transfers(
    kindergarten code: String?, state: TransferState?, ownershipCodes: Set<String>? = nil, offset: Int, limit: Int
  ) async throws -> (transfers: [TransferRecord], total: Int) {
    try await writer.read { db in
      var request = TransferRecord.all()
      if let code { request = request.filter(Column("fromCode") == code || Column("toCode") == code) }
      if let state { request = request.filter(Column("state") == state.rawValue) }
      if let ownershipCodes { request = request.filter(ownershipCodes.contains(Column("fromCode")) || ownershipCodes.contains(Column("toCode"))) }
      return (try request.order(Column("requestedAt").desc, Column("id")).limit(limit, offset: offset).fetchAll(db), try request.fetchCount(db))
    }
  }

  /// The open transfer of a child to this kindergarten, found by record number or ID document.
  public func openTransfer(to code: String, recordNumber: String?, documentKey: String?) async throws -> TransferRecord? {
    try await writer.read { db in
      var numbers: [String] = []
      if let recordNumber { numbers.append(recordNumber) }
      if let documentKey {
        numbers += try String.fetchAll(db, sql: "SELECT recordNumber FROM child_index WHERE documentKey = ?", arguments: [documentKey])
      }
      guard !numbers.isEmpty else { return nil }
      return try TransferRecord.filter(numbers.contains(Column("recordNumber")) && Column("toCode") == code && Column("state") == TransferState.out.rawValue)
        .fetchOne(db)
    }
  }
}
