#!/usr/bin/env bash
# Regenerates Sources/PEMISProto/Generated from Protos/.
#
# Messages come from protoc-gen-swift, service stubs from protoc-gen-grpc-swift-2. Both plugins
# are built from the mirrored swift-protobuf and grpc-swift-protobuf (tools/protoc-plugins) into a
# scratch path of their own, so they match the runtime versions Package.swift links. protoc is
# Debian's (protobuf-compiler), installed by tools/setup.sh when missing.
#
# Two outputs: the service protos (Protos/pemis/v1) become the public PEMISProto target; the wire
# protocol's frame payloads (Protos/pemis/wire) become internal types of PEMISWire, which owns them.
#
# Usage: tools/generate-protos.sh [OUTPUT_ROOT]   (default: the repository; files land in
#        OUTPUT_ROOT/Sources/PEMISProto/Generated and OUTPUT_ROOT/Sources/PEMISWire/Generated)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out_root="${1:-$root}"
scratch="$root/.build-protoc-plugins"

command -v protoc >/dev/null || "$root/tools/setup.sh"

for product in protoc-gen-swift protoc-gen-grpc-swift-2; do
  swift build -c release --package-path "$root/tools/protoc-plugins" \
    --scratch-path "$scratch" --product "$product" >&2
done
bin="$(swift build -c release --package-path "$root/tools/protoc-plugins" --scratch-path "$scratch" --show-bin-path)"

cd "$root/Protos"

# Services and their messages: public, in PEMISProto.
out="$out_root/Sources/PEMISProto/Generated"
mkdir -p "$out" && rm -f "$out"/*.swift
protos=$(find pemis/v1 -name '*.proto' | LC_ALL=C sort)
protoc --plugin="$bin/protoc-gen-swift" --swift_out="$out" \
  --swift_opt=Visibility=Public --swift_opt=FileNaming=PathToUnderscores --swift_opt=UseAccessLevelOnImports=true $protos
services=$(grep -l '^service ' $protos)
protoc --plugin="$bin/protoc-gen-grpc-swift-2" --grpc-swift-2_out="$out" \
  --grpc-swift-2_opt=Visibility=Public --grpc-swift-2_opt=FileNaming=PathToUnderscores --grpc-swift-2_opt=UseAccessLevelOnImports=true \
  --grpc-swift-2_opt=Server=true --grpc-swift-2_opt=Client=true $services

# The wire protocol's control payloads: internal to PEMISWire.
wire_out="$out_root/Sources/PEMISWire/Generated"
mkdir -p "$wire_out" && rm -f "$wire_out"/*.swift
protoc --plugin="$bin/protoc-gen-swift" --swift_out="$wire_out" \
  --swift_opt=Visibility=Internal --swift_opt=FileNaming=PathToUnderscores --swift_opt=UseAccessLevelOnImports=true \
  $(find pemis/wire -name '*.proto' | LC_ALL=C sort)

echo "generated $(ls "$out" "$wire_out" | grep -c swift) files" >&2
