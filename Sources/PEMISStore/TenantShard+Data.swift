internal import Foundation
public import GRDB
public import PEMISDomain

/// A class row of a shard.
public struct ClassRecord: Codable, Sendable, Hashable, FetchableRecord, PersistableRecord {
  public static let databaseTableName = "class"
  public var id: String
  public var data: KindergartenClass
  public var createdAt: Int64
}

/// A staff row of a shard.
public struct StaffRecord: Codable, Sendable, Hashable, FetchableRecord, PersistableRecord {
  public static let databaseTableName = "staff"
  public var id: String
  public var data: StaffMember
  public var createdAt: Int64
}

/// One changed field: old value, new value, who and when.
public struct HistoryRecord: Codable, Sendable, Hashable, FetchableRecord, PersistableRecord {
  public static let databaseTableName = "history"
  public var id: Int64?
  public var record: String
  public var field: String
  public var oldValue: String
  public var newValue: String
  public var changedBy: String
  public var changedAt: Int64
}

/// The profile row, with who changed it last.
public struct ProfileRecord: Sendable, Hashable {
  public var profile: KindergartenProfile
  public var updatedAt: Int64
  public var updatedBy: String
}

extension TenantShard {
  static func registerDataMigrations(_ migrator: inout DatabaseMigrator) {
    migrator.registerMigration("v2-kindergarten-data") { db in
      try db.create(table: "profile") { t in
        t.primaryKey("id", .integer).check { $0 == 1 }
        t.column("data", .text).notNull()
        t.column("updatedAt", .integer).notNull()
        t.column("updatedBy", .text).notNull()
      }
      try db.create(table: "class") { t in
        t.primaryKey("id", .text)
        t.column("data", .text).notNull()
        t.column("createdAt", .integer).notNull()
      }
      try db.create(table: "staff") { t in
        t.primaryKey("id", .text)
        t.column("data", .text).notNull()
        t.column("createdAt", .integer).notNull()
      }
      try db.create(table: "history") { t in
        t.autoIncrementedPrimaryKey("id")
        t.column("record", .text).notNull().indexed()
        t.column("field", .text).notNull()
        t.column("oldValue", .text).notNull()
        t.column("newValue", .text).notNull()
        t.column("changedBy", .text).notNull()
        t.column("changedAt", .integer).notNull()
      }
    }
  }

  /// The fields of a value as text, for history: flattened JSON keys → values.
  static func fields<T: Encodable>(_ value: T?) -> [String: String] {
    guard let value, let data = try? JSONEncoder().encode(value),
      let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
    else { return [:] }
    var result: [String: String] = [:]
    func flatten(_ prefix: String, _ any: Any) {
      if let dictionary = any as? [String: Any] {
        for (k, v) in dictionary { flatten(prefix.isEmpty ? k : "\(prefix).\(k)", v) }
      } else if let array = any as? [Any] {
        for (i, v) in array.enumerated() { flatten("\(prefix)[\(i)]", v) }
      } else {
        result[prefix] = "\(any)"
      }
    }
    flatten("", object)
    return result
  }

  /// Writes one history row per changed field. `mask` hides fields whose full value must not be
  /// kept in the history (ID numbers: masked there too); a child's protected fields are sealed
  /// (``sealedHistory(_:)``).
  func recordChanges<T: Encodable>(
    _ db: Database, record: String, old: T?, new: T, by: String, at: Int64, masked: Set<String> = []
  ) throws {
    let before = Self.fields(old)
    let after = Self.fields(new)
    for key in Set(before.keys).union(after.keys).sorted() where (before[key] ?? "") != (after[key] ?? "") {
      let hide = masked.contains(key)
      try sealedHistory(
        HistoryRecord(
          record: record, field: key,
          oldValue: before[key].map { hide ? IDDocuments.mask($0) : $0 } ?? "",
          newValue: after[key].map { hide ? IDDocuments.mask($0) : $0 } ?? "", changedBy: by, changedAt: at)
      ).insert(db)
    }
  }

  public func profile() async throws -> ProfileRecord? {
    try await read { db in
      guard let row = try Row.fetchOne(db, sql: "SELECT data, updatedAt, updatedBy FROM profile WHERE id = 1") else { return nil }
      let profile = try JSONDecoder().decode(KindergartenProfile.self, from: Data((row["data"] as String).utf8))
      return ProfileRecord(profile: profile, updatedAt: row["updatedAt"], updatedBy: row["updatedBy"])
    }
  }

  public func updateProfile(_ profile: KindergartenProfile, by: String, at: Int64) async throws {
    let json = String(decoding: try JSONEncoder().encode(profile), as: UTF8.self)
    try await write { db in
      let old = try String.fetchOne(db, sql: "SELECT data FROM profile WHERE id = 1")
        .flatMap { try? JSONDecoder().decode(KindergartenProfile.self, from: Data($0.utf8)) }
      try self.recordChanges(db, record: "profile", old: old, new: profile, by: by, at: at)
      try db.execute(
        sql: "INSERT INTO profile (id, data, updatedAt, updatedBy) VALUES (1, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET data = excluded.data, updatedAt = excluded.updatedAt, updatedBy = excluded.updatedBy",
        arguments: [json, at, by])
    }
  }

