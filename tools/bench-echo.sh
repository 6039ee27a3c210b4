#!/usr/bin/env bash
# The PEMIS wire transport benchmark: unary Echo calls/s and p50/p90/p99 latency with 1, 16 and 64
# callers over 1 and 4 connections, client and server in separate processes, release build, on
# loopback. Not part of the test suite.
#
# Usage: tools/bench-echo.sh [pemis-load echo options, e.g. --duration 5 --json out.json]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
swift build -c release --product pemis-server >&2
swift build -c release --product pemis-load >&2
bin="$(swift build -c release --show-bin-path)"

data="$(mktemp -d)"
out="$data/server.out"
# PEMIS_SERVER_ARGS adds serve options (e.g. "--metrics-port 0": calls recorded for /metrics).
# shellcheck disable=SC2086
"$bin/pemis-server" serve --port 0 --data-dir "$data/data" --log-level warning --diagnostics true ${PEMIS_SERVER_ARGS:-} >"$out" 2>&1 &
server=$!
trap '[ "${server:-0}" = 0 ] || { kill $server 2>/dev/null; wait $server 2>/dev/null || true; }; rm -rf "$data" "$data.key"' EXIT
for _ in $(seq 100); do grep -q "listening on" "$out" && break; sleep 0.1; done
address="$(grep -o 'listening on [^ ]*' "$out" | head -1 | cut -d' ' -f3)"
[ -n "$address" ] || { cat "$out" >&2; echo "server did not start" >&2; exit 1; }

echo "server pid $server on $address; $(nproc) cores; $(swift --version 2>&1 | head -1)"
"$bin/pemis-load" echo --server "$address" "$@"
