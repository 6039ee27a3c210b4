import Benchmark
import Foundation
import PEMISDomain
import PEMISStore
import Synchronization

/// A shards folder with `count` kindergartens' shards, made in setup and removed in teardown, and
/// the pools the benchmarks read it through (kept across samples, so closing a pool's last
/// shards is never part of a measurement).
final class Shards: Sendable {
  static let count = 64
  let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pemis-bench-shards-\(UUID())").path
  let codes: [InstitutionCode] = (1...count).map { try! InstitutionCode(validating: "11\(String(format: "%08d", $0))") }
  let next = Atomic<Int>(0)
  /// Keeps one shard open: every acquire of the next code opens a closed shard and drops the
  /// previous one, which closes (the least-recently-used churn of a busy district).
  let churn: ShardPool
  /// Large enough for what it is asked: after the first acquire, every acquire is a hit.
  let warm: ShardPool

  init() {
    churn = try! ShardPool(directory: directory, configuration: .init(durability: .full, maxOpenShards: 1))
    warm = try! ShardPool(directory: directory, configuration: .init(durability: .full, maxOpenShards: 4))
  }

  /// Creates every shard once (file, schema, identity); they close when this pool goes.
  func create() async throws {
    let pool = try ShardPool(directory: directory, configuration: .init(durability: .full, maxOpenShards: Self.count))
    for code in codes where !pool.exists(code) { try await pool.create(code, createdAt: 1_790_000_000) }
  }

  func remove() { try? FileManager.default.removeItem(atPath: directory) }

  /// The next code in turn, so that with a pool of one every acquire opens a closed shard.
  func nextCode() -> InstitutionCode { codes[next.add(1, ordering: .relaxed).newValue % codes.count] }
}

let shards = Shards()

let benchmarks: @Sendable () -> Void = {
  Benchmark.defaultConfiguration = .init(
    metrics: [.wallClock, .throughput, .mallocCountTotal],
    scalingFactor: .one, maxDuration: .seconds(3), maxIterations: 2_000)
  Benchmark.setup = { try await shards.create() }
  Benchmark.teardown = { shards.remove() }

  Benchmark("Shard open: a closed shard, the previous one closing (pool of 1)") { benchmark in
    for _ in benchmark.scaledIterations { blackHole(try await shards.churn.shard(shards.nextCode())) }
    benchmark.stopMeasurement()
  }

  Benchmark("Shard open: a closed shard, then its info (first read)") { benchmark in
    for _ in benchmark.scaledIterations { blackHole(try await shards.churn.shard(shards.nextCode()).info()) }
    benchmark.stopMeasurement()
  }

  Benchmark(
    "Shard open: an open shard (pool hit)",
    configuration: .init(metrics: [.wallClock, .throughput, .mallocCountTotal], scalingFactor: .kilo, maxDuration: .seconds(2))
  ) { benchmark in
    let code = shards.codes[0]
    _ = try await shards.warm.shard(code)
    benchmark.startMeasurement()
    for _ in benchmark.scaledIterations { blackHole(try await shards.warm.shard(code)) }
    benchmark.stopMeasurement()
  }
}
