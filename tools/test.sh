#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs missing system packages (as root) and the
# Python gRPC packages of the interop test (a venv in .build-python/), then runs every Swift test
# (which also builds and runs the C client, and runs Python's grpcio, against a real server), then
# fuzzes the frame decoder and the connection state machine for 30 s each (docs/FUZZING.md).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
tools/setup.sh
tools/interop-python/setup.sh >/dev/null
swift build --build-tests
swift test --skip-build
tools/fuzz.sh "${PEMIS_FUZZ_SECONDS:-30}" frames wire
