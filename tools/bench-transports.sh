#!/usr/bin/env bash
# PEMIS wire against standard gRPC over HTTP/2: unary Echo calls/s and p50/p90/p99 latency with
# 1, 16 and 64 callers over 1 and 4 connections, over each transport in turn against the SAME
# release server process (pemis-server --port 0 --http2-port 0), client and server in separate
# processes on loopback, then the ratio. Not part of the test suite.
#
# Usage: tools/bench-transports.sh [pemis-load echo options, e.g. --duration 5 --connections 1]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
swift build -c release --product pemis-server >&2
swift build -c release --product pemis-load >&2
bin="$(swift build -c release --show-bin-path)"

data="$(mktemp -d)"
out="$data/server.out"
"$bin/pemis-server" serve --port 0 --http2-port 0 --data-dir "$data/data" --log-level warning --diagnostics true >"$out" 2>&1 &
server=$!
trap '[ "${server:-0}" = 0 ] || { kill $server 2>/dev/null; wait $server 2>/dev/null || true; }; rm -rf "$data" "$data.key"' EXIT
for _ in $(seq 100); do grep -q "(gRPC over HTTP/2)" "$out" && break; sleep 0.1; done
wire="$(grep '(PEMIS wire' "$out" | grep -o 'listening on [^ ]*' | cut -d' ' -f3)"
http2="$(grep '(gRPC over HTTP/2)' "$out" | grep -o 'listening on [^ ]*' | cut -d' ' -f3)"
[ -n "$wire" ] && [ -n "$http2" ] || { cat "$out" >&2; echo "server did not start" >&2; exit 1; }

echo "server pid $server: PEMIS wire on $wire, gRPC over HTTP/2 on $http2; $(nproc) cores; $(swift --version 2>&1 | head -1)"
"$bin/pemis-load" echo --server "$wire" --http2-server "$http2" --transport wire,http2 "$@"
