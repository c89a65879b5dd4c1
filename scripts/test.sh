#!/usr/bin/env bash
# Sets up .venv with the test extras, then runs the whole suite: ruff format, ruff check, pytest.
# Extra arguments go to pytest (e.g. -m "not slow"). The suite runs on PYTEST_WORKERS processes
# (default 2, CI's cores; pytest-xdist): tests are dealt out one by one, except that the tests of a
# file with a module-scoped fixture stay together (their xdist_group mark).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
dirs="alexnet_jax configs experiments tests benchmarks"
.venv/bin/ruff format --check $dirs
.venv/bin/ruff check $dirs
# --durations: every log names the slowest tests (CI must stay under 15 minutes on 2 cores)
.venv/bin/python -m pytest -n "${PYTEST_WORKERS:-2}" --dist loadgroup --durations=25 "$@"
