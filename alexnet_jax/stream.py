"""TFDS records through tf.data: the only module of the training path that imports TensorFlow.

config.input.pipeline="stream" (any TFDS dataset, ImageNet from TFDS's own TFRecords) and
source="tfds" for in-memory datasets read through TFDS. Epoch e reads the files in the order of
seed s_e = f(seed, e), through a shuffle buffer of `config.input.shuffle_buffer` examples seeded
with s_e; the last partial batch is dropped. Each image is decoded, its shorter side rescaled to
image_size (antialiased bilinear) and the central image_size x image_size kept (Sec. 2), rounded
to uint8: the rest (mean subtraction, crops, flips, lighting) runs on the device (augment.py).
Each process decodes only its rows of every global batch (it still reads every record).
`python -m alexnet_jax.prepare` writes the same 256x256 images once and reads them without
TensorFlow, which is much faster (benchmarks/RESULTS.md).
"""

from collections.abc import Iterator

import ml_collections
import numpy as np
import tensorflow as tf

from alexnet_jax import input_pipeline, preprocess, sources, stats
from alexnet_jax.errors import InputError

tf.config.set_visible_devices([], "GPU")  # tf.data only; the accelerator is JAX's


def load_split(c: ml_collections.ConfigDict, split: str, field: str) -> input_pipeline.Split:
    """Any TFDS image-classification dataset, read whole into memory (small datasets only)."""
    if c.dataset == "imagenet2012":
        raise InputError(
            "config.input.dataset='imagenet2012' does not fit in memory; use "
            "config.input.pipeline='prepared' (configs/paper.py does)"
        )
    b = sources.prepare(c)
    sources.check_split(b, split, field)
    ds = sources.records(b, split, None, shuffle_seed=None, decode=True)
    chunks = list(ds.batch(4096).as_numpy_iterator())
    images = np.concatenate([x["image"] for x in chunks])
    labels = np.concatenate([x["label"] for x in chunks]).astype(np.int32)
    return input_pipeline.Split(images, labels)


def fixed_size(image: tf.Tensor, size: int) -> tf.Tensor:
    """Encoded or decoded image -> uint8 [size, size, C]: Sec. 2's rescale and central crop."""
    if image.dtype == tf.string:
        image = preprocess.decode(image)
    image = preprocess.central_crop(preprocess.resize_small(image, size), size)
    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.default_rng([seed, epoch]).integers(2**31 - 1))


def train_batches(
    b, c: ml_collections.ConfigDict, *, seed: int, start_step: int, num_examples: int
) -> Iterator[input_pipeline.Batch]:
    """This process's rows of the training batches from global step `start_step` on, forever.

    Resuming at step k skips k's records before they are decoded (they are still read).
    """
    gb = c.global_batch_size
    rows = input_pipeline.process_rows(gb)
    steps_per_epoch = num_examples // gb
    epoch, skip = divmod(start_step, steps_per_epoch)

    def make(pos, ex):
        image = fixed_size(ex["image"], c.image_size)
        return {
            "image": image,
            "label": tf.cast(ex["label"], tf.int32),
            "index": tf.cast(pos, tf.int32),
        }

    mine = lambda pos, ex: tf.logical_and(pos % gb >= rows.start, pos % gb < rows.stop)  # noqa: E731
    while True:
        s = _epoch_seed(seed, epoch)
        ds = sources.records(b, "train", c.train_limit, shuffle_seed=s, decode=False)
        ds = ds.shuffle(c.shuffle_buffer, seed=s, reshuffle_each_iteration=False)
        ds = ds.take(steps_per_epoch * gb).enumerate(start=epoch * steps_per_epoch * gb)
        ds = ds.skip(skip * gb).filter(mine)
        ds = ds.map(make, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        ds = ds.batch(rows.stop - rows.start, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
        yield from ds.as_numpy_iterator()
        epoch, skip = epoch + 1, 0


def eval_batches(b, c: ml_collections.ConfigDict) -> Iterator[input_pipeline.Batch]:
    """This process's rows of the eval split once, in file order, padded and masked."""
    n = sources.num_examples(b, c.eval_split, c.eval_limit)
    gb = c.eval_batch_size
    ds = sources.records(b, c.eval_split, c.eval_limit, shuffle_seed=None, decode=False)
    ds = ds.map(
        lambda ex: {"image": fixed_size(ex["image"], c.image_size), "label": ex["label"]},
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    it = ds.batch(gb).prefetch(tf.data.AUTOTUNE).as_numpy_iterator()
    for (ids, mask), batch in zip(
        input_pipeline.eval_order(n, gb, input_pipeline.process_rows(gb)), it, strict=True
    ):
        local = (ids % gb).clip(max=len(batch["label"]) - 1)  # padding rows repeat a real one
        yield {
            "image": batch["image"][local],
            "label": batch["label"][local].astype(np.int32),
            "mask": mask,
            "index": ids.astype(np.int32),
        }


def create_data(config: ml_collections.ConfigDict) -> input_pipeline.Data:
    c = config.input
    if c.eval_split.startswith("train["):
        raise InputError(
            f"config.input.eval_split={c.eval_split!r} is held out of the training split, but "
            "the stream pipeline's statistics (Sec. 2's mean image, Sec. 4.1's PCA) are the "
            "whole training split's, so they would include it; use a separate split"
        )
    b = sources.prepare(c)
    sources.check_split(b, "train", "the training split")
    sources.check_split(b, c.eval_split, "config.input.eval_split")
    classes = b.info.features["label"].num_classes
    if classes > config.model.num_classes:  # the memory and prepared pipelines check the labels
        raise InputError(
            f"{b.name} has {classes} classes but config.model.num_classes="
            f"{config.model.num_classes}; set it to {classes}"
        )
    st = stats.load(c.stats_dir or b.data_dir, c)
    normalize = input_pipeline.stats_normalizer(c, st)
    train_pre, eval_pre = input_pipeline.preprocessors(config, normalize, st, 0)
    num_train = sources.num_examples(b, "train", c.train_limit)
    return input_pipeline.Data(
        num_train,
        sources.num_examples(b, c.eval_split, c.eval_limit),
        train=lambda step: train_batches(
            b, c, seed=config.seed, start_step=step, num_examples=num_train
        ),
        eval=lambda: eval_batches(b, c),
        train_preprocess=train_pre,
        eval_preprocess=eval_pre,
    )
