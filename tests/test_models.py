"""The network (Sec. 3, Fig. 2) and its variants, against an independent PyTorch net."""

import functools
import glob
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

from alexnet_jax import architecture, models
from tests import reference
from tests.conftest import CONFIGS, DERIVED_CONFIGS, load_config

CONFIG_DIR = os.path.join(os.path.dirname(__file__), "..", "configs")

# Exact learned-parameter counts. paper and one_tower_owt are published numbers (PAPER.md);
# the others are the same arithmetic (weights + biases per layer of the config's table).
# A config with no entry here fails test_every_config_has_a_pinned_count.
PARAM_COUNTS = {
    "paper": 60_965_224,
    "paper224": 60_965_224,
    "caffenet": 60_965_224,
    "one_tower_owt": 61_100_840,
    "one_tower_half": 59_798_312,
    "fashion_mnist": 719_626,
    "fashion_mnist_227": 56_885_962,
    "bvlc_alexnet": 60_965_224,  # the paper's net with Caffe's LRN
    "finetune_fashion": 56_885_962,  # = fashion_mnist_227 (grey conv1, 10 classes)
    "cifar10": 966_986,
    "fashion_mnist_ablation": 181_770,
    "fashion_mnist_converged": 181_770,  # = fashion_mnist_ablation (trained longer)
    "fashion_mnist_converged_end": 181_770,  # = fashion_mnist_converged (no 8-epoch cap)
    "fashion_mnist_converged_patient": 181_770,  # = fashion_mnist_converged_end (patience 3)
    "fashion_mnist_recipe": 719_626,  # = fashion_mnist (trained longer)
    "fashion_mnist_recipe_long": 719_626,  # = fashion_mnist (no dropout: no parameters)
    "fashion_mnist_recipe_wide": 1_613_578,  # fashion_mnist at 1.5x every width
    "fashion_mnist_recipe_2x": 2_863_626,  # fashion_mnist at 2x every width
    "fashion_mnist_recipe_holdout": 1_613_578,  # = fashion_mnist_recipe_wide
    "fashion_mnist_recipe_he": 1_613_578,  # = fashion_mnist_recipe_holdout (init, input differ)
    # recipe_holdout with fc6 on 6x6x144, not 2x2x144: 1_613_578 + (36 - 4) * 144 * 768
    "fashion_mnist_recipe_6x6": 5_152_522,
    "fashion_mnist_recipe_patient": 5_152_522,  # = fashion_mnist_recipe_6x6 (schedule differs)
    "fashion_mnist_recipe_patient8": 5_152_522,  # = fashion_mnist_recipe_patient (schedule differs)
    "fashion_mnist_recipe_dropout": 5_152_522,  # dropout has no weights
    "fashion_mnist_recipe_all60k": 5_152_522,  # = fashion_mnist_recipe_patient (data differs)
}


def _model(name, **overrides):
    config = load_config(name)
    for key, value in overrides.items():
        target = config.model
        *path, leaf = key.split(".")
        for p in path:
            target = target[p]
        target[leaf] = value
    return config, models.create_model(config)


def _random_params(model, config, seed=0):
    """He-scaled weights and non-trivial random biases, so every layer (LRN too) matters."""
    params = jax.eval_shape(lambda: models.init_params(model, config, jax.random.key(seed)))
    rng = np.random.default_rng(seed)
    out = {}
    for name, p in params.items():
        fan_in = int(np.prod(p["kernel"].shape[:-1]))
        scale = np.sqrt(2.0 / fan_in) * (0.02 if name == "fc8" else 1.0)
        out[name] = {
            "kernel": jnp.asarray(rng.normal(scale=scale, size=p["kernel"].shape), jnp.float32),
            "bias": jnp.asarray(rng.normal(scale=0.5, size=p["bias"].shape), jnp.float32),
        }
    return out


def _images(config, batch=2, seed=0):
    # pixel-scale inputs, like the paper's mean-subtracted 0..255 images
    shape = models.input_shape(config, batch)
    return np.random.default_rng(seed + 100).normal(scale=50.0, size=shape).astype(np.float32)


