"""The paper's two-tower model parallelism (Sec. 3.2, Fig. 2) and data+model on a device mesh.

Against the single-device model (same params, same batch, dropout off) to 1e-5 relative, and
against the independent float64 PyTorch net of tests/reference.py.
"""

import functools
import re

import jax
import numpy as np
import pytest
import torch

from alexnet_jax import checkpoint, input_pipeline, models, optim, parallel, train
from benchmarks import comm_model_parallel as comm
from tests import reference, tiny


@pytest.mark.multidevice
def test_logits_and_every_gradient_equal_the_single_device_model_and_torch():
    """In float64 (`jax.enable_x64`) on both sides: float32 gradients through ReLUs and
    max-pools are not comparable across implementations (a near-tie flips with the summation
    order); in float64 the towers, one device and PyTorch agree to ~1e-15."""
    with jax.enable_x64(True):
        config = tiny.config(parallelism="model", **{"model.dtype": "float64"})
        params = tiny.float64(jax.device_get(tiny.train_state(config).params))
        batch = tiny.float64(tiny.batch(config))
        (_, logits), grads = tiny.loss_and_grads(tiny.plan(config), params, batch)
        (_, want_logits), want_grads = tiny.loss_and_grads(tiny.one_device(config), params, batch)
    assert tiny.rel(logits, want_logits) < 1e-12
    for layer in params:
        for leaf in ("kernel", "bias"):
            g, w = grads[layer][leaf], want_grads[layer][leaf]
            assert g.dtype == np.float64 and np.linalg.norm(w) > 0, (layer, leaf)
            assert tiny.rel(g, w) < 1e-12, (layer, leaf)
    # The independent oracle: float64 PyTorch with each tower's LRN window cut at channel C/2.
    tparams = reference.to_torch_params(params)
    m = config.model.to_dict()
    torch_logits = reference.torch_alexnet(tparams, m, batch["image"])
    assert tiny.rel(logits, torch_logits.detach().numpy()) < 1e-10
    torch.nn.functional.cross_entropy(torch_logits, torch.tensor(batch["label"]).long()).backward()
    for layer, leaves in reference.grads_to_ours(tparams).items():
        for leaf, w in leaves.items():
            assert tiny.rel(grads[layer][leaf], w) < 1e-10, (layer, leaf)
    # The towers' LRN placement mattered: normalizing across the boundary is another function.
    across = dict(m, lrn=dict(m["lrn"], within_towers=False))
    across_logits = reference.torch_alexnet(tparams, across, batch["image"]).detach().numpy()
    assert tiny.rel(logits, across_logits) > 1e-4


@pytest.mark.multidevice
def test_train_steps_equal_the_single_device_steps_and_move_what_fig2_says():
    step = functools.partial(train.train_step, dropout_key=jax.random.key(1))
    # The towers exchanged exactly the inputs of conv3, fc6, fc7, fc8 (and the logits), once
    # forward (all-gather) and once backward (reduce-scatter); parameters never crossed.
    config = tiny.config(parallelism="model")
    plan, state = tiny.plan(config), tiny.train_state(config)
    batch = plan.batch(tiny.batch(config, n=8))
    moved = comm.collectives(plan.map(step).lower(plan.place(state), batch).compile().as_text())
    assert {c["op"] for c in moved if c["moved"]} == {"all-gather", "reduce-scatter"}
    assert sum(c["moved"] for c in moved) == 8 * comm.expected_bytes(config.model)["train"]
    # The steps, computed in float64 (parameters float32): in float32 a ReLU or max-pool
    # near-tie that one summation order flips moves a gradient by ~1e-2 (tests/test_layouts.py)
    with jax.enable_x64(True):
        _two_steps_in_both_layouts(step)


def _two_steps_in_both_layouts(step):
    config = tiny.config(parallelism="model", **{"model.dtype": "float64"})
    state = tiny.train_state(config)
    plan, one = tiny.plan(config), tiny.one_device(config)
    got, want = plan.place(state), one.place(state)
    batches = [tiny.batch(config, n=8, seed=seed) for seed in (0, 1)]
    p_step, one_step = plan.map(step, donate=True), one.map(step, donate=True)
    for batch in batches:  # the second step uses the momentum of the first (Sec. 5)
        got, metrics = p_step(got, plan.batch(batch))
        want, want_metrics = one_step(want, one.batch(batch))
        assert float(metrics["train/loss"]) == pytest.approx(float(want_metrics["train/loss"]))
    trees = {"params": (got.params, want.params)}
    trees["momentum"] = (got.opt_state.inner_state[-1].trace, want.opt_state.inner_state[-1].trace)
    towers = plan.mesh.devices[0]
    for name, (a, b) in trees.items():
        for (path, x), y in zip(
            jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b), strict=True
        ):
            where = f"{name}{jax.tree_util.keystr(path)}"
            assert tiny.rel(x, y) < 1e-5, where
            assert x.sharding.spec == jax.sharding.PartitionSpec(*(None,) * (x.ndim - 1), "tower")
            width = x.shape[-1] // 2
            for t, device in enumerate(towers):  # tower t holds channels [t*C/2, (t+1)*C/2)
                (shard,) = [s for s in x.addressable_shards if s.device == device]
                assert shard.index[-1] == slice(t * width, (t + 1) * width), where
                np.testing.assert_array_equal(
                    shard.data, np.asarray(x)[..., t * width : (t + 1) * width]
                )
    old = state.params["conv1"]["kernel"]
    assert not np.allclose(got.params["conv1"]["kernel"], old)  # the step really moved them
    assert got.step.sharding.is_fully_replicated


