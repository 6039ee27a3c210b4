internal import Foundation
internal import GRDB
public import PEMISDomain

/// A child row of a shard.
/// Read and written through ``StoredChild``, which keeps its protected fields sealed.
public struct ChildRow: Codable, Sendable, Hashable {
  public var recordNumber: String
  public var data: ChildRecord
  public var state: ChildState
  public var classId: String?
  public var createdAt: Int64
  /// ``ChildRecord/identityKey``: finds the same child again (re-imports, the duplicate check).
  public var identityKey: String
  /// When the child left (graduated, left, transferred out, record closed): the paper archive
  /// may be shredded a year later.
  public var leftOn: String?
  /// The transfer the row is (or was last) part of.
  public var transferId: String?

  public init(recordNumber: String, data: ChildRecord, state: ChildState, classId: String?, createdAt: Int64) {
    self.recordNumber = recordNumber
    self.data = data
    self.state = state
    self.classId = classId
    self.createdAt = createdAt
    self.identityKey = data.identityKey
    self.leftOn = nil
    self.transferId = nil
  }
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
    migrator.registerMigration("v5-child-changes") { db in
      try db.alter(table: "child") { t in
        t.add(column: "identityKey", .text).notNull().defaults(to: "")
        t.add(column: "leftOn", .text)
      }
      for row in try Row.fetchAll(db, sql: "SELECT recordNumber, data FROM child") {
        let data = try JSONDecoder().decode(ChildRecord.self, from: Data((row["data"] as String).utf8))
        try db.execute(sql: "UPDATE child SET identityKey = ? WHERE recordNumber = ?", arguments: [data.identityKey, row["recordNumber"] as String])
      }
      try db.create(index: "child_identity", on: "child", columns: ["identityKey"])
      try db.create(table: "key_change") { t in
        t.autoIncrementedPrimaryKey("id")
        t.column("recordNumber", .text).notNull().indexed().references("child", onDelete: .restrict)
        t.column("values", .text).notNull()
        t.column("changes", .text).notNull()
        t.column("evidence", .text).notNull()
        t.column("templateSignedOn", .text).notNull()
        t.column("state", .text).notNull()
        t.column("requestedBy", .text).notNull()
        t.column("requestedAt", .integer).notNull()
        t.column("decidedBy", .text)
        t.column("decidedAt", .integer)
        t.column("decisionNote", .text)
      }
      try db.create(table: "monthly_signoff") { t in
        t.primaryKey("month", .text)
        t.column("signedBy", .text).notNull()
        t.column("signedAt", .integer).notNull()
        t.column("note", .text).notNull()
      }
      try db.create(table: "paper_archive") { t in
        t.primaryKey("recordNumber", .text).references("child", onDelete: .restrict)
        t.column("parentSignedOn", .text).notNull()
        t.column("checkedBy", .text).notNull()
        t.column("checkedOn", .text).notNull()
        t.column("recordedBy", .text).notNull()
        t.column("recordedAt", .integer).notNull()
      }
      try db.create(index: "history_by_time", on: "history", columns: ["changedAt"])
    }
  }

  public func enroll(
    _ child: ChildRecord, recordNumber: String, classId: String?, midTerm: Bool = false, by: String, at: Int64
  ) async throws -> ChildRow {
    try await write { db in
      try self.refuseActiveIdentity(db, recordNumber: recordNumber, child: child)
      if let classId, try !ClassRecord.exists(db, key: classId) {
        throw StoreError(.failedPrecondition, "class_id: no class \(classId); create the class first (Art. 15(6))")
      }
      let row = ChildRow(recordNumber: recordNumber, data: child, state: .enrolled, classId: classId, createdAt: at)
      // A child enrolled here before (left, graduated, transferred out, or a record deleted to
      // resolve a duplicate case) keeps one row: the old stay's row is replaced, its history kept.
      try self.save(db, row)
      try self.recordChanges(db, record: "child:\(recordNumber)", old: ChildRecord?.none, new: child, by: by, at: at, masked: ["idDocumentNumber"])
      if let classId {
        try HistoryRecord(
          record: "child:\(recordNumber)", field: midTerm ? "joined mid-term" : "class", oldValue: "", newValue: classId,
          changedBy: by, changedAt: at
        ).insert(db)
      }
      return row
    }
  }

  public func children(classId: String?, classes: Set<String>?, offset: Int, limit: Int) async throws -> (children: [ChildRow], total: Int) {
    try await read { db in
      var request = StoredChild.all()
      if let classId { request = request.filter(Column("classId") == classId) }
      if let classes { request = request.filter(classes.contains(Column("classId"))) }
      return (try request.order(Column("recordNumber")).limit(limit, offset: offset).fetchAll(db).map(self.opened), try request.fetchCount(db))
    }
  }

  public func child(_ recordNumber: String) async throws -> ChildRow? {
    try await read { db in try self.findChild(db, recordNumber) }
  }

  /// The child with this record number, by a statement the connection keeps prepared: most
  /// calls read one child, often several times.
  func findChild(_ db: Database, _ recordNumber: String) throws -> ChildRow? {
    try db.cachedRecord(StoredChild.self, "SELECT * FROM child WHERE recordNumber = ?", [recordNumber]).map(opened)
  }

  /// Refuses a new enrollment here of a record number or identity that is active here; inactive
  /// rows (left, graduated, transferred out, deleted) never block. A record closed by death is
  /// refused too: its identity is not enrolled again without the Preschool Education Office.
  func refuseActiveIdentity(_ db: Database, recordNumber: String, child: ChildRecord) throws {
    if let existing = try findChild(db, recordNumber), existing.state.isActive || existing.state == .deceased {
      throw StoreError(
        existing.state == .deceased ? .failedPrecondition : .alreadyExists,
        existing.state == .deceased
          ? "child.id_document_number: the record \(IDDocuments.mask(recordNumber)) here was closed by death"
          : "child.id_document_number: \(IDDocuments.mask(recordNumber)) is already enrolled here")
    }
    if let same = try StoredChild.filter(
      Column("identityKey") == child.identityKey && Column("recordNumber") != recordNumber
        && [ChildState.enrolled.rawValue, ChildState.pendingTransferOut.rawValue].contains(Column("state"))
    ).fetchOne(db).map(self.opened) {
      throw StoreError(
        .alreadyExists,
        "child: already enrolled here as \(IDDocuments.mask(same.recordNumber)) (same \(child.idDocumentNumber.isEmpty ? "name, gender and birth date" : "ID document"))")
    }
  }

  /// The same, or NOT_FOUND naming the masked number.
  func requireChild(_ db: Database, _ recordNumber: String) throws -> ChildRow {
    guard let row = try findChild(db, recordNumber) else {
      throw StoreError(.notFound, "record_number: no child \(IDDocuments.mask(recordNumber)) here")
    }
    return row
  }

  /// Places or moves a child, through the lifecycle's rules.
  public func assignClass(_ recordNumber: String, classId: String, by: String, at: Int64) async throws -> ChildRow {
    try await write { db in
      guard var row = try self.findChild(db, recordNumber) else {
        throw StoreError(.notFound, "record_number: no child \(IDDocuments.mask(recordNumber)) here")
      }
      guard try ClassRecord.exists(db, key: classId) else {
        throw StoreError(.failedPrecondition, "class_id: no class \(classId); create the class first (Art. 15(6))")
      }
      row.state = try (row.classId == nil ? ChildEvent.assignClass : .moveClass).apply(to: row.state)
      try HistoryRecord(
        record: "child:\(recordNumber)", field: "class", oldValue: row.classId ?? "", newValue: classId, changedBy: by, changedAt: at
      ).insert(db)
      row.classId = classId
      try self.update(db, row)
      return row
    }
  }

  /// The history field of a class that keeps each promotion's effective date.
  static let promotedOnField = "promoted on"

  /// Children in a class, for the deletion rule.
  func childCount(classId: String, _ db: Database) throws -> Int {
    try StoredChild.filter(Column("classId") == classId).fetchCount(db)
  }
}

