#!/usr/bin/env bash
# Sets up .venv, then runs the main job on the CPU-sized config: config and workdir can be
# changed with CONFIG=... WORKDIR=...; extra arguments are passed on (--config.x=... overrides).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m alexnet_jax.main --config="${CONFIG:-configs/fashion_mnist.py}" \
  --workdir="${WORKDIR:-runs/fashion_mnist}" "$@"
