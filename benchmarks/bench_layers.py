r"""Times the layers whose lowering we choose: grouped conv (native/split/hybrid), LRN, max-pool.

  python -m benchmarks.bench_layers [--batch=32] [--repeats=5] [--out=FILE.json]

Forward + gradient (w.r.t. input and kernel) of the paper's conv2 (27x27x96 -> 27x27x256,
5x5, groups=2) for XLA's native `feature_group_count`, for one conv per group and for one conv
per group with the kernel gradient as per-tap GEMMs ("hybrid"), next to
PyTorch's conv2d(groups=2); and of LRN after conv1 (55x55x96) as `lax.reduce_window` (ours)
(n ** -0.75 as sqrt(sqrt(n)) / n) vs the same with pow vs a banded matmul vs
torch.nn.LocalResponseNorm; and of the 3x3/2 max-pool after norm1 (55x55x96) as
`lax.reduce_window` (flax nn.max_pool) vs the max of 9 strided views vs torch max_pool2d.
Prints the median (min..max) over
`--repeats` timed calls after one warm-up and writes a JSON record with the hardware.
"""

import argparse
import json
import os
import subprocess
import time
from datetime import UTC, datetime

import jax
import jax.numpy as jnp
import numpy as np
import torch

from alexnet_jax import conv, lrn, pool

PAD = ((0, 0), (0, 0), (0, 0), (2, 2))  # LRN n=5 over channels


def _time(fn, repeats: int) -> dict:
    fn()  # warm-up: compilation
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return {
        "median_ms": 1e3 * float(np.median(ts)),
        "min_ms": 1e3 * min(ts),
        "max_ms": 1e3 * max(ts),
    }


def _jax_grad_fn(f, *args):
    g = jax.jit(jax.grad(lambda *a: jnp.sum(f(*a) ** 2), argnums=tuple(range(len(args)))))
    return lambda: jax.block_until_ready(g(*args))


def _torch_grad_fn(f, *args):
    def run():
        ts = [a.detach().requires_grad_(True) for a in args]
        (f(*ts) ** 2).sum().backward()

    return run


def bench_conv(batch: int, repeats: int) -> dict:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, 27, 27, 96)).astype(np.float32)
    w = rng.normal(scale=0.01, size=(5, 5, 48, 256)).astype(np.float32)
    out = {}
    for lowering in ("native", "split", "hybrid"):
        f = lambda x, w, lw=lowering: conv.grouped_conv(  # noqa: E731
            x, w, stride=1, padding=2, groups=2, lowering=lw
        )
        out[f"jax_{lowering}"] = _time(_jax_grad_fn(f, jnp.asarray(x), jnp.asarray(w)), repeats)
    xt = torch.tensor(x).permute(0, 3, 1, 2).contiguous()
    wt = torch.tensor(w).permute(3, 2, 0, 1).contiguous()
    f = lambda x, w: torch.nn.functional.conv2d(x, w, padding=2, groups=2)  # noqa: E731
    out["torch_groups2"] = _time(_torch_grad_fn(f, xt, wt), repeats)
    return out


def bench_lrn(batch: int, repeats: int) -> dict:
    x = np.random.default_rng(0).normal(size=(batch, 55, 55, 96)).astype(np.float32)
    kw = dict(size=5, k=2.0, alpha=1e-4, beta=0.75)
    i = np.arange(96)
    band = jnp.asarray((np.abs(i[:, None] - i[None, :]) <= 2).astype(np.float32))

    def banded(a):  # the alternative we measured against: window sums as a [C, C] matmul
        s = jnp.dot(a * a, band, precision=jax.lax.Precision.HIGHEST)
        return a * (kw["k"] + kw["alpha"] * s) ** -kw["beta"]

    def power(a):  # ours before: the same window sum, then pow (exp of log) for ** -0.75
        s = jax.lax.reduce_window(a * a, 0.0, jax.lax.add, (1, 1, 1, 5), (1,) * 4, PAD)
        return a * (kw["k"] + kw["alpha"] * s) ** -kw["beta"]

    ours = lambda a: lrn.local_response_norm(a, convention="paper", **kw)  # noqa: E731
    torch_lrn = torch.nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)
    return {
        "jax_reduce_window_sqrt": _time(_jax_grad_fn(ours, jnp.asarray(x)), repeats),
        "jax_reduce_window_pow": _time(_jax_grad_fn(power, jnp.asarray(x)), repeats),
        "jax_banded_matmul": _time(_jax_grad_fn(banded, jnp.asarray(x)), repeats),
        "torch_LocalResponseNorm": _time(
            _torch_grad_fn(torch_lrn, torch.tensor(x).permute(0, 3, 1, 2).contiguous()), repeats
        ),
    }


def bench_pool(batch: int, repeats: int) -> dict:
    x = np.random.default_rng(0).normal(size=(batch, 55, 55, 96)).astype(np.float32)
    x = np.maximum(x, 0)  # after a ReLU: ties at 0
    out = {}
    for lowering in ("reduce_window", "shifts"):
        f = lambda a, lw=lowering: pool.max_pool(a, 3, 2, lw)  # noqa: E731
        out[f"jax_{lowering}"] = _time(_jax_grad_fn(f, jnp.asarray(x)), repeats)
    f = lambda a: torch.nn.functional.max_pool2d(a, 3, 2)  # noqa: E731
    xt = torch.tensor(x).permute(0, 3, 1, 2).contiguous()
    out["torch_max_pool2d"] = _time(_torch_grad_fn(f, xt), repeats)
    return out


def hardware() -> dict:
    from alexnet_jax import metrics  # clu/TF only after the timings

    return {
        **metrics.hardware(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    record = {
        "command": "python -m benchmarks.bench_layers "
        f"--batch={args.batch} --repeats={args.repeats}",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": commit.stdout.strip(),
        "hardware": hardware(),
        "conv2_forward_and_grad": bench_conv(args.batch, args.repeats),
        "lrn1_forward_and_grad": bench_lrn(args.batch, args.repeats),
        "pool1_forward_and_grad": bench_pool(args.batch, args.repeats),
    }
    for section in ("conv2_forward_and_grad", "lrn1_forward_and_grad", "pool1_forward_and_grad"):
        print(f"{section} (batch {args.batch}):")
        for name, t in record[section].items():
            print(f"  {name:26s} {t['median_ms']:9.1f} ms  ({t['min_ms']:.1f}..{t['max_ms']:.1f})")
    print(json.dumps(record["hardware"]))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(record, f, indent=2)


if __name__ == "__main__":
    main()
