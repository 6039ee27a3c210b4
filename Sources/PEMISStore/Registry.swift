internal import Crypto
internal import Foundation
internal import GRDB
internal import PEMISDomain
internal import Synchronization

/// The district-level database, `registry.sqlite`: kindergartens and their onboarding, accounts,
/// sessions and the audit log. Each public method is one transaction.
public final class Registry: Sendable {
  /// Every transaction goes through here, so GRDB's errors leave as ``StoreError``s.
  let writer: StoreDatabase<DatabasePool>
  public let path: String
  /// Batches audit entries into shared commits (``appendAudit(_:)``).
  let auditAppender = AuditAppender()
  /// Kindergartens already read (``kindergarten(_:)``); rows of that table never change.
  let knownKindergartens = Mutex<[String: KindergartenRecord]>([:])
  /// Opaque child references: what anyone outside the child's kindergarten sees it named by.
  public let childReferences: ChildReferences
  /// Seal the protected fields kept here and make the searchable keys (``DataKeys``).
  public let keys: DataKeys

  /// Opens (creating if needed) the registry in `directory` and brings its schema up to date.
  /// A registry whose data was sealed under other keys is refused before anything is written.
  /// - Parameter observation: hears each commit's time (the server's metrics).
  public init(
    directory: String, keys: DataKeys, configuration: StoreConfiguration = .defaults, observation: StoreObservation = .none
  ) throws {
    try makePrivateDirectory(directory)
    path = (directory as NSString).appendingPathComponent("registry.sqlite")
    self.keys = keys
    let name = "the district registry"
    do {
      let pool = try DatabasePool(path: path, configuration: configuration.grdbConfiguration(label: "registry"))
      try Self.checkKeys(pool, keys)
      try migrate(pool, Self.migrator(keys: keys), scrubbingAfter: Self.scrubbingMigrations)
      childReferences = try pool.read { db in try ChildReferences.load(db, keys: keys) }
      writer = StoreDatabase(pool, name: name, onCommit: observation.onCommit)
    } catch {
      throw StoreError.mapped(error, in: name)
    }
  }

  /// The fingerprint of the index key the registry's data was sealed under, if it was.
  public static func keyFingerprint(directory: String) throws -> String? {
    let path = (directory as NSString).appendingPathComponent("registry.sqlite")
    guard FileManager.default.fileExists(atPath: path) else { return nil }
    do {
      let queue = try DatabaseQueue(path: path, configuration: StoreConfiguration.defaults.grdbConfiguration(label: "registry-keys"))
      return try queue.read(storedFingerprint)
    } catch {
      throw StoreError.mapped(error, in: "the district registry")
    }
  }

  static func storedFingerprint(_ db: Database) throws -> String? {
    guard try db.tableExists("registry_meta") else { return nil }
    return try String.fetchOne(db, sql: "SELECT value FROM registry_meta WHERE key = ?", arguments: [DataKeys.fingerprintMetaKey])
  }

  static func checkKeys(_ pool: DatabasePool, _ keys: DataKeys) throws {
    guard let stored = try pool.read(storedFingerprint), stored != keys.fingerprint else { return }
    throw StoreError(
      .failedPrecondition,
      "数据密钥不符 wrong data key: the data here was sealed under the index key with fingerprint \(stored); the key given (\(keys.source.name)) has \(keys.fingerprint). "
        + "Use the key file this data directory was made with")
  }

  /// Named migrations; never edited once shipped.
  /// The migrations that sealed plaintext in place (``migrate(_:_:scrubbingAfter:)``); v13 also
  /// scrubs what v12 left, which stop 25 shipped without the scrub.
  static let scrubbingMigrations: Set<String> = ["v12-sealed-at-rest", "v13-padded-sealing"]

