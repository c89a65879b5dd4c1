r"""Input throughput per core, at 1 and 2 cores, on synthetic ImageNet-like JPEGs (issue 16).

  python -m benchmarks.bench_input                        # 512 JPEGs, batch 128
  python -m benchmarks.bench_input --images=128 --batch=32 --steps=3          # quick
  python -m benchmarks.bench_input --tfds --out=benchmarks/results_input_prepared_cpu2.json
  (--tfds: also the TFDS stream, which needs TensorFlow)

Writes `--images` photo-like JPEGs (sides 250..450 x 300..500 pixels, ~350x400 on average,
quality 90) as a fake ILSVRC-2012 (a train tar of per-class tars, a val tar), then for each core
count k in --cores (the process pinned to k cores with sched_setaffinity; prepare's worker
processes and the reader's decode threads are k):
  prepare   python -m alexnet_jax.prepare's work (tar read, decode, rescale to 256, central
            256x256, encode, statistics) for storage "jpeg" (--quality) and "raw": images/s;
  train     the prepared pipeline's training stream (read or decode 256x256, seeded order,
            batches of --batch) at 227: the host's work; the crop, flip, lighting and mean
            subtraction run on the accelerator inside the step (augment.py), timed separately;
  eval      the eval stream (the same host work for center and ten-crop: crops are on-device).
Then on one core: the bare PIL decode rate of the stored 256x256 JPEGs (the limit of a JPEG
pipeline) and the pipeline's rate as a fraction of it; the JPEG quality trade-off (bytes per
image, decode rate, mean |error| against the raw image) for --qualities; the on-device
augmentation's cost on this backend (JAX on the CPU here) against numpy doing it on the host.
Every rate is given per wall second and per CPU second (user + system time of the process's
threads and its finished worker processes): on a shared machine the wall rate depends on the
other jobs, while images per CPU second is the per-core rate at full use. The cores needed to
feed 10,000 and 30,000 images/s are computed from the latter.
"""

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from datetime import UTC, datetime

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FEED = (10_000, 30_000)  # step rates (images/s) to feed
PHASES = ("prepare", "train", "eval")


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
    """A photo-like JPEG: smooth colour fields plus texture, ImageNet-like size, quality 90."""
    from PIL import Image

    h, w = rng.integers(250, 451), rng.integers(300, 501)
    y, x = np.mgrid[0:h, 0:w] / 60.0
    phase = rng.uniform(0, 6.3, 3)
    img = 128 + 80 * np.sin(x[..., None] * rng.uniform(0.5, 2) + y[..., None] + phase)
    img += rng.normal(0, 12, (h, w, 3))
    buf = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def write_fake_ilsvrc(manual: str, n: int, n_val: int = 8, classes: int = 8) -> None:
    """n training JPEGs over `classes` ILSVRC classes, n_val validation JPEGs."""
    from alexnet_jax import prepare

    wnids = prepare._lines("labels.txt")[:classes]
    rng = np.random.default_rng(0)
    per_class = {f"{w}.tar": {} for w in wnids}
    for i in range(n):
        w = wnids[i % classes]
        per_class[f"{w}.tar"][f"{w}_{i}.JPEG"] = _jpeg(rng)
    os.makedirs(manual, exist_ok=True)
    with open(os.path.join(manual, "ILSVRC2012_img_train.tar"), "wb") as f:
        f.write(tar_bytes({name: tar_bytes(files) for name, files in per_class.items()}))
    val = {f"ILSVRC2012_val_{i:08d}.JPEG": _jpeg(rng) for i in range(1, n_val + 1)}
    with open(os.path.join(manual, "ILSVRC2012_img_val.tar"), "wb") as f:
        f.write(tar_bytes(val))


