"""One per-device step in every layout (parallel.py): what crosses between devices, and that
every layout computes the single-device network (Secs. 3.2, 4.2, 5).

The collective counts are read from the compiled train step (lowered and compiled, never run)
of a small two-tower net with 1x1 kernels (what matters is which arrays cross, not the sizes),
on 2 devices here and on 4 in a subprocess:
  "data", "pmap"   all-reduces of the gradients and the two metrics only: no all-gather, so no
                   device computes another device's examples, whatever the conv lowering;
  "model", "data+model"  exactly Fig. 2's all-gathers (conv3, fc6, fc7, fc8 inputs, logits),
                   their reduce-scatters backward, and the gradient all-reduce over "batch".
"""

import functools
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from alexnet_jax import models, train
from benchmarks import comm_model_parallel as comm
from tests import tiny

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOWERINGS = ("native", "split", "im2col", "hybrid")
BATCH = 8


def _small(parallelism: str, lowering: str = "auto"):
    """tiny.config with 1x1 convs and reduce_window pools: quick to compile, Fig. 2's wiring."""
    c = tiny.config(parallelism=parallelism, **{"model.conv.lowering": lowering})
    c.model.conv.kernel_size, c.model.conv.padding = (1,) * 5, (0,) * 5
    c.model.pool.lowering = "reduce_window"
    return c


def _train_collectives(c, devices: int | None = None) -> list[dict]:
    """The collectives of `c`'s compiled train step on the first `devices` devices."""
    plan = tiny.plan(c, devices)
    state = jax.eval_shape(lambda: train.create_state(c, jax.random.key(0)))
    state = plan.place(jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), state))
    batch = plan.batch(
        {
            "image": np.zeros(models.input_shape(c, BATCH), np.float32),
            "label": np.zeros(BATCH, np.int32),
        }
    )
    step = functools.partial(train.train_step, dropout_key=jax.random.key(0))
    return comm.collectives(plan.map(step).lower(state, batch).compile().as_text())


def _n_params(c) -> int:
    model = models.create_model(c)
    return models.count_params(
        jax.eval_shape(lambda: models.init_params(model, c, jax.random.key(0)))
    )


