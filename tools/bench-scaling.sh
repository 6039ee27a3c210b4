#!/usr/bin/env bash
# How the cost of a transfer grows with the work: for 100, 1,000 and 10,000 kindergartens (10
# children each, the server keeping its default 256 shards open) and 1, 16 and 64 clients,
# runs full transfers for SECONDS each against a release server and prints one table row per
# point (transfers/s, p50/p99 latency). Each point on a freshly seeded district. Not part of the test suite; takes about five minutes.
#
# Usage: tools/bench-scaling.sh [SECONDS]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
seconds="${1:-10}"
. "$root/tools/lib/server.sh"
build_release pemis-server pemis-load
echo "| kindergartens | clients | transfers/s | p50 ms | p99 ms | errors |"
echo "|---:|---:|---:|---:|---:|---:|"
for n in 100 1000 10000; do
  for c in 1 16 64; do
    # A fresh district for each point: the clients start from where the seed put the children.
    work="$(mktemp -d)"
    "$bin/pemis-load" seed-district --data-dir "$work/data" --kindergartens "$n" --children 10 >/dev/null
    start_server "$bin" "$work" "$work/data"
    "$bin/pemis-load" transfers --server "$address" --kindergartens "$n" --children 10 --clients "$c" \
      --duration "$seconds" --json "$work/r.json" >/dev/null 2>&1
    python3 - "$n" "$c" "$work/r.json" <<'PY'
import json, sys
n, c, path = sys.argv[1:]
r = json.load(open(path))
errors = sum(r["errors"].values())
print(f"| {int(n):,} | {c} | {r['transfersPerSecond']:.0f} | {r['p50Ms']:.1f} | {r['p99Ms']:.1f} | {errors} |")
PY
    kill "$server"; wait "$server" 2>/dev/null || true
    rm -rf "$work"
  done
done
