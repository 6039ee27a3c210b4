// swift-tools-version:6.1
// PEMIS: the preschool education management information system of Binhai New Area.
// One target per layer (docs/ARCHITECTURE.md); executables are thin shells over the libraries.
import PackageDescription

let products: [Product] = [
  .executable(name: "pemis-server", targets: ["pemis-server"]),
  .executable(name: "pemis", targets: ["pemis"]),
  .executable(name: "pemis-load", targets: ["pemis-load"]),
  .library(name: "PEMISWire", targets: ["PEMISWire"]),
  .library(name: "PEMISProto", targets: ["PEMISProto"]),
  // For the micro-benchmarks in Benchmarks/, a package of their own that depends on this one.
  .library(name: "PEMISDomain", targets: ["PEMISDomain"]),
  .library(name: "PEMISStore", targets: ["PEMISStore"]),
]

let dependencies: [Package.Dependency] = [
  .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
  .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
  .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", from: "2.4.1"),
  .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
  .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
  .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
  .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
  .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
  .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
  .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
  .package(url: "https://github.com/yaslab/CSV.swift.git", from: "2.5.2"),
  // Standard gRPC over HTTP/2 (plaintext), the optional second listener: clients that speak only
  // standard gRPC (grpcio, grpcurl, other languages' stubs) reach the same services, and
  // pemis-load compares both transports against one server (docs/PERFORMANCE.md).
  .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.2"),
  // Tests only: random operation sequences with shrinking for the integrity property test
  // (Tests/PEMISServerTests/IntegrityPropertyTests.swift); no product target links it.
  .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.1"),
  // TLS on both listeners and in the clients (docs/CONFIGURATION.md, "TLS"). grpc-swift-nio-transport
  // already builds on these; named here because our own code imports them: NIOSSL for the
  // handshake, NIOCertificateReloading for the SIGHUP reload, X509 for the test certificates.
  .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
  .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
  .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
  .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
  // Operations (docs/OPERATIONS.md): the server's figures in Prometheus's format at /metrics
  // (swift-prometheus's registry), and swift-metrics' global system pointed at the same registry
  // in pemis-server, so a library that reports through swift-metrics shows up there too.
  .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
  .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
]

/// Swift 6 language mode everywhere, plus the upcoming features that keep dependencies explicit.
let settings: [SwiftSetting] = [
  .swiftLanguageMode(.v6),
  .enableUpcomingFeature("ExistentialAny"),
  .enableUpcomingFeature("InternalImportsByDefault"),
  .enableUpcomingFeature("MemberImportVisibility"),
]

let http2: Target.Dependency = .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport")

let nioSSL: Target.Dependency = .product(name: "NIOSSL", package: "swift-nio-ssl")

let nio: [Target.Dependency] = [
  .product(name: "NIOCore", package: "swift-nio"),
  .product(name: "NIOPosix", package: "swift-nio"),
]

