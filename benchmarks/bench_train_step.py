r"""Training- and eval-step throughput: our JAX AlexNet vs the same net in PyTorch (issue 8).

  python -m benchmarks.bench_train_step --config=paper --batch=64 --steps=5 --out=FILE.json
  python -m benchmarks.bench_train_step --config=paper --batch=64 --rounds=4   # A,B,B,A,...
  python -m benchmarks.bench_train_step --config=fashion_mnist --batch=128
  python -m benchmarks.bench_train_step --config=paper --batch=4 --steps=2 --warmup=1   # CI size
  python -m benchmarks.bench_train_step --config=fashion_mnist --batch=128 \
      --growth_batches=32,64,128,256,512 --growth_devices=1,2     # cost growth table
  python -m benchmarks.bench_train_step --frameworks=jax --set=model.pool.lowering=reduce_window

Each framework runs in its own process, one after the other, on the same synthetic batch shape:
the full training step (forward, loss, backward, SGD momentum + weight decay update) and the
eval step (forward). Prints images/s as the median (min..max) of `--steps` timed steps after
`--warmup` untimed ones (with `--rounds=N`, in which the frameworks' processes alternate: each
metric's median over the N rounds), the ratio ours/PyTorch (the median of the per-round ratios,
each round's printed), peak memory and the hardware; writes a JSON record with the command, git
commit and date. Ours is the path train.py runs
(train.train_step mapped by parallel.create's plan, donated state); PyTorch's is
benchmarks/torch_alexnet.py with torch.optim.SGD, using as many threads as there are cores.
`--set=FIELD=VALUE,...` changes scalar config fields (both nets), e.g. to time one lowering
against another; XLA_FLAGS in the environment reach JAX. Both workers inherit the allocator
environment (e.g. `LD_PRELOAD=libtcmalloc_minimal.so.4` or
`GLIBC_TUNABLES=glibc.malloc.hugetlb=1`); the record names it and counts each framework's
minor page faults per train step, since fresh pages for large buffers cost both a lot on CPU.
"""

