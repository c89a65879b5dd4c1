r"""Prepare once (Sec. 2): ILSVRC-2012's tars -> the paper's 256x256 images, in shards.

  python -m alexnet_jax.prepare --config=configs/paper.py \
      --config.input.manual_dir=/data/ilsvrc --config.input.prepared_dir=/data/ilsvrc256

Each image is decoded (PIL: CMYK, grey and the PNG named .JPEG become RGB), its shorter side
rescaled to config.input.image_size (bilinear, antialiased; round-half-up long side) and the
central image_size x image_size window kept (floor offsets): preprocess.py's formula, the
paper's "down-sampled the images to a fixed resolution of 256x256" (Sec. 2). Stored as
  storage="jpeg"  JPEG at config.input.jpeg_quality (4:2:0), decoded by PIL when read;
  storage="raw"   uint8 [N, S, S, 3], memory-mapped when read: no decoder, 196,608 B/image.
Shard k of a split holds examples [k*shard_size, (k+1)*shard_size) in a fixed order (train:
sorted by class, then file name; validation: by file name), as a sequence of .npy arrays
(labels, then offsets and bytes, or the images). The same pass adds up the training set's
statistics over the stored pixels (stats.py's mean image and PCA eigens: alexnet_stats_S.npz,
next to the shards, or in config.input.stats_dir where set).

Parallel over config.input.prepare_workers processes (None: all cores), one shard at a time
each, with a progress line and an ETA. Resumable: a shard (and its statistics) is written under
a temporary name and renamed when complete, so a killed run continues with the missing shards
and rerunning gives byte-identical files (`prepare_settings.json`, written first, refuses a
rerun with another image_size, storage, jpeg_quality, dataset or shard_size); `prepared.json`,
written last, marks the directory complete, and the reader (prepared.py) refuses a directory
without it.
Other TFDS datasets (config.input.dataset="cifar10", ...) are read through TFDS and prepared
the same way.
"""

import dataclasses
import datetime
import errno
import hashlib
import importlib.util
import io
import json
import multiprocessing
import os
import re
import sys
import tarfile
import time

import numpy as np
from PIL import Image

from alexnet_jax import cli, files, stats, validate
from alexnet_jax.errors import InputError, MissingFileError

TARS = {"train": "ILSVRC2012_img_train.tar", "validation": "ILSVRC2012_img_val.tar"}
MANIFEST = "prepared.json"
SETTINGS = "prepare_settings.json"  # written first: a rerun that resumes must match it


def _tfds_file(name: str) -> str:
    """A file shipped in tensorflow_datasets' imagenet2012 folder (found without importing TF)."""
    spec = importlib.util.find_spec("tensorflow_datasets")
    if spec is None:
        raise InputError(
            "ImageNet's class list comes from tensorflow_datasets' imagenet2012 label files; "
            "pip install tensorflow-datasets (TensorFlow itself is not needed)"
        )
    return os.path.join(spec.submodule_search_locations[0], "datasets", "imagenet2012", name)


def _lines(name: str) -> list[str]:
    with open(_tfds_file(name)) as f:
        return f.read().split()


def _members(name: str, f, start: int, end: int) -> list[tuple[str, int, int]]:
    """(name, data offset in f, size) of the files of the tar at [start, end) of f; reads only
    the headers. One-line errors if it is damaged."""
    f.seek(start)
    try:
        with tarfile.open(fileobj=f, mode="r:") as t:
            out = [(m.name, m.offset_data, m.size) for m in t if m.isfile()]
            tail = t.offset  # where tarfile found no header: the end-of-archive marker
    except (tarfile.TarError, EOFError) as e:
        raise InputError(
            f"{name} is not a readable tar ({e}): a truncated or corrupt download? download it "
            "again from image-net.org"
        ) from None
    f.seek(tail)  # tarfile stops quietly at the file's end, so a tar cut between two of its
    marker = f.read(tarfile.BLOCKSIZE)  # files reads as whole: it lacks the zero block
    if not out or marker != bytes(tarfile.BLOCKSIZE) or tail + len(marker) > end:
        raise InputError(
            f"{name} is truncated or empty (it ends before the tar's end-of-archive marker); "
            "download it again from image-net.org"
        )
    return out