var targets: [Target] = [
  // Generated messages and service stubs (tools/generate-protos.sh); never edited by hand.
  .target(
    name: "PEMISProto",
    dependencies: [
      .product(name: "GRPCCore", package: "grpc-swift-2"),
      .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
      .product(name: "SwiftProtobuf", package: "swift-protobuf"),
    ],
    swiftSettings: settings
  ),

  // C the wire needs and Swift's Glibc module does not export (malloc_trim).
  .target(name: "CPEMISSystem"),

  // PEMIS wire: the length-prefixed frame protocol of docs/PROTOCOL.md as a GRPCCore transport.
  .target(
    name: "PEMISWire",
    dependencies: nio + [
      "CPEMISSystem", nioSSL,
      .product(name: "GRPCCore", package: "grpc-swift-2"),
      .product(name: "SwiftProtobuf", package: "swift-protobuf"),
      .product(name: "Logging", package: "swift-log"),
    ],
    swiftSettings: settings
  ),
  .testTarget(
    name: "PEMISWireTests",
    dependencies: nio + [
      "PEMISWire", "PEMISProto",
      .product(name: "SwiftProtobuf", package: "swift-protobuf"),
      .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
      .product(name: "NIOEmbedded", package: "swift-nio"),
      .product(name: "NIOTestUtils", package: "swift-nio"),
      .product(name: "GRPCCore", package: "grpc-swift-2"),
    ],
    swiftSettings: settings
  ),

  // Pure rules of the regulation: no I/O. The one dependency reads the CSV of the child
  // template (quoted fields, embedded commas and line breaks) for batch import.
  .target(name: "PEMISDomain", dependencies: [.product(name: "CSV", package: "CSV.swift")], swiftSettings: settings),
  .testTarget(name: "PEMISDomainTests", dependencies: ["PEMISDomain"], swiftSettings: settings),

  // SQLite through GRDB: the registry, the kindergarten shards and the pool that opens them.
  .target(
    name: "PEMISStore",
    dependencies: [
      "PEMISDomain",
      .product(name: "GRDB", package: "GRDB.swift"),
      .product(name: "Crypto", package: "swift-crypto"),
    ],
    swiftSettings: settings
  ),
  // What crosses kindergartens: the district child index, the transfer saga and its recovery,
  // the duplicate sweep, the district summary, the consistency check.
  .target(
    name: "PEMISRouting",
    dependencies: ["PEMISStore", "PEMISDomain", .product(name: "Logging", package: "swift-log")],
    swiftSettings: settings
  ),

  .testTarget(
    name: "PEMISStoreTests",
    // Crypto: the sealing tests make a value in stop 25's unpadded format, to show it still opens.
    dependencies: ["PEMISStore", "PEMISDomain", .product(name: "GRDB", package: "GRDB.swift"), .product(name: "Crypto", package: "swift-crypto")],
    swiftSettings: settings
  ),

  // Service implementations, configuration and the server's lifecycle.
  .target(
    name: "PEMISServer",
    dependencies: [
      "PEMISWire", "PEMISProto", "PEMISDomain", "PEMISStore", "PEMISRouting",
      .product(name: "NIOPosix", package: "swift-nio"),
      // No GRDB: services read through the store's intention-named methods and write more than
      // one file only through the routing layer (docs/ROUTING.md).
      .product(name: "Crypto", package: "swift-crypto"),
      .product(name: "CryptoExtras", package: "swift-crypto"),
      .product(name: "GRPCCore", package: "grpc-swift-2"),
      .product(name: "SwiftProtobuf", package: "swift-protobuf"),
      .product(name: "Logging", package: "swift-log"),
      .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
      http2,
      nioSSL,
      .product(name: "NIOCertificateReloading", package: "swift-nio-extras"),
      .product(name: "NIOHTTP1", package: "swift-nio"),
      .product(name: "Prometheus", package: "swift-prometheus"),
    ],
    swiftSettings: settings
  ),
  .testTarget(
    name: "PEMISServerTests",
    dependencies: [
      "PEMISServer", "PEMISClient", "PEMISWire", "PEMISProto", "PEMISDomain", "PEMISStore", "PEMISRouting",
      .product(name: "GRDB", package: "GRDB.swift"),
      .product(name: "GRPCCore", package: "grpc-swift-2"),
      .product(name: "SwiftProtobuf", package: "swift-protobuf"),
      .product(name: "Logging", package: "swift-log"),
      .product(name: "PropertyBased", package: "swift-property-based"),
      http2,
      nioSSL,
      .product(name: "X509", package: "swift-certificates"),
      .product(name: "SwiftASN1", package: "swift-asn1"),
      .product(name: "Crypto", package: "swift-crypto"),
    ],
    swiftSettings: settings
  ),

  // What the client tool and the load generator share: addresses, connections, output.
  .target(
    name: "PEMISClient",
    dependencies: [
      "PEMISWire", "PEMISProto",
      .product(name: "GRPCCore", package: "grpc-swift-2"),
      nioSSL,
    ],
    swiftSettings: settings
  ),

  .executableTarget(
    name: "pemis-server",
    dependencies: [
      "PEMISServer", "PEMISStore", "PEMISRouting", "PEMISDomain",
      .product(name: "ArgumentParser", package: "swift-argument-parser"),
      .product(name: "Logging", package: "swift-log"),
      .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
      .product(name: "UnixSignals", package: "swift-service-lifecycle"),
      .product(name: "Metrics", package: "swift-metrics"),
      .product(name: "Prometheus", package: "swift-prometheus"),
    ],
    swiftSettings: settings
  ),
  .executableTarget(
    name: "pemis",
    dependencies: [
      "PEMISClient", "PEMISProto",
      // InputText.escaped: what the server sends back is printed escaped (Output.swift).
      "PEMISDomain",
      .product(name: "GRPCCore", package: "grpc-swift-2"),
      .product(name: "SwiftProtobuf", package: "swift-protobuf"),
      .product(name: "ArgumentParser", package: "swift-argument-parser"),
    ],
    swiftSettings: settings
  ),
  .executableTarget(
    name: "pemis-load",
    dependencies: [
      "PEMISClient", "PEMISProto", "PEMISServer", "PEMISStore", "PEMISDomain", "PEMISRouting",
      .product(name: "GRPCCore", package: "grpc-swift-2"),
      .product(name: "SwiftProtobuf", package: "swift-protobuf"),
      .product(name: "ArgumentParser", package: "swift-argument-parser"),
      .product(name: "Histogram", package: "hdrhistogram-swift"),
      http2,
    ],
    swiftSettings: settings
  ),
]

