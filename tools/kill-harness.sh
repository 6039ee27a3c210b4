#!/usr/bin/env bash
# The crash-safety harness, large: SIGKILLs a release pemis-server at random moments during
# concurrent transfers, restarts it (recovery at start), and checks that every record number is
# active in exactly one shard, the index agrees, no transfer is stuck and no child is lost or
# doubled. The test suite runs the same harness small.
#
# Usage: tools/kill-harness.sh [KILLS] [KINDERGARTENS] [CHILDREN] [CLIENTS]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
swift build -c release --product pemis-server >&2
swift build -c release --product pemis-load >&2
bin="$(swift build -c release --show-bin-path)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$bin/pemis-load" kill-harness --server-binary "$bin/pemis-server" --data-dir "$work/data" \
  --calendar-dir "$root/Config/calendar" --kills "${1:-30}" --kindergartens "${2:-20}" --children "${3:-50}" --clients "${4:-16}"
"$bin/pemis-server" check --data-dir "$work/data" --calendar-dir "$root/Config/calendar"
