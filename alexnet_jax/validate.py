"""The config checked before anything expensive: one line per bad field, naming it and the fix.

`config(c)` runs in main before any data loads or any step compiles, `prepare(c.input)` in
alexnet_jax.prepare before any tar is read. Model fields are checked
by models.create_model, the optimizer's by optim.validate, the parallelism's and the batch
sizes' split over the devices by parallel.create.
"""

import math
import re

import ml_collections

from alexnet_jax.errors import InputError


def _int(value, field: str, minimum: int, fix: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"config.{field}={value!r} must be an integer >= {minimum}{fix}")


def _number(value, field: str, low: float, high: float, what: str) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not (ok and low <= value <= high):
        raise InputError(f"config.{field}={value!r} must be {what}")


def config(c: ml_collections.ConfigDict) -> None:
    """Every field a run reads before its first step, checked; raises InputError."""
    from alexnet_jax import input_pipeline, models, optim  # here: prepare's workers skip JAX

    m = c.model
    _int(m.num_classes, "model.num_classes", 1, " (ImageNet: 1000)")
    _int(m.input_channels, "model.input_channels", 1, " (RGB: 3, grey: 1)")
    _int(m.input_size, "model.input_size", 1)
    for field, sizes in (("conv.features", m.conv.features), ("fc_features", m.fc_features)):
        for k, n in enumerate(sizes):
            _int(n, f"model.{field}[{k}]", 1)
    models.create_model(c)  # the rest of config.model (architecture.check)
    optim.validate(c.optim)
    s = c.schedule
    _number(s.factor, "schedule.factor", 0.0, 1.0, "in (0, 1] (Sec. 5: 0.1)")
    if s.factor == 0:
        raise InputError("config.schedule.factor=0 would set the rate to 0; use 0.1 (Sec. 5)")
    _int(
        s.patience_epochs,
        "schedule.patience_epochs",
        1,
        " (1: lr / 10 after one epoch without gain)",
    )
    _number(s.threshold, "schedule.threshold", 0.0, 1.0, "in [0, 1] (a top-1 error gain)")
    _int(s.cooldown_epochs, "schedule.cooldown_epochs", 0)
    _int(s.max_drops, "schedule.max_drops", 0, " (Sec. 5: 3)")
    drops = tuple(s.drop_after_epochs)
    for k, e in enumerate(drops):
        _int(e, f"schedule.drop_after_epochs[{k}]", 1)
    if list(drops) != sorted(set(drops)) or (drops and drops[-1] >= c.num_epochs):
        raise InputError(
            f"config.schedule.drop_after_epochs={drops} must rise strictly and stay below "
            f"num_epochs={c.num_epochs}, e.g. (30, 38, 46) with num_epochs=52"
        )
    i = c.input
    _int(i.global_batch_size, "input.global_batch_size", 1, " (Sec. 5: 128)")
    _int(i.eval_batch_size, "input.eval_batch_size", 1)
    for field in ("train_limit", "eval_limit"):
        if i[field] is not None:
            _int(i[field], f"input.{field}", 1, " or None (the whole split)")
    _int(i.device_prefetch, "input.device_prefetch", 0)
    _int(i.host_prefetch, "input.host_prefetch", 1, " (a queue of 0 would not be bounded)")
    if i.decode_threads is not None:
        _int(i.decode_threads, "input.decode_threads", 1, " or None (every core)")
    _int(i.crop_padding, "input.crop_padding", 0)
    split = str(i.eval_split)
    held = re.fullmatch(r"train\[(\d+):\]", split)  # held out of train[:train_limit]
    if split.startswith("train[") and not held:  # e.g. train[-5000:]: its rows are unknown here
        raise InputError(
            f"config.input.eval_split={split!r}: images held out of the training split are "
            "named 'train[N:]' with config.input.train_limit <= N (the run trains on the "
            "first train_limit), e.g. 'train[55000:]' with train_limit=55000"
        )
    if held and (i.train_limit is None or i.train_limit > int(held[1])):
        raise InputError(
            f"config.input.eval_split={split!r} holds images that train_limit="
            f"{i.train_limit} trains on; set config.input.train_limit <= {held[1]}"
        )
    pipeline = input_pipeline.pipeline_of(i)
    if pipeline != "memory" and m.input_size > i.image_size:  # "memory" resizes to input_size
        raise InputError(
            f"config.model.input_size={m.input_size} is larger than config.input.image_size="
            f"{i.image_size}, the stored images the {pipeline!r} pipeline crops it from; use an "
            "input_size <= image_size (Sec. 2: 224 or 227 of 256)"
        )
    _int(c.num_epochs, "num_epochs", 1)
    if c.max_steps is not None:
        _int(c.max_steps, "max_steps", 1, " or None (num_epochs of steps)")
    _int(c.log_every_steps, "log_every_steps", 1)
    _int(c.checkpoint.every_steps, "checkpoint.every_steps", 1)
    _int(c.checkpoint.keep, "checkpoint.keep", 1)
    _int(c.seed, "seed", 0)
    if c.seed >= 2**32:  # jax.random.key keeps 32 bits: 2**32 + 5 would be seed 5's init
        raise InputError(f"config.seed={c.seed} must be below 2**32 (JAX's keys hold 32 bits)")


def prepare(i: ml_collections.ConfigDict) -> None:
    """The fields alexnet_jax.prepare reads (Sec. 2's 256x256 images, stored once)."""
    _int(i.image_size, "input.image_size", 1, " (Sec. 2: 256)")
    _int(i.shard_size, "input.shard_size", 1, " (1024: ~1,300 files for ImageNet)")
    _number(i.jpeg_quality, "input.jpeg_quality", 1, 100, "an integer in [1, 100] (90)")
    if i.prepare_workers is not None:
        _int(i.prepare_workers, "input.prepare_workers", 1, " or None (every core)")
