"""Datasets -> tf.data batches for the local devices: order from a seed, exact resume (Sec. 2).

Two pipelines (`config.input.pipeline`), one entry point (`create`):
  "memory"  small datasets (Fashion-MNIST, CIFAR-10) held whole as uint8 arrays; every epoch is
            a seeded permutation.
  "stream"  datasets that do not fit (ImageNet): TFDS records read in a seeded file order
            through a seeded shuffle buffer, JPEGs decoded in parallel, the paper's preprocessing
            (preprocess.py) with the training-set statistics of stats.py.
In both the position in the input stream is a function of the global step alone, and every
random crop, flip and lighting draw is a stateless function of (seed, epoch, position): a
resumed run sees exactly the batches an uninterrupted one would. Only tf.data runs TensorFlow,
on the CPU.

Crops on small datasets (memory pipeline): the stored image (28x28 for Fashion-MNIST) is
normalised, resized to model.input_size if it differs, then padded with zeros (= the mean after
mean subtraction) by `config.input.crop_padding` pixels on every side; random crops and the ten
crops are input_size windows of that padded image, so "center" is the unpadded image itself.
For Fashion-MNIST crop_padding=2 gives 28-of-32 windows (227-of-256 is 89%, 28/32 is 88%).
"""

import dataclasses
import gzip
import os
from collections.abc import Callable, Iterator
from typing import Literal

import jax
import ml_collections
import numpy as np
import tensorflow as tf

from alexnet_jax import preprocess, sources, stats

Batch = dict[str, np.ndarray]  # "image": [D, B/D, H, W, C] float32, "label": [D, B/D] int32
Mode = Literal["center", "ten_crop"]  # evaluation: ten_crop images are [D, B/D, 10, H, W, C]

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


def load_tfds(c: ml_collections.ConfigDict, split: str, field: str) -> Split:
    """Any TFDS image-classification dataset, read whole into memory (small datasets only)."""
    if c.dataset == "imagenet2012":
        raise ValueError(
            "config.input.dataset='imagenet2012' does not fit in memory; use "
            "config.input.pipeline='stream' (configs/paper.py does)"
        )
    b = sources.prepare(c)
    sources.check_split(b, split, field)
    ds = sources.records(b, split, None, shuffle_seed=None, decode=True)
    chunks = list(ds.batch(4096).as_numpy_iterator())
    images = np.concatenate([x["image"] for x in chunks])
    return Split(images, np.concatenate([x["label"] for x in chunks]).astype(np.int32))


def load(c: ml_collections.ConfigDict, split: str) -> Split:
    """`config.input` -> the named split, from the configured source."""
    field = "config.input.eval_split" if split == c.eval_split else "the training split"
    if c.source == "idx":
        if split not in FASHION_MNIST_FILES:
            raise ValueError(
                f"{field}={split!r} does not exist; use one of {[*FASHION_MNIST_FILES]}"
            )
        return load_fashion_mnist(c.data_dir, split)
    if c.source == "tfds":
        return load_tfds(c, split, field)
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


def process_rows(batch: Batch) -> Batch:
    """This process's rows [p*B/P, (p+1)*B/P) of a global batch (all rows with one process)."""
    p, n = jax.process_index(), jax.process_count()
    return {k: np.split(np.asarray(v), n)[p] for k, v in batch.items()}


def _to_input(split_images: tf.Tensor, size: int, normalize) -> tf.Tensor:
    x = tf.cast(split_images, tf.float32)
    x = normalize(x)
    if x.shape[-2] != size:
        x = tf.image.resize(x, (size, size), method="bilinear")
    return x


