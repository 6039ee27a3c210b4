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