  /// Whether the class exists (without reading every class).
  public func classExists(_ id: String) async throws -> Bool {
    try await read { db in try Bool.fetchOne(db.cachedStatement(sql: "SELECT 1 FROM class WHERE id = ?"), arguments: [id]) ?? false }
  }

  public func classes() async throws -> [ClassRecord] {
    try await read { db in try ClassRecord.order(Column("id")).fetchAll(db) }
  }

  public func createClass(_ data: KindergartenClass, by: String, at: Int64) async throws -> ClassRecord {
    try await write { db in
      try Self.checkHeadTeacher(db, data.headTeacherStaffId)
      if try ClassRecord.fetchAll(db).contains(where: { $0.data.name == data.name && $0.data.schoolYear == data.schoolYear }) {
        throw StoreError(.alreadyExists, "class.name: \(data.schoolYear) already has a class named \(data.name)")
      }
      let next = (try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM class") ?? 0) + 1
      var id = "C" + String(format: "%04d", next)
      var n = next
      while try ClassRecord.exists(db, key: id) {
        n += 1
        id = "C" + String(format: "%04d", n)
      }
      let record = ClassRecord(id: id, data: data, createdAt: at)
      try self.recordChanges(db, record: "class:\(id)", old: KindergartenClass?.none, new: data, by: by, at: at)
      try record.insert(db)
      return record
    }
  }

  public func updateClass(_ id: String, _ data: KindergartenClass, by: String, at: Int64) async throws -> ClassRecord {
    try await write { db in
      guard var record = try ClassRecord.fetchOne(db, key: id) else {
        throw StoreError(.notFound, "class.class_id: no class \(id)")
      }
      try Self.checkHeadTeacher(db, data.headTeacherStaffId)
      try self.recordChanges(db, record: "class:\(id)", old: record.data, new: data, by: by, at: at)
      record.data = data
      try record.update(db)
      return record
    }
  }

  /// Deletes a class, refused while it holds children (the national practice).
  public func deleteClass(_ id: String, by: String, at: Int64) async throws {
    try await write { db in
      guard let record = try ClassRecord.fetchOne(db, key: id) else {
        throw StoreError(.notFound, "class_id: no class \(id)")
      }
      let children = try self.childCount(classId: id, db)
      guard children == 0 else {
        throw StoreError(.failedPrecondition, "class_id: \(id) still holds \(children) children; move them first")
      }
      try HistoryRecord(
        record: "class:\(id)", field: "deleted", oldValue: record.data.name, newValue: "", changedBy: by, changedAt: at
      ).insert(db)
      try record.delete(db)
    }
  }

  static func checkHeadTeacher(_ db: Database, _ staffId: String?) throws {
    guard let staffId, !staffId.isEmpty else { return }
    guard let staff = try StaffRecord.fetchOne(db, key: staffId) else {
      throw StoreError(.invalidArgument, "class.head_teacher_staff_id: no staff member \(staffId)")
    }
    guard staff.data.active else {
      throw StoreError(.invalidArgument, "class.head_teacher_staff_id: \(staffId) has left")
    }
  }

  public func staff() async throws -> [StaffRecord] {
    try await read { db in try StaffRecord.order(Column("id")).fetchAll(db).map(self.opened) }
  }

  public func createStaff(_ data: StaffMember, by: String, at: Int64) async throws -> StaffRecord {
    try await write { db in
      if !data.idDocumentNumber.isEmpty,
        try StaffRecord.fetchAll(db).map(self.opened).contains(where: { $0.data.idDocumentType == data.idDocumentType && $0.data.idDocumentNumber == data.idDocumentNumber })
      {
        throw StoreError(.alreadyExists, "staff.id_document_number: this kindergarten already has a staff member with \(IDDocuments.mask(data.idDocumentNumber))")
      }
      let count = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM staff") ?? 0
      let id = "S" + String(format: "%04d", count + 1)
      let record = StaffRecord(id: id, data: data, createdAt: at)
      try self.recordChanges(db, record: "staff:\(id)", old: StaffMember?.none, new: data, by: by, at: at, masked: ["idDocumentNumber"])
      try self.sealed(record).insert(db)
      return record
    }
  }

  public func updateStaff(_ id: String, _ data: StaffMember, by: String, at: Int64) async throws -> StaffRecord {
    try await write { db in
      guard var record = try StaffRecord.fetchOne(db, key: id).map(self.opened) else {
        throw StoreError(.notFound, "staff.staff_id: no staff member \(id)")
      }
      try self.recordChanges(db, record: "staff:\(id)", old: record.data, new: data, by: by, at: at, masked: ["idDocumentNumber"])
      record.data = data
      try self.sealed(record).update(db)
      return record
    }
  }

  public func history(record: String, offset: Int, limit: Int) async throws -> (entries: [HistoryRecord], total: Int) {
    try await read { db in
      let request = HistoryRecord.filter(Column("record") == record)
      return (try request.order(Column("id")).limit(limit, offset: offset).fetchAll(db).map(self.openedHistory), try request.fetchCount(db))
    }
  }
}