def train_batches(
    split: Split,
    *,
    global_batch: int,
    seed: int,
    start_step: int,
    input_size: int,
    normalize,
    augment: Callable[[tf.Tensor, tf.Tensor], tf.Tensor] | None = None,
) -> Iterator[Batch]:
    """Training batches from global step `start_step` on, forever, epoch after epoch.

    Epoch e is the permutation of np.random.default_rng([seed, e]); its last partial batch is
    dropped. Each batch is this process's rows (`process_rows`). `augment(image, seed)`
    (see `augmenter`) gets the normalised image and the seed [config.seed, position], position
    = step * global_batch + index in the batch.
    """
    steps_per_epoch = len(split.labels) // global_batch
    epoch, skip = divmod(start_step, steps_per_epoch)

    def make(step, idx):
        x = _to_input(tf.gather(split.images, idx), input_size, normalize)
        if augment is not None:
            pos = step * global_batch + tf.range(global_batch, dtype=tf.int64)
            seeds = tf.stack([tf.fill([global_batch], tf.constant(seed, tf.int64)), pos], 1)
            x = tf.map_fn(lambda e: augment(e[0], e[1]), (x, seeds), fn_output_signature=tf.float32)
        return {"image": x, "label": tf.gather(split.labels, idx)}

    while True:
        order = np.random.default_rng([seed, epoch]).permutation(len(split.labels))
        order = order[skip * global_batch : steps_per_epoch * global_batch]
        steps = np.arange(len(order) // global_batch, dtype=np.int64)
        steps += epoch * steps_per_epoch + skip
        ds = tf.data.Dataset.from_tensor_slices((steps, order.reshape(-1, global_batch)))
        ds = ds.map(make, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        for b in ds.prefetch(tf.data.AUTOTUNE).as_numpy_iterator():
            yield process_rows(b)
        epoch, skip = epoch + 1, 0


def _eval_view(x: tf.Tensor, mode: Mode, size: int) -> tf.Tensor:
    """[..., S, S, C] -> the central size x size crop, or the ten crops [..., 10, s, s, C]."""
    if mode == "center":
        return preprocess.central_crop(x, size)
    if mode == "ten_crop":
        return preprocess.ten_crop(x, size)
    raise ValueError(f"evaluation mode {mode!r} is unknown; use 'center' or 'ten_crop'")


def _pad(x: tf.Tensor, p: int) -> tf.Tensor:
    return tf.pad(x, [*[[0, 0]] * (len(x.shape) - 3), [p, p], [p, p], [0, 0]]) if p else x


def _padded_batches(batches: Iterator[Batch], global_batch: int, n: int) -> Iterator[Batch]:
    """Host batches of up to global_batch examples -> full batches with a "mask" of the real."""
    for b in batches:
        real = len(b["label"])
        pad = global_batch - real
        out = {k: np.concatenate([v, np.zeros((pad, *v.shape[1:]), v.dtype)]) for k, v in b.items()}
        out["mask"] = np.concatenate([np.ones(real, np.float32), np.zeros(pad, np.float32)])
        yield process_rows(out)


def eval_batches(
    split: Split,
    *,
    global_batch: int,
    input_size: int,
    normalize,
    mode: Mode = "center",
    crop_padding: int = 0,
) -> Iterator[Batch]:
    """The whole split once, in order; the last batch is padded and "mask" marks real examples.

    "center" is the (normalised, resized) stored image; "ten_crop" the ten input_size windows
    of it padded by crop_padding (module docstring).
    """
    n = len(split.labels)

    def host():
        for start in range(0, n, global_batch):
            idx = np.arange(start, min(start + global_batch, n))
            x = _to_input(tf.constant(split.images[idx]), input_size, normalize)
            if mode != "center":
                x = _eval_view(_pad(x, crop_padding), mode, input_size)
            yield {"image": x.numpy(), "label": split.labels[idx]}

    return _padded_batches(host(), global_batch, n)


def augmenter(
    c: ml_collections.ConfigDict, size: int, st: stats.Stats | None, padding: int = 0
) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor] | None:
    """`config.input.augment` -> f(normalised image [S, S, C], seed [2]) (Sec. 4.1), or None.

    Random size x size crop (else the central one), horizontal flip, PCA lighting, each
    switchable; the three draws use independent seeds split from `seed`. `padding` zero-pads
    first (memory pipeline). Lighting needs the training-set eigens `st`.
    """
    a = c.augment
    if not (a.random_crop or a.flip or a.pca_lighting):
        return None
    if a.pca_lighting:
        scale = 255.0 if c.normalize == "mean_image" else 1.0 / st.channel_std
        light = dict(
            eigvals=tf.constant(st.eigvals),
            eigvecs=tf.constant(st.eigvecs),
            std=a.pca_std,
            scale=tf.constant(scale, tf.float32),
        )

    def augment(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        crop_seed, flip_seed, light_seed = tf.unstack(tf.random.split(seed, 3))
        image = _pad(image, padding)
        if a.random_crop:
            image = preprocess.random_crop(image, size, crop_seed)
        else:
            image = preprocess.central_crop(image, size)
        if a.flip:
            image = preprocess.flip(image, flip_seed)
        if a.pca_lighting:
            image = preprocess.pca_lighting(image, light_seed, **light)
        return image

    return augment


def _stream_normalizer(c: ml_collections.ConfigDict, st: stats.Stats):
    """float32 [S, S, C] 0..255 -> network input, from the stored statistics (Sec. 2)."""
    if c.normalize == "mean_image":
        if st.mean_image.shape[0] != c.image_size:
            raise ValueError(
                f"the mean image is {st.mean_image.shape[0]}x{st.mean_image.shape[1]} but "
                f"config.input.image_size={c.image_size}; recompute it with `"
                f"{stats.command_for(c)}`"
            )
        mean = tf.constant(st.mean_image)
        return lambda img: img - mean
    if c.normalize == "mean_std":
        mean, std = tf.constant(st.channel_mean), tf.constant(st.channel_std)
        return lambda img: (img / 255 - mean) / std
    raise ValueError(
        f"config.input.normalize={c.normalize!r} is unknown; use 'mean_image' or 'mean_std'"
    )


def _fixed_size(image: tf.Tensor, size: int) -> tf.Tensor:
    """Encoded or decoded image -> float32 [size, size, C]: Sec. 2's rescale and central crop."""
    if image.dtype == tf.string:
        image = preprocess.decode(image)
    return preprocess.central_crop(preprocess.resize_small(image, size), size)


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.default_rng([seed, epoch]).integers(2**31 - 1))


def stream_train_batches(
    b, c: ml_collections.ConfigDict, *, seed: int, start_step: int, input_size: int, normalize,
    augment, num_examples: int,
) -> Iterator[Batch]:  # fmt: skip
    """Training batches streamed from TFDS records from global step `start_step` on, forever.

    Epoch e reads the files in the order of seed s_e = f(seed, e), through a shuffle buffer of
    `config.input.shuffle_buffer` examples seeded with s_e; the last partial batch is dropped.
    Resuming at step k skips k's records before they are decoded (they are still read: fast,
    but proportional to the position in the epoch).
    """
    gb = c.global_batch_size
    steps_per_epoch = num_examples // gb
    epoch, skip = divmod(start_step, steps_per_epoch)
    view = augment or (lambda image, _: preprocess.central_crop(image, input_size))

    def make(pos, ex):
        image = normalize(_fixed_size(ex["image"], c.image_size))
        key = tf.stack([tf.constant(seed, tf.int64), pos])
        return {"image": view(image, key), "label": tf.cast(ex["label"], tf.int32)}

    while True:
        s = _epoch_seed(seed, epoch)
        ds = sources.records(b, "train", c.train_limit, shuffle_seed=s, decode=False)
        ds = ds.shuffle(c.shuffle_buffer, seed=s, reshuffle_each_iteration=False)
        ds = ds.take(steps_per_epoch * gb).enumerate(start=epoch * steps_per_epoch * gb)
        ds = ds.skip(skip * gb)
        ds = ds.map(make, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        ds = ds.batch(gb, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
        for batch in ds.as_numpy_iterator():
            yield process_rows(batch)
        epoch, skip = epoch + 1, 0


def stream_eval_batches(
    b, c: ml_collections.ConfigDict, *, input_size: int, normalize, mode: Mode
) -> Iterator[Batch]:
    """The eval split once, in file order, Sec. 2's preprocessing, then `mode`'s crops."""
    n = sources.num_examples(b, c.eval_split, c.eval_limit)

    def make(ex):
        image = normalize(_fixed_size(ex["image"], c.image_size))
        return {"image": _eval_view(image, mode, input_size), "label": ex["label"]}

    ds = sources.records(b, c.eval_split, c.eval_limit, shuffle_seed=None, decode=False)
    ds = ds.map(make, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(c.eval_batch_size).prefetch(tf.data.AUTOTUNE)
    return _padded_batches(ds.as_numpy_iterator(), c.eval_batch_size, n)


@dataclasses.dataclass(frozen=True)
class Data:
    """What the training loop and evaluate.py need from a dataset."""

    num_train: int
    num_eval: int
    train: Callable[[int], Iterator[Batch]]  # start_step -> training batches, forever
    eval: Callable[[Mode], Iterator[Batch]]  # mode -> the eval split once, padded and masked


def _limit(split: Split, n: int | None) -> Split:
    return split if n is None else Split(split.images[:n], split.labels[:n])


def create(config: ml_collections.ConfigDict) -> Data:
    """`config.input` (and model.input_size, seed) -> the training and evaluation streams."""
    c, size = config.input, config.model.input_size
    pipeline = c.pipeline or ("stream" if c.dataset == "imagenet2012" else "memory")
    if pipeline == "memory":
        train = _limit(load(c, "train"), c.train_limit)
        held = _limit(load(c, c.eval_split), c.eval_limit)
        normalize = normalizer(c, train)
        st = stats.from_images(train.images) if c.augment.pca_lighting else None
        augment = augmenter(c, size, st, padding=c.crop_padding)
        kw = dict(global_batch=c.global_batch_size, input_size=size, normalize=normalize)
        return Data(
            len(train.labels),
            len(held.labels),
            train=lambda step: train_batches(
                train, seed=config.seed, start_step=step, augment=augment, **kw
            ),
            eval=lambda mode: eval_batches(
                held,
                global_batch=c.eval_batch_size,
                input_size=size,
                normalize=normalize,
                mode=mode,
                crop_padding=c.crop_padding,
            ),
        )
    if pipeline == "stream":
        b = sources.prepare(c)
        sources.check_split(b, "train", "the training split")
        sources.check_split(b, c.eval_split, "config.input.eval_split")
        st = stats.load(c.stats_dir or b.data_dir, c)
        normalize = _stream_normalizer(c, st)
        augment = augmenter(c, size, st)
        num_train = sources.num_examples(b, "train", c.train_limit)
        return Data(
            num_train,
            sources.num_examples(b, c.eval_split, c.eval_limit),
            train=lambda step: stream_train_batches(
                b,
                c,
                seed=config.seed,
                start_step=step,
                input_size=size,
                normalize=normalize,
                augment=augment,
                num_examples=num_train,
            ),  # fmt: skip
            eval=lambda mode: stream_eval_batches(
                b, c, input_size=size, normalize=normalize, mode=mode
            ),
        )
    raise ValueError(f"config.input.pipeline={c.pipeline!r} is unknown; use 'memory' or 'stream'")
