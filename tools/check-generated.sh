#!/usr/bin/env bash
# Says whether the committed generated code is what tools/generate-protos.sh makes from Protos/
# now. Exit 0: current. Exit 1: stale (the diff is printed); run tools/generate-protos.sh.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
fresh="$(mktemp -d)"
trap 'rm -rf "$fresh"' EXIT

"$root/tools/generate-protos.sh" "$fresh"
stale=0
for dir in Sources/PEMISProto/Generated Sources/PEMISWire/Generated; do
  diff -ru "$root/$dir" "$fresh/$dir" || stale=1
done
if [ "$stale" = 0 ]; then
  echo "generated code is current"
else
  echo "generated code is stale: run tools/generate-protos.sh and commit the result" >&2
  exit 1
fi
