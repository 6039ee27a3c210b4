internal import Foundation
public import GRDB
public import PEMISDomain

/// A child row of a shard.
public struct ChildRow: Codable, Sendable, Hashable, FetchableRecord, PersistableRecord {
  public static let databaseTableName = "child"
  public var recordNumber: String
  public var data: ChildRecord
  public var state: ChildState
  public var classId: String?
  public var createdAt: Int64
}

extension TenantShard {
  static func registerChildMigrations(_ migrator: inout DatabaseMigrator) {
    migrator.registerMigration("v4-children") { db in
      try db.create(table: "child") { t in
        t.primaryKey("recordNumber", .text)
        t.column("data", .text).notNull()
        t.column("state", .text).notNull()
        // A class that holds children cannot be deleted (RESTRICT, and a clear message first).
        t.column("classId", .text).indexed().references("class", onDelete: .restrict)
        t.column("createdAt", .integer).notNull()
      }
    }
  }

  public func enroll(_ child: ChildRecord, recordNumber: String, classId: String?, by: String, at: Int64) async throws -> ChildRow {
    try await writer.write { db in
      if try ChildRow.exists(db, key: recordNumber) {
        throw StoreError(.alreadyExists, "child.id_document_number: \(IDDocuments.mask(recordNumber)) is already enrolled here")
      }
      if let classId, try !ClassRecord.exists(db, key: classId) {
        throw StoreError(.failedPrecondition, "class_id: no class \(classId); create the class first (Art. 15(6))")
      }
      let row = ChildRow(recordNumber: recordNumber, data: child, state: .enrolled, classId: classId, createdAt: at)
      try row.insert(db)
      try Self.recordChanges(db, record: "child:\(recordNumber)", old: ChildRecord?.none, new: child, by: by, at: at, masked: ["idDocumentNumber"])
      if let classId {
        try HistoryRecord(record: "child:\(recordNumber)", field: "class", oldValue: "", newValue: classId, changedBy: by, changedAt: at).insert(db)
      }
      return row
    }
  }

  public func children(classId: String?, classes: Set<String>?, offset: Int, limit: Int) async throws -> (children: [ChildRow], total: Int) {
    try await writer.read { db in
      var request = ChildRow.all()
      if let classId { request = request.filter(Column("classId") == classId) }
      if let classes { request = request.filter(classes.contains(Column("classId"))) }
      return (try request.order(Column("recordNumber")).limit(limit, offset: offset).fetchAll(db), try request.fetchCount(db))
    }
  }

  public func child(_ recordNumber: String) async throws -> ChildRow? {
    try await writer.read { db in try ChildRow.fetchOne(db, key: recordNumber) }
  }

  /// Places or moves a child, through the lifecycle's rules.
  public func assignClass(_ recordNumber: String, classId: String, by: String, at: Int64) async throws -> ChildRow {
    try await writer.write { db in
      guard var row = try ChildRow.fetchOne(db, key: recordNumber) else {
        throw StoreError(.notFound, "record_number: no child \(recordNumber) here")
      }
      guard try ClassRecord.exists(db, key: classId) else {
        throw StoreError(.failedPrecondition, "class_id: no class \(classId); create the class first (Art. 15(6))")
      }
      row.state = try (row.classId == nil ? ChildEvent.assignClass : .moveClass).apply(to: row.state)
      try HistoryRecord(
        record: "child:\(recordNumber)", field: "class", oldValue: row.classId ?? "", newValue: classId, changedBy: by, changedAt: at
      ).insert(db)
      row.classId = classId
      try row.update(db)
      return row
    }
  }

  /// Children in a class, for the deletion rule.
  func childCount(classId: String, _ db: Database) throws -> Int {
    try ChildRow.filter(Column("classId") == classId).fetchCount(db)
  }
}
