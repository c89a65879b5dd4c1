r"""Input-pipeline throughput at 227 vs the training step's, on this machine (issue 5).

  python -m benchmarks.bench_input                                  # 256 JPEGs, batch 128
  python -m benchmarks.bench_input --images=64 --batch=32 --steps=4 --train_batch=8   # quick
  python -m benchmarks.bench_input --out=benchmarks/results_input_cpu2.json

Writes `--images` synthetic JPEGs of ImageNet-like sizes (sides 250..500 pixels, quality 90)
as a fake ILSVRC-2012 (a train tar of per-class tars and a val tar), builds TFDS's
imagenet2012 from it, computes its statistics with alexnet_jax.stats, then times the real
training stream (input_pipeline.create(configs/paper.py).train: TFRecord read, seeded shuffle,
parallel JPEG decode, rescale to 256, central 256x256, mean-image subtraction, random 227 crop,
flip, PCA lighting, batching) for `--steps` batches after 2 warm-up batches, all cores
available to tf.data. Then, in a separate process, the training step's images/s on the same
machine (benchmarks.bench_train_step's JAX worker: configs/paper.py, `--train_batch`).
Prints both, their ratio and the core count; writes a JSON record with the command.
"""

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import UTC, datetime

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tar_bytes(files: dict[str, bytes]) -> bytes:
    """An uncompressed tar holding `files` (name -> bytes), as ILSVRC's tars are."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _jpeg(rng: np.random.Generator) -> bytes:
    """A photo-like JPEG: smooth colour fields plus texture, ImageNet-like size."""
    from PIL import Image

    h, w = rng.integers(250, 501, size=2)
    y, x = np.mgrid[0:h, 0:w] / 60.0
    phase = rng.uniform(0, 6.3, 3)
    img = 128 + 80 * np.sin(x[..., None] * rng.uniform(0.5, 2) + y[..., None] + phase)
    img += rng.normal(0, 12, (h, w, 3))
    buf = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def write_fake_ilsvrc(manual: str, n: int, classes: int = 8) -> None:
    """n training JPEGs over `classes` ILSVRC classes, 8 validation JPEGs."""
    import tensorflow_datasets as tfds

    with open(
        os.path.join(os.path.dirname(tfds.__file__), "datasets/imagenet2012/labels.txt")
    ) as f:
        wnids = f.read().split()[:classes]
    rng = np.random.default_rng(0)
    per_class = {f"{w}.tar": {} for w in wnids}
    for i in range(n):
        w = wnids[i % classes]
        per_class[f"{w}.tar"][f"{w}_{i}.JPEG"] = _jpeg(rng)
    os.makedirs(manual, exist_ok=True)
    with open(os.path.join(manual, "ILSVRC2012_img_train.tar"), "wb") as f:
        f.write(tar_bytes({name: tar_bytes(files) for name, files in per_class.items()}))
    val = {f"ILSVRC2012_val_{i:08d}.JPEG": _jpeg(rng) for i in range(1, 9)}
    with open(os.path.join(manual, "ILSVRC2012_img_val.tar"), "wb") as f:
        f.write(tar_bytes(val))


def time_pipeline(root: str, images: int, batch: int, steps: int) -> dict:
    from alexnet_jax import input_pipeline, stats
    from configs import paper

    config = paper.get_config()
    config.input.update(
        data_dir=os.path.join(root, "tfds"),
        manual_dir=os.path.join(root, "manual"),
        global_batch_size=batch,
    )
    t = time.time()
    write_fake_ilsvrc(config.input.manual_dir, images)
    t_write = time.time() - t
    t = time.time()
    stats.run(
        [
            "--config=configs/paper.py",
            f"--config.input.data_dir={config.input.data_dir}",
            f"--config.input.manual_dir={config.input.manual_dir}",
        ]
    )
    t_build = time.time() - t
    batches = input_pipeline.create(config).train(0)
    for _ in range(2):  # warm-up: thread pools, AUTOTUNE
        next(batches)
    times = []
    for _ in range(steps):
        t = time.time()
        b = next(batches)
        times.append(time.time() - t)
    assert b["image"].shape[-3:] == (227, 227, 3), b["image"].shape
    total = sum(times)
    return {
        "images_per_sec": steps * batch / total,
        "batch_ms_median": 1000 * float(np.median(times)),
        "write_s": t_write,
        "build_and_stats_s": t_build,
    }


def time_train_step(config: str, batch: int, steps: int) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.bench_train_step", "--worker=jax"]
    cmd += [f"--config={config}", f"--batch={batch}", f"--steps={steps}", "--warmup=1"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=256, help="synthetic training JPEGs")
    p.add_argument("--batch", type=int, default=128, help="pipeline batch (the paper's 128)")
    p.add_argument("--steps", type=int, default=8, help="timed pipeline batches")
    p.add_argument("--train_config", default="paper")
    p.add_argument("--train_batch", type=int, default=32, help="0: skip the train step")
    p.add_argument("--train_steps", type=int, default=3)
    p.add_argument("--out", default="")
    a = p.parse_args()
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as root:
        pipe = time_pipeline(root, a.images, a.batch, a.steps)
    print(
        f"input pipeline (decode + Sec. 2/4.1 preprocessing at 227): "
        f"{pipe['images_per_sec']:.1f} images/s on {cores} cores",
        flush=True,
    )
    record = {"pipeline": pipe, "cores": cores}
    if a.train_batch:
        step = time_train_step(a.train_config, a.train_batch, a.train_steps)
        train_ips = step["train"]["images_per_sec"]
        ratio = pipe["images_per_sec"] / train_ips
        print(
            f"train step ({a.train_config}, batch {a.train_batch}, JAX on "
            f"{step['device']}): {train_ips:.1f} images/s; pipeline / step = "
            f"{ratio:.1f}x ({'not ' if ratio >= 1 else ''}the bottleneck)",
            flush=True,
        )
        record.update(train_step=step, ratio=ratio)
    if a.out:
        from benchmarks.bench_train_step import _hardware

        record.update(
            command=" ".join(["python -m benchmarks.bench_input", *sys.argv[1:]]),
            date=datetime.now(UTC).isoformat(timespec="seconds"),
            git_commit=subprocess.run(
                ["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True, text=True
            ).stdout.strip(),
            hardware=_hardware(),
        )
        with open(a.out, "w") as f:
            json.dump(record, f, indent=2)


if __name__ == "__main__":
    main()
