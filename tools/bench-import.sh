#!/usr/bin/env bash
# Importing the child template end to end through the client tool: seeds one kindergarten
# (offline), starts a release pemis-server, writes N synthetic children with valid, unique ID
# numbers (pemis-load children-csv), and times `pemis child import` from the client's start to
# its exit, then the same file again (nothing new: every row already enrolled and unchanged),
# then the same rows as GB18030. Not part of the test suite. Target (issue 5): 5,000 rows < 5 s.
#
# Usage: tools/bench-import.sh [ROWS]
set -euo pipefail
# The server here is plaintext on loopback; pemis speaks TLS unless told (docs/CONFIGURATION.md, "TLS").
export PEMIS_PLAINTEXT=1
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
rows="${1:-5000}"
. "$root/tools/lib/server.sh"
build_release pemis-server pemis pemis-load

work_dir_with_cleanup
"$bin/pemis-load" seed-district --data-dir "$work/data" --kindergartens 1 --password "Seeded-principal-2026" >/dev/null
start_server "$bin" "$work" "$work/data"
export PEMIS_CONFIG_DIR="$work/client"
echo "Seeded-principal-2026" | "$bin/pemis" login --server "$address" --user p1100000001 >/dev/null

"$bin/pemis-load" children-csv --count "$rows" --output "$work/children.csv"
iconv -f UTF-8 -t GB18030 "$work/children.csv" >"$work/children-gb18030.csv"
echo "file: $rows rows, $(stat -c %s "$work/children.csv") bytes (UTF-8)"

timed() {
  local label=$1; shift
  local start end
  start=$(date +%s.%N)
  "$@" 2>/dev/null | tail -1
  end=$(date +%s.%N)
  printf '%-34s %6.2f s\n' "$label" "$(echo "$end - $start" | bc)"
}
timed "import $rows rows (new):" "$bin/pemis" child import "$work/children.csv"
timed "import again (all unchanged):" "$bin/pemis" child import "$work/children.csv"
timed "import again as GB18030:" "$bin/pemis" child import "$work/children-gb18030.csv"
echo "children enrolled: $("$bin/pemis" child list --json | tr -d ' \n' | grep -o '"totalCount":"[0-9]*"' | grep -o '[0-9]*')"