  static func migrator(keys: DataKeys) -> DatabaseMigrator {
    var migrator = DatabaseMigrator()
    migrator.registerMigration("v1-accounts-sessions") { db in
      try db.create(table: "account") { t in
        t.primaryKey("username", .text)
        t.column("role", .text).notNull()
        t.column("kindergartenCode", .text).indexed()
        t.column("displayName", .text).notNull()
        t.column("passwordHash", .text).notNull()
        t.column("mustChangePassword", .boolean).notNull()
        t.column("disabled", .boolean).notNull()
        t.column("sealed", .boolean).notNull()
        t.column("failedLogins", .integer).notNull()
        t.column("lockedUntil", .integer).notNull()
        t.column("createdAt", .integer).notNull()
        t.column("lastLoginAt", .integer).notNull()
        t.column("unsealedAt", .integer).notNull()
        t.column("classes", .text).notNull()
      }
      try db.create(table: "session") { t in
        t.primaryKey("tokenHash", .text)
        t.column("username", .text).notNull().indexed().references("account", onDelete: .cascade)
        t.column("createdAt", .integer).notNull()
        t.column("expiresAt", .integer).notNull()
      }
    }
    migrator.registerMigration("v1-onboarding") { db in
      try db.create(table: "application") { t in
        t.primaryKey("id", .text)
        t.column("state", .text).notNull().indexed()
        t.column("ownership", .text).notNull()
        t.column("name", .text).notNull()
        t.column("form", .text).notNull()
        t.column("institutionCode", .text).unique()
        t.column("returnReason", .text)
        t.column("commitmentSignatory", .text)
        t.column("commitmentDate", .text)
        t.column("createdAt", .integer).notNull()
        t.column("updatedAt", .integer).notNull()
      }
      try db.create(table: "onboarding_event") { t in
        t.autoIncrementedPrimaryKey("id")
        t.column("applicationId", .text).notNull().indexed().references("application")
        t.column("step", .text).notNull()
        t.column("actor", .text).notNull()
        t.column("actorRole", .text).notNull()
        t.column("at", .integer).notNull()
        t.column("note", .text).notNull()
      }
      try db.create(table: "kindergarten") { t in
        t.primaryKey("code", .text)
        t.column("name", .text).notNull()
        t.column("ownership", .text).notNull().indexed()
        t.column("applicationId", .text).notNull().unique().references("application")
        t.column("activatedAt", .integer).notNull()
      }
    }
    migrator.registerMigration("v1-audit") { db in
      try db.create(table: "audit_log") { t in
        t.autoIncrementedPrimaryKey("seq")
        t.column("atMs", .integer).notNull().indexed()
        t.column("username", .text).notNull()
        t.column("role", .text).notNull()
        t.column("kindergartenCode", .text).notNull()
        t.column("method", .text).notNull()
        t.column("targets", .text).notNull()
        t.column("result", .text).notNull()
        t.column("peer", .text).notNull()
        t.column("prevHash", .text).notNull()
        t.column("hash", .text).notNull()
      }
      try db.create(index: "audit_by_kindergarten", on: "audit_log", columns: ["kindergartenCode", "atMs"])
      try db.create(index: "audit_by_user", on: "audit_log", columns: ["username", "atMs"])
    }
    registerDeadlineMigrations(&migrator)
    registerRecordNumberMigrations(&migrator)
    registerMonthlyAuditMigrations(&migrator)
    registerChildIndexMigrations(&migrator)
    registerTransferMigrations(&migrator)
    registerDuplicateMigrations(&migrator)
    registerReservationMigrations(&migrator)
    registerAuditRequestMigrations(&migrator)
    ChildReferences.registerMigrations(&migrator)
    registerExportMigrations(&migrator)
    registerTransferAbortMigration(&migrator)
    registerLoginThrottleMigration(&migrator)
    registerSealingMigration(&migrator, keys: keys)
    return migrator
  }

  // MARK: Accounts

  public func accountCount() async throws -> Int {
    try await writer.read { db in try AccountRecord.fetchCount(db) }
  }

  public func account(_ username: String) async throws -> AccountRecord? {
    try await writer.read { db in try AccountRecord.fetchOne(db, key: username) }
  }

  /// Inserts a new account; fails with `alreadyExists` if the username is taken.
  public func createAccount(_ account: AccountRecord) async throws {
    try await writer.write { db in
      if try AccountRecord.exists(db, key: account.username) {
        throw StoreError(.alreadyExists, "username: '\(account.username)' is already taken")
      }
      try account.insert(db)
    }
  }

  /// Reads, changes and saves one account in one transaction. `change` may throw to abort.
  @discardableResult
  public func updateAccount(
    _ username: String, _ change: @Sendable (inout AccountRecord) throws -> Void
  ) async throws -> AccountRecord {
    try await writer.write { db in
      guard var account = try AccountRecord.fetchOne(db, key: username) else {
        throw StoreError(.notFound, "username: no account '\(username)'")
      }
      try change(&account)
      try account.update(db)
      return account
    }
  }

  /// Accounts of one kindergarten (code) or the district accounts (nil), by username.
  public func accounts(kindergarten code: String?, offset: Int, limit: Int) async throws -> (accounts: [AccountRecord], total: Int) {
    try await writer.read { db in
      let request = code.map { AccountRecord.filter(Column("kindergartenCode") == $0) }
        ?? AccountRecord.filter(Column("kindergartenCode") == nil)
      return (try request.order(Column("username")).limit(limit, offset: offset).fetchAll(db), try request.fetchCount(db))
    }
  }

  // MARK: Sessions

  public func createSession(_ session: SessionRecord) async throws {
    try await writer.write { db in try session.insert(db) }
  }

  /// The session with this token hash and its account, if both exist.
  public func session(tokenHash: String) async throws -> (SessionRecord, AccountRecord)? {
    try await writer.read { db in
      guard let session = try db.cachedRecord(SessionRecord.self, "SELECT * FROM session WHERE tokenHash = ?", [tokenHash]),
        let account = try db.cachedRecord(AccountRecord.self, "SELECT * FROM account WHERE username = ?", [session.username])
      else { return nil }
      return (session, account)
    }
  }

  public func deleteSession(tokenHash: String) async throws {
    _ = try await writer.write { db in try SessionRecord.deleteOne(db, key: tokenHash) }
  }

  /// Ends every session of an account (disabled, password reset).
  public func deleteSessions(username: String) async throws {
    _ = try await writer.write { db in try SessionRecord.filter(Column("username") == username).deleteAll(db) }
  }

  public func deleteExpiredSessions(now: Int64) async throws -> Int {
    try await writer.write { db in try SessionRecord.filter(Column("expiresAt") <= now).deleteAll(db) }
  }
}