extension TenantShard {
  /// What a whole-class step would do: the class as it would be and the children concerned.
  public struct ClassStep: Sendable {
    public var classRecord: ClassRecord
    public var children: [ChildRow]
  }

  /// Promotes a class: grade up, school year on; its enrolled children stay in it. With
  /// `apply: false` nothing is written. `date` is the promotion's effective date (today when
  /// nil): kept in the class's history, so the next promotion can be held to once a school year.
  public func promoteClass(_ classId: String, on date: CalendarDate? = nil, apply: Bool, by: String, at: Int64) async throws -> ClassStep {
    try await write { db in
      guard var record = try ClassRecord.fetchOne(db, key: classId) else {
        throw StoreError(.notFound, "class_id: no class \(classId)")
      }
      guard let next = record.data.grade.promoted else {
        throw StoreError(.failedPrecondition, "class_id: a \(record.data.grade.rawValue) class is not promoted; graduate it")
      }
      let effective = date ?? CalendarDate(beijingTimeOf: at)
      let lastPromoted = try String.fetchOne(
        db, sql: "SELECT newValue FROM history WHERE record = ? AND field = ? ORDER BY id DESC LIMIT 1",
        arguments: ["class:\(classId)", Self.promotedOnField])
      try TimeOrder.checkPromotion(classId: classId, on: effective, lastPromotedOn: lastPromoted.flatMap(CalendarDate.init(iso:)))
      let years = record.data.schoolYear.split(separator: "-").compactMap { Int($0) }
      var data = record.data
      data.grade = next
      if years.count == 2 { data.schoolYear = "\(years[0] + 1)-\(years[1] + 1)" }
      let children = try StoredChild.filter(Column("classId") == classId && Column("state") == ChildState.enrolled.rawValue).fetchAll(db).map(self.opened)
      for child in children { _ = try ChildEvent.promote.apply(to: child.state) }
      if apply {
        try self.recordChanges(db, record: "class:\(classId)", old: record.data, new: data, by: by, at: at)
        try HistoryRecord(
          record: "class:\(classId)", field: Self.promotedOnField, oldValue: lastPromoted ?? "", newValue: effective.description, changedBy: by,
          changedAt: at
        ).insert(db)
        for child in children {
          try HistoryRecord(record: "child:\(child.recordNumber)", field: "promoted", oldValue: record.data.grade.rawValue, newValue: next.rawValue, changedBy: by, changedAt: at).insert(db)
        }
        record.data = data
        try record.update(db)
      } else {
        record.data = data
      }
      return ClassStep(classRecord: record, children: children)
    }
  }

