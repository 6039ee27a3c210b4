internal import Foundation
internal import GRDB
public import PEMISDomain

/// A shard's side of a transfer (docs/ROUTING.md). Every step is idempotent and keyed by the
/// transfer id, so recovery can repeat it after a crash: a step already done returns the row as
/// it is.
extension TenantShard {
  static func registerTransferMigrations(_ migrator: inout DatabaseMigrator) {
    migrator.registerMigration("v6-transfers") { db in
      try db.alter(table: "child") { t in t.add(column: "transferId", .text) }
    }
  }

  /// Step 1 at the sender: the child becomes pending transfer-out under this transfer.
  public func markPendingTransferOut(_ recordNumber: String, transfer: String, to: String, by: String, at: Int64) async throws -> ChildRow {
    try await write { db in
      var row = try self.requireChild(db, recordNumber)
      if row.state == .pendingTransferOut && row.transferId == transfer { return row }
      row.state = try ChildEvent.requestTransferOut.apply(to: row.state)
      row.transferId = transfer
      try self.update(db, row)
      try HistoryRecord(
        record: "child:\(recordNumber)", field: "state", oldValue: "enrolled", newValue: "pending_transfer_out: transfer \(transfer) to \(to)",
        changedBy: by, changedAt: at
      ).insert(db)
      return row
    }
  }

  /// Cancelled or declined: the child is enrolled here again (nothing if already so).
  public func revertPendingTransferOut(_ recordNumber: String, transfer: String, why: String, by: String, at: Int64) async throws -> ChildRow {
    try await write { db in
      var row = try self.requireChild(db, recordNumber)
      guard row.state == .pendingTransferOut && row.transferId == transfer else { return row }
      row.state = try ChildEvent.cancelTransferOut.apply(to: row.state)
      row.transferId = nil
      try self.update(db, row)
      try HistoryRecord(
        record: "child:\(recordNumber)", field: "state", oldValue: "pending_transfer_out", newValue: "enrolled: transfer \(transfer) \(why)",
        changedBy: by, changedAt: at
      ).insert(db)
      return row
    }
  }

  /// The receiver took the child in: transferred out here, and out of its class.
  public func completeTransferOut(_ recordNumber: String, transfer: String, on date: CalendarDate, by: String, at: Int64) async throws -> ChildRow {
    try await write { db in
      var row = try self.requireChild(db, recordNumber)
      if row.state == .transferredOut && row.transferId == transfer { return row }
      guard row.transferId == transfer else {
        throw StoreError(.failedPrecondition, "record_number: the child is not pending transfer \(transfer) here")
      }
      row.state = try ChildEvent.completeTransferOut.apply(to: row.state)
      row.classId = nil
      row.leftOn = date.description
      try self.update(db, row)
      try HistoryRecord(
        record: "child:\(recordNumber)", field: "state", oldValue: "pending_transfer_out", newValue: "transferred_out: transfer \(transfer)",
        changedBy: by, changedAt: at
      ).insert(db)
      return row
    }
  }

  /// The child's electronic archive: the record and its history (entries from `since` on, when
  /// given: a receiver that had the child before has the older ones).
  public func archive(_ recordNumber: String, since: Int64? = nil) async throws -> (child: ChildRow, history: [HistoryRecord]) {
    try await read { db in
      let row = try self.requireChild(db, recordNumber)
      // Prepared once per connection: every transfer reads an archive.
      let history =
        if let since {
          try HistoryRecord.fetchAll(
            db.cachedStatement(sql: "SELECT * FROM history WHERE record = ? AND changedAt >= ? ORDER BY id"),
            arguments: ["child:\(recordNumber)", since])
        } else {
          try HistoryRecord.fetchAll(
            db.cachedStatement(sql: "SELECT * FROM history WHERE record = ? ORDER BY id"), arguments: ["child:\(recordNumber)"])
        }
      return (row, try history.map(self.openedHistory))
    }
  }

  /// When this shard last recorded anything about the child (nil: never), so a child coming
  /// back brings only the history made elsewhere since.
  public func lastHistoryTime(_ recordNumber: String) async throws -> Int64? {
    try await read { db in
      try Int64.fetchOne(db.cachedStatement(sql: "SELECT MAX(changedAt) FROM history WHERE record = ?"), arguments: ["child:\(recordNumber)"])
    }
  }

  /// The receiver's step: the child enrolled here under the same record number, in `classId`,
  /// with the history it brings. Repeating it for the same transfer changes nothing.
  public func receiveTransfer(
    _ child: ChildRecord, recordNumber: String, history: [HistoryRecord], transfer: String, from: String, classId: String?, by: String,
    at: Int64
  ) async throws -> ChildRow {
    try await write { db in
      if let existing = try self.findChild(db, recordNumber), existing.transferId == transfer && existing.state == .enrolled {
        return existing
      }
      // The same identity rule as an enrollment's: nobody active here with this record or person.
      try self.refuseActiveIdentity(db, recordNumber: recordNumber, child: child)
      if let classId, try Bool.fetchOne(db.cachedStatement(sql: "SELECT 1 FROM class WHERE id = ?"), arguments: [classId]) == nil {
        throw StoreError(.failedPrecondition, "class_id: no class \(classId); create the class first (Art. 15(6))")
      }
      var row = ChildRow(recordNumber: recordNumber, data: child, state: .enrolled, classId: classId, createdAt: at)
      row.transferId = transfer
      // A child coming back keeps one row: the earlier stay's row is replaced, its history kept.
      try self.save(db, row)
      for entry in history {
        var copy = entry
        copy.id = nil
        copy.changedBy = "\(entry.changedBy) @\(from)"
        try self.sealedHistory(copy).insert(db)
      }
      try HistoryRecord(
        record: "child:\(recordNumber)", field: "state", oldValue: "", newValue: "enrolled: transferred in from \(from), transfer \(transfer)",
        changedBy: by, changedAt: at
      ).insert(db)
      if let classId {
        try HistoryRecord(record: "child:\(recordNumber)", field: "class", oldValue: "", newValue: classId, changedBy: by, changedAt: at).insert(db)
      }
      return row
    }
  }

  /// Every child row (for the index check and its repair).
  public func allChildren() async throws -> [ChildRow] {
    try await read { db in try StoredChild.order(Column("recordNumber")).fetchAll(db).map(self.opened) }
  }

  /// Deletes a record to resolve a duplicate case: soft, the row stays and says so.
  public func softDelete(_ recordNumber: String, reason: String, by: String, at: Int64) async throws -> ChildRow {
    try await write { db in
      var row = try self.requireChild(db, recordNumber)
      let old = row.state
      row.state = try ChildEvent.delete.apply(to: row.state)
      row.classId = nil
      try self.update(db, row)
      try HistoryRecord(
        record: "child:\(recordNumber)", field: "state", oldValue: old.rawValue, newValue: "deleted: \(reason)", changedBy: by, changedAt: at
      ).insert(db)
      return row
    }
  }
}
