r"""Training-set statistics: the mean image and the RGB PCA eigens (Sec. 2, Sec. 4.1).

`python -m alexnet_jax.prepare` computes them in its pass over the prepared images (ImageNet's
default path); for the TFDS stream (config.input.pipeline="stream", needs TensorFlow):

  python -m alexnet_jax.stats --config=configs/paper.py --config.input.pipeline=stream \
      --config.input.manual_dir=/data/ilsvrc --config.input.data_dir=/data/tfds

One pass over the training split, each image as the stream pipeline feeds it to training
(stream.fixed_size: rescale to shorter side `image_size`, central image_size x image_size
window, Sec. 2, rounded to uint8):
  - the mean image, [S, S, C] in 0..255 ("the mean activity over the training set", Sec. 2);
  - per-channel mean and std of the pixel values in [0, 1] (torchvision's normalisation);
  - eigenvalues and eigenvectors of the 3x3 covariance of the RGB pixel values in [0, 1],
    over every pixel of every image (Sec. 4.1's "fancy PCA"; units: see preprocess.pca_lighting).
Written as `alexnet_stats_S.npz` next to the dataset's TFRecords (or in config.input.stats_dir),
with `alexnet_stats_S.json` holding the command that made it, the date and the image count.
Training loads it; if it is missing, the error prints the command above.
"""

import dataclasses
import datetime
import errno
import json
import os
import sys
import zipfile

import ml_collections
import numpy as np

from alexnet_jax import cli, files
from alexnet_jax.errors import InputError, MissingFileError, one_line


@dataclasses.dataclass(frozen=True)
class Stats:
    mean_image: np.ndarray  # [S, S, C] float32, pixel values 0..255
    channel_mean: np.ndarray  # [C] float32, pixel values in [0, 1]
    channel_std: np.ndarray  # [C] float32, pixel values in [0, 1]
    eigvals: np.ndarray  # [C] float32, descending, of the [0, 1]-pixel covariance
    eigvecs: np.ndarray  # [C, C] float32, column i is the eigenvector of eigvals[i]
    num_images: int


class Moments:
    """Running float64 sums over batches of images: the mean image and pixel moments."""

    def __init__(self):
        self.num_images, self.num_pixels = 0, 0
        self.sum_image = self.sum_pixel = self.sum_outer = None

    def add(self, images: np.ndarray) -> None:
        """images: [B, S, S, C], pixel values 0..255 (any dtype; uint8 is summed exactly)."""
        x = np.asarray(images)
        c = x.shape[-1]
        if self.sum_image is None:
            self.sum_image = np.zeros(x.shape[1:])
            self.sum_pixel, self.sum_outer = np.zeros(c), np.zeros((c, c))
        exact = x.dtype == np.uint8 and len(x) < 2**24
        batch_sum = x.sum(0, dtype=np.uint32) if exact else x.sum(0, dtype=np.float64)
        self.sum_image += batch_sum
        self.sum_pixel += batch_sum.reshape(-1, c).sum(0, dtype=np.float64) / 255.0
        for image in x:  # one image at a time: float64 products without a [B*S*S, C] copy
            q = np.ascontiguousarray(image.reshape(-1, c).T, dtype=np.float64)  # [C, S*S]
            self.sum_outer += (q @ q.T) / 255.0**2
        self.num_images += x.shape[0]
        self.num_pixels += x.shape[0] * x.shape[1] * x.shape[2]

    def finish(self) -> Stats:
        if not self.num_images:
            raise InputError("no images to compute statistics over; the training split is empty")
        mean = self.sum_pixel / self.num_pixels
        cov = self.sum_outer / self.num_pixels - np.outer(mean, mean)
        eigvals, eigvecs = pca(cov)
        f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731
        return Stats(
            mean_image=f32(self.sum_image / self.num_images),
            channel_mean=f32(mean),
            channel_std=f32(np.sqrt(np.diag(cov))),
            eigvals=f32(eigvals),
            eigvecs=f32(eigvecs),
            num_images=self.num_images,
        )


def moment_arrays(m: Moments) -> list[np.ndarray]:
    """A Moments' running sums as arrays (prepare.py stores one set per shard)."""
    return [np.array([m.num_images, m.num_pixels]), m.sum_image, m.sum_pixel, m.sum_outer]


def add_moment_arrays(m: Moments, arrays: list[np.ndarray]) -> None:
    """Adds the sums `moment_arrays` gave (of another Moments) into m."""
    counts, sum_image, sum_pixel, sum_outer = arrays
    if m.sum_image is None:
        m.sum_image, m.sum_pixel, m.sum_outer = (np.zeros_like(a) for a in arrays[1:])
    m.sum_image += sum_image
    m.sum_pixel += sum_pixel
    m.sum_outer += sum_outer
    m.num_images += int(counts[0])
    m.num_pixels += int(counts[1])


