"""The small two-tower net, params and batches shared by the parallelism tests.

No conftest, torch or TensorFlow import here: subprocesses with their own device count import it.
"""

import gzip
import importlib
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training import train_state as flax_train_state

from alexnet_jax import models, optim


def load_config(name: str, arg: str | None = None) -> ml_collections.ConfigDict:
    return importlib.import_module(f"configs.{name}").get_config(arg)


def write_idx(path: str, array: np.ndarray) -> None:
    """`array` as a gzipped unsigned-byte IDX file (the MNIST format)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def fake_fashion(directory, n_train: int, n_test: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Fashion-MNIST's four IDX files in `directory`, random 28x28 images and labels.

    Returns the images by split, [N, 28, 28, 1] uint8 as the loader gives them.
    """
    from alexnet_jax import idx

    rng, images = np.random.default_rng(seed), {}
    os.makedirs(directory, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        images_name, labels_name = idx.FILES[split]
        images[split] = rng.integers(0, 256, size=(n, 28, 28)).astype(np.uint8)[..., None]
        write_idx(os.path.join(directory, images_name), images[split][..., 0])
        write_idx(os.path.join(directory, labels_name), rng.integers(0, 10, size=(n,)))
    return images


def config(**overrides) -> ml_collections.ConfigDict:
    """fashion_mnist's two towers, narrowed so that compiling is most of a test's time."""
    c = load_config("fashion_mnist", "smoke")
    c.model.conv.features = (8, 16, 24, 24, 16)
    c.model.fc_features = (32, 32)
    c.model.dropout.rate = 0.0
    return override(c, **overrides)


def override(c: ml_collections.ConfigDict, **overrides) -> ml_collections.ConfigDict:
    """Sets dotted fields ("model.dropout.rate") of `c`, as --config.X=V does; returns `c`."""
    for key, value in overrides.items():
        target = c
        *path, leaf = key.split(".")
        for p in path:
            target = target[p]
        target[leaf] = value
    return c


def random_params(params: dict, seed: int = 0) -> dict:
    """He-scaled weights and random biases, so that every layer (the LRNs too) matters."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, p in params.items():
        fan_in = int(np.prod(p["kernel"].shape[:-1]))
        scale = np.sqrt(2.0 / fan_in) * (0.05 if name == "fc8" else 1.0)
        out[name] = {
            "kernel": rng.normal(scale=scale, size=p["kernel"].shape).astype(np.float32),
            "bias": rng.normal(scale=0.5, size=p["bias"].shape).astype(np.float32),
        }
    return out


def batch(c: ml_collections.ConfigDict, n: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    """Pixel-scale images (like the paper's mean-subtracted 0..255) and random labels."""
    rng = np.random.default_rng(seed + 100)
    return {
        "image": rng.normal(scale=50.0, size=models.input_shape(c, n)).astype(np.float32),
        "label": rng.integers(0, c.model.num_classes, size=n).astype(np.int32),
    }


def assert_ranks_apart(scores, gap: float = 1e-4) -> None:
    """Logits (or log-probabilities) whose top-1 and top-5 cuts are no near-ties: a float32
    forward and a float64 reference would rank them alike (well-posed top-1/top-5 checks)."""
    s = -np.sort(-np.asarray(scores, np.float64), axis=1)
    assert min(np.min(s[:, 0] - s[:, 1]), np.min(s[:, 4] - s[:, 5])) > gap


def float64(tree):
    """Floating leaves as float64 numpy (for comparisons under `jax.enable_x64`)."""
    to64 = lambda x: np.asarray(x, np.float64) if np.issubdtype(x.dtype, np.floating) else x  # noqa: E731
    return jax.tree.map(lambda x: to64(np.asarray(x)), tree)


def rel(got, want) -> float:
    """||got - want|| / ||want||, in float64."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.linalg.norm(got - want) / np.linalg.norm(want))


def flat(tree) -> dict[str, np.ndarray]:
    """{"['conv1']['kernel']": array, ...} on the host."""
    leaves = jax.tree_util.tree_leaves_with_path(jax.device_get(tree))
    return {jax.tree_util.keystr(path): np.asarray(x) for path, x in leaves}


def train_state(c: ml_collections.ConfigDict, seed: int = 0):
    """`train.create_state`'s TrainState with `random_params`, built in one small jit.

    (create_state runs flax's init and the optimizer's init op by op: ~10 s of CPU here.)
    """
    model = models.create_model(c)
    shapes = jax.eval_shape(lambda: models.init_params(model, c, jax.random.key(0)))
    params = random_params(shapes, seed)
    create = lambda p: flax_train_state.TrainState.create(  # noqa: E731
        apply_fn=model.apply, params=p, tx=optim.build(c.optim)
    )
    return jax.jit(create)(params)


def plan(c: ml_collections.ConfigDict, devices: int | None = None):
    """`parallel.create`'s plan for `c` on the first `devices` devices (default: all)."""
    from alexnet_jax import parallel

    return parallel.create(c, models.create_model(c), jax.devices()[:devices])


def one_device(c: ml_collections.ConfigDict):
    """The single-device plan: the reference every layout is compared with."""
    c = override(ml_collections.ConfigDict(c.to_dict()), parallelism="data")
    return plan(c, devices=1)


def loss_and_grads(plan, params, batch):
    """(loss, logits), grads of the batch's mean loss, computed per device by `plan`."""

    def per_device(params, batch):
        def loss_fn(p):
            logits = plan.model.apply({"params": p}, batch["image"], train=False)
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()
            return loss, logits

        (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        return (jax.lax.pmean(loss, "batch"), logits), jax.lax.pmean(grads, "batch")

    return plan.fetch(plan.map(per_device)(plan.place(params), plan.batch(batch)))


def small_state(step: int, value: float, **optim_fields):
    """A one-layer TrainState with the paper optimizer (or `optim_fields` changed): what
    checkpoint tests save and restore."""
    params = {"fc8": {"kernel": jnp.full((3, 2), value), "bias": jnp.zeros(2)}}
    fields = dict(rule="paper", base_lr=0.01, momentum=0.9, weight_decay=5e-4, decay_biases=True)
    tx = optim.build(ml_collections.ConfigDict({**fields, **optim_fields}))
    s = flax_train_state.TrainState.create(apply_fn=None, params=params, tx=tx)
    return s.replace(step=jnp.asarray(step))
