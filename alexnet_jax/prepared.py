"""Reading what `python -m alexnet_jax.prepare` wrote: the 256x256 shards, without TensorFlow.

config.input.pipeline="prepared" (ImageNet's default). Each process reads only its rows of every
batch (input_pipeline.train_order): "raw" shards through a memory map (a copy per image, no
decoder), "jpeg" shards decoded by PIL in a pool of config.input.decode_threads threads (None:
all cores; PIL releases the GIL while decoding), a background thread making the next batches.
Batches are uint8 [B_local, S, S, 3]; the mean image, crops, flips and lighting run on the device
(augment.py, `Data.train_preprocess` / `eval_preprocess`).
"""

import concurrent.futures
import io
import json
import os

import numpy as np
from PIL import Image

from alexnet_jax import cli, files, input_pipeline, prepare, stats
from alexnet_jax.errors import InputError, MissingFileError


def _command(c) -> str:
    parts = ["--config=configs/paper.py"]
    if c.manual_dir is None and c.dataset == "imagenet2012":
        parts.append("--config.input.manual_dir=DIR_OF_THE_ILSVRC2012_TARS")
    for field in ("dataset", "manual_dir", "prepared_dir", "stats_dir", "storage", "image_size"):
        if c[field] is not None:
            parts.append(f"--config.input.{field}={c[field]}")
    return cli.command("python -m alexnet_jax.prepare", parts)


def manifest(c) -> dict:
    """The prepared directory's manifest; one-line errors for a missing or half-done one."""
    d = c.prepared_dir
    if d is None:
        raise InputError(
            f"config.input.prepared_dir is not set; prepare the data once with `{_command(c)}` "
            "and pass the same --config.input.prepared_dir"
        )
    path = os.path.join(d, prepare.MANIFEST)
    if not os.path.exists(path):
        shards = [n for n in os.listdir(d) if n.endswith(".shard")] if os.path.isdir(d) else []
        state = (
            f"is half-prepared ({len(shards)} shards, no {prepare.MANIFEST})"
            if shards
            else "holds no prepared data"
        )
        raise InputError(f"{d} {state}; run (or rerun, it resumes) `{_command(c)}`")
    try:
        with open(path) as f:
            m = json.load(f)
    except ValueError:
        raise InputError(f"{path} is damaged; rerun `{_command(c)}` (it resumes)") from None
    if m["dataset"] != c.dataset:
        raise InputError(
            f"{d} holds {m['dataset']!r} but config.input.dataset={c.dataset!r}; set it, or give "
            "the prepared_dir of that dataset"
        )
    if m["image_size"] != c.image_size:
        raise InputError(
            f"{d} holds {m['image_size']}x{m['image_size']} images but config.input.image_size="
            f"{c.image_size}; prepare again into another prepared_dir or set image_size"
        )
    return m


def _shard(directory: str, name: str, storage: str) -> list[np.ndarray]:
    """A shard's labels and images ("raw"), or labels, offsets and JPEG bytes ("jpeg")."""
    path = os.path.join(directory, name)
    if not os.path.isfile(path):
        raise MissingFileError(
            f"{path} is missing (a copy cut short?); copy it again, or rerun the prepare command "
            "into this directory (it writes the missing shards)"
        )
    arrays = files.npy_arrays(path)
    if len(arrays) != (2 if storage == "raw" else 3):
        raise InputError(f"{path} is truncated; delete it and rerun the prepare command")
    return arrays


