#!/usr/bin/env bash
# Creates .venv (once) and installs alexnet_jax into it, editable, with the extras named in $1
# (e.g. "test"). Installs the real Fashion-MNIST files (Debian's dataset-fashion-mnist, under
# /usr/share/datasets/fashion-mnist) where apt is available. Needs python3 (>= 3.11) with venv.
set -euo pipefail
cd "$(dirname "$0")/.."
extras=${1:-}
if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get install -y -q dataset-fashion-mnist >/dev/null \
    || { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q dataset-fashion-mnist >/dev/null; } \
    || echo "warning: could not install dataset-fashion-mnist; set --config.input.data_dir" >&2
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".${extras:+[$extras]}"