def _rel_err(got, want):
    return float(np.max(np.abs(np.asarray(got, np.float64) - want)) / np.max(np.abs(want)))


def test_every_config_has_a_pinned_count():
    files = {os.path.basename(f)[:-3] for f in glob.glob(os.path.join(CONFIG_DIR, "*.py"))}
    assert files - {"__init__", "common"} == set(PARAM_COUNTS) == {*CONFIGS, *DERIVED_CONFIGS}


@pytest.mark.parametrize("name", CONFIGS + DERIVED_CONFIGS)
def test_parameter_count(name):
    config, model = _model(name)
    params = jax.eval_shape(lambda: models.init_params(model, config, jax.random.key(0)))
    assert models.count_params(params) == PARAM_COUNTS[name]


def test_paper_layer_shapes_and_parameter_tree():
    """Fig. 2: 55, 27, 27, 13, 13, 13, 13, 6 spatial; 96, 256, 384, 384, 256 channels."""
    config, model = _model("paper")
    params = jax.eval_shape(lambda: models.init_params(model, config, jax.random.key(0)))
    acts = jax.eval_shape(
        lambda p, x: models.activations(model, p, x), params, jnp.zeros((2, 227, 227, 3))
    )
    want = {
        "conv1": (55, 55, 96),
        "pool1": (27, 27, 96),
        "conv2": (27, 27, 256),
        "pool2": (13, 13, 256),
        "conv3": (13, 13, 384),
        "conv4": (13, 13, 384),
        "conv5": (13, 13, 256),
        "pool5": (6, 6, 256),
        "fc6": (4096,),
        "fc7": (4096,),
        "logits": (1000,),
    }
    for name, shape in want.items():
        assert acts[name].shape == (2, *shape), name
    assert list(params) == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]
    kernels = {k: v["kernel"].shape for k, v in params.items()}
    assert kernels == {
        "conv1": (11, 11, 3, 96),
        "conv2": (5, 5, 48, 256),
        "conv3": (3, 3, 256, 384),
        "conv4": (3, 3, 192, 384),
        "conv5": (3, 3, 192, 256),
        "fc6": (9216, 4096),
        "fc7": (4096, 4096),
        "fc8": (4096, 1000),
    }


@pytest.mark.parametrize("name", CONFIGS + DERIVED_CONFIGS)
def test_layer_shapes_arithmetic_matches_the_module(name):
    config, model = _model(name)
    params = jax.eval_shape(lambda: models.init_params(model, config, jax.random.key(0)))
    x = jnp.zeros(models.input_shape(config, 1))
    acts = jax.eval_shape(lambda p: models.activations(model, p, x), params)
    for stage, shape in architecture.layer_shapes(config.model):
        assert acts[stage].shape == (1, *shape), stage


