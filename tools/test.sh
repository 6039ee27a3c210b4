#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs missing system packages (as root) and the
# Python gRPC packages of the interop test (a venv in .build-python/), then runs every Swift test
# (which also builds and runs the C client, and runs Python's grpcio, against a real server), then
# fuzzes the frame decoder and the connection state machine for 30 s each (docs/FUZZING.md).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# Each phase's wall time is printed at the end (the CI budget is 15 minutes on 2 cores).
times=()
phase() {
  local name="$1" start=$SECONDS
  shift
  "$@"
  times+=("$name $((SECONDS - start)) s")
}
phase setup tools/setup.sh
phase python tools/interop-python/setup.sh >/dev/null
phase build swift build --build-tests
phase tests swift test --skip-build
phase fuzz tools/fuzz.sh "${PEMIS_FUZZ_SECONDS:-30}" frames wire
echo "test.sh: passed in $SECONDS s ($(IFS=,; echo "${times[*]}" | sed 's/,/, /g'))"
