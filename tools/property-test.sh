#!/usr/bin/env bash
# The integrity property test, long: N random sequences of operations over three kindergartens,
# with random fault points and concurrency (Tests/PEMISServerTests/IntegrityPropertyTests.swift).
# Prints sequences run, operations run, fault points hit and violations found.
#
# Usage: tools/property-test.sh [N]   (default 1000; the CI run uses the test's small default)
# Environment:
#   PEMIS_PROPERTY_JOBS=J     split the N sequences over J processes at once (default 1), one a
#                             core: each draws its own random sequences, and the figures are summed.
#   PEMIS_PROPERTY_MINUTES    raises the time limit (default 2 + N/J/100) on a loaded machine.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
total="${1:-1000}"
jobs="${PEMIS_PROPERTY_JOBS:-1}"
[[ "$total" =~ ^[1-9][0-9]*$ && "$jobs" =~ ^[1-9][0-9]*$ && "$jobs" -le "$total" ]] || {
  echo "usage: [PEMIS_PROPERTY_JOBS=J] tools/property-test.sh [N]   (N ≥ J ≥ 1)" >&2
  exit 2
}
swift build --build-tests >&2
# The test executable is copied aside: a build started while the long run goes on (another
# checkout's tests, tools/fuzz.sh) then cannot change what runs.
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
cp "$(swift build --show-bin-path)/pemisPackageTests.xctest" "$work/tests"

# Progress (every 250 sequences of a job) and the first violation go to stderr as they come; the
# findings and figures at the end.
pids=()
for ((j = 1; j <= jobs; j++)); do
  n=$((total / jobs + (j <= total % jobs ? 1 : 0)))
  label=""
  [ "$jobs" -gt 1 ] && label="job $j: "
  (
    PEMIS_PROPERTY_SEQUENCES="$n" "$work/tests" --testing-library swift-testing --filter IntegrityPropertyTests 2>&1 \
      | tee "$work/job$j.log" | grep --line-buffered -E "sequences so far|first violation" | sed -u "s/^/$label/" >&2
    exit "${PIPESTATUS[0]}"
  ) &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done

for ((j = 1; j <= jobs; j++)); do
  grep -v -E "sequences so far|^integrity property:" "$work/job$j.log" | grep -E "violation|Failure occured|fixedSeed|error:" | head -40 || true
  grep -v "sequences so far" "$work/job$j.log" | grep -E "^integrity property:|Test run with" || true
done
if [ "$jobs" -gt 1 ]; then
  cat "$work"/job*.log | awk '
    /^integrity property: [0-9]+ sequences, / {
      runs++; sequences += $3; operations += $5
      if (match($0, /[0-9]+ fault points armed/)) armed += substr($0, RSTART, RLENGTH) + 0
      if (match($0, /[0-9]+ fault points hit/)) hits += substr($0, RSTART, RLENGTH) + 0
      if (match($0, /[0-9]+ violations$/)) violations += substr($0, RSTART, RLENGTH) + 0
    }
    END {
      printf "integrity property, %d jobs (%d finished): %d sequences, %d operations; %d fault points armed, %d hit; %d violations\n",
        '"$jobs"', runs, sequences, operations, armed, hits, violations
    }'
fi
exit "$status"
