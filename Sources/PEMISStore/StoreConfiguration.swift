/// How the registry and the shards are stored. Values are those of ``defaults``.
public struct StoreConfiguration: Sendable, Equatable {
  /// SQLite's `synchronous` setting. `full` (the default) survives power loss after every commit;
  /// `normal` survives a process crash but may lose the last commits on power loss, and is faster.
  public enum Durability: String, Sendable, Equatable, CaseIterable {
    case full
    case normal
  }

  public var durability: Durability
  /// Shards kept open at once; the least recently used closes first. Default 256.
  public var maxOpenShards: Int

  public init(durability: Durability = .full, maxOpenShards: Int = 256) {
    self.durability = durability
    self.maxOpenShards = maxOpenShards
  }

  public static var defaults: Self { Self() }
}

/// A store failure a caller can act on; the server maps each kind to a gRPC status
/// (`PEMISServer/ErrorStatus.swift`), so no string is compared to decide what went wrong.
///
/// Everything the store throws is one of these or an error of the rules (`DomainError`): GRDB's
/// errors are turned into a kind and a message here, at the store's edge (``StoreError/init(database:in:)``),
/// because only the store knows which file failed and the message must not carry SQL text or the
/// values of a statement (ID numbers).
public struct StoreError: Error, Hashable, Sendable, CustomStringConvertible {
  /// What the caller can do about it; one kind per gRPC status the store can cause.
  public enum Kind: Sendable, Hashable, CaseIterable {
    case notFound, alreadyExists, failedPrecondition, invalidArgument, permissionDenied
    /// Busy (another connection holds the lock), unreadable or read-only: trying again later may work.
    case unavailable
    /// The write broke a consistency rule of the database other than uniqueness, a concurrent
    /// change got there first, or recovery ended this one; nothing was written: worth trying again.
    case aborted
    /// The disk (or memory) is full, or the numbers of a sequence ran out; nothing was written.
    case resourceExhausted
    /// A file is damaged: the operator restores it from a backup.
    case dataLoss
    /// A fault of the server itself (a statement it got wrong, a stored value it cannot read).
    case `internal`
  }
  public var kind: Kind
  /// Says what failed in words the person at the console understands; no SQL, no personal data.
  public var message: String
  /// What the store saw (GRDB's error, with its SQL), for the server's log; never sent to clients
  /// and not part of equality.
  public var cause: (any Error)?

  public init(_ kind: Kind, _ message: String, cause: (any Error)? = nil) {
    self.kind = kind
    self.message = message
    self.cause = cause
  }

  public var description: String { message }

  public static func == (a: Self, b: Self) -> Bool { a.kind == b.kind && a.message == b.message }

  public func hash(into hasher: inout Hasher) {
    hasher.combine(kind)
    hasher.combine(message)
  }
}
