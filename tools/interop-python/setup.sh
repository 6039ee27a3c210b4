#!/usr/bin/env bash
# Makes a Python virtual environment with grpcio and grpcio-tools (requirements.txt) in
# .build-python/venv at the repository root, and prints its python's path. Quick when it is
# already there: it installs only when the pinned versions are missing.
#
# Usage: tools/interop-python/setup.sh        (PYTHON=python3.12 to choose the interpreter)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$root/.build-python/venv"
python="$venv/bin/python"
requirements="$here/requirements.txt"
stamp="$venv/.requirements"

if [ ! -x "$python" ]; then
  echo "interop-python: creating $venv" >&2
  "${PYTHON:-python3}" -m venv "$venv" >&2 || {
    echo "interop-python: cannot create a virtual environment; on Debian: apt-get install -y python3-venv" >&2
    exit 1
  }
fi
# The stamp holds the requirements the venv was last filled from; anything else means install.
if ! cmp -s "$requirements" "$stamp" 2>/dev/null || ! "$python" -c "import grpc, grpc_tools" 2>/dev/null; then
  echo "interop-python: installing $(grep -v '^#' "$requirements" | xargs)" >&2
  "$python" -m pip install --disable-pip-version-check -q -r "$requirements" >&2
  cp "$requirements" "$stamp"
fi
echo "$python"
