internal import Foundation
internal import GRDB
public import PEMISDomain

/// Deletion when use ends (CAC Order No. 4; issue 13, "Retention"): the personal details of
/// children who left long ago are scrubbed, and the paper archive's shred list records that the
/// paper was destroyed.
extension TenantShard {
  static func registerRetentionMigrations(_ migrator: inout DatabaseMigrator) {
    migrator.registerMigration("v8-retention") { db in
      try db.alter(table: "paper_archive") { t in
        t.add(column: "shreddedOn", .text)
        t.add(column: "shreddedBy", .text)
      }
      // Which children's details were scrubbed, and when: for the stay that ended on leftOn (a
      // child who comes back and leaves again is scrubbed again).
      try db.create(table: "retention_scrub") { t in
        t.primaryKey("recordNumber", .text)
        t.column("leftOn", .text).notNull()
        t.column("scrubbedOn", .text).notNull()
        t.column("scrubbedAt", .integer).notNull()
      }
    }
  }

  /// The history fields that hold what a scrub removes (``ChildRecord``'s keys as the history
  /// names them).
  static let scrubbedHistoryFields = ["health", "birthPlace", "householdRegister", "householdType", "hmtStatus"]
  public static let scrubbedMark = "(scrubbed)"

  /// Whether a child here left before `leftBefore` and is not scrubbed yet.
  public func hasChildrenToScrub(leftBefore: CalendarDate) async throws -> Bool {
    try await read { db in
      try Bool.fetchOne(
        db,
        sql: "SELECT EXISTS (SELECT 1 FROM child WHERE leftOn IS NOT NULL AND leftOn < ? AND NOT EXISTS (SELECT 1 FROM retention_scrub r WHERE r.recordNumber = child.recordNumber AND r.leftOn = child.leftOn))",
        arguments: [leftBefore.description]) ?? false
    }
  }

  /// Scrubs every child here that left before `leftBefore` and is not scrubbed yet: guardian
  /// contacts, health and household details go — from the record and from its history —, the
  /// record number, name, gender, dates and state stay. One transaction. Returns the record
  /// numbers scrubbed.
  public func scrubChildren(leftBefore: CalendarDate, by: String, at: Int64) async throws -> [String] {
    try await write { db in
      let rows = try StoredChild.filter(
        sql: "leftOn IS NOT NULL AND leftOn < ? AND NOT EXISTS (SELECT 1 FROM retention_scrub r WHERE r.recordNumber = child.recordNumber AND r.leftOn = child.leftOn)",
        arguments: [leftBefore.description]
      ).order(Column("recordNumber")).fetchAll(db).map(self.opened)
      let today = CalendarDate(beijingTimeOf: at).description
      for var row in rows {
        row.data.guardians = []
        row.data.health = ""
        row.data.birthPlace = ""
        row.data.householdRegister = ""
        row.data.householdType = ""
        row.data.hmtStatus = ""
        try self.update(db, row)
        let fields = Self.scrubbedHistoryFields.map { "'\($0)'" }.joined(separator: ", ")
        try db.execute(
          sql: """
            UPDATE history SET oldValue = CASE oldValue WHEN '' THEN '' ELSE ? END, newValue = CASE newValue WHEN '' THEN '' ELSE ? END
            WHERE record = ? AND (field IN (\(fields)) OR field LIKE 'guardians%')
            """,
          arguments: [Self.scrubbedMark, Self.scrubbedMark, "child:\(row.recordNumber)"])
        try HistoryRecord(
          record: "child:\(row.recordNumber)", field: "retention scrub", oldValue: "",
          newValue: "guardians, health and household details removed (left \(row.leftOn ?? ""))", changedBy: by, changedAt: at
        ).insert(db)
        try db.execute(
          sql: "INSERT OR REPLACE INTO retention_scrub (recordNumber, leftOn, scrubbedOn, scrubbedAt) VALUES (?, ?, ?, ?)",
          arguments: [row.recordNumber, row.leftOn ?? "", today, at])
      }
      return rows.map(\.recordNumber)
    }
  }

  /// Records that a child's paper template was destroyed: it must be recorded, the child must
  /// have left at least a year before `on` (MISSION: it may be shredded one year after the
  /// child leaves), and it is recorded once.
  public func recordPaperShredded(
    _ recordNumber: String, on date: CalendarDate, shreddedBy: String, by: String, at: Int64
  ) async throws -> (PaperArchiveRecord, ChildRow) {
    try await write { db in
      let row = try self.requireChild(db, recordNumber)
      guard var archive = try PaperArchiveRecord.fetchOne(db, key: recordNumber) else {
        throw StoreError(.failedPrecondition, "record_number: no paper archive is recorded for this child; nothing to destroy")
      }
      if let shredded = archive.shreddedOn {
        throw StoreError(.alreadyExists, "record_number: the paper archive was recorded as destroyed on \(shredded) by \(archive.shreddedBy ?? "")")
      }
      guard let left = row.leftOn.flatMap(CalendarDate.init(iso:)) else {
        throw StoreError(.failedPrecondition, "record_number: the child has not left; its paper archive is kept")
      }
      let allowed = left.addingYears(1)
      guard date >= allowed else {
        throw StoreError(
          .failedPrecondition, "shredded_on: the child left on \(left); the paper may be destroyed from \(allowed), not \(date)")
      }
      archive.shreddedOn = date.description
      archive.shreddedBy = shreddedBy
      try archive.update(db)
      try HistoryRecord(
        record: "child:\(recordNumber)", field: "paper archive", oldValue: "kept",
        newValue: "destroyed on \(date) by \(shreddedBy)", changedBy: by, changedAt: at
      ).insert(db)
      return (archive, row)
    }
  }
}
