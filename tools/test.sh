#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs missing system packages (as root: those to
# build, then Prometheus for the alert test) and the Python gRPC packages of the interop test (a
# venv in .build-python/), then runs every Swift test
# (which also builds and runs the C client, and runs Python's grpcio, against a real server), then
# fuzzes the frame decoder and the connection state machine for 30 s each, side by side
# (docs/FUZZING.md).
#
# It builds in .build-test, without debug information: a third less to compile and link, and the
# developer's own .build (with debug information, for the debugger and `swift test`) is never
# rebuilt by it, nor it by theirs. Both are kept incremental.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export PEMIS_SCRATCH="$root/.build-test" PEMIS_DEBUG_INFO=none
swiftpm=(--scratch-path "$PEMIS_SCRATCH" -debug-info-format "$PEMIS_DEBUG_INFO")
# Each phase's wall time is printed at the end (the CI budget is 15 minutes on 2 cores).
times=()
phase() {
  local name="$1" start=$SECONDS
  shift
  "$@"
  times+=("$name $((SECONDS - start)) s")
}
phase setup tools/setup.sh
# What only the tests need — Prometheus (Debian) and the Python packages (PyPI) — downloads while
# Swift compiles (the one is the network, the other the CPUs); the tests wait for them.
python_log="$(mktemp)"
tools_log="$(mktemp)"
trap 'rm -f "$python_log" "$tools_log"' EXIT
tools/interop-python/setup.sh >/dev/null 2>"$python_log" &
python_pid=$!
tools/setup.sh test >"$tools_log" 2>&1 &
tools_pid=$!
phase build swift build --build-tests "${swiftpm[@]}"
test_tools_wait() {
  wait "$python_pid" || { cat "$python_log" >&2; echo "test.sh: the Python packages could not be installed" >&2; return 1; }
  wait "$tools_pid" || { cat "$tools_log" >&2; echo "test.sh: the test tools (tools/setup.sh test) could not be installed" >&2; return 1; }
}
phase test-tools test_tools_wait
phase tests swift test --skip-build "${swiftpm[@]}"
phase fuzz tools/fuzz.sh "${PEMIS_FUZZ_SECONDS:-30}" frames wire
echo "test.sh: passed in $SECONDS s ($(IFS=,; echo "${times[*]}" | sed 's/,/, /g'))"