def _float64_logits_and_grads(name, overrides, params, x, labels, moves=(0.0,)):
    """Our logits and loss gradients in float64 (`jax.enable_x64`), one compiled function, at
    the point and at points moved by each relative `moves` along one fixed random direction
    (params and images together)."""
    direction = np.random.default_rng(123)
    noise = jax.tree.map(lambda a: direction.standard_normal(np.shape(a)), (params, x))
    with jax.enable_x64(True):
        _, model = _model(name, dtype="float64", **overrides)

        @jax.jit
        def logits_and_grads(p, images):
            def loss_fn(p):
                logits = model.apply({"params": p}, images, train=False)
                loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
                return loss, logits

            (_, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(p)
            return logits, grads

        out = []
        for move in moves:
            point = jax.tree.map(
                lambda a, n, move=move: jnp.asarray(np.asarray(a, np.float64) * (1 + move * n)),
                (params, x),
                noise,
            )
            out.append(jax.device_get(logits_and_grads(*point)))
        return out


def _kink_indicator(at, up, down) -> float:
    """Second difference of the float64 gradient between points moved by +-delta: ~delta**2
    where the loss is smooth, the size of a jump (1e-3 and up for these nets) where a ReLU or
    a max-pool argmax flips within delta of the point. Worst leaf, relative to its norm."""
    return max(
        np.linalg.norm(up[k][leaf] + down[k][leaf] - 2 * at[k][leaf]) / np.linalg.norm(at[k][leaf])
        for k in at
        for leaf in ("kernel", "bias")
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "name,overrides",
    [(n, {}) for n in CONFIGS]
    # the GPU's lowering through the paper's net; im2col everywhere through a smaller two-tower
    # net (each lowering is also checked layer by layer against torch in test_conv.py)
    + [("paper", {"conv.lowering": "native"}), ("fashion_mnist", {"conv.lowering": "im2col"})],
)
def test_logits_and_gradients_match_torch(name, overrides):
    """Float32 logits against float64 PyTorch; float64 gradients against float64 PyTorch.

    Gradients are compared in float64 on both sides: in float32 every random point of these
    nets has max-pool near-ties within a float32 rounding of flipping (a 1e-5 relative move of
    the point changes conv1's gradient by ~1e-2), so which side of the kink a float32
    implementation lands on depends on its summation order, i.e. on the CPU. In float64 the
    two agree to ~1e-15, and the test checks that no kink lies within 1e-9 of its point.
    """
    config, model = _model(name, **overrides)
    params = _random_params(model, config)
    x = _images(config)
    labels = np.array([3, 7])
    m = config.model.to_dict()
    logits32 = jax.jit(model.apply, static_argnames="train")(
        {"params": params}, jnp.asarray(x), train=False
    )  # what users run
    (logits, grads), (_, up), (_, down) = _float64_logits_and_grads(
        name, overrides, params, x, labels, moves=(0.0, 1e-9, -1e-9)
    )
    tparams = reference.to_torch_params(params)
    want = reference.torch_alexnet(tparams, m, x)
    assert _rel_err(logits32, want.detach().numpy()) < 1e-4
    assert _rel_err(logits, want.detach().numpy()) < 1e-10
    torch.nn.functional.cross_entropy(want, torch.tensor(labels)).backward()
    want_grads = reference.grads_to_ours(tparams)
    for layer in params:
        for leaf in ("kernel", "bias"):
            g, w = grads[layer][leaf], want_grads[layer][leaf]
            assert np.linalg.norm(w) > 0, (layer, leaf)
            assert np.linalg.norm(g - w) / np.linalg.norm(w) < 1e-10, (layer, leaf)
    assert _kink_indicator(grads, up, down) < 1e-8  # no kink within 1e-9 of the point
    if config.model.lrn.enabled:  # LRN really acted on these inputs
        no_lrn = dict(m, lrn=dict(m["lrn"], enabled=False))
        off = reference.torch_alexnet(tparams, no_lrn, x).detach().numpy()
        assert _rel_err(logits32, off) > 1e-2


@pytest.mark.parametrize(
    "name,std,bias",
    [
        ("paper", (0.01,) * 8, (0, 1, 0, 1, 1, 1, 1, 0)),
        ("caffenet", (0.01,) * 5 + (0.005, 0.005, 0.01), (0, 1, 0, 1, 1, 1, 1, 0)),
    ],
)
def test_gaussian_init_statistics(name, std, bias):
    """Sec. 5: N(0, 0.01), biases 1 in conv2, conv4, conv5, fc6, fc7; CaffeNet: fc6/fc7 0.005."""
    config, model = _model(name)
    params = models.init_params(model, config, jax.random.key(0))
    for (layer, p), s, b in zip(params.items(), std, bias, strict=True):
        w = np.asarray(p["kernel"], np.float64)
        assert abs(w.std() / s - 1) < 0.03, layer
        assert abs(w.mean()) < 4 * s / np.sqrt(w.size), layer
        np.testing.assert_array_equal(
            np.asarray(p["bias"]), np.full(p["bias"].shape, b, np.float32)
        )


def test_pytorch_init_statistics():
    """torchvision's alexnet keeps PyTorch's default: U(+-1/sqrt(fan_in)) weights and biases."""
    config, model = _model("one_tower_owt")
    params = models.init_params(model, config, jax.random.key(0))
    for layer, p in params.items():
        w = np.asarray(p["kernel"], np.float64)
        bound = 1.0 / np.sqrt(np.prod(w.shape[:-1]))
        assert (
            np.abs(w).max() <= bound * (1 + 1e-6) and abs(w.std() * np.sqrt(3) / bound - 1) < 0.03
        ), layer
        assert np.abs(np.asarray(p["bias"])).max() <= bound * (1 + 1e-6), layer


def test_he_init_statistics_match_torch_kaiming_normal():
    """The "he" scheme is torch.nn.init.kaiming_normal_ (fan_in, ReLU gain sqrt 2) on each
    kernel's torch layout, a grouped conv's fan_in being k * k * in / groups; zero biases."""
    config, model = _model("fashion_mnist_recipe_he")
    params = models.init_params(model, config, jax.random.key(0))
    torch.manual_seed(0)
    for layer, p in params.items():
        w = np.asarray(p["kernel"], np.float64)  # [k, k, in / groups, out] or [in, out]
        # 4,096 output units: torch's std to ~0.2%; its fan_in is that of the layer's kernel
        t = torch.empty(4096, *w.shape[:-1][::-1], dtype=torch.float64)
        want = torch.nn.init.kaiming_normal_(t, mode="fan_in", nonlinearity="relu").std().item()
        assert abs(w.std() / want - 1) < 4 / np.sqrt(2 * w.size) + 0.01, layer  # 4 SE
        assert abs(np.mean(w)) < 4 * want / np.sqrt(w.size), layer
        np.testing.assert_array_equal(np.asarray(p["bias"]), 0.0)


@functools.partial(jax.jit, static_argnums=(0, 4))
def _jit_apply(model, params, x, key, train: bool):
    """model.apply compiled once (op by op, a 227 net takes 3x as long on CPU)."""
    if not train:
        return model.apply({"params": params}, x, train=False)
    return model.apply(
        {"params": params}, x, train=True, rngs={"dropout": key}, mutable="intermediates"
    )


def _apply(model, params, x):
    """Eval logits."""
    return _jit_apply(model, params, jnp.asarray(x), None, False)


def _train_logits_and_masks(model, params, x, key):
    """Training logits and the dropout masks the model sowed, {layer whose input: 0/1}."""
    logits, state = _jit_apply(model, params, jnp.asarray(x), key, True)
    masks = state["intermediates"]["dropout_masks"][0]
    return logits, {k: np.asarray(v, np.float64) for k, v in masks.items()}


@pytest.mark.parametrize("name", ["fashion_mnist", "one_tower_owt"])
def test_dropout_is_the_papers_up_to_where_the_half_goes(name):
    """Sec. 4.2: inverted dropout with weights W == the paper's dropout with W' = W / (1-p).

    The paper drops units in training without rescaling and multiplies the outputs by 0.5 at
    test time; we scale kept units by 1/(1-p) in training instead. The same masks give the
    same training logits, and our eval logits equal the paper's test-time logits.
    """
    config, model = _model(name)
    params = _random_params(model, config)
    x = _images(config, batch=4)
    m, p = config.model.to_dict(), config.model.dropout.rate
    logits, masks = _train_logits_and_masks(model, params, x, jax.random.key(1))
    assert set(masks) == set(config.model.dropout.inputs_of)
    paper_params = reference.to_torch_params(params)
    for layer in config.model.dropout.inputs_of:
        paper_params[layer]["weight"] = paper_params[layer]["weight"] / (1 - p)
    want = reference.torch_alexnet(paper_params, m, x, masks=masks).detach().numpy()
    assert _rel_err(logits, want) < 1e-4
    eval_logits = _apply(model, params, x)
    want_eval = reference.torch_alexnet(paper_params, m, x, test_scale=1 - p).detach().numpy()
    assert _rel_err(eval_logits, want_eval) < 1e-4
    assert _rel_err(logits, eval_logits) > 1e-2  # dropout was on in training...
    again = _apply(model, params, x)
    np.testing.assert_array_equal(np.asarray(again), np.asarray(eval_logits))  # ...off at eval
    other, other_masks = _train_logits_and_masks(model, params, x, jax.random.key(2))
    assert not np.allclose(np.asarray(other), np.asarray(logits))  # a new rng, a new mask
    # About half the live units of the first dropped layer are dropped, independently per rng
    # (later layers' inputs depend on earlier masks, and dead ReLUs are zero either way).
    first = config.model.dropout.inputs_of[0]
    acts = jax.jit(functools.partial(models.activations, model))(params, jnp.asarray(x))
    inputs = {"fc6": acts["pool5"].reshape(x.shape[0], -1), "fc7": acts["fc6"]}[first]
    live = np.asarray(inputs) > 0
    assert live.sum() > 1000
    assert abs(masks[first][live].mean() - (1 - p)) < 0.05
    assert abs((masks[first] == other_masks[first])[live].mean() - 0.5) < 0.05


def test_bfloat16_compute_keeps_float32_params():
    config, model = _model("fashion_mnist", dtype="bfloat16")
    params = models.init_params(model, config, jax.random.key(0))
    assert all(p.dtype == jnp.float32 for p in jax.tree_util.tree_leaves(params))
    params = _random_params(model, config)
    x = jnp.asarray(_images(config))
    logits = _apply(model, params, x)
    assert logits.dtype == jnp.float32
    acts = jax.jit(functools.partial(models.activations, model))(params, x)
    assert acts["conv2"].dtype == jnp.bfloat16
    _, f32_model = _model("fashion_mnist")
    want = np.asarray(_apply(f32_model, params, x), np.float64)
    assert 0 < _rel_err(logits, want) < 5e-2


@pytest.mark.parametrize(
    "overrides,match",
    [
        ({"conv.groups": (1, 3, 1, 2, 2)}, r"config\.model\.conv\.groups\[1\]=3 must divide"),
        ({"conv.features": (96, 256, 384, 385, 256)}, r"config\.model\.conv\.groups\[3\]=2"),
        ({"input_size": 66}, r"config\.model\.input_size=66 is too small: .* use input_size >= 67"),
        ({"lrn.convention": "cuda"}, r"config\.model\.lrn\.convention='cuda' is unknown"),
        ({"lrn.size": 4}, r"config\.model\.lrn\.size=4 must be a positive odd"),
        ({"conv.stride": (4, 1, 1, 1)}, r"config\.model\.conv\.stride has 4 entries"),
        ({"init.scheme": "xavier"}, r"config\.model\.init\.scheme='xavier' is unknown"),
        ({"init.bias": (0.0,) * 7}, r"config\.model\.init\.bias has 7 entries"),
        ({"dtype": "float16"}, r"config\.model\.dtype='float16' is unknown"),
        (
            {"dtype": "float64"},
            r"config\.model\.dtype='float64' is unknown; use 'float32' or 'bfloat16'",
        ),
        ({"dropout.rate": 1.0}, r"config\.model\.dropout\.rate=1\.0 must be in"),
        ({"conv.lowering": "fast"}, r"config\.model\.conv\.lowering='fast' is unknown; use \("),
        ({"pool.after": (1, 2, 6)}, r"config\.model\.pool\.after=\(1, 2, 6\) must hold"),
        ({"lrn.after": (1, 2, 6)}, r"config\.model\.lrn\.after=\(1, 2, 6\) must hold"),
        ({"towers": 0}, r"config\.model\.towers=0 must be >= 1"),
        ({"conv.stride": (4, 1, 0, 1, 1)}, r"config\.model\.conv\.stride\[2\]=0 must be >= 1"),
        ({"conv.padding": (0, -1, 1, 1, 1)}, r"config\.model\.conv\.padding\[1\]=-1 must be"),
        ({"pool.stride": 0}, r"config\.model\.pool\.stride=0 must be >= 1"),
        ({"pool.window": 0}, r"config\.model\.pool\.window=0 must be >= 1"),
        ({"dropout.inputs_of": ("fc_7", "fc8")}, r"inputs_of names 'fc_7'; it takes fc layers"),
    ],
)
def test_bad_model_config_fails_at_construction_in_one_line(overrides, match):
    with pytest.raises(ValueError, match=match) as e:
        _model("paper", **overrides)
    assert "\n" not in str(e.value)


def test_input_size_67_is_the_smallest_that_fits():
    config, model = _model("paper", input_size=67)
    assert architecture.layer_shapes(config.model)[-1] == ("pool5", (1, 1, 256))
