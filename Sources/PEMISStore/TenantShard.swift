internal import Foundation
internal import GRDB
public import PEMISDomain

/// One kindergarten's own database, `shards/<institution-code>.sqlite`. Later issues add the
/// kindergarten's records (classes, staff, children) as migrations here.
public final class TenantShard: Sendable {
  public let code: InstitutionCode
  /// Every transaction goes through here, so GRDB's errors leave as ``StoreError``s.
  let writer: StoreDatabase<DatabaseQueue>
  let generation: ShardGeneration
  /// Seal the protected fields of the children here (``DataKeys``).
  let keys: DataKeys

  init(
    code: InstitutionCode, path: String, keys: DataKeys, configuration: StoreConfiguration, generation: ShardGeneration = ShardGeneration(),
    observation: StoreObservation = .none
  ) throws {
    self.code = code
    self.generation = generation
    self.keys = keys
    // Opening and migrating fail as the shard's transactions do: a full disk, a damaged file.
    let name = "the database of kindergarten \(code)"
    do {
      let queue = try DatabaseQueue(path: path, configuration: configuration.grdbConfiguration(label: "shard-\(code)"))
      try migrate(queue, Self.migrator(keys: keys), scrubbingAfter: Self.scrubbingMigrations)
      writer = StoreDatabase(queue, name: name, onCommit: observation.onCommit)
    } catch {
      throw StoreError.mapped(error, in: name)
    }
  }

  /// The migrations that sealed plaintext in place (``migrate(_:_:scrubbingAfter:)``).
  static let scrubbingMigrations: Set<String> = ["v9-sealed-fields", "v10-padded-sealing"]

  static func migrator(keys: DataKeys) -> DatabaseMigrator {
    var migrator = DatabaseMigrator()
    migrator.registerMigration("v1-shard-info") { db in
      // Which kindergarten this file belongs to, so a misplaced file is detected.
      try db.create(table: "shard_info") { t in
        t.primaryKey("code", .text)
        t.column("schemaVersion", .integer).notNull()
        t.column("createdAt", .integer).notNull()
      }
    }
    registerDataMigrations(&migrator)
    registerFinanceMigrations(&migrator)
    registerChildMigrations(&migrator)
    registerTransferMigrations(&migrator)
    registerRetentionMigrations(&migrator)
    migrator.registerMigration("v7-applied-changes") { db in
      // The routing layer's changes this shard committed, by reservation id, written in the
      // same transaction as the change: recovery asks here whether a change happened.
      try db.create(table: "applied_change") { t in
        t.primaryKey("id", .text)
        t.column("at", .integer).notNull().indexed()
      }
    }
    registerSealingMigrations(&migrator, keys: keys)
    return migrator
  }

  /// The reservation a routing-layer change runs under: every shard write made while it is set
  /// records it in `applied_change`, in the write's own transaction (``hasApplied(_:)``).
  @TaskLocal public static var changeMarker: String?

  /// Whether the change `id` committed here.
  public func hasApplied(_ id: String) async throws -> Bool {
    try await read { db in try Bool.fetchOne(db, sql: "SELECT 1 FROM applied_change WHERE id = ?", arguments: [id]) ?? false }
  }

  /// Markers older than a week: their reservations ended long ago (a lease is minutes).
  static let markerRetention: Int64 = 7 * 86_400

  public struct Info: Sendable, Equatable {
    public var code: String
    public var schemaVersion: Int
    public var createdAt: Int64
  }

  /// Every write of the shard's records goes through here, so caches of what it holds (the
  /// district summary) see that it changed, even when a write fails halfway.
  func write<T: Sendable>(_ updates: @escaping @Sendable (Database) throws -> T) async throws -> T {
    defer { generation.bump() }
    guard let marker = Self.changeMarker else { return try await writer.write(updates) }
    return try await writer.write { db in
      let result = try updates(db)
      let at = Int64(Date().timeIntervalSince1970)
      try db.execute(sql: "INSERT OR IGNORE INTO applied_change (id, at) VALUES (?, ?)", arguments: [marker, at])
      try db.execute(sql: "DELETE FROM applied_change WHERE at < ?", arguments: [at - Self.markerRetention])
      return result
    }
  }

  /// Every read of the shard goes through here, not through GRDB's `read`: on a DatabaseQueue
  /// that turns `PRAGMA query_only` on and off around the closure, and SQLite expires every
  /// prepared statement of a connection when a flag pragma runs. Each read made every cached
  /// statement of the shard parse itself again at its next use: 12 % of the server's CPU under
  /// transfers (`perf`, docs/PERFORMANCE.md). The queue runs one closure at a time on its one
  /// connection, and the deferred transaction gives the closure one consistent state, as before.
  func read<T: Sendable>(_ value: @escaping @Sendable (Database) throws -> T) async throws -> T {
    try await writer.unsafeRead { db in
      var result: T?
      try db.inTransaction(.deferred) {
        result = try value(db)
        return .commit
      }
      return result!
    }
  }

  /// Writes the shard's identity the first time; later calls leave it.
  func stampIdentity(createdAt: Int64) async throws {
    try await writer.write { db in
      try db.execute(
        sql: "INSERT OR IGNORE INTO shard_info (code, schemaVersion, createdAt) VALUES (?, 1, ?)",
        arguments: [code.rawValue, createdAt])
    }
  }

  public func info() async throws -> Info {
    try await read { db in
      guard let row = try Row.fetchOne(db, sql: "SELECT code, schemaVersion, createdAt FROM shard_info") else {
        throw StoreError(.unavailable, "shard \(self.code) has no identity record")
      }
      let info = Info(code: row["code"], schemaVersion: row["schemaVersion"], createdAt: row["createdAt"])
      guard info.code == self.code.rawValue else {
        throw StoreError(.unavailable, "shard file for \(self.code) belongs to \(info.code)")
      }
      return info
    }
  }
}