def pca(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (descending) and eigenvectors (columns) of a covariance matrix.

    Each eigenvector's sign is fixed (largest-magnitude entry positive) so the file does not
    depend on LAPACK's choice; lighting is symmetric in the sign anyway (a_i ~ N(0, s)).
    """
    eigvals, eigvecs = np.linalg.eigh(cov)
    order = np.argsort(eigvals)[::-1]
    eigvals, eigvecs = eigvals[order], eigvecs[:, order]
    signs = np.sign(eigvecs[np.abs(eigvecs).argmax(0), np.arange(len(eigvals))])
    return np.maximum(eigvals, 0.0), eigvecs * signs


def from_images(images: np.ndarray) -> Stats:
    """Statistics of an in-memory set of images [N, S, S, C] (small datasets)."""
    m = Moments()
    for start in range(0, len(images), 4096):
        m.add(images[start : start + 4096])
    return m.finish()


def file_stem(directory: str, image_size: int) -> str:
    return os.path.join(directory, f"alexnet_stats_{image_size}")


def command_for(c: ml_collections.ConfigDict) -> str:
    """The command that makes the statistics for `config.input` (the fields they depend on)."""
    parts = ["--config=configs/paper.py"]
    for field in ("dataset", "data_dir", "manual_dir", "stats_dir", "image_size"):
        if c[field] is not None:
            parts.append(f"--config.input.{field}={c[field]}")
    return cli.command("python -m alexnet_jax.stats", parts)


def save(
    stats: Stats, directory: str, image_size: int, command: str, source: str | None = None
) -> str:
    """Writes STEM.npz and STEM.json (command, date, image count); returns the .npz path.

    `source`: what the statistics were computed from (prepare.py: the training shards'
    fingerprint), checked by `check_source` when the data is read.
    """
    os.makedirs(directory, exist_ok=True)
    stem = file_stem(directory, image_size)
    info = {
        "command": command,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "num_images": stats.num_images,
        "image_size": image_size,
        "source": source,
        "eigvals": stats.eigvals.tolist(),
        "channel_mean": stats.channel_mean.tolist(),
        "channel_std": stats.channel_std.tolist(),
    }
    full = f"the disk of {directory} is full ({os.strerror(errno.ENOSPC)}); free space and rerun"
    with files.no_space_is(full):
        with files.replaced(stem + ".npz") as tmp, open(tmp, "wb") as f:
            np.savez(f, **dataclasses.asdict(stats))
        files.write_json(stem + ".json", info)  # after the npz: a crash between leaves an old
        # `source` beside the new arrays, which check_source refuses
    return stem + ".npz"


def load(directory: str, c: ml_collections.ConfigDict) -> Stats:
    """The statistics for `config.input`; a missing file is a one-line error with the command."""
    path = file_stem(directory, c.image_size) + ".npz"
    if not os.path.exists(path):
        raise MissingFileError(
            f"dataset statistics {path} are missing; make them once with `{command_for(c)}`"
        )
    fields = [f.name for f in dataclasses.fields(Stats)]
    try:
        with np.load(path) as f:
            arrays = {k: f[k] for k in fields}
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise InputError(
            f"{path} is damaged ({one_line(e)}); delete it and make it again with "
            f"`{command_for(c)}`"
        ) from None
    st = Stats(**{**arrays, "num_images": int(arrays["num_images"])})
    if st.mean_image.shape[:2] != (c.image_size, c.image_size):
        raise InputError(
            f"the mean image in {path} is {st.mean_image.shape[0]}x{st.mean_image.shape[1]} but "
            f"config.input.image_size={c.image_size}; recompute it with `{command_for(c)}`"
        )
    return st


def check_source(directory: str, image_size: int, source: str, command: str) -> None:
    """A one-line error if the statistics in `directory` were computed from other data."""
    path = file_stem(directory, image_size) + ".json"
    try:
        with open(path) as f:
            have = json.load(f).get("source")  # None: made by the stats command
    except FileNotFoundError:
        raise MissingFileError(
            f"{path} is missing (the statistics' record, beside their .npz); make both again "
            f"with `{command}`"
        ) from None
    except (OSError, ValueError, AttributeError) as e:  # AttributeError: not a JSON object
        raise InputError(
            f"{path} is damaged ({one_line(e)}); delete it and make it again with `{command}`"
        ) from None
    if have != source:
        raise InputError(
            f"{path} was computed from other data (source {have}, the prepared training set is "
            f"{source}); delete it and make it again with `{command}`"
        )


def compute(c: ml_collections.ConfigDict, batch_size: int = 64) -> Stats:
    """One pass over `config.input`'s whole training split (TFDS), in file order.

    config.input.train_limit is ignored: the statistics are the training set's (Sec. 2), so a
    short run and a full one share one file.
    """
    import tensorflow as tf

    from alexnet_jax import sources, stream

    b = sources.prepare(c)
    ds = sources.records(b, "train", None, shuffle_seed=None, decode=False)
    ds = ds.map(  # the uint8 images the stream trains on
        lambda ex: stream.fixed_size(ex["image"], c.image_size),
        num_parallel_calls=tf.data.AUTOTUNE,
    ).batch(batch_size)
    m = Moments()
    for i, images in enumerate(ds.as_numpy_iterator()):
        m.add(images)
        if i % 100 == 0:
            print(f"{m.num_images} images", flush=True)
    return m.finish()


def define_flags(fv, argv: list[str]) -> None:
    from absl import flags

    cli.define_config(fv, argv)
    flags.mark_flags_as_required(["config"], flag_values=fv)


def main(fv, command: str = "python -m alexnet_jax.stats") -> str:
    """The command: computes the statistics of the config's dataset and writes them."""
    from alexnet_jax import sources

    c = fv.config.input
    directory = c.stats_dir or sources.builder(c).data_dir
    st = compute(c)
    path = save(st, directory, c.image_size, command)
    print(f"{st.num_images} images; eigenvalues {st.eigvals}; wrote {path}", flush=True)
    return path


def run(args: list[str]) -> str:
    """`python -m alexnet_jax.stats ARGS` in this process (--config=FILE, --config.x=y)."""
    command = cli.command("python -m alexnet_jax.stats", args)
    return cli.run(define_flags, lambda fv: main(fv, command), ["alexnet_jax.stats", *args])


if __name__ == "__main__":
    run(sys.argv[1:])