class Shards:
    """One prepared split: labels in memory, images read (or decoded) by example id."""

    def __init__(self, directory: str, split: dict, storage: str, threads: int | None):
        arrays = [_shard(directory, n, storage) for n in split["shards"]]
        self.labels = np.concatenate([np.asarray(a[0]) for a in arrays])
        if len(self.labels) != split["num_examples"]:
            raise InputError(f"{directory}: the shards hold {len(self.labels)} examples, not "
                             f"{split['num_examples']}; prepare it again")  # fmt: skip
        self.starts = np.cumsum([0] + [len(a[0]) for a in arrays])
        self.storage, self.arrays = storage, arrays
        self.pool = concurrent.futures.ThreadPoolExecutor(threads or os.cpu_count())
        self.size = self._one(0, 0).shape[0]

    def _one(self, k: int, j: int) -> np.ndarray:
        """Example j of shard k, uint8 [S, S, 3]."""
        if self.storage == "raw":
            return self.arrays[k][1][j]
        offsets, data = self.arrays[k][1], self.arrays[k][2]
        return np.asarray(Image.open(io.BytesIO(data[offsets[j] : offsets[j + 1]])))

    def images(self, ids: np.ndarray) -> np.ndarray:
        """uint8 [len(ids), S, S, 3] of the examples `ids`."""
        ks = np.searchsorted(self.starts, ids, side="right") - 1
        js = ids - self.starts[ks]
        out = np.empty((len(ids), self.size, self.size, 3), np.uint8)

        def put(r):
            out[r] = self._one(ks[r], js[r])

        if self.storage == "raw":  # a copy out of the page cache: threads would not help
            for r in range(len(ids)):
                put(r)
        else:
            list(self.pool.map(put, range(len(ids))))
        return out


def create_data(config) -> input_pipeline.Data:
    c = config.input
    if c.eval_split.split("[", 1)[0] == "train":  # its images are in "train", all of them
        raise InputError(
            f"config.input.eval_split={c.eval_split!r} is a slice of the training split, which "
            "the prepared pipeline trains on whole (train_limit takes every n-th image): the "
            "held-out images would be trained on; use config.input.pipeline='memory', or a "
            "separate split"
        )
    m = manifest(c)
    d = c.prepared_dir
    for split in ("train", c.eval_split):
        if split not in m["splits"]:
            raise InputError(f"{d} has no split {split!r}; it has {sorted(m['splits'])}")
    directory = c.stats_dir or d
    if not os.path.exists(stats.file_stem(directory, c.image_size) + ".npz"):
        raise InputError(
            f"{stats.file_stem(directory, c.image_size)}.npz is missing; `{_command(c)}` writes it"
        )
    st = stats.load(directory, c)
    stats.check_source(directory, c.image_size, m["splits"]["train"]["fingerprint"], _command(c))
    n_shards = len(m["splits"]["train"]["shards"]) + len(m["splits"][c.eval_split]["shards"])
    files.allow_open_files(
        n_shards, f"the shards of {d}", "prepare into larger shards (shard_size)"
    )
    train = Shards(d, m["splits"]["train"], m["storage"], c.decode_threads)
    held = Shards(d, m["splits"][c.eval_split], m["storage"], c.decode_threads)
    for split, shards in (("train", train), (c.eval_split, held)):
        input_pipeline.check_labels(shards.labels, f"{d} split {split!r}", config.model.num_classes)
    n_all = len(train.labels)
    n_train = n_all if c.train_limit is None else min(c.train_limit, n_all)
    # train_limit: every (n_all / n)-th image, so that all classes stay (shards are by class)
    subset = np.arange(n_train) * n_all // n_train
    n_eval = len(held.labels) if c.eval_limit is None else min(c.eval_limit, len(held.labels))
    normalize = input_pipeline.stats_normalizer(c, st)
    train_pre, eval_pre = input_pipeline.preprocessors(config, normalize, st, 0)
    gb, eb = c.global_batch_size, c.eval_batch_size

    def train_batches(step):
        rows = input_pipeline.process_rows(gb)
        for ids, pos in input_pipeline.train_order(n_train, gb, config.seed, step, rows):
            ids = subset[ids]
            yield {"image": train.images(ids), "label": train.labels[ids], "index": pos}

    def eval_batches():
        for ids, mask in input_pipeline.eval_order(n_eval, eb, input_pipeline.process_rows(eb)):
            yield {
                "image": held.images(ids),
                "label": held.labels[ids],
                "mask": mask,
                "index": ids.astype(np.int32),
            }

    return input_pipeline.Data(
        n_train,
        n_eval,
        train=lambda step: input_pipeline.background(train_batches(step), c.host_prefetch),
        eval=lambda: input_pipeline.background(eval_batches(), c.host_prefetch),
        train_preprocess=train_pre,
        eval_preprocess=eval_pre,
    )
