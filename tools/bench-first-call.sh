#!/usr/bin/env bash
# The cost of a kindergarten's first call while its shard is closed, with many kindergartens
# registered: seeds a data directory (default 10,000 kindergartens, offline), starts a release
# pemis-server on it keeping at most 64 shards open, and times GetKindergarten (which opens the
# caller's shard) cold and then warm for 200 random kindergartens. Not part of the test suite.
#
# Usage: tools/bench-first-call.sh [KINDERGARTENS] [SAMPLES]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
n="${1:-10000}"
samples="${2:-200}"
. "$root/tools/lib/server.sh"
build_release pemis-server pemis-load

work_dir_with_cleanup
"$bin/pemis-load" seed-district --data-dir "$work/data" --kindergartens "$n"
start_server "$bin" "$work" "$work/data" --max-open-shards 64
echo "shard files: $(ls "$work/data/shards" | grep -c 'sqlite$'); server keeps at most 64 open"
"$bin/pemis-load" first-call --server "$address" --kindergartens "$n" --samples "$samples"
