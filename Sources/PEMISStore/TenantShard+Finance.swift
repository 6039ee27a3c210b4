internal import Foundation
internal import GRDB
public import PEMISDomain

/// A finance year as stored, with its confirmation.
public struct FinanceRecord: Sendable, Hashable {
  public var finance: FinanceYear
  public var updatedBy: String
  public var updatedAt: Int64
  public var confirmedBy: String?
  public var confirmedAt: Int64?
}

/// The leadership group as stored.
public struct LeadershipRecord: Sendable, Hashable {
  public var group: LeadershipGroup
  public var updatedBy: String
  public var updatedAt: Int64
}

extension TenantShard {
  static func registerFinanceMigrations(_ migrator: inout DatabaseMigrator) {
    migrator.registerMigration("v3-finance-leadership") { db in
      try db.create(table: "finance") { t in
        t.primaryKey("year", .integer)
        t.column("data", .text).notNull()
        t.column("updatedBy", .text).notNull()
        t.column("updatedAt", .integer).notNull()
        t.column("confirmedBy", .text)
        t.column("confirmedAt", .integer)
      }
      try db.create(table: "leadership") { t in
        t.primaryKey("id", .integer).check { $0 == 1 }
        t.column("data", .text).notNull()
        t.column("updatedBy", .text).notNull()
        t.column("updatedAt", .integer).notNull()
      }
    }
  }

  private static func decode<T: Decodable>(_ type: T.Type, _ text: String) throws -> T {
    try JSONDecoder().decode(type, from: Data(text.utf8))
  }

  /// Sorted keys: the same value always gives the same text, which the confirmation rule compares.
  private static func encode(_ value: some Encodable) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = .sortedKeys
    return String(decoding: try encoder.encode(value), as: UTF8.self)
  }

  public func finance(year: Int) async throws -> FinanceRecord? {
    try await read { db in
      guard let row = try Row.fetchOne(db, sql: "SELECT * FROM finance WHERE year = ?", arguments: [year]) else { return nil }
      return FinanceRecord(
        finance: try Self.decode(FinanceYear.self, row["data"]), updatedBy: row["updatedBy"], updatedAt: row["updatedAt"],
        confirmedBy: row["confirmedBy"], confirmedAt: row["confirmedAt"])
    }
  }

  public func financeYears() async throws -> [Int] {
    try await read { db in try Int.fetchAll(db, sql: "SELECT year FROM finance ORDER BY year") }
  }

  /// Enters or corrects a year; a correction withdraws an earlier confirmation.
  public func putFinance(_ finance: FinanceYear, by: String, at: Int64) async throws {
    let json = try Self.encode(finance)
    try await write { db in
      let old = try String.fetchOne(db, sql: "SELECT data FROM finance WHERE year = ?", arguments: [finance.year])
        .map { try Self.decode(FinanceYear.self, $0) }
      try self.recordChanges(db, record: "finance:\(finance.year)", old: old, new: finance, by: by, at: at)
      if old != nil, old != finance,
        try String.fetchOne(db, sql: "SELECT confirmedBy FROM finance WHERE year = ?", arguments: [finance.year]) != nil
      {
        try HistoryRecord(
          record: "finance:\(finance.year)", field: "confirmation", oldValue: "confirmed", newValue: "withdrawn by correction",
          changedBy: by, changedAt: at
        ).insert(db)
      }
      try db.execute(
        sql: """
          INSERT INTO finance (year, data, updatedBy, updatedAt, confirmedBy, confirmedAt) VALUES (?, ?, ?, ?, NULL, NULL)
          ON CONFLICT(year) DO UPDATE SET data = excluded.data, updatedBy = excluded.updatedBy, updatedAt = excluded.updatedAt,
            confirmedBy = CASE WHEN finance.data = excluded.data THEN finance.confirmedBy END,
            confirmedAt = CASE WHEN finance.data = excluded.data THEN finance.confirmedAt END
          """,
        arguments: [finance.year, json, by, at])
    }
  }

  public func confirmFinance(year: Int, by: String, at: Int64) async throws {
    try await write { db in
      guard try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM finance WHERE year = ?", arguments: [year]) == 1 else {
        throw StoreError(.notFound, "year: no finance information entered for \(year)")
      }
      try db.execute(sql: "UPDATE finance SET confirmedBy = ?, confirmedAt = ? WHERE year = ?", arguments: [by, at, year])
      try HistoryRecord(record: "finance:\(year)", field: "confirmation", oldValue: "", newValue: "confirmed", changedBy: by, changedAt: at)
        .insert(db)
    }
  }

  public func leadership() async throws -> LeadershipRecord? {
    try await read { db in
      guard let row = try Row.fetchOne(db, sql: "SELECT * FROM leadership WHERE id = 1") else { return nil }
      return LeadershipRecord(group: try Self.decode(LeadershipGroup.self, row["data"]), updatedBy: row["updatedBy"], updatedAt: row["updatedAt"])
    }
  }

  public func setLeadership(_ group: LeadershipGroup, by: String, at: Int64) async throws {
    let json = try Self.encode(group)
    try await write { db in
      let old = try String.fetchOne(db, sql: "SELECT data FROM leadership WHERE id = 1").map { try Self.decode(LeadershipGroup.self, $0) }
      try self.recordChanges(db, record: "leadership", old: old, new: group, by: by, at: at)
      try db.execute(
        sql: "INSERT INTO leadership (id, data, updatedBy, updatedAt) VALUES (1, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET data = excluded.data, updatedBy = excluded.updatedBy, updatedAt = excluded.updatedAt",
        arguments: [json, by, at])
    }
  }
}