import argparse
import ast
import functools
import importlib
import importlib.util
import json
import os
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# how the C library hands out memory changes both frameworks' speed on CPU (fresh pages for
# every large buffer cost a page fault each): both workers inherit these, and the record says
ALLOCATOR_ENV = ("LD_PRELOAD", "GLIBC_TUNABLES", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def _stats(times: list[float], batch: int) -> dict:
    ips = [batch / t for t in times]
    return {"images_per_sec": float(np.median(ips)), "min": min(ips), "max": max(ips)}


def _config(name: str, overrides: str = ""):
    """configs/`name`.py with `overrides` ("model.pool.lowering=shifts,batch_size=8") applied."""
    config = importlib.import_module(f"configs.{name}").get_config()
    for item in filter(None, overrides.split(",")):
        key, _, text = item.partition("=")
        *path, leaf = key.split(".")
        target = config
        for p in path:
            target = target[p]
        if leaf not in target:
            sys.exit(f"error: --set {key}: config.{key} does not exist in configs/{name}.py")
        try:
            target[leaf] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            target[leaf] = text  # a bare string such as shifts
    return config


def run_jax(name: str, batch: int, steps: int, warmup: int, overrides: str = "") -> dict:
    import jax

    from alexnet_jax import models, parallel, pool, train

    config = _config(name, overrides)
    config.input.global_batch_size = config.input.eval_batch_size = batch
    model = models.create_model(config)
    plan = parallel.create(config, model)  # the layout train.py uses
    state = plan.place(train.create_state(config, jax.random.key(0), model=model))
    rng = np.random.default_rng(0)
    shape = models.input_shape(config, batch)
    data = plan.batch(  # on the devices once: the steps time compute only
        {
            "image": rng.normal(size=shape).astype(np.float32),
            "label": rng.integers(0, config.model.num_classes, batch).astype(np.int32),
            "mask": np.ones((batch,), np.float32),
        }
    )
    step = plan.map(functools.partial(train.train_step, dropout_key=jax.random.key(1)), donate=True)
    p_eval = plan.map(train.eval_step)
    times, faults = [], []
    for i in range(warmup + steps):
        f0, t = _minor_faults(), time.perf_counter()
        state, metrics = step(state, data)
        jax.block_until_ready((state, metrics))
        if i >= warmup:
            times.append(time.perf_counter() - t)
            faults.append(_minor_faults() - f0)
    eval_times = []
    for i in range(warmup + steps):
        t = time.perf_counter()
        jax.block_until_ready(p_eval(state, data))
        if i >= warmup:
            eval_times.append(time.perf_counter() - t)
    out = {"train": _stats(times, batch), "eval": _stats(eval_times, batch)}
    out["minor_page_faults_per_train_step"] = int(np.median(faults))
    d = jax.local_devices()[0]
    stats = d.memory_stats() if d.platform == "gpu" else None
    out["peak_memory_mb"] = (
        stats["peak_bytes_in_use"] / 2**20 if stats else _max_rss_mb()
    )  # GPU: device memory; CPU: the process's peak RSS
    out["version"] = jax.__version__
    out["device"] = f"{jax.device_count()} x {d.device_kind}"
    out["conv_lowering"] = f"{config.model.conv.lowering} on {jax.default_backend()}"
    out["pool_lowering"] = pool.resolve_lowering(config.model.pool.lowering)  # what "auto" runs
    out["xla_flags"] = os.environ.get("XLA_FLAGS", "")
    return out


def run_torch(
    name: str,
    batch: int,
    steps: int,
    warmup: int,
    channels_last: bool,
    autocast: bool,
    overrides: str = "",
) -> dict:
    import torch

    from benchmarks.torch_alexnet import TorchAlexNet

    torch.set_num_threads(len(os.sched_getaffinity(0)))  # the cores this process may use
    config = _config(name, overrides)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    net = TorchAlexNet(config.model.to_dict()).to(dev)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt)
    o = config.optim
    opt = torch.optim.SGD(
        net.parameters(), lr=o.base_lr, momentum=o.momentum, weight_decay=o.weight_decay
    )
    m = config.model
    x = torch.randn(batch, m.input_channels, m.input_size, m.input_size, device=dev)
    x = x.to(memory_format=fmt)
    y = torch.randint(0, m.num_classes, (batch,), device=dev)
    amp = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=autocast)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    times, faults, eval_times = [], [], []
    net.train()
    for i in range(warmup + steps):
        f0, t = _minor_faults(), time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with amp:
            loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - t)
            faults.append(_minor_faults() - f0)
    net.eval()
    with torch.no_grad():
        for i in range(warmup + steps):
            t = time.perf_counter()
            with amp:
                net(x)
            sync()
            if i >= warmup:
                eval_times.append(time.perf_counter() - t)
    out = {"train": _stats(times, batch), "eval": _stats(eval_times, batch)}
    out["minor_page_faults_per_train_step"] = int(np.median(faults))
    out["peak_memory_mb"] = (
        torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else _max_rss_mb()
    )
    out["version"] = torch.__version__
    out["device"] = torch.cuda.get_device_name() if dev.type == "cuda" else "cpu"
    out["threads"] = torch.get_num_threads()
    return out


