#!/usr/bin/env bash
# Coverage-guided fuzzing with libFuzzer, in a debug build (assertions on) with AddressSanitizer
# (docs/FUZZING.md). For each target: replays every stored crash (Fuzz/Regressions/TARGET), then
# fuzzes from the committed corpus plus the seeds for SECONDS, and prints executions and crashes.
# A crash is written to Fuzz/Regressions/TARGET/ (commit it with the fix) and fails the script.
#
# Usage: tools/fuzz.sh [SECONDS] [TARGET ...]
#   SECONDS per target (default 600); TARGET: frames (the frame decoder), wire (the connection
#   state machine), server (the whole server over one connection); default all three. The test
#   command runs `tools/fuzz.sh 30 frames wire`: those two build without the server.
# Environment:
#   FUZZ_KEEP=1    merge the inputs that found new coverage into Fuzz/Corpus/TARGET (a long run
#                  whose corpus is worth committing); otherwise the repository is not touched.
#   FUZZ_FORKS=N   run N fuzzing processes (libFuzzer -fork), default 1.
#   FUZZ_BIN=DIR   run the fuzz executables in DIR instead of building them: a long run from a
#                  copy (`cp .build/debug/fuzz-* DIR` after a fuzz build), so the checkout can
#                  build and test meanwhile without changing what runs.
#   PEMIS_SCRATCH=DIR, PEMIS_DEBUG_INFO=FORMAT
#                  the build directory (default .build) and debug information (default dwarf) of
#                  the build to reuse: tools/test.sh passes its own (.build-test, none), so the
#                  dependencies it compiled are not compiled again.
# The targets run side by side, each on a core of its own; their reports are printed in order.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
seconds="${1:-600}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(frames wire server)

# PEMIS_FUZZ=1 makes Package.swift add the libFuzzer executables and build this package's
# libraries with coverage and AddressSanitizer, in the ordinary .build: the dependencies are reused
# from the test build (docs/FUZZING.md, "Building"). The next ordinary build recompiles our code.
build() { PEMIS_FUZZ=1 swift build --scratch-path "${PEMIS_SCRATCH:-$root/.build}" -debug-info-format "${PEMIS_DEBUG_INFO:-dwarf}" "$@"; }
if [ -n "${FUZZ_BIN:-}" ]; then
  bin="$(cd "$FUZZ_BIN" && pwd)"
else
  for target in "${targets[@]}"; do build --product "fuzz-$target" >&2; done
  bin="$(build --show-bin-path)"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export PEMIS_CALENDAR_DIR="$root/Config/calendar"
# Leaks are not crashes here: the server's long-lived objects are alive at exit by design.
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:${ASAN_OPTIONS:-}"
# One target: replay, fuzz, report. Prints its report; its status is the function's; the number
# of executions goes to $work/runs-TARGET.
fuzz_one() {
  local target="$1" status=0
  local exe="$bin/fuzz-$target"
  local regressions="Fuzz/Regressions/$target"
  local corpus="$work/corpus-$target"
  echo 0 >"$work/runs-$target"
  mkdir -p "$regressions" "$corpus"
  # The stored crashes first: each must now pass.
  if compgen -G "$regressions/*" >/dev/null; then
    "$exe" "$regressions"/* >"$work/replay-$target.log" 2>&1 || {
      echo "fuzz $target: a stored crash input crashes again:"
      tail -n 30 "$work/replay-$target.log"
      return 1
    }
  fi
  local before
  before="$(ls "$regressions" | wc -l)"
  cp Fuzz/Corpus/"$target"/* "$corpus"/ 2>/dev/null || true
  PEMIS_FUZZ_WRITE_SEEDS="$corpus" PEMIS_FUZZ_WRITE_DICTIONARY="$work/$target.dict" "$exe" >/dev/null 2>&1
  local dict=()
  [ -f "$work/$target.dict" ] && dict=(-dict="$work/$target.dict")
  local log="$work/fuzz-$target.log"
  local fuzz_status=0
  "$exe" "$corpus" "${dict[@]}" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$regressions/" ${FUZZ_FORKS:+-fork="$FUZZ_FORKS" -ignore_crashes=0} \
    >"$log" 2>&1 || fuzz_status=$?
  local runs coverage crashes
  runs="$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -n 1 || true)"
  [ -n "$runs" ] || runs="$(grep -Eo '^#[0-9]+' "$log" | tail -n 1 | tr -d '#' || echo 0)"
  coverage="$(grep -Eo 'cov: [0-9]+' "$log" | tail -n 1 | grep -Eo '[0-9]+' || echo 0)"
  crashes=$(( $(ls "$regressions" | wc -l) - before ))
  echo "$runs" >"$work/runs-$target"
  echo "fuzz $target: $runs executions in ${seconds} s, coverage $coverage edges, $crashes crashes, corpus $(ls "$corpus" | wc -l) inputs"
  if [ "$runs" -eq 0 ]; then
    echo "fuzz $target: FAILED: libFuzzer ran no input (is the executable's main libFuzzer's driver?):"
    tail -n 20 "$log"
    status=1
  fi
  if [ "$fuzz_status" -ne 0 ] || [ "$crashes" -gt 0 ]; then
    echo "fuzz $target: FAILED (libFuzzer exit $fuzz_status); the input is in $regressions/:"
    grep -E "ERROR|Fatal error|SUMMARY|panic|precondition|#[0-9]+ 0x" "$log" | head -n 40 || tail -n 40 "$log"
    status=1
  fi
  if [ "${FUZZ_KEEP:-0}" = 1 ]; then
    mkdir -p "Fuzz/Corpus/$target"
    "$exe" -merge=1 "Fuzz/Corpus/$target" "$corpus" >/dev/null 2>&1 || true
    echo "fuzz $target: Fuzz/Corpus/$target now has $(ls "Fuzz/Corpus/$target" | wc -l) inputs"
  fi
  return "$status"
}

pids=()
for target in "${targets[@]}"; do
  fuzz_one "$target" >"$work/report-$target" 2>&1 &
  pids+=("$!")
done
status=0
total=0
for i in "${!targets[@]}"; do
  target="${targets[$i]}"
  if wait "${pids[$i]}"; then
    cat "$work/report-$target"
  else
    # A failing target's report goes to standard error, as the failures always did.
    cat "$work/report-$target" >&2
    status=1
  fi
  total=$((total + $(cat "$work/runs-$target")))
done
echo "fuzz: $total executions in all"
exit "$status"