def imagenet_tar(manual_dir: str | None, split: str) -> str:
    """The path of an ILSVRC-2012 split's tar in config.input.manual_dir, checked (one line)."""
    if manual_dir is None:
        raise InputError(
            "config.input.manual_dir is not set; point it at the directory holding "
            "ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar (from image-net.org)"
        )
    if split not in TARS:
        raise InputError(
            f"ILSVRC-2012 has no split {split!r} in its tars; use config.input.eval_split="
            "'validation' (Sec. 6 reports on it)"
        )
    path = os.path.join(manual_dir, TARS[split])
    if not os.path.exists(path):
        raise MissingFileError(
            f"{path} is missing; put ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar "
            "(from image-net.org) in config.input.manual_dir"
        )
    if not tarfile.is_tarfile(path):
        raise InputError(
            f"{path} is not a tar archive (a truncated or corrupt download?); download it "
            "again from image-net.org"
        )
    return path


def imagenet_examples(manual_dir: str | None, split: str) -> list[tuple[int, tuple]]:
    """[(label, ("tar", path, offset, size, member))] of an ILSVRC-2012 split, prepared order."""
    path = imagenet_tar(manual_dir, split)
    wnids = {w: i for i, w in enumerate(_lines("labels.txt"))}
    out = []
    with open(path, "rb") as f:
        members = sorted(_members(path, f, 0, os.path.getsize(path)))
        if split == "validation":
            val_wnids = _lines("validation_labels.txt")
            for name, off, size in members:
                match = re.fullmatch(r"ILSVRC2012_val_(\d{8})\.JPEG", os.path.basename(name))
                number = int(match[1]) if match else 0
                if not 1 <= number <= len(val_wnids):
                    raise InputError(
                        f"{path} holds {name!r}, not an ILSVRC2012_val_NNNNNNNN.JPEG numbered 1 "
                        f"to {len(val_wnids)}; use the validation tar from image-net.org"
                    )
                out.append((wnids[val_wnids[number - 1]], ("tar", path, off, size, name)))
            return out
        for name, off, size in members:
            wnid = os.path.basename(name).split(".")[0]
            if wnid not in wnids:
                raise InputError(
                    f"{path}: {name} is not an ILSVRC-2012 class tar; is it the right file?"
                )
            for iname, ioff, isize in sorted(_members(f"{path}:{name}", f, off, off + size)):
                out.append((wnids[wnid], ("tar", path, ioff, isize, f"{name}:{iname}")))
    return out


def tfds_examples(c, split: str) -> list[tuple[int, tuple]]:
    """Another TFDS dataset, read whole through TFDS (TensorFlow), as decoded arrays."""
    from alexnet_jax import stream

    s = stream.load_split(c, split, f"split {split!r}")
    return [(int(y), ("array", x)) for x, y in zip(s.images, s.labels, strict=True)]


def fixed_size(data: bytes | np.ndarray, size: int) -> np.ndarray:
    """Encoded image (or array) -> uint8 [size, size, 3]: Sec. 2's rescale and central crop."""
    if isinstance(data, np.ndarray):  # TFDS: [H, W, 3], or [H, W, 1] (grey), which PIL wants 2-D
        im = Image.fromarray(data[..., 0] if data.shape[-1] == 1 else data)
    else:
        im = Image.open(io.BytesIO(data))
    im = im.convert("RGB")
    w, h = im.size
    scale = size / min(h, w)
    new_w, new_h = int(np.floor(w * scale + 0.5)), int(np.floor(h * scale + 0.5))
    im = im.resize((new_w, new_h), Image.BILINEAR)  # antialiased when shrinking
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return np.asarray(im.crop((left, top, left + size, top + size)))


