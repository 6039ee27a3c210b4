import Dispatch
import Foundation
import GRDB

@testable import PEMISServer
import PEMISStore

/// Everything a data directory holds, so a test can say "this call changed nothing": the list of
/// its files, and a digest of every table of every SQLite file in it (the registry and every
/// shard), each table's rows read in a fixed order. Tables are found in `sqlite_master`, not
/// named here, so a table a later migration adds is covered without touching this file.
///
/// What is left out, each because it legitimately changes on a call that changes nothing else:
/// - SQLite's side files (`-wal`, `-shm`, `-journal`) in the file list: they come and go as
///   connections open, close and checkpoint. What is committed in a `-wal` is read through
///   SQLite, so it is in the table digests.
/// - `registry.sqlite` › `audit_log`: entries after `auditThrough`. Every call, denied ones
///   included, appends its entry; the matrix checks that exactly that entry was written
///   (``District/auditEntries(after:)``). Entries up to `auditThrough` are hashed like any row,
///   so rewriting history is caught.
/// - `registry.sqlite` › `sqlite_sequence`: the `audit_log` row, the counter that new entry
///   advances (AUTOINCREMENT). Every other table's counter is hashed.
/// Nothing is excluded for sessions: a session row has no last-used time, and the matrix logs
/// in before it takes the first fingerprint.
struct DataFingerprint: Equatable, Sendable {
  /// Path relative to the data directory → "sqlite" for a database, else a digest of its bytes.
  var files: [String: String] = [:]
  /// "registry.sqlite › account" → its rows' count and digest. `sqlite_master` (the schema) is
  /// one of the tables.
  var tables: [String: TableDigest] = [:]
  /// The last audit entry's sequence number when this was taken (0 for an empty log); rows
  /// after it are left out of `audit_log`'s digest.
  var auditHead: Int64 = 0

  struct TableDigest: Equatable, Sendable, CustomStringConvertible {
    var rows: Int
    var sha256: String
    var description: String { "\(rows) rows, \(sha256.prefix(12))" }
  }

  static let registryFile = "registry.sqlite"
  static let sideFileSuffixes = ["-wal", "-shm", "-journal"]
  /// A serving process's own files, not data: the lock (``DataDirectoryLock``) names its pid.
  static let runtimeFiles: Set<String> = [DataDirectoryLock.fileName]

  /// Takes the fingerprint of `directory`, off the cooperative thread pool (it reads files
  /// synchronously, and the server under test shares the pool's two threads).
  /// - Parameter auditThrough: hash `audit_log` only up to this sequence number (the head of an
  ///   earlier fingerprint); nil for all of it.
  static func of(_ directory: String, auditThrough: Int64? = nil) async throws -> DataFingerprint {
    try await withCheckedThrowingContinuation { continuation in
      DispatchQueue.global().async {
        do {
          continuation.resume(returning: try take(directory, auditThrough: auditThrough))
        } catch {
          continuation.resume(throwing: error)
        }
      }
    }
  }

  static func take(_ directory: String, auditThrough: Int64? = nil) throws -> DataFingerprint {
    var fingerprint = DataFingerprint()
    for file in try files(in: directory) {
      let path = (directory as NSString).appendingPathComponent(file)
      guard file.hasSuffix(".sqlite") else {
        // Not a database: its bytes. (A database file is never opened except through SQLite:
        // closing another descriptor of it would drop the locks the server's connections hold.)
        fingerprint.files[file] = sha256(try Data(contentsOf: URL(fileURLWithPath: path)).base64EncodedString())
        continue
      }
      fingerprint.files[file] = "sqlite"
      var configuration = GRDB.Configuration()
      configuration.readonly = true
      configuration.label = "fingerprint"
      let database = try DatabaseQueue(path: path, configuration: configuration)
      let isRegistry = file == registryFile
      let (head, digests) = try database.read { db -> (Int64, [String: TableDigest]) in
        let head = try isRegistry ? (Int64.fetchOne(db, sql: "SELECT coalesce(max(seq), 0) FROM audit_log") ?? 0) : 0
        var digests: [String: TableDigest] = [:]
        // Every table's columns in one statement (one per table was a third of the matrix's
        // fingerprint time, spent preparing statements).
        var columns: [(table: String, columns: [String])] = [("sqlite_master", ["type", "name", "tbl_name", "rootpage", "sql"])]
        for row in try Row.fetchAll(
          db,
          sql: """
            SELECT m.name AS tableName, p.name AS columnName FROM sqlite_master m, pragma_table_info(m.name) p
            WHERE m.type = 'table' ORDER BY m.name, p.cid
            """)
        {
          let table: String = row["tableName"]
          if columns.last?.table == table { columns[columns.count - 1].columns.append(row["columnName"]) } else { columns.append((table, [row["columnName"]])) }
        }
        for (table, names) in columns {
          digests["\(file) › \(table)"] = try digest(
            db, table: table, columns: names, filter: exclusion(file: file, table: table, auditThrough: auditThrough))
        }
        return (head, digests)
      }
      if isRegistry { fingerprint.auditHead = head }
      fingerprint.tables.merge(digests) { _, new in new }
      try database.close()
    }
    return fingerprint
  }

