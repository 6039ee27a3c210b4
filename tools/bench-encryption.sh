#!/usr/bin/env bash
# The cost of encryption at rest (issue 13, item 4), paired: the district summary (cold and
# warm, KINDERGARTENS × CHILDREN, default 1,000 × 300) and transfers/s (16 clients, 15 s,
# 100 × 30, durability full), each run alternately with the release binaries of a build without
# sealing and of one with it, ROUNDS times (default 2). Not part of the test suite.
#
# The build without sealing is any commit before 0a41c88, e.g. bf10dcb:
#   git worktree add /tmp/plain bf10dcb && (cd /tmp/plain && swift build -c release --product pemis-server && swift build -c release --product pemis-load)
#   swift build -c release --product pemis-server && swift build -c release --product pemis-load
#   tools/bench-encryption.sh /tmp/plain/.build/release .build/release
#
# Usage: tools/bench-encryption.sh WITHOUT_BIN WITH_BIN [ROUNDS] [KINDERGARTENS] [CHILDREN]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
without="$(cd "$1" && pwd)"
with="$(cd "$2" && pwd)"
rounds="${3:-2}"
n="${4:-1000}"
m="${5:-300}"
. "$root/tools/lib/server.sh"

# Stops the server of one measurement and removes its scratch directory (data and key file).
stop_server() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  server=0
  rm -rf "$work"
}

summary() {
  local bin="$1"
  work_dir_with_cleanup
  "$bin/pemis-load" seed-district --data-dir "$work/data" --kindergartens "$n" --children "$m" >/dev/null
  start_server "$bin" "$work" "$work/data"
  "$bin/pemis-load" district-summary --server "$address"
  stop_server
}

transfers() {
  local bin="$1"
  work_dir_with_cleanup
  "$bin/pemis-load" seed-district --data-dir "$work/data" --kindergartens 100 --children 30 >/dev/null
  start_server "$bin" "$work" "$work/data" --durability full
  "$bin/pemis-load" transfers --server "$address" --kindergartens 100 --children 30 --clients 16 \
    --duration 15 --data-dir "$work/data" --durability full | grep -E "transfers/s|invariant"
  stop_server
}

for round in $(seq "$rounds"); do
  for side in without with; do
    bin="$without"; [ "$side" = with ] && bin="$with"
    echo "== round $round, $side sealing: district summary ($n × $m)"
    summary "$bin"
    echo "== round $round, $side sealing: transfers"
    transfers "$bin"
  done
done
