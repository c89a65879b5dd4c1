"""Datasets -> host batches of this process's rows: order from a seed, exact resume (Sec. 2).

Pipelines (`config.input.pipeline`), one entry point (`create`):
  "memory"    small datasets (Fashion-MNIST, CIFAR-10) held whole as uint8 arrays, normalised
              on the host (numpy).
  "prepared"  the paper's 256x256 images written once by `python -m alexnet_jax.prepare`
              (ImageNet): raw uint8 shards read through a memory map, or JPEG shards decoded by
              PIL in a thread pool. No TensorFlow.
  "stream"    TFDS records through tf.data (stream.py; the only path that imports TensorFlow).
  "synthetic" random uint8 batches made once on the device: times the step alone.
Epoch e of N examples is the permutation np.random.default_rng([seed, e]); the last partial
batch is dropped; step s takes positions [s*B, (s+1)*B) of the run's global order. Process p
of P reads and decodes only rows [p*B/P, (p+1)*B/P) of each global batch, so the position in
the input is a function of the step alone and a resumed run sees exactly the same batches.

Batches (CONTRACTS.md): "image" [B_local, H, W, C], "label" int32 [B_local], "index" int32
[B_local] (step * B + row: the seed of the example's crop, flip and lighting draws, made on the
device by `augment`, exposed here as `Data.train_preprocess` / `Data.eval_preprocess(mode)`),
and for evaluation "mask" float32 (1 = real example, 0 = padding of the last batch).

Small datasets: the stored image (28x28 for Fashion-MNIST) is normalised and resized to
model.input_size if it differs (bilinear, tf.image.resize's formula) on the host; on the device
it is zero-padded (= the mean) by `config.input.crop_padding` pixels a side and the crops are
input_size windows of that, so "center" is the image itself (Fashion-MNIST: 28 of 32).
"""

import dataclasses
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Literal

import jax
import ml_collections
import numpy as np

from alexnet_jax import augment, idx, stats
from alexnet_jax.errors import InputError

Batch = dict[str, np.ndarray]
Mode = Literal["center", "ten_crop"]  # evaluation: ten_crop images are [B, 10, H, W, C]


@dataclasses.dataclass(frozen=True)
class Split:
    images: np.ndarray  # [N, H, W, C] uint8
    labels: np.ndarray  # [N] int32


def check_split(split: Split, name: str, num_classes: int, channels: int) -> None:
    """One-line errors for a split that does not fit the config: counts, labels, shapes."""
    if split.images.ndim != 4 or split.labels.ndim != 1:
        raise InputError(
            f"{name}: images must be [N, H, W, C] and labels [N], got {split.images.shape} and "
            f"{split.labels.shape}; check config.input.dataset and its files"
        )
    if len(split.images) != len(split.labels):
        raise InputError(
            f"{name}: {len(split.images)} images but {len(split.labels)} labels; the image and "
            "label files do not belong together"
        )
    if split.images.shape[-1] != channels:
        raise InputError(
            f"{name}: images have {split.images.shape[-1]} channels but "
            f"config.model.input_channels={channels}; set it to {split.images.shape[-1]}"
        )
    check_labels(split.labels, name, num_classes)


def check_labels(labels: np.ndarray, name: str, num_classes: int) -> None:
    if len(labels) and not 0 <= labels.min() <= labels.max() < num_classes:
        raise InputError(
            f"{name}: labels span [{labels.min()}, {labels.max()}] but "
            f"config.model.num_classes={num_classes}; labels must lie in [0, {num_classes})"
        )


def load(c: ml_collections.ConfigDict, split: str) -> Split:
    """`config.input` -> the named split, from the configured source. Both sources take TFDS's
    slice syntax: "train[55000:]" is a validation split held out of training (train_limit=55000).
    """
    field = "config.input.eval_split" if split == c.eval_split else "the training split"
    if c.source == "idx":
        return Split(*idx.load(c.data_dir, split, field))
    if c.source == "tfds":
        from alexnet_jax import stream  # TensorFlow: only here

        return stream.load_split(c, split, field)
    raise InputError(f"config.input.source={c.source!r} is unknown; use 'idx' or 'tfds'")


