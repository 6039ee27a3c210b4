#!/usr/bin/env bash
# PEMIS wire over TLS against plaintext: unary Echo calls/s and latency with 1 and 64 callers on one
# connection, one server process each, client and server in separate processes on loopback.
# A throwaway CA and a server certificate for 127.0.0.1 are made with openssl in a scratch
# directory (deleted at exit; no key is kept). Not part of the test suite.
#
# Usage: tools/bench-tls.sh [pemis-load echo options, e.g. --duration 5]
#   PEMIS_BENCH_CONFIG=debug uses a debug build instead of release (quicker to build, slower to run).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
config="${PEMIS_BENCH_CONFIG:-release}"
swift build -c "$config" --product pemis-server >&2
swift build -c "$config" --product pemis-load >&2
bin="$(swift build -c "$config" --show-bin-path)"

work="$(mktemp -d)"
server=0
trap '[ "$server" = 0 ] || { kill $server 2>/dev/null; wait $server 2>/dev/null || true; }; rm -rf "$work"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj "/CN=bench CA" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign \
  -keyout "$work/ca.key" -out "$work/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
  -keyout "$work/server.key" -out "$work/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$work/ext"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" -CAcreateserial -days 1 \
  -extfile "$work/ext" -out "$work/server.crt" 2>/dev/null

# start NAME [serve options…]: a server with Echo on; sets $address.
start() {
  local name=$1; shift
  "$bin/pemis-server" serve --port 0 --data-dir "$work/$name" --log-level warning --diagnostics true "$@" \
    >"$work/$name.out" 2>&1 &
  server=$!
  for _ in $(seq 100); do grep -q "listening on" "$work/$name.out" && break; sleep 0.1; done
  address="$(grep -o 'listening on [^ ]*' "$work/$name.out" | head -1 | cut -d' ' -f3)"
  [ -n "$address" ] || { cat "$work/$name.out" >&2; echo "server did not start" >&2; exit 1; }
}
stop() { kill "$server"; wait "$server" 2>/dev/null || true; server=0; }

echo "$config build; $(nproc) cores; $(swift --version 2>&1 | head -1)"
echo "== plaintext"
start plain
"$bin/pemis-load" echo --server "$address" --callers 1,64 --connections 1 "$@"
stop
echo "== TLS"
start tls --tls-certificate-chain "$work/server.crt" --tls-private-key "$work/server.key"
"$bin/pemis-load" echo --server "$address" --callers 1,64 --connections 1 --ca-file "$work/ca.crt" "$@"
stop
