#!/usr/bin/env bash
# Logins under attack: seeds a small district (offline), starts pemis-server on it with the
# production password cost (scrypt N = 2^15), then `pemis-load login-flood`: 100 guesses at once
# at one account (how many passwords the server actually checked, read from its registry), and
# a real user's login latency alone and during a flood of wrong logins from 64 callers.
# Not part of the test suite.
#
# Usage: tools/bench-login-flood.sh [FLOODERS] [SECONDS]
#   BIN=DIR uses already built products (e.g. a debug build) instead of building in release.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
flooders="${1:-64}"
seconds="${2:-20}"
. "$root/tools/lib/server.sh"
if [ -n "${BIN:-}" ]; then bin="$BIN"; else build_release pemis-server pemis-load; fi

work_dir_with_cleanup
"$bin/pemis-load" seed-district --data-dir "$work/data" --kindergartens 50
# The seeded accounts are hashed cheaply (cost 10); the real user gets the production cost,
# through the break-glass reset (which hashes at the server's cost).
echo "Seeded-principal-2026" | "$bin/pemis-server" admin reset-password district.seed --data-dir "$work/data" \
  --password-hash-cost 15 --password-stdin >/dev/null
start_server "$bin" "$work" "$work/data" --password-hash-cost 15
"$bin/pemis-load" login-flood --server "$address" --data-dir "$work/data" --kindergartens 50 \
  --flooders "$flooders" --seconds "$seconds"