def _minor_faults() -> int:
    """Pages this process touched for the first time so far (fresh buffers from the kernel)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _hardware() -> dict:
    from alexnet_jax import metrics  # here, not at the top: workers must not load clu/TF

    return metrics.hardware()


def _check_same_work(p: argparse.ArgumentParser, config, torch_autocast: bool) -> None:
    """Refuses a comparison in which the PyTorch side would do other work than ours."""
    if config.optim.get("frozen_layers"):
        p.error(
            f"optim.frozen_layers={tuple(config.optim.frozen_layers)}: XLA skips their gradients "
            "and the PyTorch side would not; compare with --set=optim.frozen_layers=() or run "
            "--frameworks=jax"
        )
    if (config.model.dtype == "bfloat16") != torch_autocast:
        p.error(
            f"model.dtype={config.model.dtype!r} with{'' if torch_autocast else 'out'} "
            "--torch_autocast: both sides must compute in bfloat16 or neither"
        )


def _worker(a: argparse.Namespace, fw: str, batch: int, devices: int) -> dict:
    """One framework's measurement in a fresh process (JAX on `devices` host devices)."""
    cmd = [sys.executable, "-m", "benchmarks.bench_train_step", f"--worker={fw}"]
    cmd += [f"--config={a.config}", f"--batch={batch}", f"--steps={a.steps}"]
    cmd += [f"--warmup={a.warmup}", f"--set={a.set}"]
    cmd += ["--torch_channels_last"] * a.torch_channels_last
    cmd += ["--torch_autocast"] * a.torch_autocast
    env = dict(os.environ)
    if devices > 1:
        flags = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}"
        env["XLA_FLAGS"] = flags.strip()
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    if r.returncode:
        sys.exit(f"error: the {fw} worker failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _over_rounds(rounds: list[dict]) -> dict:
    """Per framework: each metric's median over the rounds (np.median: with an even count, the
    mean of the middle two), min..max over every timed step, and every round's numbers; memory,
    faults and device from the round nearest the train median."""
    out = {}
    for fw in rounds[0]:
        per = {k: [r[fw][k]["images_per_sec"] for r in rounds] for k in ("train", "eval")}
        mid = {k: float(np.median(v)) for k, v in per.items()}
        near = min(
            rounds, key=lambda r, fw=fw: abs(r[fw]["train"]["images_per_sec"] - mid["train"])
        )
        out[fw] = dict(near[fw])
        for k in ("train", "eval"):
            lo = min(r[fw][k].get("min", per[k][i]) for i, r in enumerate(rounds))
            hi = max(r[fw][k].get("max", per[k][i]) for i, r in enumerate(rounds))
            out[fw][k] = {**near[fw][k], "images_per_sec": mid[k], "min": lo, "max": hi}
        out[fw]["rounds"] = per
    return out


def _ratios(results: dict) -> dict:
    """ours / PyTorch per round (the frameworks alternate within a round, so a slow spell of a
    shared machine hits both) and their median, the headline; and the ratio of the medians."""
    out = {}
    for k in ("train", "eval"):
        jax_, torch_ = results["jax"]["rounds"][k], results["torch"]["rounds"][k]
        paired = [j / t for j, t in zip(jax_, torch_, strict=True)]
        out[f"ratio_{k}"] = float(np.median(paired))
        out[f"ratio_{k}_of_medians"] = (
            results["jax"][k]["images_per_sec"] / (results["torch"][k]["images_per_sec"])
        )
        out.setdefault("ratio_per_round", {})[k] = paired
    return out


def _growth(a: argparse.Namespace) -> list[dict]:
    """Images/s against batch size (both frameworks) and JAX device count, as a table."""
    rows = []
    for batch in [int(b) for b in a.growth_batches.split(",") if b]:
        for fw in a.frameworks.split(","):
            rows.append({"framework": fw, "batch": batch, "devices": 1, **_worker(a, fw, batch, 1)})
    for devices in [int(d) for d in a.growth_devices.split(",") if d]:
        rows.append(
            {
                "framework": "jax",
                "batch": a.batch,
                "devices": devices,
                **_worker(a, "jax", a.batch, devices),
            }
        )
    header = ("framework", "batch", "devices", "train img/s", "eval img/s")
    print("\n" + "  ".join(f"{h:>11s}" for h in header))
    for r in rows:
        cells = (
            r["batch"],
            r["devices"],
            r["train"]["images_per_sec"],
            r["eval"]["images_per_sec"],
        )
        print(f"{r['framework']:>11s}  " + "  ".join(f"{c:>11.5g}" for c in cells))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="paper", help="a configs/ module name")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--frameworks", default="jax,torch")
    p.add_argument(
        "--rounds", type=int, default=1, help="alternate the frameworks' processes N times"
    )
    p.add_argument("--torch_channels_last", action="store_true")
    p.add_argument("--torch_autocast", action="store_true", help="bfloat16 autocast")
    p.add_argument("--growth_batches", default="", help="e.g. 32,64,128,256,512")
    p.add_argument("--growth_devices", default="", help="e.g. 1,2 (JAX on N host devices)")
    p.add_argument("--set", default="", help="config overrides, e.g. model.pool.lowering=shifts")
    p.add_argument("--out", default="")
    p.add_argument("--worker", default="", choices=("", "jax", "torch"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if min(a.batch, a.steps, a.rounds) < 1 or a.warmup < 0:
        p.error("--batch, --steps and --rounds must be >= 1 and --warmup >= 0")
    if not set(a.frameworks.split(",")) <= {"jax", "torch"}:
        p.error(f"--frameworks={a.frameworks}: use jax, torch or jax,torch")
    if importlib.util.find_spec(f"configs.{a.config}") is None:
        p.error(f"--config={a.config}: there is no configs/{a.config}.py")
    if a.worker == "jax":
        print(json.dumps(run_jax(a.config, a.batch, a.steps, a.warmup, a.set)))
        return
    if a.worker == "torch":
        r = run_torch(
            a.config, a.batch, a.steps, a.warmup, a.torch_channels_last, a.torch_autocast, a.set
        )
        print(json.dumps(r))
        return
    frameworks, config = a.frameworks.split(","), _config(a.config, a.set)
    if "torch" in frameworks:
        _check_same_work(p, config, a.torch_autocast)
    rounds = [  # A,B then B,A: neither framework always runs first (a warm or cold machine)
        {fw: _worker(a, fw, a.batch, 1) for fw in frameworks[:: 1 if i % 2 == 0 else -1]}
        for i in range(a.rounds)
    ]
    results = _over_rounds(rounds)
    commit = subprocess.run(
        ["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    record = {
        "command": " ".join(["python -m benchmarks.bench_train_step", *sys.argv[1:]]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": commit,
        "hardware": _hardware(),
        "config": a.config,
        "batch": a.batch,
        "allocator_env": {k: os.environ.get(k, "") for k in ALLOCATOR_ENV},
        "compute_dtype": {
            "jax": config.model.dtype,
            "torch": "bfloat16 autocast" if a.torch_autocast else "float32",
        },
        "results": results,
    }
    print(
        f"{a.config}, batch {a.batch}, {a.steps} timed steps after {a.warmup} warm-up; "
        f"{record['hardware']['cpu']}, {record['hardware']['cpu_count']} cores; "
        f"allocator env {({k: v for k, v in record['allocator_env'].items() if v}) or 'default'}"
    )
    print(f"{'':8s} {'train images/s':>28s} {'eval images/s':>28s} {'peak MB':>9s} {'faults':>7s}")
    for fw, r in results.items():
        cols = [
            f"{r[k]['images_per_sec']:8.1f} ({r[k]['min']:.1f}..{r[k]['max']:.1f})"
            for k in ("train", "eval")
        ]
        faults = r["minor_page_faults_per_train_step"]
        print(
            f"{fw:8s} {cols[0]:>28s} {cols[1]:>28s} {r['peak_memory_mb']:9.0f} {faults:7d}  "
            f"{r['device']}"
        )
    if "jax" in results and "torch" in results:
        record.update(_ratios(results))
        print(
            f"ours / PyTorch (median of the per-round ratios): train {record['ratio_train']:.2f}x, "
            f"eval {record['ratio_eval']:.2f}x"
        )
        for k, v in record["ratio_per_round"].items():
            print(f"  {k} ratio per round: " + " ".join(f"{x:.2f}" for x in v))
    if a.growth_batches or a.growth_devices:
        record["growth"] = _growth(a)
    if a.out:
        with open(a.out, "w") as f:
            json.dump(record, f, indent=2)


if __name__ == "__main__":
    main()
