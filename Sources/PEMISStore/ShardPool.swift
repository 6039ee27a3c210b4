internal import Dispatch
internal import Foundation
internal import GRDB
public import PEMISDomain
internal import Synchronization

/// The open kindergarten shards: opened on demand, at most `maxOpenShards` kept open, the least
/// recently used dropped first, safe under concurrent calls.
///
/// A dropped shard stays usable by calls that still hold it and closes when the last one lets go;
/// SQLite's locks (WAL, busy timeout) keep a second connection to the same file correct meanwhile.
/// Concurrent first calls to the same shard share one open.
public final class ShardPool: Sendable {
  public let directory: String
  /// The registry's keys: every shard seals and looks up with the same ones.
  public let keys: DataKeys
  private let configuration: StoreConfiguration
  private let observation: StoreObservation
  private let state = Mutex(State())
  private let hits = Atomic<Int>(0)
  private let opens = Atomic<Int>(0)
  private let evictions = Atomic<Int>(0)

  private struct State {
    var open: [InstitutionCode: (shard: TenantShard, lastUse: UInt64)] = [:]
    var opening: [InstitutionCode: [CheckedContinuation<TenantShard?, any Error>]] = [:]
    var tick: UInt64 = 0
    /// Each kindergarten's write counter, kept while its shard is closed and reopened.
    var generations: [InstitutionCode: ShardGeneration] = [:]
  }

  /// - Parameter directory: the shards folder, `<data>/shards`.
  /// - Parameter observation: hears each shard commit's time (the server's metrics).
  public init(
    directory: String, keys: DataKeys, configuration: StoreConfiguration = .defaults, observation: StoreObservation = .none
  ) throws {
    self.directory = directory
    self.keys = keys
    self.configuration = configuration
    self.observation = observation
    try makePrivateDirectory(directory)
  }

  public var openCount: Int { state.withLock { $0.open.count } }

  /// Open shards and the pool's counts so far, for the server's metrics.
  public var statistics: ShardPoolStatistics {
    ShardPoolStatistics(
      open: openCount, maxOpen: configuration.maxOpenShards, hits: hits.load(ordering: .relaxed),
      opens: opens.load(ordering: .relaxed), evictions: evictions.load(ordering: .relaxed))
  }

  /// How many writes a kindergarten's shard has committed since this process opened it first;
  /// nil if it never was. Caches of what a shard holds compare it to know they are current.
  public func generation(_ code: InstitutionCode) -> UInt64? {
    state.withLock { $0.generations[code] }?.value
  }

  /// Where shard files are opened and migrated, off the cooperative thread pool.
  static let openQueue = DispatchQueue(label: "pemis.shard-open", attributes: .concurrent)

  /// Where a kindergarten's shard lives. The code's format guarantees the path stays inside the
  /// shards folder.
  public func path(for code: InstitutionCode) -> String {
    (directory as NSString).appendingPathComponent("\(code.rawValue).sqlite")
  }

  public func exists(_ code: InstitutionCode) -> Bool {
    FileManager.default.fileExists(atPath: path(for: code))
  }

  /// Creates the shard (onboarding) or opens it if a previous attempt already created it.
  @discardableResult
  public func create(_ code: InstitutionCode, createdAt: Int64) async throws -> TenantShard {
    let shard = try await acquire(code, create: true)
    try await shard.stampIdentity(createdAt: createdAt)
    return shard
  }

  /// Removes a shard that onboarding created but could not complete.
  public func discard(_ code: InstitutionCode) {
    _ = state.withLock { $0.open.removeValue(forKey: code) }
    for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path(for: code) + suffix) }
  }

  /// An existing shard; `notFound` if the kindergarten has none.
  public func shard(_ code: InstitutionCode) async throws -> TenantShard {
    try await acquire(code, create: false)
  }

  private func acquire(_ code: InstitutionCode, create: Bool) async throws -> TenantShard {
    enum Next { case ready(TenantShard), wait, open }
    let next = state.withLock { state -> Next in
      state.tick += 1
      if let entry = state.open[code] {
        state.open[code] = (entry.shard, state.tick)
        return .ready(entry.shard)
      }
      if state.opening[code] != nil { return .wait }
      state.opening[code] = []
      return .open
    }
    switch next {
    case .ready(let shard):
      hits.wrappingAdd(1, ordering: .relaxed)
      return shard
    case .wait:
      let shard: TenantShard? = try await withCheckedThrowingContinuation { continuation in
        enum Now { case ready(TenantShard), queued, retry }
        let now = state.withLock { state -> Now in
          if let entry = state.open[code] { return .ready(entry.shard) }
          guard state.opening[code] != nil else { return .retry }
          state.opening[code]!.append(continuation)
          return .queued
        }
        switch now {
        case .ready(let shard): continuation.resume(returning: shard)
        case .queued: break
        case .retry: continuation.resume(returning: nil)
        }
      }
      // The open we waited for finished (and failed) in between: try again ourselves.
      guard let shard else { return try await acquire(code, create: create) }
      return shard
    case .open:
      let path = path(for: code)
      let configuration = self.configuration
      let observation = self.observation
      let generation = state.withLock { state in
        if let existing = state.generations[code] { return existing }
        let made = ShardGeneration()
        state.generations[code] = made
        return made
      }
      // Opening a file and running migrations blocks on the disk (fsync with synchronous=FULL):
      // do it on a thread of its own, never on the cooperative pool every call shares.
      let result: Result<TenantShard, any Error> = await withCheckedContinuation { continuation in
        Self.openQueue.async {
          continuation.resume(
            returning: Result {
              if !create && !FileManager.default.fileExists(atPath: path) {
                throw StoreError(.notFound, "kindergarten \(code) has no shard")
              }
              return try TenantShard(
                code: code, path: path, keys: self.keys, configuration: configuration, generation: generation, observation: observation)
            })
        }
      }
      let (waiters, evicted) = state.withLock { state -> ([CheckedContinuation<TenantShard?, any Error>], Int) in
        let waiters = state.opening.removeValue(forKey: code) ?? []
        var evicted = 0
        if case .success(let shard) = result {
          state.tick += 1
          state.open[code] = (shard, state.tick)
          while state.open.count > configuration.maxOpenShards,
            let oldest = state.open.min(by: { $0.value.lastUse < $1.value.lastUse })?.key
          {
            state.open.removeValue(forKey: oldest)
            evicted += 1
          }
        }
        return (waiters, evicted)
      }
      if case .success = result { opens.wrappingAdd(1, ordering: .relaxed) }
      evictions.wrappingAdd(evicted, ordering: .relaxed)
      for waiter in waiters { waiter.resume(with: result.map { Optional($0) }) }
      return try result.get()
    }
  }
}

/// A shard's write counter (see ``ShardPool/generation(_:)``).
final class ShardGeneration: Sendable {
  private let counter = Atomic<UInt64>(0)
  var value: UInt64 { counter.load(ordering: .acquiring) }
  func bump() { counter.add(1, ordering: .releasing) }
}
