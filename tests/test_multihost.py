"""Multi-host training: two processes on localhost with jax.distributed (gloo on CPU).

Each process has 2 CPU devices (4 in all), initializes from config.distributed, and uploads
only its own half of every global batch. Two layouts take three steps each:
  "data"        a (4 x 1) mesh, dropout on: the masks are functions of the global example
                index, so the run must equal one process on one device up to float
                reordering, masks included;
  "data+model"  a (2 x 2) mesh: each process holds one two-tower replica (the towers talk
                within a host, the gradients are averaged across hosts).
Both processes must end with identical params, equal to the one-device steps, Orbax's
multi-host save must write a checkpoint that restores to them, and evaluate.run across the two
processes must count the errors one process counts. The steps compute in float64
(parameters float32): in float32 a ReLU or max-pool near-tie that one summation order flips
moves a gradient by ~1e-2, and which ones flip depends on the CPU's kernels.
A SIGTERM to one process of two training through main.py must stop both at one step.
"""

import functools
import json
import os
import signal
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from alexnet_jax import checkpoint, cli, evaluate, main, models, optim, parallel, train, validate
from tests import tiny

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 3
LAYOUTS = {"data": 0.5, "data+model": 0.0}  # parallelism -> dropout rate


def _start(parallelism: str):
    """(config, initial state, train_step, global batches) of one layout."""
    overrides = {"model.dropout.rate": LAYOUTS[parallelism], "model.dtype": "float64"}
    config = tiny.config(parallelism=parallelism, **overrides)
    state = tiny.train_state(config)
    step = functools.partial(train.train_step, dropout_key=jax.random.key(1))
    batches = [tiny.batch(config, n=8, seed=seed) for seed in range(STEPS)]
    return config, state, step, batches


def _worker(process_id: int, port: int, out_dir: str) -> None:
    """One of the two processes (the test runs it in a subprocess)."""
    jax.config.update("jax_enable_x64", True)  # float64 compute (the module's docstring)
    config = tiny.config()
    validate.config(config)  # as main.py does: before jax.distributed, so it must not start JAX
    distributed = config.distributed
    distributed.coordinator_address = f"localhost:{port}"
    distributed.num_processes, distributed.process_id = 2, process_id
    parallel.initialize_distributed(distributed)
    assert (jax.process_count(), jax.device_count(), jax.local_device_count()) == (2, 4, 2)
    for parallelism in LAYOUTS:
        config, state, step, batches = _start(parallelism)
        plan = parallel.create(config, models.create_model(config))
        mine = [{k: np.split(v, 2)[process_id] for k, v in b.items()} for b in batches]
        for shard in plan.batch(mine[0])["image"].addressable_shards:
            lo, hi = shard.index[0].start, shard.index[0].stop  # rows [4p, 4p + 4) only
            assert 4 * process_id <= lo < hi <= 4 * process_id + 4, (lo, hi)
            np.testing.assert_array_equal(shard.data, batches[0]["image"][lo:hi])
        state, p_step = plan.place(state), plan.map(step, donate=True)
        for batch in mine:
            state, _ = p_step(state, plan.batch(batch))
        np.savez(
            os.path.join(out_dir, f"{parallelism}_{process_id}.npz"), **tiny.flat(state.params)
        )
    mngr = checkpoint.create(out_dir, config.checkpoint)  # every process calls Orbax's save
    checkpoint.save(mngr, state, optim.Plateau(lr=config.optim.base_lr))
    mngr.close()
    rows = evaluate.run(_eval_config(config), [out_dir], ["center", "ten_crop"])
    with open(os.path.join(out_dir, f"eval_{process_id}.json"), "w") as f:
        json.dump(rows, f)
    jax.distributed.shutdown()


