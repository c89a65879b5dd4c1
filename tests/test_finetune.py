"""Fine-tuning: frozen and slower layers against numpy loops, grey input meeting an RGB conv1
(against the PyTorch net on R=G=B images), and configs/finetune_fashion.py end to end."""

import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
import tensorflow as tf
from flax.training import train_state as flax_train_state

from alexnet_jax import checkpoint, features, models, optim, train, weight_layouts, weights
from tests.conftest import load_config
from tests.test_features import write_pngs
from tests.test_weights import (
    assert_logits_close,
    bvlc_dict,
    our_logits,
    template,
    tiny,
    torch_logits,
    torch_net,
)
from tests.tiny import fake_fashion

LRS = [0.1] * 6 + [0.01] * 6  # an lr drop at step 6, as the plateau schedule makes
W0 = np.array([1.0, -2.0, 0.5])
G = np.array([0.3, 0.1, -0.2])  # gradient = G + w (a quadratic bowl)


def _numpy_rule(rule: str, scale: float, wd=5e-4, m=0.9) -> np.ndarray:
    """The rules as printed in optim.sgd's docstring, with the rate multiplied by `scale`."""
    w, v = W0.copy(), np.zeros(3)
    for lr in LRS:
        lr, g = lr * scale, G + w
        if rule == "paper":
            v = m * v - wd * lr * w - lr * g
            w = w + v
        elif rule == "optax":
            v = m * v + g + wd * w
            w = w - lr * v
        else:
            v = m * v + g
            w = w - lr * v - lr * wd * w
    return w


@pytest.mark.parametrize("rule", optim.RULES)
def test_frozen_and_low_lr_layers_match_numpy_loops_across_an_lr_drop(rule):
    c = ml_collections.ConfigDict(
        dict(
            rule=rule,
            base_lr=LRS[0],
            momentum=0.9,
            weight_decay=5e-4,
            decay_biases=True,
            frozen_layers=("conv1",),
            low_lr_layers=("fc7",),
            low_lr_factor=0.1,
        )
    )
    tx = optim.build(c)
    with jax.enable_x64(True):
        params = {n: {"kernel": jnp.asarray(W0)} for n in ("conv1", "fc7", "fc8")}
        state = tx.init(params)
        for lr in LRS:
            state = optim.set_learning_rate(state, lr)  # the plateau schedule's hook still works
            grads = jax.tree.map(lambda w: jnp.asarray(G) + w, params)
            updates, state = tx.update(grads, state, params)
            params = optax.apply_updates(params, updates)
        got = {n: np.asarray(p["kernel"]) for n, p in params.items()}
    np.testing.assert_array_equal(got["conv1"], W0)  # no update, weight decay included
    np.testing.assert_allclose(got["fc8"], _numpy_rule(rule, 1.0), rtol=1e-9)
    np.testing.assert_allclose(got["fc7"], _numpy_rule(rule, 0.1), rtol=1e-9)
    assert np.abs(got["fc7"] - got["fc8"]).max() > 1e-2  # the factor really mattered


def test_bad_fine_tuning_layer_names_are_one_line_errors():
    c = load_config("finetune_fashion").optim
    params = {"conv1": {"kernel": jnp.ones(2)}, "fc8": {"kernel": jnp.ones(2)}}
    with pytest.raises(ValueError, match=r"name \['conv2', 'conv3'.*which the model lacks"):
        optim.build(c).init(params)
    c.low_lr_layers = ("conv1",)
    with pytest.raises(ValueError, match=r"\['conv1'\] are in both frozen_layers and low_lr"):
        optim.build(c).init(params)


def test_grey_model_with_summed_conv1_is_the_rgb_torch_net_on_r_eq_g_eq_b(tmp_path):
    rgb, grey = tiny("caffenet", input_size=67), tiny("caffenet", input_size=67, input_channels=1)
    net = torch_net(rgb)
    tree = weight_layouts.from_bvlc(bvlc_dict(net, "hwc", False))
    with pytest.raises(ValueError, match=r"conv1/kernel .* set grey='sum'") as e:
        weights.adapt(tree, template(grey))
    assert "\n" not in str(e.value)
    params, _ = weights.adapt(tree, template(grey), grey="sum")
    x = np.random.default_rng(0).uniform(-100, 150, size=(2, 67, 67, 1)).astype(np.float32)
    want = torch_logits(net, np.repeat(x, 3, axis=-1))
    assert_logits_close(our_logits(grey, params, x), want)


def fashion_dir(tmp_path, n_train: int = 16, n_test: int = 6) -> tuple[str, dict]:
    """Fashion-MNIST's IDX layout with random 28x28 images and labels; (dir, {split: images})."""
    d = tmp_path / "fashion"
    return str(d), fake_fashion(d, n_train, n_test)


