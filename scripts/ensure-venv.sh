#!/usr/bin/env bash
# Make .venv (with the python given as $PYTHON, default python3) if it is missing, and
# install FaceLens into it, editable, with the extras named in $1 (e.g. "dev" or "edge,demo").
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    "${PYTHON:-python3}" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[$1]"
