internal import Foundation
internal import GRDB
internal import PEMISDomain

/// A child row as the shard file holds it: the protected fields of its record sealed
/// (``ChildRecord/mappingProtectedFields(_:)``). Only this file turns one into a ``ChildRow``
/// and back, so no read or write of a child can skip the sealing.
struct StoredChild: Codable, Sendable, FetchableRecord, PersistableRecord {
  static let databaseTableName = "child"
  var recordNumber: String
  var data: ChildRecord
  var state: ChildState
  var classId: String?
  var createdAt: Int64
  var identityKey: String
  var leftOn: String?
  var transferId: String?
}

extension TenantShard {
  /// The authenticated context of a protected field: the table and the field, without a
  /// guardian's position, so a reordered list still opens.
  static func sealingContext(_ field: String) -> String {
    "child.data." + (field.hasPrefix("guardians[") ? "guardians.phone" : field)
  }

  func stored(_ row: ChildRow) -> StoredChild {
    StoredChild(
      recordNumber: row.recordNumber, data: row.data.mappingProtectedFields { keys.seal($1, context: Self.sealingContext($0)) },
      state: row.state, classId: row.classId, createdAt: row.createdAt, identityKey: row.identityKey, leftOn: row.leftOn,
      transferId: row.transferId)
  }

  func opened(_ stored: StoredChild) throws -> ChildRow {
    var row = ChildRow(
      recordNumber: stored.recordNumber, data: try stored.data.mappingProtectedFields { try keys.open($1, context: Self.sealingContext($0)) },
      state: stored.state, classId: stored.classId, createdAt: stored.createdAt)
    row.identityKey = stored.identityKey
    row.leftOn = stored.leftOn
    row.transferId = stored.transferId
    return row
  }

  func fetchChildren(_ db: Database, _ request: QueryInterfaceRequest<StoredChild>) throws -> [ChildRow] {
    try request.fetchAll(db).map(opened)
  }

  func fetchChild(_ db: Database, _ request: QueryInterfaceRequest<StoredChild>) throws -> ChildRow? {
    try request.fetchOne(db).map(opened)
  }

  /// Inserts or replaces.
  func save(_ db: Database, _ row: ChildRow) throws { try stored(row).save(db) }

  func update(_ db: Database, _ row: ChildRow) throws { try stored(row).update(db) }

  // MARK: History

  static let historyContext = "history.value"

  /// A history row of a child's protected field, its values sealed.
  func sealedHistory(_ record: HistoryRecord) -> HistoryRecord {
    guard record.record.hasPrefix("child:"), ChildRecord.isProtectedHistoryField(record.field) else { return record }
    var sealed = record
    sealed.oldValue = sealHistoryValue(record.oldValue)
    sealed.newValue = sealHistoryValue(record.newValue)
    return sealed
  }

  /// The same, opened for a reader.
  func openedHistory(_ record: HistoryRecord) throws -> HistoryRecord {
    guard record.record.hasPrefix("child:"), ChildRecord.isProtectedHistoryField(record.field) else { return record }
    var opened = record
    opened.oldValue = try openHistoryValue(record.oldValue)
    opened.newValue = try openHistoryValue(record.newValue)
    return opened
  }

  /// A scrubbed value (retention) stays a mark; it says nothing.
  private func sealHistoryValue(_ value: String) -> String {
    value == Self.scrubbedMark ? value : keys.seal(value, context: Self.historyContext)
  }

  private func openHistoryValue(_ value: String) throws -> String {
    value == Self.scrubbedMark ? value : try keys.open(value, context: Self.historyContext)
  }

  // MARK: Staff

  static let staffContext = "staff.data.idDocumentNumber"

  /// A staff member's ID number is sealed too; the rest of the row (post, active) stays readable
  /// for the district summary.
  func sealed(_ record: StaffRecord) -> StaffRecord {
    var sealed = record
    sealed.data.idDocumentNumber = keys.seal(record.data.idDocumentNumber, context: Self.staffContext)
    return sealed
  }

  func opened(_ record: StaffRecord) throws -> StaffRecord {
    var opened = record
    opened.data.idDocumentNumber = try keys.open(record.data.idDocumentNumber, context: Self.staffContext)
    return opened
  }

  // MARK: Key changes

  static let keyChangeContext = "key_change.values.idDocumentNumber"

  func sealed(_ request: KeyChangeRecord) -> KeyChangeRecord {
    var sealed = request
    sealed.values.idDocumentNumber = request.values.idDocumentNumber.map { keys.seal($0, context: Self.keyChangeContext) }
    return sealed
  }

  func opened(_ request: KeyChangeRecord) throws -> KeyChangeRecord {
    var opened = request
    opened.values.idDocumentNumber = try request.values.idDocumentNumber.map { try keys.open($0, context: Self.keyChangeContext) }
    return opened
  }
}

extension TenantShard {
  /// v9: seals what earlier versions kept in the clear — the protected fields of every child,
  /// of their history, of key-information change requests, and staff ID numbers.
  static func registerSealingMigrations(_ migrator: inout DatabaseMigrator, keys: DataKeys) {
    migrator.registerMigration("v9-sealed-fields") { db in
      _ = try Sealing(keys: keys).sealAll(db, active: keys.activeKey)
    }
    // v10: stop 25 sealed without padding, so a sealed value's length told the health status
    // (and the document type) apart; every value is sealed again, padded. Freed pages of the
    // plaintext v9 replaced are wiped by VACUUM after the migrations (``TenantShard/init``).
    migrator.registerMigration("v10-padded-sealing") { db in
      _ = try Sealing(keys: keys).sealAll(db, active: keys.activeKey)
    }
  }

