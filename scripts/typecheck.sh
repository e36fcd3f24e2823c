#!/usr/bin/env bash
# mypy over the installed package names (facelens.edge, …). The folders install under the
# facelens namespace through setuptools' package-dir mapping, which mypy cannot follow, so
# this checks a tree of symlinks that mirrors the installed layout (.cache/typecheck).
set -euo pipefail
cd "$(dirname "$0")/.."
tree=.cache/typecheck/facelens
mkdir -p "$tree"
for pkg in edge converter training workstation; do
    ln -sfn "../../../$pkg" "$tree/$pkg"
done
cd .cache/typecheck
exec ../../.venv/bin/mypy --config-file ../../pyproject.toml \
    -p facelens.edge -p facelens.converter -p facelens.training -p facelens.workstation
