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

/// A store failure a caller can act on; the server maps each kind to a gRPC status.
public struct StoreError: Error, Hashable, Sendable, CustomStringConvertible {
  public enum Kind: Sendable, Hashable {
    case notFound, alreadyExists, failedPrecondition, invalidArgument, permissionDenied, unavailable
    /// A concurrent change got there first, or recovery ended this one: worth trying again.
    case aborted
    /// Something ran out: numbers of a sequence, disk space.
    case resourceExhausted
  }
  public var kind: Kind
  public var message: String

  public init(_ kind: Kind, _ message: String) {
    self.kind = kind
    self.message = message
  }

  public var description: String { message }
}
