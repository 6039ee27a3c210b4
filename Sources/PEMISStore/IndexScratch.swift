internal import Foundation
internal import GRDB
internal import PEMISDomain

/// A temporary SQLite file beside the registry that holds the district index as the shards say it
/// should be, for `pemis-server check` and the index rebuild. Gathering it on disk instead of in a
/// dictionary keeps their memory flat: 300,000 children took 650 MB in memory, and a district of
/// 10,000 kindergartens has ten times as many.
///
/// It holds ID numbers, so it lives in the data directory (0700) and is deleted by ``close()``;
/// a file a crash left behind is deleted by the next check or at the server's start.
public final class IndexScratch: Sendable {
  let queue: DatabaseQueue
  let path: String

  /// File names start with this; anything left with it is a crashed check's.
  static let prefix = "index-check-"

  /// Deletes scratch files a crashed check left in `directory`; the server does it at start.
  public static func removeLeftovers(in directory: String) {
    let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
    for stale in files where stale.hasPrefix(Self.prefix) {
      try? FileManager.default.removeItem(atPath: (directory as NSString).appendingPathComponent(stale))
    }
  }

  /// Creates an empty scratch file in `directory` (the registry's), deleting any a crash left.
  public init(directory: String) throws {
    Self.removeLeftovers(in: directory)
    path = (directory as NSString).appendingPathComponent("\(Self.prefix)\(UUID().uuidString).sqlite")
    var configuration = Configuration()
    configuration.label = "index-scratch"
    // A scratch copy: nothing to recover after a crash, so no journal and no fsync.
    configuration.prepareDatabase { db in
      try db.execute(sql: "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF")
    }
    queue = try DatabaseQueue(path: path, configuration: configuration)
    try queue.write { db in
      // Every shard row: a record number may be in several shards (transferred, or a fault).
      try db.execute(
        sql: """
          CREATE TABLE holder (
            recordNumber TEXT NOT NULL, kindergartenCode TEXT NOT NULL, state TEXT NOT NULL, documentKey TEXT,
            personKey TEXT NOT NULL, active BOOLEAN NOT NULL, createdAt INTEGER NOT NULL)
          """)
    }
  }

  /// Adds one shard's rows (as index rows, with the shard row's creation time).
  public func add(_ rows: [(row: ChildIndexRecord, createdAt: Int64)]) async throws {
    try await queue.write { db in
      let insert = try db.cachedStatement(
        sql: "INSERT INTO holder (recordNumber, kindergartenCode, state, documentKey, personKey, active, createdAt) VALUES (?, ?, ?, ?, ?, ?, ?)")
      for (row, createdAt) in rows {
        try insert.execute(arguments: [
          row.recordNumber, row.kindergartenCode, row.state.rawValue, row.documentKey, row.personKey, row.active, createdAt,
        ])
      }
    }
  }

