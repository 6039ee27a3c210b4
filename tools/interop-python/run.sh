#!/usr/bin/env bash
# Runs the Python interop test (test_interop.py) against a pemis-server's standard gRPC
# (HTTP/2) listener: makes the venv if needed (setup.sh), generates the Python stubs from Protos/
# into a scratch directory (not committed), then runs the test with the given options.
#
# Usage: tools/interop-python/run.sh --server HOST:PORT --user U --password P \
#          --kindergarten CODE --other-kindergarten CODE --enrolled-id ID
# Exits 0 when every check passes; non-zero (and says which check failed) otherwise.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
python="$("$here/setup.sh")"

stubs="$(mktemp -d)"
trap 'rm -rf "$stubs"' EXIT
(cd "$root/Protos" && "$python" -m grpc_tools.protoc -I . --python_out="$stubs" --grpc_python_out="$stubs" pemis/v1/*.proto)
PYTHONPATH="$stubs" "$python" "$here/test_interop.py" "$@"