def _config(root: str, storage: str, k: int, a: argparse.Namespace):
    from configs import paper

    config = paper.get_config()
    config.input.update(
        manual_dir=os.path.join(root, "manual"),
        prepared_dir=os.path.join(root, f"{storage}{k}"),
        storage=storage,
        jpeg_quality=a.quality,
        shard_size=max(1, a.images // (4 * k)),
        prepare_workers=k,
        decode_threads=k,
        global_batch_size=a.batch,
        eval_batch_size=a.batch,
    )
    return config


def _clock() -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process's threads and its finished children)."""
    own, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return time.perf_counter(), own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _rates(n: int, start: tuple[float, float]) -> tuple[float, float]:
    """(images per wall second, images per CPU second) since `start`."""
    wall, cpu = (b - a for a, b in zip(start, _clock(), strict=True))
    return n / wall, n / max(cpu, 1e-9)


def _rate(batches, steps: int, batch: int) -> tuple[float, float]:
    next(batches)  # warm-up: thread pools
    t = _clock()
    for _ in range(steps):
        next(batches)
    return _rates(steps * batch, t)


def measure(root: str, storage: str, k: int, a: argparse.Namespace) -> dict:
    from alexnet_jax import input_pipeline, prepare

    config = _config(root, storage, k, a)
    t = _clock()
    prepare.prepare(config.input, command="bench")
    prep = _rates(a.images + a.val, t)
    d = config.input.prepared_dir
    shards = [f for f in os.listdir(d) if f.startswith("train-") and f.endswith(".shard")]
    stored = sum(os.path.getsize(os.path.join(d, f)) for f in shards)
    data = input_pipeline.create(config)
    t = _clock()
    for _ in data.eval():
        pass
    ev = _rates(data.num_eval, t)
    train = _rate(data.train(0), a.steps, a.batch)
    return {
        "storage": storage,
        "cores": k,
        "bytes_per_image": stored / a.images,
        **{f"{x}_images_per_sec": r[0] for x, r in zip(PHASES, (prep, train, ev), strict=True)},
        **{f"{x}_images_per_cpu_sec": r[1] for x, r in zip(PHASES, (prep, train, ev), strict=True)},
    }


def _stored_jpegs(root: str, k: int) -> list[bytes]:
    from alexnet_jax import files

    d, blobs = os.path.join(root, f"jpeg{k}"), []
    for f in sorted(os.listdir(d)):
        if f.startswith("train-") and f.endswith(".shard"):
            _, offsets, data = files.npy_arrays(os.path.join(d, f))
            blobs += [bytes(data[offsets[i] : offsets[i + 1]]) for i in range(len(offsets) - 1)]
    return blobs


def bare_decode(blobs: list[bytes]) -> tuple[float, float]:
    """One thread's PIL decode of stored 256x256 JPEGs (in memory): (images/s, /CPU s)."""
    from PIL import Image

    t = _clock()
    for b in blobs:
        np.asarray(Image.open(io.BytesIO(b)))
    return _rates(len(blobs), t)


def _stream_alone(data, a: argparse.Namespace) -> tuple[float, float]:
    """One round of the training stream, from a fresh reader that has exited on return: its
    prefetch thread would otherwise decode on while the bare decode is timed."""
    from alexnet_jax import input_pipeline

    batches = data.train(0)
    try:
        return _rate(batches, a.steps, a.batch)
    finally:
        batches.close()
        while any(t.name == input_pipeline.BACKGROUND for t in threading.enumerate()):
            time.sleep(0.01)


def paired_fraction(root: str, a: argparse.Namespace) -> dict:
    """On one core, alternating: the jpeg training stream and the bare decode of the same number
    of stored images, --rounds times; per-round ratios of images per CPU second (the machine is
    shared: CPU time, not wall time, is what each costs), and their median."""
    from alexnet_jax import input_pipeline

    data = input_pipeline.create(_config(root, "jpeg", 1, a))
    blobs = _stored_jpegs(root, 1)[: a.steps * a.batch]
    rows = []
    for _ in range(a.rounds):
        stream, bare = _stream_alone(data, a), bare_decode(blobs)
        rows.append({"stream": stream, "bare_decode": bare, "fraction": stream[1] / bare[1]})
    return {
        "rounds": rows,
        "bare_decode_per_cpu_sec_median": float(np.median([r["bare_decode"][1] for r in rows])),
        "fraction_median": float(np.median([r["fraction"] for r in rows])),
    }


def qualities(root: str, qs: list[int]) -> list[dict]:
    """Bytes per image, one-thread decode rate and mean |error| vs raw, per JPEG quality."""
    from PIL import Image

    from alexnet_jax import files, prepare

    d = os.path.join(root, "raw1")
    images = []
    for f in sorted(os.listdir(d)):
        if f.startswith("train-") and f.endswith(".shard"):
            images += list(np.asarray(files.npy_arrays(os.path.join(d, f))[1]))
    out = []
    for q in qs:
        blobs = [prepare.encode(x, q) for x in images]
        t = _clock()
        back = [np.asarray(Image.open(io.BytesIO(b))) for b in blobs]
        rate = _rates(len(blobs), t)[1]
        err = np.mean(
            [np.abs(x.astype(float) - y).mean() for x, y in zip(images, back, strict=True)]
        )
        out.append(dict(quality=q, bytes_per_image=float(np.mean([len(b) for b in blobs])),
                        decode_images_per_cpu_sec=rate, mean_abs_error=float(err)))  # fmt: skip
    return out


def augmentation_cost(batch: int, steps: int) -> dict:
    """Images/s of the training augmentation (mean image, 227 crop, flip, lighting) on uint8
    [B, 256, 256, 3]: augment.py jitted on JAX's default backend vs numpy on the host."""
    import jax

    from alexnet_jax import augment

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (batch, 256, 256, 3), np.uint8)
    mean = rng.uniform(0, 255, (256, 256, 3)).astype(np.float32)
    light = dict(eigvals=np.array([0.2, 0.02, 0.005]), eigvecs=np.eye(3), std=0.1, scale=255.0)
    f = jax.jit(
        augment.train_preprocess(seed=0, size=227, normalize=lambda v: v - mean, lighting=light)
    )
    b = {"image": jax.device_put(x), "index": jax.device_put(np.arange(batch, dtype=np.int32))}
    f(b)["image"].block_until_ready()
    t = _clock()
    for _ in range(steps):
        f(b)["image"].block_until_ready()
    device = _rates(steps * batch, t)[1]
    t = _clock()
    for _ in range(steps):
        tops, lefts = rng.integers(0, 30, batch), rng.integers(0, 30, batch)
        shift = rng.normal(0, 0.1, (batch, 3)) * 255 * light["eigvals"]
        for i in range(batch):
            v = x[i, tops[i] : tops[i] + 227, lefts[i] : lefts[i] + 227] - mean[:227, :227]
            v = v[:, ::-1] if i % 2 else v
            v + shift[i].astype(np.float32)
    host = _rates(steps * batch, t)[1]
    return {
        "backend": jax.default_backend(),
        "device_images_per_cpu_sec": device,
        "host_numpy_images_per_cpu_sec": host,
    }


