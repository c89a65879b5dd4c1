"""Datasets -> tf.data batches for the local devices: order from a seed, exact resume (Sec. 2).

Small datasets (Fashion-MNIST) are held in memory as uint8 arrays; every epoch is a seeded
permutation, so the position in the input stream is the global step alone and a resumed run
sees exactly the batches an uninterrupted one would. Only tf.data runs TensorFlow, on the CPU.
"""

import dataclasses
import gzip
import os
from collections.abc import Iterator

import jax
import ml_collections
import numpy as np
import tensorflow as tf

Batch = dict[str, np.ndarray]  # "image": [D, B/D, H, W, C] float32, "label": [D, B/D] int32

FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


@dataclasses.dataclass(frozen=True)
class Split:
    images: np.ndarray  # [N, H, W, C] uint8
    labels: np.ndarray  # [N] int32


def read_idx(path: str) -> np.ndarray:
    """An IDX file (LeCun's MNIST format, optionally gzipped) as a numpy array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (bad magic number)")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"{path} is truncated: header says {shape}, found {body.size} bytes")
    return body.reshape(shape)


def load_fashion_mnist(data_dir: str, split: str) -> Split:
    """The original Fashion-MNIST IDX files, as Debian's dataset-fashion-mnist installs them."""
    paths = [os.path.join(data_dir, name) for name in FASHION_MNIST_FILES[split]]
    for path in paths:
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"Fashion-MNIST file {path} is missing; install it with "
                "`apt-get install dataset-fashion-mnist` or point config.input.data_dir at the "
                "directory holding the *-ubyte.gz files"
            )
    images, labels = (read_idx(p) for p in paths)
    return Split(images[..., None], labels.astype(np.int32))


def load_tfds(name: str, split: str, data_dir: str | None) -> Split:
    """Any TFDS image-classification dataset, read whole into memory (small datasets only)."""
    import tensorflow_datasets as tfds

    if name == "imagenet2012":
        raise ValueError(
            "config.input.dataset='imagenet2012' needs the streaming ImageNet pipeline, which "
            "is not built yet (issue 5); train on configs/fashion_mnist.py meanwhile"
        )
    try:
        ds = tfds.load(name, split=split, data_dir=data_dir, as_supervised=True)
    except tfds.core.registered.DatasetNotFoundError as e:
        raise ValueError(f"TFDS does not know config.input.dataset={name!r}") from e
    chunks = list(tfds.as_numpy(ds.batch(4096)))
    images = np.concatenate([x for x, _ in chunks])
    return Split(images, np.concatenate([y for _, y in chunks]).astype(np.int32))


def load(c: ml_collections.ConfigDict, split: str) -> Split:
    """`config.input` -> the named split, from the configured source."""
    if c.source == "idx":
        return load_fashion_mnist(c.data_dir, split)
    if c.source == "tfds":
        return load_tfds(c.dataset, split, c.data_dir)
    raise ValueError(f"config.input.source={c.source!r} is unknown; use 'idx' or 'tfds'")


def normalizer(c: ml_collections.ConfigDict, train: Split):
    """float32 [.., H, W, C] pixels -> network input, from training-set statistics (Sec. 2).

    "mean_image": pixels in 0..255 minus the mean image over the training set (the paper's
    only preprocessing). "mean_std": pixels in 0..1, per-channel mean/std (torchvision's).
    """
    x = train.images.astype(np.float64)
    if c.normalize == "mean_image":
        mean = x.mean(0).astype(np.float32)
        return lambda img: img - mean
    if c.normalize == "mean_std":
        mean = (x / 255).mean((0, 1, 2)).astype(np.float32)
        std = (x / 255).std((0, 1, 2)).astype(np.float32)
        return lambda img: (img / 255 - mean) / std
    raise ValueError(
        f"config.input.normalize={c.normalize!r} is unknown; use 'mean_image' or 'mean_std'"
    )


def per_device(global_batch: int, num_devices: int) -> int:
    if global_batch % num_devices:
        raise ValueError(
            f"config.input.global_batch_size={global_batch} is not divisible by "
            f"{num_devices} devices; use a multiple of {num_devices}"
        )
    return global_batch // num_devices


def _to_input(split_images: tf.Tensor, size: int, normalize) -> tf.Tensor:
    x = tf.cast(split_images, tf.float32)
    x = normalize(x)
    if x.shape[-2] != size:
        x = tf.image.resize(x, (size, size), method="bilinear")
    return x


def train_batches(
    split: Split, *, global_batch: int, seed: int, start_step: int, input_size: int, normalize
) -> Iterator[Batch]:
    """Training batches from global step `start_step` on, forever, epoch after epoch.

    Epoch e is the permutation of np.random.default_rng([seed, e]); its last partial batch is
    dropped. Each batch is [local devices, per-device batch, H, W, C].
    """
    devices = jax.local_device_count()
    per = per_device(global_batch, devices)
    steps_per_epoch = len(split.labels) // global_batch
    epoch, skip = divmod(start_step, steps_per_epoch)
    while True:
        order = np.random.default_rng([seed, epoch]).permutation(len(split.labels))
        order = order[skip * global_batch : steps_per_epoch * global_batch]
        ds = tf.data.Dataset.from_tensor_slices(order.reshape(-1, global_batch))
        ds = ds.map(
            lambda idx: {
                "image": _to_input(tf.gather(split.images, idx), input_size, normalize),
                "label": tf.gather(split.labels, idx),
            },
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        ).prefetch(tf.data.AUTOTUNE)
        for b in ds.as_numpy_iterator():
            yield {k: v.reshape(devices, per, *v.shape[1:]) for k, v in b.items()}
        epoch, skip = epoch + 1, 0


def eval_batches(split: Split, *, global_batch: int, input_size: int, normalize) -> Iterator[Batch]:
    """The whole split once, in order; the last batch is padded and "mask" marks real examples."""
    devices = jax.local_device_count()
    per = per_device(global_batch, devices)
    n = len(split.labels)
    for start in range(0, n, global_batch):
        idx = np.arange(start, min(start + global_batch, n))
        pad = global_batch - len(idx)
        images = _to_input(tf.constant(split.images[idx]), input_size, normalize).numpy()
        batch = {
            "image": np.concatenate([images, np.zeros((pad, *images.shape[1:]), np.float32)]),
            "label": np.concatenate([split.labels[idx], np.zeros(pad, np.int32)]),
            "mask": np.concatenate([np.ones(len(idx), np.float32), np.zeros(pad, np.float32)]),
        }
        yield {k: v.reshape(devices, per, *v.shape[1:]) for k, v in batch.items()}
