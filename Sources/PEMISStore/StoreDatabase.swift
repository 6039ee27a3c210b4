internal import GRDB

/// One database file of the store (the registry, or a kindergarten's shard) with every GRDB error
/// turned into a ``StoreError`` as it leaves: the store's methods run their transactions through
/// here, so no `DatabaseError` — with its SQL text, a result code only SQLite people read — ever
/// reaches the routing layer, the services or a client. Errors the transactions throw themselves
/// (``StoreError``, `DomainError`, cancellation) pass through unchanged.
struct StoreDatabase<Writer: DatabaseWriter>: Sendable {
  /// The GRDB connection(s) themselves, for migrations and for tests that look underneath.
  let database: Writer
  /// The file in words a user understands, for messages: "the district registry", "the
  /// database of kindergarten 1112000101".
  let name: String

  /// Hears how long each committed write took (``StoreObservation``).
  let onCommit: (@Sendable (Duration) -> Void)?

  init(_ database: Writer, name: String, onCommit: (@Sendable (Duration) -> Void)? = nil) {
    self.database = database
    self.name = name
    self.onCommit = onCommit
  }

  /// Runs a write and reports its time to ``onCommit`` when it committed.
  private func timed<T>(_ write: () async throws -> T) async throws -> T {
    guard let onCommit else { return try await write() }
    let start = ContinuousClock.now
    let value = try await write()
    onCommit(ContinuousClock.now - start)
    return value
  }

  func read<T: Sendable>(_ value: @Sendable (Database) throws -> T) async throws -> T {
    do { return try await database.read(value) } catch { throw StoreError.mapped(error, in: name) }
  }

  func write<T: Sendable>(_ updates: @Sendable (Database) throws -> T) async throws -> T {
    do { return try await timed { try await database.write(updates) } } catch { throw StoreError.mapped(error, in: name) }
  }

  func unsafeRead<T: Sendable>(_ value: @Sendable (Database) throws -> T) async throws -> T {
    do { return try await database.unsafeRead(value) } catch { throw StoreError.mapped(error, in: name) }
  }

  func writeWithoutTransaction<T: Sendable>(_ updates: @Sendable (Database) throws -> T) async throws -> T {
    do { return try await timed { try await database.writeWithoutTransaction(updates) } } catch {
      throw StoreError.mapped(error, in: name)
    }
  }

  /// Blocking read, for callers already off the cooperative pool (and tests).
  func read<T>(_ value: (Database) throws -> T) throws -> T {
    do { return try database.read(value) } catch { throw StoreError.mapped(error, in: name) }
  }
}

extension StoreError {
  /// What `error` means for the caller if it is GRDB's, naming the file (`name`) but never the
  /// statement or its values; any other error (a ``StoreError`` thrown inside a transaction, a
  /// rule's error, cancellation) comes back as it is.
  static func mapped(_ error: any Error, in name: String) -> any Error {
    switch error {
    case let error as DatabaseError: StoreError(database: error, in: name)
    case is RowDecodingError:
      StoreError(.internal, "the server could not read a stored record of \(name) (an internal error; the server logged it)", cause: error)
    default: error
    }
  }

  /// SQLite's result code as a kind and a message (https://www.sqlite.org/rescode.html).
  init(database error: DatabaseError, in name: String) {
    let kind: Kind
    let message: String
    switch error.extendedResultCode {
    case .SQLITE_BUSY, .SQLITE_LOCKED:
      kind = .unavailable
      message = "the database is busy: another call is changing \(name); try again"
    case .SQLITE_CONSTRAINT_UNIQUE, .SQLITE_CONSTRAINT_PRIMARYKEY:
      kind = .alreadyExists
      message = "this record already exists in \(name); nothing was written"
    case .SQLITE_CONSTRAINT_FOREIGNKEY:
      kind = .aborted
      message = "the change refers to a record \(name) does not have; nothing was written"
    case .SQLITE_CONSTRAINT_NOTNULL:
      kind = .aborted
      message = "the change leaves a required value of \(name) empty; nothing was written"
    case .SQLITE_CONSTRAINT:
      kind = .aborted
      message = "the change breaks a consistency rule of \(name); nothing was written"
    case .SQLITE_FULL:
      kind = .resourceExhausted
      message = "the server's disk is full; nothing was written to \(name)"
    case .SQLITE_NOMEM:
      kind = .resourceExhausted
      message = "the server is out of memory; nothing was written to \(name); try again later"
    case .SQLITE_READONLY:
      kind = .unavailable
      message = "\(name) is read-only on the server; nothing was written"
    case .SQLITE_IOERR:
      kind = .unavailable
      message = "the server could not read or write \(name) (a disk error); try again later"
    case .SQLITE_CANTOPEN:
      kind = .unavailable
      message = "the server cannot open \(name); try again later"
    case .SQLITE_INTERRUPT:
      kind = .unavailable
      message = "the work on \(name) was interrupted; try again"
    case .SQLITE_CORRUPT, .SQLITE_NOTADB:
      kind = .dataLoss
      message = "\(name) is damaged on disk; the server's operator must restore it from a backup"
    case .SQLITE_TOOBIG:
      kind = .invalidArgument
      message = "a value is too large to store in \(name)"
    default:
      kind = .internal
      message = "the server failed working on \(name) (an internal error; the server logged it)"
    }
    self.init(kind, message, cause: error)
  }
}
