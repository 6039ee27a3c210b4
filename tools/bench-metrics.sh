#!/usr/bin/env bash
# Scrape time of /metrics: seeds KINDERGARTENS × CHILDREN offline, starts a release pemis-server
# with the metrics listener, makes a few calls so every call metric exists, then times SCRAPES
# scrapes with curl (min/median/max). Target: under 50 ms at 1,000 kindergartens
# (docs/PERFORMANCE.md, "Metrics"). Not part of the test suite.
#
# Usage: tools/bench-metrics.sh [KINDERGARTENS] [CHILDREN] [SCRAPES]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
n="${1:-1000}"
m="${2:-30}"
scrapes="${3:-50}"
. "$root/tools/lib/server.sh"
build_release pemis-server pemis-load
work_dir_with_cleanup
"$bin/pemis-load" seed-district --data-dir "$work/data" --kindergartens "$n" --children "$m" >&2
start_server "$bin" "$work" "$work/data" --metrics-port 0 --diagnostics true
metrics="$(grep -o 'listening on [^ ]* (metrics' "$work/server.out" | cut -d' ' -f3)"
[ -n "$metrics" ] || { cat "$work/server.out" >&2; echo "no metrics listener" >&2; exit 1; }
"$bin/pemis-load" echo --server "$address" --duration 1 --callers 4 --connections 1 >/dev/null
curl -sf "http://$metrics/metrics" >"$work/first.txt"
echo "kindergartens $n, children each $m: $(wc -l <"$work/first.txt") lines, $(wc -c <"$work/first.txt") bytes per scrape"
for _ in $(seq "$scrapes"); do
  curl -sf -o /dev/null -w '%{time_total}\n' "http://$metrics/metrics"
done | sort -n | awk '{ t[NR] = $1 * 1000 } END {
  printf "scrape time over %d scrapes: min %.1f ms, median %.1f ms, max %.1f ms\n", NR, t[1], t[int((NR + 1) / 2)], t[NR] }'
