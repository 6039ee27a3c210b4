// swift-tools-version:6.1
// Builds the two protoc plugins that generate PEMISProto from the mirrored packages, so that the
// generated code always matches the runtime versions the server links. Used only by
// tools/generate-protos.sh (scratch path .build-protoc-plugins at the repository root).
import PackageDescription

let package = Package(
  name: "pemis-protoc-plugins",
  dependencies: [
    .package(url: "https://github.com/apple/swift-protobuf.git", exact: "1.39.0"),
    .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", exact: "2.4.1"),
  ],
  targets: [
    // SwiftPM only builds products of dependencies that something in the graph names, so this
    // empty target names both plugin executables.
    .target(
      name: "Plugins",
      dependencies: [
        .product(name: "protoc-gen-swift", package: "swift-protobuf"),
        .product(name: "protoc-gen-grpc-swift-2", package: "grpc-swift-protobuf"),
      ],
      path: "Sources"
    )
  ]
)
