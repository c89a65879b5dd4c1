"""Fashion-MNIST's original IDX files (LeCun's MNIST format), as Debian's dataset-fashion-mnist
installs them: the "idx" source of the in-memory pipeline (input_pipeline.load). No TensorFlow.
"""

import gzip
import os
import re
import zlib

import numpy as np

from alexnet_jax.errors import InputError, MissingFileError

FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
# "train", "train[55000:]", "train[:-5000]"
_SLICED = re.compile(r"(\w+)(?:\[((?:-?\d+)?):((?:-?\d+)?)\])?")


def read_idx(path: str) -> np.ndarray:
    """An IDX file (optionally gzipped) as a numpy array."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise InputError(
            f"{path} is a damaged gzip file ({e}); download or install it again"
        ) from None
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise InputError(f"{path} is not an unsigned-byte IDX file (bad magic number)")
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise InputError(f"{path} is truncated: its header ends after {len(data)} bytes")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise InputError(f"{path} is truncated: header says {shape}, found {body.size} bytes")
    return body.reshape(shape)


def load_fashion_mnist(data_dir: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Split "train" or "test" -> images [N, 28, 28, 1] uint8, labels [N] int32."""
    if data_dir is None:
        raise InputError(
            "config.input.data_dir is not set; point it at the Fashion-MNIST IDX files "
            "(Debian's dataset-fashion-mnist: /usr/share/datasets/fashion-mnist)"
        )
    paths = [os.path.join(data_dir, name) for name in FILES[split]]
    for path in paths:
        if not os.path.exists(path):
            raise MissingFileError(
                f"Fashion-MNIST file {path} is missing; install it with "
                "`apt-get install dataset-fashion-mnist` or point config.input.data_dir at the "
                "directory holding the *-ubyte.gz files"
            )
    images, labels = (read_idx(p) for p in paths)
    if images.ndim == 3:
        images = images[..., None]
    return images, labels.astype(np.int32)


def load(data_dir: str, split: str, field: str) -> tuple[np.ndarray, np.ndarray]:
    """A split in TFDS's slice syntax with integer bounds: "train[55000:]" is the last 5,000
    training images, a validation split held out of training (with train_limit=55000). `field`
    names the config field that asked for it, for the one-line errors."""
    sliced = _SLICED.fullmatch(split)
    name, a, b = sliced.groups() if sliced else (split, "", "")
    if name not in FILES:
        raise InputError(
            f"{field}={split!r} does not exist; use one of {[*FILES]}, "
            "optionally sliced as 'train[55000:]'"
        )
    images, labels = load_fashion_mnist(data_dir, name)
    rows = slice(int(a) if a else None, int(b) if b else None)
    if not len(labels[rows]):
        raise InputError(
            f"{field}={split!r} holds no images: {name!r} has {len(labels)}; fix the slice bounds"
        )
    return images[rows], labels[rows]