def tfds_stream(root: str, a: argparse.Namespace) -> dict:
    """The TFDS stream (pipeline="stream": TFRecords, full-size JPEG decode and rescale every
    epoch, TensorFlow), on one core: the path the prepared store replaces."""
    from alexnet_jax import input_pipeline, stats

    config = _config(root, "jpeg", 1, a)
    config.input.update(pipeline="stream", data_dir=os.path.join(root, "tfds"))
    stats.run(
        ["--config=configs/paper.py", f"--config.input.data_dir={config.input.data_dir}",
         f"--config.input.manual_dir={config.input.manual_dir}"]
    )  # fmt: skip
    wall, cpu = _rate(input_pipeline.create(config).train(0), a.steps, a.batch)
    return {"train_images_per_sec": wall, "train_images_per_cpu_sec": cpu}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=512, help="synthetic training JPEGs")
    p.add_argument("--val", type=int, default=256, help="synthetic validation JPEGs")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=3, help="timed training batches")
    p.add_argument("--cores", default="1,2")
    p.add_argument("--quality", type=int, default=90, help="the jpeg store's quality")
    p.add_argument("--qualities", default="75,85,90,95")
    p.add_argument("--rounds", type=int, default=3, help="alternating stream/decode rounds")
    p.add_argument("--tfds", action="store_true", help="also time the TFDS stream (needs TF)")
    p.add_argument("--out", default="")
    a = p.parse_args()
    cores = [int(k) for k in a.cores.split(",")]
    available = sorted(os.sched_getaffinity(0))
    if not all(1 <= k <= len(available) for k in cores):
        p.error(f"--cores={a.cores}: each must be 1 to {len(available)}, the cores this may use")
    record = {"rows": []}
    with tempfile.TemporaryDirectory() as root:
        write_fake_ilsvrc(os.path.join(root, "manual"), a.images, a.val)
        for k in cores:
            os.sched_setaffinity(0, available[:k])
            for storage in ("jpeg", "raw"):
                row = measure(root, storage, k, a)
                record["rows"].append(row)
                wall = [row[f"{x}_images_per_sec"] for x in PHASES]
                cpu = [row[f"{x}_images_per_cpu_sec"] for x in PHASES]
                print(
                    f"{k} core(s), {storage:4}: prepare {wall[0]:6.0f} ({cpu[0]:6.0f}/CPU s)  "
                    f"train {wall[1]:6.0f} ({cpu[1]:6.0f})  eval {wall[2]:6.0f} ({cpu[2]:6.0f}) "
                    f"images/s; {row['bytes_per_image']:,.0f} bytes/image",
                    flush=True,
                )
        os.sched_setaffinity(0, available[:1])
        record["paired_1core"] = paired_fraction(root, a)
        if a.tfds:
            record["tfds_stream_1core"] = tfds_stream(root, a)
        record["qualities"] = qualities(root, [int(q) for q in a.qualities.split(",")])
        record["augmentation_1core"] = augmentation_cost(min(a.batch, 64), 2)
        os.sched_setaffinity(0, available)
    one = {r["storage"]: r for r in record["rows"] if r["cores"] == 1}
    pair = record["paired_1core"]
    print(
        f"bare PIL decode of the stored 256x256 JPEGs: {pair['bare_decode_per_cpu_sec_median']:.0f}"
        f" images per CPU second; the jpeg training stream runs at {pair['fraction_median']:.0%} "
        f"of it (median of {a.rounds} alternating rounds)"
    )
    for storage, r in one.items():  # per core = per CPU second at full use
        need = {n: n / r["train_images_per_cpu_sec"] for n in FEED}
        record.setdefault("cores_needed", {})[storage] = need
        print(
            f"{storage}: cores to feed "
            + ", ".join(f"{n:,} images/s: {c:.1f}" for n, c in need.items())
        )
    for q in record["qualities"]:
        rate, err = q["decode_images_per_cpu_sec"], q["mean_abs_error"]
        print(
            f"quality {q['quality']}: {q['bytes_per_image']:,.0f} bytes/image, decode "
            f"{rate:.0f} images/s/core, mean |error| {err:.2f}"
        )
    if a.tfds:
        r = record["tfds_stream_1core"]
        print(
            f"TFDS stream (full-size decode every epoch), 1 core: {r['train_images_per_sec']:.0f}"
            f" images/s, {r['train_images_per_cpu_sec']:.0f} per CPU second"
        )
    aug = record["augmentation_1core"]
    dev, host = aug["device_images_per_cpu_sec"], aug["host_numpy_images_per_cpu_sec"]
    print(
        f"augmentation at 227: {dev:.0f} images per CPU second as JAX on {aug['backend']}, "
        f"{host:.0f} as numpy on the host"
    )
    if a.out:
        from alexnet_jax import metrics

        record.update(
            command=" ".join(["python -m benchmarks.bench_input", *sys.argv[1:]]),
            date=datetime.now(UTC).isoformat(timespec="seconds"),
            git_commit=subprocess.run(
                ["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True, text=True
            ).stdout.strip(),
            hardware=metrics.hardware(),
            load_average=os.getloadavg(),
        )
        with open(a.out, "w") as f:
            json.dump(record, f, indent=2)


if __name__ == "__main__":
    main()