def encode(image: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def decode(data) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


@dataclasses.dataclass(frozen=True)
class Job:
    path: str  # the shard's final name
    examples: list  # [(label, source)]
    size: int
    storage: str
    quality: int


def _image(source: tuple, size: int) -> np.ndarray:
    """One source image at `size`; a file PIL cannot read is a one-line error naming it."""
    if source[0] == "array":
        return fixed_size(source[1], size)
    _, path, off, length, member = source
    with open(path, "rb") as f:
        data = os.pread(f.fileno(), length, off)
    try:
        return fixed_size(data, size)
    except OSError as e:  # PIL: unidentified, truncated or corrupt image data
        raise InputError(
            f"{path}: {member} is not a readable image ({e}); download the tar again"
        ) from None


def write_shard(job: Job) -> int:
    """Decodes, rescales, crops, stores one shard and its statistics; returns its size."""
    labels = np.array([y for y, _ in job.examples], np.int32)
    images = np.stack([_image(src, job.size) for _, src in job.examples])
    if job.storage == "jpeg":
        blobs = [encode(x, job.quality) for x in images]
        images = np.stack([decode(b) for b in blobs])  # the statistics of what is stored
        offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
        data = [labels, offsets, np.frombuffer(b"".join(blobs), np.uint8)]
    else:
        data = [labels, images]
    m = stats.Moments()
    for start in range(0, len(images), 64):
        m.add(images[start : start + 64])
    files.save_arrays(job.path + ".stats", stats.moment_arrays(m))
    files.save_arrays(job.path, data)
    return len(labels)


def fingerprint(files: list[str]) -> str:
    """A short hash of the shards' names and pixel sums (what the statistics were made from)."""
    h = hashlib.sha256()
    for f in files:
        h.update(os.path.basename(f).encode())
        with open(f + ".stats", "rb") as g:
            h.update(g.read())
    return h.hexdigest()[:16]


def _progress(split: str, done: int, total: int, images: int, t0: float) -> str:
    rate = images / max(time.time() - t0, 1e-9)
    eta = (total - done) * (time.time() - t0) / max(done, 1)
    return (
        f"prepare {split}: {done}/{total} shards, {images} images, {rate:.0f} images/s, "
        f"ETA {datetime.timedelta(seconds=round(eta))}"
    )


def _check_settings(out: str, settings: dict) -> None:
    """Shards are kept by name on a rerun, so a rerun must prepare with the same settings."""
    path, manifest = os.path.join(out, SETTINGS), os.path.join(out, MANIFEST)
    old = {}
    for f in (manifest, path):  # a directory prepared before SETTINGS existed has the manifest
        if os.path.exists(f):
            with open(f) as g:
                old.update({k: v for k, v in json.load(g).items() if k in settings})
    if not any(n.endswith((".shard", ".stats")) for n in os.listdir(out)):  # nothing kept yet
        old = {}  # (a first run that failed before its first shard binds no settings)
    if not old:  # fresh (an older directory keeps only its manifest's settings)
        files.write_json(path, settings)
    diff = [k for k in old if old[k] != settings[k]]
    if diff:
        was = ", ".join(f"{k}={old[k]!r}" for k in diff)
        now = ", ".join(f"{k}={settings[k]!r}" for k in diff)
        raise InputError(
            f"{out} holds data prepared with {was}, not {now}; rerun with those settings to "
            "finish it, or give a new config.input.prepared_dir"
        )


def prepare(c, workers: int | None = None, command: str = "") -> str:
    """Writes (or finishes) config.input.prepared_dir; returns its manifest's path."""
    if c.prepared_dir is None:
        raise InputError(
            "config.input.prepared_dir is not set; give a directory for the prepared 256x256 "
            "shards (e.g. --config.input.prepared_dir=/data/ilsvrc256)"
        )
    if c.storage not in ("jpeg", "raw"):
        raise InputError(f"config.input.storage={c.storage!r} is unknown; use 'jpeg' or 'raw'")
    validate.prepare(c)
    out = c.prepared_dir
    full = (
        f"the disk of {out} is full ({os.strerror(errno.ENOSPC)}); free space and rerun the "
        "same command, which keeps the finished shards"
    )
    # one prepare per directory at a time; a full disk while writing the settings, statistics
    # or manifest is one line (while writing a shard: files.save_arrays' own)
    with files.locked(out, "config.input.prepared_dir"), files.no_space_is(full):
        return _prepare(c, out, workers, command)


def _prepare(c, out: str, workers: int | None, command: str) -> str:
    for name in os.listdir(out):  # a killed run's half-written files (files.replaced)
        if re.search(r"\.tmp\d+$", name):
            os.remove(os.path.join(out, name))
    workers = workers or c.prepare_workers or os.cpu_count()
    manifest = {"image_size": c.image_size, "storage": c.storage, "dataset": c.dataset}
    manifest.update(jpeg_quality=c.jpeg_quality if c.storage == "jpeg" else None)
    _check_settings(out, {**manifest, "shard_size": c.shard_size})
    manifest["splits"] = {}
    pool = multiprocessing.get_context("spawn").Pool(workers) if workers > 1 else None
    try:
        for split in ("train", c.eval_split):
            run = pool.imap_unordered if pool else map
            manifest["splits"][split] = _prepare_split(c, split, run)
    finally:
        if pool:
            pool.terminate()
            pool.join()
    train = [os.path.join(out, f) for f in manifest["splits"]["train"]["shards"]]
    m = stats.Moments()
    for f in train:
        stats.add_moment_arrays(m, files.npy_arrays(f + ".stats"))
    source = manifest["splits"]["train"]["fingerprint"]
    stats.save(m.finish(), c.stats_dir or out, c.image_size, command, source=source)
    manifest["command"] = command
    path = os.path.join(out, MANIFEST)
    files.write_json(path, manifest)
    return path


def _prepare_split(c, split: str, run) -> dict:
    """Writes the split's missing shards (`run` maps write_shard over them); its manifest entry."""
    if c.dataset == "imagenet2012":
        examples = imagenet_examples(c.manual_dir, split)
    else:
        examples = tfds_examples(c, split)
    n, k = len(examples), c.shard_size
    name = lambda i: f"{split}-{i // k:05d}-of-{(n + k - 1) // k:05d}.shard"  # noqa: E731
    jobs = [
        Job(os.path.join(c.prepared_dir, name(i)), examples[i : i + k], c.image_size, c.storage,
            c.jpeg_quality)
        for i in range(0, n, k)
    ]  # fmt: skip
    todo = [j for j in jobs if not (os.path.exists(j.path) and os.path.exists(j.path + ".stats"))]
    print(f"prepare {split}: {n} images, {len(jobs) - len(todo)} of {len(jobs)} shards done")
    t0 = shown = time.time()
    images = 0
    for i, count in enumerate(run(write_shard, todo), 1):
        images += count
        if time.time() - shown > 5 or i == len(todo):
            print(_progress(split, i, len(todo), images, t0), flush=True)
            shown = time.time()
    files = [j.path for j in jobs]
    return {
        "num_examples": n,
        "shards": [os.path.basename(f) for f in files],
        "fingerprint": fingerprint(files),
    }


def define_flags(fv, argv: list[str]) -> None:
    from absl import flags

    cli.define_config(fv, argv, "Config whose input section names the tars and prepared_dir.")
    flags.mark_flags_as_required(["config"], flag_values=fv)


def main(fv, command: str = "python -m alexnet_jax.prepare") -> str:
    """The command: prepares config.input's dataset once; returns the manifest's path."""
    path = prepare(fv.config.input, command=command)
    print(f"wrote {path}", flush=True)
    return path


def run(args: list[str]) -> str:
    """`python -m alexnet_jax.prepare ARGS` in this process (--config=FILE, --config.x=y)."""
    command = cli.command("python -m alexnet_jax.prepare", args)
    return cli.run(define_flags, lambda fv: main(fv, command), ["alexnet_jax.prepare", *args])


if __name__ == "__main__":
    run(sys.argv[1:])