  /// Graduates the enrolled children of a class; they leave it, so the class can be reused.
  public func graduateClass(_ classId: String, on date: CalendarDate, apply: Bool, by: String, at: Int64) async throws -> ClassStep {
    try await write { db in
      guard let record = try ClassRecord.fetchOne(db, key: classId) else {
        throw StoreError(.notFound, "class_id: no class \(classId)")
      }
      guard record.data.grade == .large || record.data.grade == .mixed else {
        throw StoreError(.failedPrecondition, "class_id: a \(record.data.grade.rawValue) class is promoted, not graduated")
      }
      var children = try StoredChild.filter(Column("classId") == classId && Column("state") == ChildState.enrolled.rawValue).fetchAll(db).map(self.opened)
      for i in children.indices {
        try TimeOrder.checkEvent(
          date, field: ChildEvent.graduate.dateField, entered: children[i].data.entryDate, today: CalendarDate(beijingTimeOf: at),
          child: "child \(IDDocuments.mask(children[i].recordNumber))")
        children[i].state = try ChildEvent.graduate.apply(to: children[i].state)
        children[i].classId = nil
        children[i].leftOn = date.description
        if apply {
          try self.update(db, children[i])
          try HistoryRecord(record: "child:\(children[i].recordNumber)", field: "state", oldValue: "enrolled", newValue: "graduated", changedBy: by, changedAt: at).insert(db)
        }
      }
      return ClassStep(classRecord: record, children: children)
    }
  }

  /// Leaving or an accidental departure: the state changes through the lifecycle, the child
  /// leaves its class, and the reason goes into the history.
  public func endAttendance(
    _ recordNumber: String, event: ChildEvent, on date: CalendarDate, reason: String, by: String, at: Int64
  ) async throws -> ChildRow {
    try await write { db in
      guard var row = try self.findChild(db, recordNumber) else {
        throw StoreError(.notFound, "record_number: no child \(IDDocuments.mask(recordNumber)) here")
      }
      let old = row.state
      row.state = try event.apply(to: row.state)
      try TimeOrder.checkEvent(date, field: event.dateField, entered: row.data.entryDate, today: CalendarDate(beijingTimeOf: at))
      row.classId = nil
      row.leftOn = date.description
      try self.update(db, row)
      try HistoryRecord(record: "child:\(recordNumber)", field: "state", oldValue: old.rawValue, newValue: "\(row.state.rawValue): \(reason)", changedBy: by, changedAt: at).insert(db)
      return row
    }
  }
}

extension TenantShard {
  /// The record numbers a masked number (as lists show it, ``IDDocuments/mask(_:)``) can stand
  /// for, at most `limit` of them.
  public func recordNumbers(matchingMasked masked: String, limit: Int = 2) async throws -> [String] {
    guard let ends = IDDocuments.maskedEnds(masked) else { return [] }
    let candidates = try await read { db in
      try String.fetchAll(
        db, sql: "SELECT recordNumber FROM child WHERE length(recordNumber) = ? AND substr(recordNumber, 1, ?) = ?",
        arguments: [ends.length, ends.head.count, ends.head])
    }
    // Only the exact mask a list shows stands for a number: a "mask" showing more of it
    // would let a caller who may see masks only find the rest, a digit at a time.
    return Array(candidates.filter { IDDocuments.mask($0) == masked }.prefix(limit))
  }
}