@pytest.mark.multidevice
def test_dropout_masks_are_one_network_s_masks_on_both_towers():
    """Train mode: each tower drops the same units of the gathered fc7/fc8 inputs (Sec. 4.2).

    If the towers drew different masks, each half of the logits would come from another
    network; PyTorch with one mask per layer gives the whole logits only if they agree.
    """
    config = tiny.config(parallelism="model", **{"model.dropout.rate": 0.5})
    params = jax.device_get(tiny.train_state(config).params)
    batch = tiny.batch(config)
    plan, key = tiny.plan(config), jax.random.key(5)

    def forward(p, b):
        logits, state = plan.model.apply(
            {"params": p}, b["image"], train=True, rngs={"dropout": key}, mutable="intermediates"
        )
        return logits, state["intermediates"]["dropout_masks"][0]

    logits, masks = plan.fetch(plan.map(forward)(plan.place(params), plan.batch(batch)))
    keep, masks = 0.5, {k: np.asarray(v) for k, v in masks.items()}
    assert set(masks) == {"fc7", "fc8"} and 0.3 < np.mean(masks["fc7"]) < 0.7
    tparams = reference.to_torch_params(params)
    for name in masks:
        tparams[name]["weight"] = tparams[name]["weight"] / keep
    want = reference.torch_alexnet(tparams, config.model.to_dict(), batch["image"], masks=masks)
    assert tiny.rel(logits, want.detach().numpy()) < 1e-5
    no_dropout = reference.torch_alexnet(tparams, config.model.to_dict(), batch["image"])
    assert tiny.rel(logits, no_dropout.detach().numpy()) > 1e-2  # dropout was on


@pytest.fixture
def tiny_fashion(tmp_path) -> str:
    """A Fashion-MNIST-layout directory: 32 train and 16 test random 28x28 images."""
    tiny.fake_fashion(tmp_path, n_train=32, n_test=16)
    return str(tmp_path)


@pytest.mark.multidevice
@pytest.mark.parametrize("parallelism", ["model", "pmap"])
def test_a_checkpoint_restores_into_a_single_device_run(tiny_fashion, tmp_path, parallelism):
    """The whole loop in the layout, then its checkpoint evaluated on one device."""
    workdir = str(tmp_path / "run")
    config = tiny.config(parallelism=parallelism, max_steps=2, **{"input.data_dir": tiny_fashion})
    config.input.train_limit = config.input.eval_limit = None
    summary = train.train_and_evaluate(config, workdir)  # evaluated in the layout
    assert summary["step"] == 2
    state = tiny.train_state(config, seed=1)  # the layout of a one-device run
    mngr = checkpoint.create(workdir, config.checkpoint)
    state, _ = checkpoint.restore(mngr, state, optim.Plateau(lr=0.0))
    mngr.close()
    assert int(state.step) == 2
    split = input_pipeline.load(config.input, "test")
    normalize = input_pipeline.normalizer(config.input, input_pipeline.load(config.input, "train"))
    x = normalize(split.images.astype(np.float32))
    forward = jax.jit(lambda p, x: state.apply_fn({"params": p}, x, train=False))
    logits = np.asarray(forward(state.params, x), np.float64)  # one device, host params
    logp = logits - logits.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    loss = -np.mean(logp[np.arange(len(split.labels)), split.labels])
    assert summary["eval/loss"] == pytest.approx(loss, rel=1e-5)
    tiny.assert_ranks_apart(logits)
    assert summary["eval/top1_err"] == pytest.approx(np.mean(logits.argmax(1) != split.labels))


@pytest.mark.parametrize(
    "name,parallelism,devices,message",
    [
        ("fashion_mnist", "model", 1, "needs an even number of devices (one per tower), found 1"),
        ("one_tower_half", "model", 2, "config.model.towers=1; use a two-tower config"),
        ("one_tower_owt", "data+model", 2, "config.model.towers=1; use a two-tower config"),
        ("fashion_mnist", "tensor", 2, "config.parallelism='tensor' is unknown"),
        ("caffenet", "model", 2, "within_towers=False normalizes across the tower boundary"),
    ],
)
def test_impossible_layouts_are_one_line_errors(name, parallelism, devices, message):
    config = tiny.load_config(name)
    config.parallelism = parallelism
    with pytest.raises(ValueError, match=re.escape(message)) as e:
        tiny.plan(config, devices)
    assert "\n" not in str(e.value)


def test_batch_not_divisible_by_the_model_replicas_is_one_line():
    config = tiny.config(parallelism="data")
    config.input.eval_batch_size = 7
    with pytest.raises(ValueError, match=r"eval_batch_size=7 is not divisible by the 2 model"):
        parallel.create(config, models.create_model(config))
