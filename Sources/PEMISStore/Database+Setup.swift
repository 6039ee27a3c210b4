internal import Foundation
internal import GRDB

extension StoreConfiguration {
  /// GRDB configuration shared by the registry and the shards: WAL, the chosen durability,
  /// foreign keys, and waiting (instead of failing) when another connection holds the write lock.
  func grdbConfiguration(label: String) -> Configuration {
    var configuration = Configuration()
    configuration.label = label
    configuration.journalMode = .wal
    configuration.foreignKeysEnabled = true
    configuration.busyMode = .timeout(10)
    let synchronous = durability == .full ? "FULL" : "NORMAL"
    configuration.prepareDatabase { db in
      try db.execute(sql: "PRAGMA synchronous = \(synchronous)")
      // What is deleted or replaced (a scrubbed household address, a record deleted to resolve
      // a duplicate case) is overwritten with zeros, not left in a free page of the file.
      try db.execute(sql: "PRAGMA secure_delete = ON")
    }
    return configuration
  }
}

/// Creates a directory readable by its owner only (it holds children's records).
func makePrivateDirectory(_ path: String) throws {
  try FileManager.default.createDirectory(
    atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
}

extension Database {
  /// One record by a query whose prepared statement the connection keeps: the calls every
  /// request makes (session, kindergarten, transfer, child) skip SQL generation and parsing.
  func cachedRecord<Record: FetchableRecord>(_ type: Record.Type, _ sql: String, _ arguments: StatementArguments) throws -> Record? {
    try Record.fetchOne(cachedStatement(sql: sql), arguments: arguments)
  }
}

/// Brings a database's schema up to date. When one of `scrubbing` (a migration that replaced
/// plaintext with sealed values) is about to run on a database that holds data, the file is
/// rebuilt afterwards (VACUUM) and its write-ahead log emptied, so the old plaintext is not left
/// in free pages or old log frames.
///
/// The scrub is owed durably: a row in `scrub_pending` is committed before the migrations and
/// deleted only after the VACUUM, so a process that dies (or a disk that fills) between the
/// migration and the VACUUM scrubs at the next opening instead of never.
func migrate(_ writer: some DatabaseWriter, _ migrator: DatabaseMigrator, scrubbingAfter scrubbing: Set<String>) throws {
  // One read on the common path (every migration applied, nothing owed): the first call to a
  // closed shard opens it.
  var (applied, owed) = try writer.read { db in
    (try db.tableExists("grdb_migrations") ? try migrator.appliedIdentifiers(db) : [], try db.tableExists("scrub_pending"))
  }
  if !owed, !applied.isEmpty, !scrubbing.isSubset(of: applied) {
    try writer.write { db in
      try db.execute(sql: "CREATE TABLE scrub_pending (reason TEXT NOT NULL)")
      try db.execute(sql: "INSERT INTO scrub_pending (reason) VALUES (?)", arguments: [scrubbing.subtracting(applied).sorted().joined(separator: ",")])
    }
    owed = true
  }
  try migrator.migrate(writer)
  guard owed else { return }
  try writer.vacuum()
  try writer.write { db in try db.execute(sql: "DROP TABLE scrub_pending") }
  _ = try writer.writeWithoutTransaction { db in try db.checkpoint(.truncate) }
}
