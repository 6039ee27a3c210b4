#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs missing system packages (as root), then runs
# every Swift test (which also builds and runs the C client against a real server).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
tools/setup.sh
swift build --build-tests
swift test --skip-build
