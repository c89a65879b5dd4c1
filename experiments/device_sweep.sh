#!/bin/bash
# A recipe sweep (one variant, several seeds) run, evaluated and tabled in one call of a lent
# GPU, packed into one file under $OUT: the device tool brings back at most 8 files, and
# checkpoints stay there. What takes the 2-core CPU a session per recipe (experiments/results/
# recipe_*_fashion_cpu2/README.md) is what a lent GPU is for.
#
#   bash experiments/device_sweep.sh SWEEP_FILE [PARALLEL] [TRAIN_SPLIT]
#
# SWEEP_FILE: experiments/sweeps/*.py; PARALLEL (default 3) training processes share the GPU;
# TRAIN_SPLIT (default train[:55000]) is where the clean training error is measured.
# Writes $OUT/NAME.tgz (NAME = the sweep file's name), holding what a results directory holds:
# ablations.*, runs.csv, run_files/, figures/, eval_ten_crop.{json,txt}, table2.*,
# train_error.{json,txt}; and $OUT/log.txt, everything printed. Unpack it here with
#   tar xzf NAME.tgz -C experiments/results/   (then rename NAME to NAME_fashion_h200)
# The Fashion-MNIST files travel in .device_data/fashion-mnist and are copied to the path the
# configs name, so the run directories (keyed by the resolved config) match the CPU ones.
set -euo pipefail
sweep=$1
parallel=${2:-3}
train_split=${3:-train[:55000]}
name=$(basename "$sweep" .py)
runs=/tmp/runs/$name
res=/tmp/results/$name  # packed into $OUT at the end: only 8 files come back
: "${OUT:?set OUT to the directory that comes back}"
data=/usr/share/datasets/fashion-mnist
mkdir -p "$res" "$data"
exec > >(tee "$OUT/log.txt") 2>&1
if [ ! -e "$data/t10k-labels-idx1-ubyte.gz" ]; then cp .device_data/fashion-mnist/*.gz "$data/"; fi
config=$(python3 -c "from experiments import sweep; print(sweep.load_sweep('$sweep')['config'])")
export XLA_PYTHON_CLIENT_MEM_FRACTION=$(python3 -c "print(round(0.9 / $parallel, 2))")
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,driver_version --format=csv
date -u +"%FT%TZ sweep"
python3 -m experiments.sweep --sweep="$sweep" --workdir="$runs" --parallel="$parallel"
dirs=$(python3 -c "
import json
m = json.load(open('$runs/sweep.json'))
print(','.join('$runs/' + r['run_dir'] for r in m['runs']))")
date -u +"%FT%TZ evaluate"
ev="python -m alexnet_jax.evaluate --config=$config --checkpoints=<the run dirs>"
python3 -m alexnet_jax.evaluate --config="$config" --config.input.eval_split=test \
  --checkpoints="$dirs" --modes=center,ten_crop --out="$res/eval_ten_crop.json" \
  | tee "$res/eval_ten_crop.txt"
python3 -m alexnet_jax.evaluate --config="$config" --config.input.eval_split="$train_split" \
  --checkpoints="$dirs" --modes=center --out="$res/train_error.json" | tee "$res/train_error.txt"
python3 -m experiments.tables --workdir="$runs" --out="$res"
python3 -m experiments.tables --eval_json="$res/eval_ten_crop.json" --out="$res" \
  --eval_command="$ev --config.input.eval_split=test --modes=center,ten_crop"
python3 -m experiments.figures --workdir="$runs" --out="$res/figures" --nonet_figures
date -u +"%FT%TZ done"
tar czf "$OUT/$name.tgz" -C /tmp/results "$name"