  /// The rows of a table the fingerprint leaves out, as a WHERE clause ("" for none): the
  /// exclusions listed on ``DataFingerprint``, and only those.
  static func exclusion(file: String, table: String, auditThrough: Int64?) -> String {
    guard file == registryFile else { return "" }
    switch table {
    case "audit_log": return auditThrough.map { "WHERE seq <= \($0)" } ?? ""
    case "sqlite_sequence": return "WHERE name <> 'audit_log'"
    default: return ""
    }
  }

  /// Every row of `table`, each as SQL literals (`quote()`: exact for text, numbers and blobs),
  /// ordered by all columns so the order does not depend on how SQLite stored them.
  static func digest(_ db: Database, table: String, columns: [String], filter: String) throws -> TableDigest {
    let list = columns.map(quoted).joined(separator: ", ")
    let line = columns.map { "quote(\(quoted($0)))" }.joined(separator: " || ',' || ")
    let rows = try String.fetchAll(db, sql: "SELECT \(line) FROM \(quoted(table)) \(filter) ORDER BY \(list)")
    return TableDigest(rows: rows.count, sha256: sha256(rows.joined(separator: "\n")))
  }

  /// Files under `directory`, relative, sorted, without SQLite's side files.
  static func files(in directory: String) throws -> [String] {
    guard let walker = FileManager.default.enumerator(atPath: directory) else { return [] }
    var files: [String] = []
    while let file = walker.nextObject() as? String {
      var isDirectory: ObjCBool = false
      let path = (directory as NSString).appendingPathComponent(file)
      guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
        !sideFileSuffixes.contains(where: { file.hasSuffix($0) }), !runtimeFiles.contains(file)
      else { continue }
      files.append(file)
    }
    return files.sorted()
  }

  static func quoted(_ name: String) -> String { "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }

  /// SHA-256 of the text's UTF-8, hex: the server's own (the one it stores session tokens as;
  /// the test target does not link swift-crypto directly).
  static func sha256(_ text: String) -> String { Secrets.tokenHash(text) }

  /// Same files, same tables, same rows. `auditHead` is not compared: it is where the audit
  /// log stood, and a fingerprint taken with `auditThrough` leaves the entries after it out.
  static func == (lhs: DataFingerprint, rhs: DataFingerprint) -> Bool {
    lhs.files == rhs.files && lhs.tables == rhs.tables
  }

  /// What differs from `other`, one line per file or table, for a failure message.
  func differences(from other: DataFingerprint) -> [String] {
    var lines: [String] = []
    for file in Set(files.keys).union(other.files.keys).sorted() where files[file] != other.files[file] {
      lines.append("file \(file): \(other.files[file] ?? "absent") → \(files[file] ?? "absent")")
    }
    for table in Set(tables.keys).union(other.tables.keys).sorted() where tables[table] != other.tables[table] {
      lines.append("\(table): \(other.tables[table].map(String.init(describing:)) ?? "absent") → \(tables[table].map(String.init(describing:)) ?? "absent")")
    }
    return lines
  }
}
