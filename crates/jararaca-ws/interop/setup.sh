#!/usr/bin/env bash
# Creates the Python virtual environment the interop tests run Python jararaca 0.5.13 in.
#
# usage: setup.sh VENV_DIR
#
# It is built once and reused: a marker file says it is complete, and a lock makes parallel
# callers wait for the first instead of building it twice. Exits non-zero (with pip's output
# on standard error) when python3 or the package index is unavailable.
set -euo pipefail

venv=${1:?usage: setup.sh VENV_DIR}
here=$(cd "$(dirname "$0")" && pwd)
requirements="$here/requirements.txt"
# The marker names the requirements it was built from, so editing them rebuilds the venv.
marker="$venv/.ready-$(cksum <"$requirements" | cut -d' ' -f1)"

[ -f "$marker" ] && exit 0

mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
[ -f "$marker" ] && exit 0

rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
  -r "$requirements" >&2
"$venv/bin/python" -c 'import jararaca, greenlet, redis, uvicorn, fastapi' >&2
touch "$marker"
