#!/usr/bin/env bash
# The crash-safety harness, large: SIGKILLs a release pemis-server at random moments during a
# concurrent mixed workload (transfers, enrollments, imports, accidental departures,
# key-information changes), restarts it (recovery at start), and checks that every record number
# is active in exactly one shard, the index agrees, no transfer is stuck, and the active children
# are the seeded ones plus those enrolled or imported minus those departed (nothing lost or
# doubled). The test suite runs the same harness small.
#
# Usage: tools/kill-harness.sh [KILLS] [KINDERGARTENS] [CHILDREN] [CLIENTS] [MIX]
#   KILLS default 30 (1000 or more for a long run); MIX a comma-separated subset of
#   transfers,enroll,import,depart,key-change (default all).
# Environment: MIN_MS / MAX_MS (run before each kill, default 300 / 2000), DURABILITY (full).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
swift build -c release --product pemis-server >&2
swift build -c release --product pemis-load >&2
bin="$(swift build -c release --show-bin-path)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$bin/pemis-load" kill-harness --server-binary "$bin/pemis-server" --data-dir "$work/data" \
  --calendar-dir "$root/Config/calendar" --kills "${1:-30}" --kindergartens "${2:-20}" --children "${3:-50}" --clients "${4:-16}" \
  --mix "${5:-transfers,enroll,import,depart,key-change}" --min-ms "${MIN_MS:-300}" --max-ms "${MAX_MS:-2000}" \
  --durability "${DURABILITY:-full}"
"$bin/pemis-server" check --data-dir "$work/data" --calendar-dir "$root/Config/calendar"
