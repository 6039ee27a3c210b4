# Sourced by the benchmark scripts: starting a pemis-server for a measurement.
#
# start_server BIN_DIR WORK_DIR DATA_DIR [serve options…]
#   Starts `pemis-server serve` on a free port with the repository's calendar, logging warnings
#   only, output in WORK_DIR/server.out; sets $server (its pid) and $address (HOST:PORT of PEMIS
#   wire). Exits the script if the server does not start listening.
start_server() {
  local bin=$1 work=$2 data=$3
  shift 3
  "$bin/pemis-server" serve --data-dir "$data" --port 0 --log-level warning \
    --calendar-dir "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/Config/calendar" "$@" >"$work/server.out" 2>&1 &
  server=$!
  for _ in $(seq 300); do grep -q "listening on" "$work/server.out" && break; sleep 0.1; done
  address="$(grep -o 'listening on [^ ]*' "$work/server.out" | head -1 | cut -d' ' -f3)"
  [ -n "$address" ] || { cat "$work/server.out" >&2; echo "pemis-server did not start" >&2; exit 1; }
}