def test_finetune_config_end_to_end_on_fashion_mnist(tmp_path, capsys):
    c = load_config("finetune_fashion", "smoke")
    assert (c.model.num_classes, c.model.input_channels, c.init_from.grey) == (10, 1, "sum")
    c.model.conv.features, c.model.fc_features = (8, 16, 24, 24, 16), (32, 32)  # layout, not size
    c.model.input_size = 67  # the smallest that fits: Fashion-MNIST's 28x28 are still resized
    c.input.data_dir, arrays = fashion_dir(tmp_path)
    c.input.train_limit, c.input.eval_limit = 12, None  # of 16: the mean image is of 12
    c.max_steps = 2
    # "pretrained": the 3-channel, 20-class Caffe-style net, in the bvlc_alexnet.npy layout
    source = tiny("bvlc_alexnet", num_classes=20, input_size=67)
    file = bvlc_dict(torch_net(source), "hwc", False)
    c.init_from.path = str(tmp_path / "bvlc_alexnet.npy")
    c.init_from.allow_pickle = True
    np.save(c.init_from.path, file, allow_pickle=True)
    with pytest.warns(UserWarning, match="pickled weights"):
        summary = train.train_and_evaluate(c, str(tmp_path / "run"))
    assert "random init kept for ['fc8']" in capsys.readouterr().out
    assert summary["step"] == 2 and 0.0 <= summary["eval/top1_err"] <= 1.0
    assert np.isfinite(summary["eval/loss"])
    final = weights.read(str(tmp_path / "run"))  # the last Orbax checkpoint's params
    np.testing.assert_array_equal(final["conv1"]["kernel"], file["conv1"][0].sum(2, keepdims=True))
    np.testing.assert_array_equal(final["conv2"]["kernel"], file["conv2"][0])  # frozen
    for name in ("conv3", "fc6", "fc7"):  # pretrained, trained at a tenth of the rate
        delta = np.abs(final[name]["kernel"] - file[name][0]).max()
        assert 0 < delta < 0.1 * np.abs(file[name][0]).max(), (name, delta)
    assert final["fc8"]["kernel"].shape == (32, 10)

    # fc7 features of the fine-tuned net for PNGs of two test images, preprocessed as training
    # saw them (--preprocess=config): 0..255 minus the training mean image, resized to 67
    params = features.load_params(c, str(tmp_path / "run"))
    write_pngs(tmp_path / "imgs", {f"{i}.png": arrays["test"][i] for i in range(2)})
    got = features.extract(c, params, str(tmp_path / "imgs"), str(tmp_path / "f.npy"))
    mean = arrays["train"][:12].astype(np.float64).mean(0)
    x = tf.image.resize((arrays["test"][:2] - mean).astype(np.float32), (67, 67), "bilinear")
    want = jax.jit(models.activations, static_argnums=0)(models.create_model(c), params, x.numpy())[
        "fc7"
    ]
    np.testing.assert_allclose(got, np.asarray(want), rtol=1e-4, atol=1e-4)

    # A resumed run restores its own checkpoint: the pretrained file may be gone by then.
    os.remove(c.init_from.path)
    c.max_steps = 3
    assert train.train_and_evaluate(c, str(tmp_path / "run"))["step"] == 3


def test_fine_tuning_optimizer_state_survives_a_checkpoint(tmp_path):
    """Resuming a fine-tuning run restores the per-group momenta and the injected lr."""
    c = load_config("finetune_fashion").optim
    c.frozen_layers, c.low_lr_layers = ("conv1",), ("fc7",)
    params = {
        n: {"kernel": jnp.full((3, 2), 1.0), "bias": jnp.zeros(2)} for n in ("conv1", "fc7", "fc8")
    }
    state = flax_train_state.TrainState.create(apply_fn=None, params=params, tx=optim.build(c))
    grads = jax.tree.map(jnp.ones_like, params)
    state = state.apply_gradients(grads=grads)
    state = state.replace(opt_state=optim.set_learning_rate(state.opt_state, 0.001))
    mngr = checkpoint.create(str(tmp_path), ml_collections.ConfigDict(dict(keep=1)))
    checkpoint.save(mngr, state, optim.Plateau(lr=0.001))
    fresh = flax_train_state.TrainState.create(apply_fn=None, params=params, tx=optim.build(c))
    restored, plateau = checkpoint.restore(mngr, fresh, optim.Plateau(lr=c.base_lr))
    mngr.close()
    assert plateau.lr == 0.001
    assert restored.opt_state.hyperparams["learning_rate"] == np.float32(0.001)
    leaves = jax.tree.leaves(restored.opt_state)
    assert any(np.abs(np.asarray(x)).sum() > 0 for x in leaves if np.ndim(x) == 2)  # momenta
    jax.tree.map(np.testing.assert_array_equal, restored.opt_state, state.opt_state)
    jax.tree.map(np.testing.assert_array_equal, restored.params, state.params)
