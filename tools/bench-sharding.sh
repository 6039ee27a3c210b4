#!/usr/bin/env bash
# What sharding buys: the same writes (a child and its history entry per transaction, the same
# durability) into one SQLite file per kindergarten against one shared file, with 1, 4 and 16
# concurrent writers, on this disk. Not part of the test suite.
#
# Usage: tools/bench-sharding.sh [SECONDS] [DURABILITY]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
swift build -c release --product pemis-load >&2
bin="$(swift build -c release --show-bin-path)"
"$bin/pemis-load" sharding --seconds "${1:-5}" --durability "${2:-full}" --writers 1,4,16
