/// What the store lets an operator see of it, without a metrics library of its own: counts the
/// server turns into metrics when they are scraped, and a hook that hears every commit's time
/// (`PEMISServer/Operations/ServerMetrics.swift`).
///
/// Kept to numbers about the store's work: no kindergarten code, record number or name.
public struct StoreObservation: Sendable {
  /// Called after every committed write transaction with how long it took, waiting for the
  /// file's writer included (the registry's or a shard's, as the hook was given). Runs in the
  /// writing call's task: it must be quick.
  public var onCommit: (@Sendable (Duration) -> Void)?

  public init(onCommit: (@Sendable (Duration) -> Void)? = nil) { self.onCommit = onCommit }

  public static var none: Self { Self() }
}

/// The shard pool's counts since it was made (``ShardPool/statistics``).
public struct ShardPoolStatistics: Sendable, Equatable {
  /// Shards open now, and at most.
  public var open: Int
  public var maxOpen: Int
  /// Calls that found their shard open; opens of a file; shards closed to stay under the limit.
  public var hits: Int
  public var opens: Int
  public var evictions: Int
}

/// The audit log's appends since the registry was opened (``Registry/auditStatistics``).
public struct AuditStatistics: Sendable, Equatable {
  /// Entries committed; entries whose commit failed (the caller got the error).
  public var appended: Int
  public var failed: Int
}
