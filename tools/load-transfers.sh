#!/usr/bin/env bash
# Transfer throughput: seeds KINDERGARTENS × CHILDREN offline, starts a release pemis-server
# (durability full by default), measures the raw SQLite commit rate on the same disk, then runs
# full transfers (out and in) with CLIENTS concurrent clients for SECONDS, and checks the
# invariant at the end. Not part of the test suite.
#
# Usage: tools/load-transfers.sh [CLIENTS] [SECONDS] [KINDERGARTENS] [CHILDREN] [DURABILITY]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
clients="${1:-16}"
seconds="${2:-20}"
n="${3:-100}"
m="${4:-30}"
durability="${5:-full}"
. "$root/tools/lib/server.sh"
build_release pemis-server pemis-load
work_dir_with_cleanup
"$bin/pemis-load" seed-district --data-dir "$work/data" --kindergartens "$n" --children "$m"
start_server "$bin" "$work" "$work/data" --durability "$durability"
"$bin/pemis-load" transfers --server "$address" --kindergartens "$n" --children "$m" --clients "$clients" \
  --duration "$seconds" --data-dir "$work/data" --durability "$durability" ${JSON:+--json "$JSON"}
