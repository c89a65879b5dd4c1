#!/usr/bin/env bash
# Two JAX processes on this machine, one training run (multi-host, Sec. 5's batch split over
# hosts). Each process is what one host of a cluster would run; on real hosts, give each the
# same --config.distributed.coordinator_address (process 0's host:port) and its own process_id.
#
#   bash scripts/multihost_example.sh                          # data parallel, 1 CPU device each
#   PARALLELISM=data+model DEVICES=2 bash scripts/multihost_example.sh   # 2 towers per host
#
# Every process computes the same global batch and uploads only its own rows; gradients are
# averaged across the processes (gloo on CPU); process 0 writes the logs; Orbax writes the
# checkpoint from all processes into the shared WORKDIR.
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG="${CONFIG:-configs/fashion_mnist.py:smoke}"
WORKDIR="${WORKDIR:-runs/multihost_example}"
PORT="${PORT:-12355}"
mkdir -p "$WORKDIR"  # before either process checks that it can write there
export XLA_FLAGS="--xla_force_host_platform_device_count=${DEVICES:-1}" JAX_PLATFORMS=cpu
pids=()
for id in 0 1; do
  .venv/bin/python -m alexnet_jax.main --config="$CONFIG" --workdir="$WORKDIR" \
    --config.parallelism="${PARALLELISM:-data}" \
    --config.distributed.coordinator_address="localhost:$PORT" \
    --config.distributed.num_processes=2 --config.distributed.process_id="$id" "$@" \
    > "$WORKDIR.process$id.log" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
for id in 0 1; do echo "== process $id (log: $WORKDIR.process$id.log)"; tail -n 4 "$WORKDIR.process$id.log"; done
exit "$status"