// Coverage-guided fuzzing (docs/FUZZING.md). The harnesses are a library, so the test suite runs
// every stored input through them in an ordinary debug build; the libFuzzer executables exist only
// in the fuzz build (`tools/fuzz.sh` sets PEMIS_FUZZ), where libFuzzer is linked.
targets.append(
  .target(
    name: "PEMISWireFuzzing",
    dependencies: [
      "PEMISWire",
      .product(name: "NIOCore", package: "swift-nio"),
      .product(name: "GRPCCore", package: "grpc-swift-2"),
      .product(name: "SwiftProtobuf", package: "swift-protobuf"),
    ],
    swiftSettings: settings
  ))
targets.append(
  .target(
    name: "PEMISFuzzing",
    dependencies: [
      "PEMISWireFuzzing", "PEMISServer", "PEMISStore", "PEMISClient", "PEMISWire", "PEMISProto",
      .product(name: "NIOCore", package: "swift-nio"),
      .product(name: "GRPCCore", package: "grpc-swift-2"),
      .product(name: "SwiftProtobuf", package: "swift-protobuf"),
      .product(name: "Logging", package: "swift-log"),
    ],
    swiftSettings: settings
  ))
if let index = targets.firstIndex(where: { $0.name == "PEMISServerTests" }) {
  targets[index].dependencies += ["PEMISFuzzing", "PEMISWireFuzzing"]
}
if Context.environment["PEMIS_FUZZ"] != nil {
  // Coverage and AddressSanitizer for this package's libraries only, in the ordinary build
  // directory: the dependencies stay as the test build compiled them, so a fuzz build after the
  // tests recompiles only our code (the wire's targets: PEMISWire alone), which is what lets a
  // short run fit the test command. One combined flag: the Swift driver keeps only the last
  // -sanitize= it is given (docs/FUZZING.md).
  let sanitizers = "-sanitize=fuzzer,address"
  for target in targets where target.type == .regular && !target.name.hasPrefix("C") {
    target.swiftSettings = (target.swiftSettings ?? []) + [.unsafeFlags([sanitizers])]
  }
  targets.append(.target(name: "PEMISFuzzDriver", path: "Fuzz/Driver", swiftSettings: settings))
  let fuzzTargets: [(name: String, dependencies: [Target.Dependency])] = [
    ("fuzz-frames", ["PEMISFuzzDriver", "PEMISWireFuzzing"]), ("fuzz-wire", ["PEMISFuzzDriver", "PEMISWireFuzzing"]),
    ("fuzz-server", ["PEMISFuzzDriver", "PEMISFuzzing", "PEMISWireFuzzing"]),
  ]
  for (name, dependencies) in fuzzTargets {
    targets.append(
      .executableTarget(
        name: name, dependencies: dependencies, path: "Fuzz/Targets/\(name)",
        swiftSettings: settings + [.unsafeFlags([sanitizers])], linkerSettings: [.unsafeFlags([sanitizers])]))
  }
}

let package = Package(
  name: "pemis",
  platforms: [.macOS(.v15)],
  products: products,
  dependencies: dependencies,
  targets: targets
)