def _check(c, found: list[dict], replicas: int, towers: int) -> None:
    """`found` is what the module docstring says `c.parallelism` may move, and no more."""
    moved = [x for x in found if x["moved"]]
    reduced = sum(comm._bytes(x["shape"]) for x in moved if x["op"] == "all-reduce")
    want = 4 * (_n_params(c) // towers + 2) if replicas > 1 else 0  # gradients, loss, top-1
    assert reduced == want, found
    if towers == 1:
        assert {x["op"] for x in moved} == {"all-reduce"}, found
        return
    gathers = [x for x in moved if x["op"] == "all-gather"]
    assert len(gathers) == len(comm.fig2_values(c.model)), found  # one per arrow of Fig. 2
    ops = {"all-gather", "reduce-scatter"} | ({"all-reduce"} if replicas > 1 else set())
    assert {x["op"] for x in moved} == ops, found
    between_towers = sum(x["moved"] for x in moved if x["op"] != "all-reduce")  # per replica
    assert between_towers == BATCH // replicas * comm.expected_bytes(c.model)["train"], found


@pytest.mark.multidevice
@pytest.mark.slow  # 12 compiles of a small train step
@pytest.mark.parametrize("lowering", LOWERINGS)
def test_two_devices_move_only_gradients_or_fig2s_arrows(lowering):
    for parallelism, replicas, towers in (("data", 2, 1), ("pmap", 2, 1), ("model", 1, 2)):
        c = _small(parallelism, lowering)
        _check(c, _train_collectives(c), replicas, towers)


def _assert_same_as_one_device(parallelisms: tuple[str, ...]) -> None:
    """Logits and every gradient of each layout equal the single-device network's, in float64.

    float64 (`jax.enable_x64`), because in float32 a ReLU or a max-pool near-tie within one
    rounding of flipping makes two correct layouts (other summation orders) differ by ~1e-2
    in a gradient; in float64 they agree to ~1e-15 and a layout bug is O(1).
    """
    with jax.enable_x64(True):
        c = tiny.config(**{"model.dtype": "float64"})
        params = tiny.float64(jax.device_get(tiny.train_state(c).params))
        batch = tiny.float64(tiny.batch(c, n=BATCH))
        (want_loss, want_logits), want_grads = tiny.loss_and_grads(
            tiny.one_device(c), params, batch
        )
        want = tiny.flat(want_grads)
        for parallelism in parallelisms:
            plan = tiny.plan(tiny.config(parallelism=parallelism, **{"model.dtype": "float64"}))
            (loss, logits), grads = tiny.loss_and_grads(plan, params, batch)
            assert tiny.rel(loss, want_loss) < 1e-12
            assert tiny.rel(logits, want_logits) < 1e-12
            got = tiny.flat(grads)
            for name, w in want.items():
                assert got[name].dtype == np.float64 and np.linalg.norm(w) > 0, name
                assert tiny.rel(got[name], w) < 1e-12, (parallelism, name)


@pytest.mark.multidevice
@pytest.mark.slow  # 3 compiles of forward and backward
def test_logits_and_gradients_equal_the_single_device_network():
    """ "model" is tests/test_model_parallel.py's, "data+model" the 4-device test's."""
    _assert_same_as_one_device(("data", "pmap"))


def _masks(c, devices: int | None = None) -> dict[str, np.ndarray]:
    """The dropout masks {fc7, fc8} [B, units] that `c`'s layout draws for one batch."""
    plan = tiny.plan(c, devices)
    params = jax.eval_shape(lambda: train.create_state(c, jax.random.key(0)).params)
    params = plan.place(jax.tree.map(lambda x: np.ones(x.shape, x.dtype), params))

    def forward(p, b):
        _, state = plan.model.apply(
            {"params": p},
            b["image"],
            train=True,
            rngs={"dropout": jax.random.key(3)},
            mutable="intermediates",
        )
        return state["intermediates"]["dropout_masks"][0]

    batch = plan.batch(tiny.batch(c, n=BATCH))
    return {k: np.asarray(v) for k, v in plan.fetch(plan.map(forward)(params, batch)).items()}


def _four_devices(out: str) -> None:
    """The 4-device checks, run in a subprocess (XLA_FLAGS gives it 4 host devices)."""
    assert jax.device_count() == 4
    report = {}
    for parallelism in ("data", "pmap", "data+model"):
        c = _small(parallelism, "native")
        report[parallelism] = _train_collectives(c)
    rate = {"model.dropout.rate": 0.5}
    layouts = {
        "one": (tiny.config(**rate), 1),
        "model": (tiny.config(parallelism="model", **rate), 2),
    }
    for parallelism in ("data", "pmap", "data+model"):
        layouts[parallelism] = (tiny.config(parallelism=parallelism, **rate), None)
    masks = {}
    for name, (c, devices) in layouts.items():
        for layer, m in _masks(c, devices).items():
            masks[f"{name}/{layer}"] = m
    np.savez(os.path.join(out, "masks.npz"), **masks)
    _assert_same_as_one_device(("data+model",))
    with open(os.path.join(out, "collectives.json"), "w") as f:
        json.dump(report, f)


@pytest.mark.multidevice
@pytest.mark.slow  # a subprocess: 3 train-step compiles, 5 forward ones, 2 gradient ones
def test_four_devices_collectives_dropout_masks_and_gradients(tmp_path):
    env = dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu"
    )
    code = f"from tests.test_layouts import _four_devices; _four_devices({str(tmp_path)!r})"
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(tmp_path / "collectives.json") as f:
        report = json.load(f)
    for parallelism, found in report.items():
        towers = 2 if parallelism == "data+model" else 1
        _check(_small(parallelism), found, replicas=4 // towers, towers=towers)
    masks = np.load(tmp_path / "masks.npz")
    for layer in ("fc7", "fc8"):
        want = masks[f"one/{layer}"]
        assert want.shape[0] == BATCH and 0.3 < want.mean() < 0.7
        assert not np.array_equal(want[0], want[1])  # a mask per example
        for name in ("data", "pmap", "model", "data+model"):
            np.testing.assert_array_equal(masks[f"{name}/{layer}"], want, err_msg=name)