def _eval_config(config):
    """evaluate.run's config: 20 test images in batches of 8, each process reading its half."""
    c = config.copy_and_resolve_references()
    c.parallelism = "data"
    return c


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _two_processes(worker: str, *args: str, devices: int, timeout: int = 300) -> list[str]:
    """Runs `worker(process_id, port, *args)` of this module in two processes of `devices` CPU
    devices each, which must exit 0 within `timeout` seconds; their stdouts."""
    env = dict(
        os.environ,
        XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
        JAX_PLATFORMS="cpu",
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    port = _free_port()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"from tests.test_multihost import {worker}; {worker}({i}, {port}, *{args!r})",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        outs = [p.communicate(timeout=timeout) for p in procs]
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        pytest.fail(f"the two processes did not end within {timeout} s (a hang?)")
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    return [out for out, _ in outs]


@pytest.mark.multidevice
def test_two_processes_take_the_same_steps_as_one_device(tmp_path):
    _two_processes("_worker", str(tmp_path), devices=2)
    with jax.enable_x64(True):
        _check_against_one_device(tmp_path)


def _check_against_one_device(tmp_path) -> None:
    for parallelism in LAYOUTS:
        config, state, step, batches = _start(parallelism)
        initial = tiny.flat(state.params)
        one = tiny.one_device(config)
        state, one_step = one.place(state), one.map(step)
        for batch in batches:
            state, _ = one_step(state, one.batch(batch))
        want = tiny.flat(state.params)
        got = [np.load(tmp_path / f"{parallelism}_{i}.npz") for i in range(2)]
        assert set(got[0].files) == set(want)
        for name, w in want.items():
            np.testing.assert_array_equal(got[0][name], got[1][name])  # identical on both
            assert tiny.rel(w, initial[name]) > 1e-4, (parallelism, name)  # the steps moved it
            # float64 sums in another order, gradients averaged across processes in float32
            assert tiny.rel(got[0][name], w) < 1e-5, (parallelism, name)
    restored = tiny.train_state(config, seed=7)
    mngr = checkpoint.create(str(tmp_path), config.checkpoint)
    restored, _ = checkpoint.restore(mngr, restored, optim.Plateau(lr=0.0))
    mngr.close()
    assert int(restored.step) == STEPS
    for name, x in tiny.flat(restored.params).items():
        np.testing.assert_array_equal(x, got[0][name])
    # evaluation across the two processes counts what one process counts
    want = evaluate.run(_eval_config(config), [str(tmp_path)], ["center", "ten_crop"])
    assert want[0]["n"] == 20 and want[0]["top1_err"] > 0
    for i in range(2):
        with open(tmp_path / f"eval_{i}.json") as f:
            assert json.load(f) == want


def _stop_worker(process_id: int, port: int, workdir: str, data: str) -> None:
    """One of two processes training through main.py; process 0 alone gets SIGTERM before step 3
    (as one host of a preempted job may get it first)."""
    build = train._build

    def build_and_signal(*args, **kwargs):
        loop = build(*args, **kwargs)
        step, calls = loop.train, iter(range(1, 1000))

        def train_and_signal(state, batch):
            if next(calls) == 3 and process_id == 0:
                os.kill(os.getpid(), signal.SIGTERM)
            return step(state, batch)

        loop.train = train_and_signal
        return loop

    train._build = build_and_signal
    cli.run(
        main.define_flags,
        main.main,
        [
            "main",
            "--config=configs/fashion_mnist.py:smoke",
            f"--workdir={workdir}",
            f"--config.input.data_dir={data}",
            "--config.input.train_limit=64",  # 8 steps of 8 an epoch
            "--config.model.conv.features=(8,16,24,24,16)",
            "--config.model.fc_features=(32,32)",
            "--config.max_steps=16",
            "--config.log_every_steps=4",  # the processes agree on stopping every 4 steps
            "--config.checkpoint.every_steps=100",
            f"--config.distributed.coordinator_address=localhost:{port}",
            "--config.distributed.num_processes=2",
            f"--config.distributed.process_id={process_id}",
        ],
    )


@pytest.mark.multidevice
def test_a_signal_to_one_process_stops_every_process_at_one_step(tmp_path):
    """Each process reads its own signal flag; unless they agree on the step, process 0 enters
    the save's barrier after step 3 while process 1 waits in step 4 for its gradients: a hang."""
    data, workdir = str(tmp_path / "data"), str(tmp_path / "run")
    tiny.fake_fashion(data, n_train=64, n_test=20)
    outs = _two_processes("_stop_worker", workdir, data, devices=1)
    assert "stopped by signal 15 at step 4" in outs[0]
    assert "stopped by another process's signal at step 4" in outs[1]
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["4"]