  /// Re-seals under the active key what an older key sealed here (`pemis-server key rotate`);
  /// returns how many values. One transaction: a shard holds hundreds of children.
  public func reseal() async throws -> Int {
    let active = keys.activeKey
    let sealing = Sealing(keys: keys)
    return try await writer.write { db in try sealing.sealAll(db, active: active) }
  }

  /// How many values here are sealed under each key (`pemis-server key status`).
  public func sealedValueCounts() async throws -> [UInt32: Int] {
    let sealing = Sealing(keys: keys)
    return try await read { db in try sealing.counts(db) }
  }

  /// The one walk over every protected value of a shard, for the migration, a rotation and the
  /// count: a new protected column is added here once.
  struct Sealing: Sendable {
    let keys: DataKeys

    /// Seals each protected value that is not sealed as it would be now, under `active`
    /// (``DataKeys/resealed(_:context:active:)``). Returns how many it wrote.
    func sealAll(_ db: Database, active: UInt32) throws -> Int {
      var count = 0
      func reseal(_ value: String, _ context: String) throws -> String {
        guard let sealed = try keys.resealed(value, context: context, active: active) else { return value }
        count += 1
        return sealed
      }
      for row in try Row.fetchAll(db, sql: "SELECT recordNumber, data FROM child") {
        let data = try JSONDecoder().decode(ChildRecord.self, from: Data((row["data"] as String).utf8))
        let before = count
        let sealed = try data.mappingProtectedFields { try reseal($1, TenantShard.sealingContext($0)) }
        guard count != before else { continue }
        try db.execute(
          sql: "UPDATE child SET data = ? WHERE recordNumber = ?",
          arguments: [String(decoding: try JSONEncoder().encode(sealed), as: UTF8.self), row["recordNumber"] as String])
      }
      for row in try Row.fetchAll(db, sql: "SELECT id, field, oldValue, newValue FROM history WHERE record LIKE 'child:%'") {
        guard ChildRecord.isProtectedHistoryField(row["field"]) else { continue }
        let before = count
        func value(_ text: String) throws -> String { text == TenantShard.scrubbedMark ? text : try reseal(text, TenantShard.historyContext) }
        let old = try value(row["oldValue"])
        let new = try value(row["newValue"])
        guard count != before else { continue }
        try db.execute(sql: "UPDATE history SET oldValue = ?, newValue = ? WHERE id = ?", arguments: [old, new, row["id"] as Int64])
      }
      for row in try Row.fetchAll(db, sql: "SELECT id, data FROM staff") {
        var data = try JSONDecoder().decode(StaffMember.self, from: Data((row["data"] as String).utf8))
        let before = count
        data.idDocumentNumber = try reseal(data.idDocumentNumber, TenantShard.staffContext)
        guard count != before else { continue }
        try db.execute(
          sql: "UPDATE staff SET data = ? WHERE id = ?", arguments: [String(decoding: try JSONEncoder().encode(data), as: UTF8.self), row["id"] as String])
      }
      for row in try Row.fetchAll(db, sql: "SELECT id, \"values\" FROM key_change") {
        var values = try JSONDecoder().decode(KeyChangeValues.self, from: Data((row["values"] as String).utf8))
        guard let number = values.idDocumentNumber else { continue }
        let before = count
        values.idDocumentNumber = try reseal(number, TenantShard.keyChangeContext)
        guard count != before else { continue }
        try db.execute(
          sql: "UPDATE key_change SET \"values\" = ? WHERE id = ?",
          arguments: [String(decoding: try JSONEncoder().encode(values), as: UTF8.self), row["id"] as Int64])
      }
      return count
    }

    /// Values by the key that sealed them (0: not sealed, which only a damaged file has).
    func counts(_ db: Database) throws -> [UInt32: Int] {
      var counts: [UInt32: Int] = [:]
      func count(_ value: String) { if !value.isEmpty && value != TenantShard.scrubbedMark { counts[DataKeys.sealingKey(of: value) ?? 0, default: 0] += 1 } }
      for text in try String.fetchAll(db, sql: "SELECT data FROM child") {
        let data = try JSONDecoder().decode(ChildRecord.self, from: Data(text.utf8))
        _ = data.mappingProtectedFields { count($1); return $1 }
      }
      for row in try Row.fetchAll(db, sql: "SELECT field, oldValue, newValue FROM history WHERE record LIKE 'child:%'") where ChildRecord.isProtectedHistoryField(row["field"]) {
        count(row["oldValue"])
        count(row["newValue"])
      }
      for text in try String.fetchAll(db, sql: "SELECT data FROM staff") {
        count(try JSONDecoder().decode(StaffMember.self, from: Data(text.utf8)).idDocumentNumber)
      }
      for text in try String.fetchAll(db, sql: "SELECT \"values\" FROM key_change") {
        if let number = try JSONDecoder().decode(KeyChangeValues.self, from: Data(text.utf8)).idDocumentNumber { count(number) }
      }
      return counts
    }
  }
}
