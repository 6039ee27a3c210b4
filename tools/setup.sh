#!/usr/bin/env bash
# Installs the system packages PEMIS needs when they are missing (Debian/Ubuntu, as root).
#   libsqlite3-dev      SQLite, for the registry and the kindergarten shards
#   libprotobuf-c-dev   protobuf-c runtime, for the C client in tools/c-client
#   protobuf-c-compiler protoc-c, which generates the C client's messages
#   protobuf-compiler   protoc, for tools/generate-protos.sh
#   make, gcc           to build the C client
#   zlib1g-dev          zlib, which grpc-swift-nio-transport (the HTTP/2 listener) links for compression
#   libssl-dev          OpenSSL, for the C client's TLS (tools/c-client)
# With `test`, what only the test suite needs instead (tools/test.sh installs it while Swift builds):
#   prometheus          Prometheus and promtool, for the alert test (Config/prometheus/alerts.yml)
#   curl                the walkthrough (tools/demo-onboarding.sh) scrapes /metrics with it
# Safe to run again: it installs nothing that is already there.
#
# Usage: tools/setup.sh [test]
set -euo pipefail

packages=(libsqlite3-dev libprotobuf-c-dev protobuf-c-compiler protobuf-compiler make gcc zlib1g-dev libssl-dev)
[ "${1:-}" = test ] && packages=(prometheus curl)
need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for pkg in "${packages[@]}"; do
  have_pkg "$pkg" || need+=("$pkg")
done
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: missing system packages: ${need[*]}" >&2
  echo "setup: run as root, or: sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
echo "setup: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
