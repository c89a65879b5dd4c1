#!/usr/bin/env bash
# Creates .venv (once) and installs alexnet_jax into it, editable, with the extras named in $1
# (e.g. "test"). Needs only python3 (>= 3.11) with venv and pip.
set -euo pipefail
cd "$(dirname "$0")/.."
extras=${1:-}
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".${extras:+[$extras]}"
