#!/usr/bin/env bash
# Sets up .venv with the test extras, then runs the whole suite: ruff format, ruff check, pytest.
# Extra arguments go to pytest (e.g. -m "not slow").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
dirs="alexnet_jax configs experiments tests benchmarks"
.venv/bin/ruff format --check $dirs
.venv/bin/ruff check $dirs
.venv/bin/python -m pytest "$@"
