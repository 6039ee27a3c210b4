#!/usr/bin/env bash
# The door under siege (docs/PERFORMANCE.md, "The door"): a well-behaved client's Health/Check
# latency alone, then while idle connections, clients that never read their answers and a login
# flood run at once, with the server's RSS sampled from /proc. Release build, diagnostics on (the
# never-reading clients call Echo/Get).
#
# Usage: tools/bench-door.sh [IDLE] [NEVER_READING] [LOGIN_FLOOD] [SECONDS]
#   defaults 10000 100 16 10: the issue's figure. Needs a descriptor limit above IDLE + NEVER_READING
#   for each of the two processes (ulimit -Hn).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
. "$root/tools/lib/server.sh"
if [ -n "${BIN:-}" ]; then bin="$BIN"; else build_release pemis-server pemis-load; fi
ulimit -n "$(ulimit -Hn)"
work_dir_with_cleanup
start_server "$bin" "$work" "$work/data" --diagnostics true
"$bin/pemis-load" door --server "$address" --server-pid "$server" \
  --idle "${1:-10000}" --never-reading "${2:-100}" --login-flood "${3:-16}" --duration "${4:-10}"
echo "server log lines (warnings and above): $(wc -l <"$work/server.out")"
grep -v "listening on" "$work/server.out" | head -n 5 || true