def process_rows(global_batch: int) -> slice:
    """This process's rows of every global batch: [p*B/P, (p+1)*B/P)."""
    p, n = jax.process_index(), jax.process_count()
    if global_batch % n:
        raise InputError(
            f"batch size {global_batch} is not divisible by the {n} processes; use a multiple "
            f"of {n}"
        )
    return slice(p * global_batch // n, (p + 1) * global_batch // n)


def train_order(
    n: int, global_batch: int, seed: int, start_step: int, rows: slice
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(example ids, "index" positions) of `rows` of each training batch from `start_step` on."""
    steps_per_epoch = n // global_batch
    epoch, skip = divmod(start_step, steps_per_epoch)
    step = start_step
    while True:
        order = np.random.default_rng([seed, epoch]).permutation(n)
        for s in range(skip, steps_per_epoch):
            ids = order[s * global_batch : (s + 1) * global_batch][rows]
            pos = step * global_batch + np.arange(global_batch)[rows]
            yield ids, pos.astype(np.int32)
            step += 1
        epoch, skip = epoch + 1, 0


def eval_order(n: int, global_batch: int, rows: slice) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(example ids, mask) of `rows` of each eval batch: the split once, in order, the last
    global batch padded (id 0, mask 0)."""
    for start in range(0, n, global_batch):
        pos = np.arange(start, start + global_batch)[rows]
        yield np.where(pos < n, pos, 0), (pos < n).astype(np.float32)


BACKGROUND = "input_pipeline.background"  # the reader thread's name


def background(batches: Iterator[Batch], size: int = 2) -> Iterator[Batch]:
    """`batches` made by a thread, `size` ahead of the consumer (decoding overlaps the step).
    The thread ends when the consumer does (closed, or dropped): it holds nothing after."""
    q, done, stop = queue.Queue(size), object(), threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def work():
        try:
            for b in batches:
                if not put(b):
                    return
        except BaseException as e:  # noqa: BLE001 (re-raised in the consumer)
            put(e)
            return
        put(done)

    threading.Thread(target=work, name=BACKGROUND, daemon=True).start()
    try:
        while (b := q.get()) is not done:
            if isinstance(b, BaseException):
                raise b
            yield b
    finally:
        stop.set()


def _resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """[n_out, n_in] bilinear weights, half-pixel centres (tf.image.resize, antialias off)."""
    src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    lo = np.floor(src).astype(int)
    hi, f = np.minimum(lo + 1, n_in - 1), (src - lo).astype(np.float32)
    m = np.zeros((n_out, n_in), np.float32)
    np.add.at(m, (np.arange(n_out), lo), 1 - f)
    np.add.at(m, (np.arange(n_out), hi), f)
    return m


def _to_input(images: np.ndarray, size: int, normalize) -> np.ndarray:
    x = normalize(images.astype(np.float32))
    if x.shape[-2] != size:
        mh, mw = _resize_matrix(x.shape[-3], size), _resize_matrix(x.shape[-2], size)
        x = np.einsum("oh,bhwc,pw->bopc", mh, x, mw, optimize=True)
    return np.asarray(x, np.float32)


def train_batches(
    split: Split, *, global_batch: int, seed: int, start_step: int, input_size: int, normalize
) -> Iterator[Batch]:
    """Training batches (this process's rows) from global step `start_step` on, forever."""
    order = train_order(
        len(split.labels), global_batch, seed, start_step, process_rows(global_batch)
    )
    for ids, pos in order:
        x = _to_input(split.images[ids], input_size, normalize)
        yield {"image": x, "label": split.labels[ids], "index": pos}


def eval_batches(split: Split, *, global_batch: int, input_size: int, normalize) -> Iterator[Batch]:
    """The whole split once, in order; the last batch is padded and "mask" marks real examples."""
    for ids, mask in eval_order(len(split.labels), global_batch, process_rows(global_batch)):
        x = _to_input(split.images[ids], input_size, normalize)
        yield {"image": x, "label": split.labels[ids], "mask": mask, "index": ids.astype(np.int32)}


def synthetic_batches(
    *, global_batch: int, image_size: int, channels: int, num_classes: int, seed: int
) -> Iterator[Batch]:
    """One random uint8 batch (this process's rows), made once and yielded forever.

    The loop's host-to-device copy (overlapped by parallel.prefetch) is all that is left of
    the input: the step runs alone, the augmentation included.
    """
    rows = process_rows(global_batch)
    n = rows.stop - rows.start
    rng = np.random.default_rng(seed)
    batch = {
        "image": rng.integers(0, 256, (n, image_size, image_size, channels), np.uint8),
        "label": rng.integers(0, num_classes, n).astype(np.int32),
        "index": np.arange(rows.start, rows.stop, dtype=np.int32),
        "mask": np.ones(n, np.float32),
    }
    while True:
        yield batch


SYNTHETIC_STATS = stats.Stats(  # ImageNet-like: a grey mean, ImageNet's eigenvalues (~)
    mean_image=np.full((1, 1, 3), 115.0, np.float32),
    channel_mean=np.full(3, 0.45, np.float32),
    channel_std=np.full(3, 0.25, np.float32),
    eigvals=np.array([0.2175, 0.0188, 0.0045], np.float32),
    eigvecs=np.eye(3, dtype=np.float32),
    num_images=0,
)


@dataclasses.dataclass(frozen=True)
class Data:
    """What the training loop and evaluate.py need from a dataset."""

    num_train: int
    num_eval: int
    train: Callable[[int], Iterator[Batch]]  # start_step -> training batches, forever
    eval: Callable[[], Iterator[Batch]]  # the eval split once, padded and masked
    train_preprocess: Callable  # batch -> batch, on the device inside the step (augment.py)
    eval_preprocess: Callable[[Mode], Callable]  # mode -> (batch -> batch), likewise


def limit(split: Split, n: int | None) -> Split:
    """The first n examples (config.input.train_limit, eval_limit); None: all."""
    return split if n is None else Split(split.images[:n], split.labels[:n])


def preprocessors(config, normalize, st, padding: int) -> tuple[Callable, Callable]:
    """(train_preprocess, eval_preprocess(mode)) from config.input.augment and the stats `st`
    (lighting's eigens, Sec. 4.1; its units: augment.py)."""
    c, size = config.input, config.model.input_size
    a, light = c.augment, None
    if a.pca_lighting:
        scale = 255.0 if c.normalize == "mean_image" else 1.0 / st.channel_std
        light = dict(eigvals=st.eigvals, eigvecs=st.eigvecs, std=a.pca_std, scale=scale)
    train = augment.train_preprocess(
        seed=config.seed, size=size, normalize=normalize, padding=padding,
        random_crop=a.random_crop, flip=a.flip, lighting=light,
    )  # fmt: skip
    return train, lambda mode: augment.eval_preprocess(
        mode=mode, size=size, normalize=normalize, padding=padding
    )


def stats_normalizer(c: ml_collections.ConfigDict, st: stats.Stats) -> augment.Normalize:
    """Pixels [.., S, S, C] -> network input, from the training set's statistics (Sec. 2).

    "mean_image": pixels in 0..255 minus the mean image over the training set (the paper's
    only preprocessing). "mean_std": pixels in 0..1, per-channel mean/std (torchvision's).
    """
    if c.normalize == "mean_image":
        return augment.normalizer("mean_image", mean_image=st.mean_image)
    if c.normalize == "mean_std":
        return augment.normalizer(
            "mean_std", channel_mean=st.channel_mean, channel_std=st.channel_std
        )
    raise InputError(
        f"config.input.normalize={c.normalize!r} is unknown; use 'mean_image' or 'mean_std'"
    )


def normalizer(c: ml_collections.ConfigDict, train: Split) -> augment.Normalize:
    """`stats_normalizer` with an in-memory training split's own statistics."""
    return stats_normalizer(c, stats.from_images(train.images))


def pipeline_of(c: ml_collections.ConfigDict) -> str:
    """`config.input`'s pipeline; None: "prepared" for imagenet2012, else "memory"."""
    return c.pipeline or ("prepared" if c.dataset == "imagenet2012" else "memory")


def create(config: ml_collections.ConfigDict) -> Data:
    """`config.input` (and model.input_size, seed) -> the training and evaluation streams."""
    c, m = config.input, config.model
    pipeline = pipeline_of(c)
    if pipeline == "memory":
        if c.dataset == "imagenet2012":
            raise InputError(
                "config.input.dataset='imagenet2012' does not fit in memory; use "
                "config.input.pipeline='prepared' (configs/paper.py does)"
            )
        train = limit(load(c, "train"), c.train_limit)
        held = limit(load(c, c.eval_split), c.eval_limit)
        check_split(train, "the training split", m.num_classes, m.input_channels)
        check_split(
            held, f"config.input.eval_split={c.eval_split!r}", m.num_classes, m.input_channels
        )
        st = stats.from_images(train.images)  # exact sums of uint8: the stored ones' values
        normalize = stats_normalizer(c, st)  # on the host, before the resize to input_size
        kw = dict(input_size=m.input_size, normalize=normalize)
        train_pre, eval_pre = preprocessors(config, None, st, c.crop_padding)
        return Data(
            len(train.labels),
            len(held.labels),
            train=lambda step: background(
                train_batches(
                    train, global_batch=c.global_batch_size, seed=config.seed, start_step=step, **kw
                )
            ),  # fmt: skip
            eval=lambda: background(eval_batches(held, global_batch=c.eval_batch_size, **kw)),
            train_preprocess=train_pre,
            eval_preprocess=eval_pre,
        )
    if pipeline == "synthetic":
        kw = dict(image_size=c.image_size, channels=m.input_channels, num_classes=m.num_classes)
        st = SYNTHETIC_STATS
        train_pre, eval_pre = preprocessors(config, lambda x: x - st.mean_image, st, 0)
        return Data(
            c.train_limit or 1_281_167,  # ImageNet's training set, for the epoch count
            c.eval_batch_size,
            train=lambda step: synthetic_batches(
                global_batch=c.global_batch_size, seed=config.seed, **kw
            ),
            eval=lambda: iter(
                [next(synthetic_batches(global_batch=c.eval_batch_size, seed=1, **kw))]
            ),
            train_preprocess=train_pre,
            eval_preprocess=eval_pre,
        )
    if pipeline == "prepared":
        from alexnet_jax import prepared

        return prepared.create_data(config)
    if pipeline == "stream":
        from alexnet_jax import stream  # TensorFlow: only here

        return stream.create_data(config)
    raise InputError(
        f"config.input.pipeline={c.pipeline!r} is unknown; use 'memory', 'prepared', 'stream' "
        "or 'synthetic'"
    )
