#!/usr/bin/env bash
# The district duplicate sweep over a large index: seeds KINDERGARTENS × CHILDREN (default
# 1,000 × 300) offline with PROBLEMS planted problem records of each kind (default 100), starts
# a release pemis-server, runs the sweep twice (first: opens 3 × PROBLEMS cases, checked; again:
# opens nothing) and reports the time of each and the server's peak memory (VmHWM) before and
# after. Not part of the test suite.
#
# Usage: tools/bench-duplicate-sweep.sh [KINDERGARTENS] [CHILDREN] [PROBLEMS]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
n="${1:-1000}"
m="${2:-300}"
k="${3:-100}"
. "$root/tools/lib/server.sh"
build_release pemis-server pemis-load
work_dir_with_cleanup
"$bin/pemis-load" seed-district --data-dir "$work/data" --kindergartens "$n" --children "$m" --problems "$k"
start_server "$bin" "$work" "$work/data"
peak() { awk '/VmHWM/ {printf "%.0f MiB", $2 / 1024}' "/proc/$server/status"; }
echo "server peak memory before the sweep: $(peak)"
"$bin/pemis-load" duplicate-sweep --server "$address" --expect $((3 * k))
echo "server peak memory after the sweeps: $(peak)"