  /// What was gathered: how many rows are active, and the record numbers active in more than
  /// one kindergarten (with those kindergartens). Then builds the expected index, one row per
  /// record number: the active row if there is one (the lowest kindergarten code when it is
  /// active in several, as before), else the newest; and the rows tied with it (``tied(_:)``).
  public func finish() async throws -> (active: Int, activeTwice: [(recordNumber: String, kindergartens: [String])]) {
    try await queue.write { db in
      let active = try Int.fetchOne(db, sql: "SELECT count(*) FROM holder WHERE active") ?? 0
      var twice: [(String, [String])] = []
      let cursor = try Row.fetchCursor(
        db,
        sql: """
          SELECT recordNumber, group_concat(kindergartenCode, ' ') FROM (
            SELECT recordNumber, kindergartenCode FROM holder WHERE active ORDER BY recordNumber, kindergartenCode)
          GROUP BY recordNumber HAVING count(*) > 1 ORDER BY recordNumber
          """)
      while let row = try cursor.next() {
        let codes: String = row[1]
        // group_concat's order is not promised by SQLite: sort here.
        twice.append((row[0], codes.split(separator: " ").map(String.init).sorted()))
      }
      try db.execute(
        sql: """
          CREATE TABLE expected (
            recordNumber TEXT PRIMARY KEY, kindergartenCode TEXT NOT NULL, state TEXT NOT NULL, documentKey TEXT,
            personKey TEXT NOT NULL, active BOOLEAN NOT NULL) WITHOUT ROWID;
          CREATE TABLE tied (
            recordNumber TEXT NOT NULL, kindergartenCode TEXT NOT NULL, state TEXT NOT NULL, documentKey TEXT,
            personKey TEXT NOT NULL, active BOOLEAN NOT NULL, PRIMARY KEY (recordNumber, kindergartenCode)) WITHOUT ROWID;
          CREATE TEMP TABLE ranked AS SELECT *,
            row_number() OVER newest AS n, first_value(active) OVER newest AS firstActive, first_value(createdAt) OVER newest AS firstCreated,
            first_value(state) OVER newest AS firstState
            FROM holder
            WINDOW newest AS (
              PARTITION BY recordNumber
              ORDER BY active DESC, CASE WHEN active THEN kindergartenCode END, createdAt DESC, state = 'transferred_out', kindergartenCode);
          INSERT INTO expected SELECT recordNumber, kindergartenCode, state, documentKey, personKey, active FROM ranked WHERE n = 1;
          INSERT INTO tied SELECT recordNumber, kindergartenCode, state, documentKey, personKey, active FROM ranked
            WHERE n > 1 AND NOT firstActive AND createdAt = firstCreated AND (state = 'transferred_out') = (firstState = 'transferred_out');
          DROP TABLE ranked;
          DROP TABLE holder;
          """)
      return (active, twice)
    }
  }

  /// Expected index rows after `after` in record-number order (after ``finish()``).
  public func expected(after: String?, limit: Int) async throws -> [ChildIndexRecord] {
    try await queue.read { db in try Self.expected(db, after: after, limit: limit) }
  }

  static func expected(_ db: Database, after: String?, limit: Int) throws -> [ChildIndexRecord] {
    try ChildIndexRecord.fetchAll(
      db, sql: "SELECT \(columns) FROM expected WHERE recordNumber > ? ORDER BY recordNumber LIMIT ?", arguments: [after ?? "", limit])
  }

  /// The expected rows of these record numbers, by record number.
  public func expected(_ recordNumbers: [String]) async throws -> [String: ChildIndexRecord] {
    guard !recordNumbers.isEmpty else { return [:] }
    return try await queue.read { db in
      let marks = Array(repeating: "?", count: recordNumbers.count).joined(separator: ", ")
      let rows = try ChildIndexRecord.fetchAll(
        db, sql: "SELECT \(Self.columns) FROM expected WHERE recordNumber IN (\(marks))", arguments: StatementArguments(recordNumbers))
      return Dictionary(uniqueKeysWithValues: rows.map { ($0.recordNumber, $0) })
    }
  }

  /// Rows of these record numbers that the shards cannot tell from the expected one: no
  /// record is active, and another kindergarten's closed record was made in the same second as
  /// the newest (a child who left one kindergarten and was enrolled and closed at another
  /// within a second). An index row that matches one of them agrees with the shards too.
  public func tied(_ recordNumbers: [String]) async throws -> [String: [ChildIndexRecord]] {
    guard !recordNumbers.isEmpty else { return [:] }
    return try await queue.read { db in
      let marks = Array(repeating: "?", count: recordNumbers.count).joined(separator: ", ")
      let rows = try ChildIndexRecord.fetchAll(
        db, sql: "SELECT \(Self.columns) FROM tied WHERE recordNumber IN (\(marks))", arguments: StatementArguments(recordNumbers))
      return Dictionary(grouping: rows, by: \.recordNumber)
    }
  }

  /// An expected row read as an index row: no reservation, no time.
  static let columns =
    "recordNumber, kindergartenCode, state, documentKey, personKey, active, NULL AS reservation, NULL AS previous, NULL AS heldKey, 0 AS updatedAt"

  /// Deletes the file.
  public func close() {
    try? queue.close()
    try? FileManager.default.removeItem(atPath: path)
  }
}
