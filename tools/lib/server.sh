# Sourced by the benchmark scripts: building in release, a scratch directory, and starting a
# pemis-server for a measurement.
#
# start_server BIN_DIR WORK_DIR DATA_DIR [serve options…]
#   Starts `pemis-server serve` on a free port with the repository's calendar, logging warnings
#   only, output in WORK_DIR/server.out; sets $server (its pid) and $address (HOST:PORT of PEMIS
#   wire). Exits the script if the server does not start listening. PEMIS_SERVER_ARGS adds serve
#   options to every benchmark's server, e.g. PEMIS_SERVER_ARGS="--metrics-port 0" to measure
#   with metrics recorded (docs/PERFORMANCE.md, "Metrics").
start_server() {
  local bin=$1 work=$2 data=$3
  shift 3
  "$bin/pemis-server" serve --data-dir "$data" --port 0 --log-level warning \
    --calendar-dir "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/Config/calendar" "$@" ${PEMIS_SERVER_ARGS:-} >"$work/server.out" 2>&1 &
  server=$!
  for _ in $(seq 300); do grep -q "listening on" "$work/server.out" && break; sleep 0.1; done
  address="$(grep -o 'listening on [^ ]*' "$work/server.out" | head -1 | cut -d' ' -f3)"
  [ -n "$address" ] || { cat "$work/server.out" >&2; echo "pemis-server did not start" >&2; exit 1; }
}

# build_release PRODUCT… : builds the products in release (progress on stderr); sets $bin to
# where they are.
build_release() {
  local product
  for product in "$@"; do swift build -c release --product "$product" >&2; done
  bin="$(swift build -c release --show-bin-path)"
}

# work_dir_with_cleanup: makes a scratch directory ($work) and, on exit, stops the server
# start_server started (if it got that far) and removes the directory.
work_dir_with_cleanup() {
  work="$(mktemp -d)"
  server=0
  trap '[ "${server:-0}" = 0 ] || { kill $server 2>/dev/null; wait $server 2>/dev/null || true; }; rm -rf "$work"' EXIT
}
