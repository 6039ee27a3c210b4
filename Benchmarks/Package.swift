// swift-tools-version:6.1
// Micro-benchmarks of PEMIS's hot paths with package-benchmark (ordo-one/benchmark), kept in a
// package of their own so the server's package does not depend on the benchmark tooling.
//
//   cd Benchmarks && swift package benchmark            (docs/PERFORMANCE.md)
//
// Not part of the test suite or CI.
import PackageDescription

let benchmark: [Target.Dependency] = [.product(name: "Benchmark", package: "benchmark")]
let plugins: [Target.PluginUsage] = [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
let settings: [SwiftSetting] = [.swiftLanguageMode(.v6)]

let package = Package(
  name: "PEMISBenchmarks",
  platforms: [.macOS(.v15)],
  dependencies: [
    // The project itself; named, because a path dependency's identity is its folder's name.
    .package(name: "pemis", path: ".."),
    // MallocInterposer only: the default traits also bring the ARC runtime interposer, whose ARC
    // metrics crash on Linux here (and whose package is not available).
    .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.1", traits: ["MallocInterposer"]),
    .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
  ],
  targets: [
    // PEMIS wire's frame codec: the encode and decode every call goes through six times.
    .executableTarget(
      name: "WireCodec",
      dependencies: benchmark + [
        .product(name: "PEMISWire", package: "pemis"),
        .product(name: "NIOCore", package: "swift-nio"),
      ],
      path: "Benchmarks/WireCodec", swiftSettings: settings, plugins: plugins),
    // Pure rules: ID document validation and working-day arithmetic.
    .executableTarget(
      name: "DomainRules",
      dependencies: benchmark + [
        .product(name: "PEMISDomain", package: "pemis"),
        .product(name: "PEMISStore", package: "pemis"),
      ],
      path: "Benchmarks/DomainRules", swiftSettings: settings, plugins: plugins),
    // Opening a kindergarten's shard through the pool: closed (file, WAL, migration check) and open.
    .executableTarget(
      name: "ShardOpen",
      dependencies: benchmark + [
        .product(name: "PEMISDomain", package: "pemis"),
        .product(name: "PEMISStore", package: "pemis"),
      ],
      path: "Benchmarks/ShardOpen", swiftSettings: settings, plugins: plugins),
    // The district child index: the lookups of the duplicate check and of transfers.
    .executableTarget(
      name: "IndexLookup",
      dependencies: benchmark + [
        .product(name: "PEMISDomain", package: "pemis"),
        .product(name: "PEMISStore", package: "pemis"),
      ],
      path: "Benchmarks/IndexLookup", swiftSettings: settings, plugins: plugins),
  ]
)
