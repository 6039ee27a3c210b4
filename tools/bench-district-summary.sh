#!/usr/bin/env bash
# The district summary with many kindergartens: seeds KINDERGARTENS × CHILDREN (default
# 1,000 × 300) offline, starts a release pemis-server, and times GetDistrictSummary cold (the
# first after the start: no shard open, every one read) and warm (nothing changed: counts from
# the cache). Targets (issue 6): warm < 100 ms, cold < 3 s. Not part of the test suite.
#
# Usage: tools/bench-district-summary.sh [KINDERGARTENS] [CHILDREN]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
n="${1:-1000}"
m="${2:-300}"
. "$root/tools/lib/server.sh"
build_release pemis-server pemis-load
work_dir_with_cleanup
"$bin/pemis-load" seed-district --data-dir "$work/data" --kindergartens "$n" --children "$m"
start_server "$bin" "$work" "$work/data"
"$bin/pemis-load" district-summary --server "$address"
