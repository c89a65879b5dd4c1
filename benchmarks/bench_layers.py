r"""Times the layers whose lowering we choose: conv1..conv5, LRN, max-pool (forward + gradient).

  python -m benchmarks.bench_layers [--batch=32] [--rounds=5] [--layers=conv1,conv2]
      [--lowerings=split,hybrid] [--sections=conv,lrn,pool] [--out=FILE.json]

For each of the paper's conv layers (Fig. 2: conv1 227x227x3 -> 96, 11x11/4; conv2 27x27x96 ->
256, 5x5, groups=2; conv3..conv5 13x13, 3x3, groups 1, 2, 2) the forward pass and the gradient
w.r.t. input and kernel of every `conv.grouped_conv` lowering (XLA's native
`feature_group_count`, "split", "im2col", "hybrid") next to PyTorch's conv2d(groups=...); LRN
after conv1 (55x55x96) as `lax.reduce_window` (ours, n ** -0.75 as sqrt(sqrt(n)) / n) vs the
same with pow vs a banded matmul vs torch.nn.LocalResponseNorm; the 3x3/2 max-pool after norm1
(55x55x96) as `lax.reduce_window` (flax nn.max_pool) vs "shifts" (pool.py) vs torch max_pool2d.

Each candidate is compiled and called once, then the candidates of a layer take turns for
`--rounds` rounds (so a slow spell of a shared machine hits them all); prints the median
(min..max) per candidate and the fastest of ours, and writes a JSON record with the hardware.
JAX runs on its default backend, PyTorch on CUDA when it sees a GPU (else the CPU).
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

from alexnet_jax import conv, lrn, pool

PAD = ((0, 0), (0, 0), (0, 0), (2, 2))  # LRN n=5 over channels
# the paper's conv layers (Fig. 2): input H=W, in channels, out channels, kernel, stride, pad,
# groups
PAPER_CONVS = {
    "conv1": (227, 3, 96, 11, 4, 0, 1),
    "conv2": (27, 96, 256, 5, 1, 2, 2),
    "conv3": (13, 256, 384, 3, 1, 1, 1),
    "conv4": (13, 384, 384, 3, 1, 1, 2),
    "conv5": (13, 384, 256, 3, 1, 1, 2),
}
CONV_LOWERINGS = ("native", "split", "im2col", "hybrid")


def _stats(ts: list[float]) -> dict:
    return {
        "median_ms": 1e3 * float(np.median(ts)),
        "min_ms": 1e3 * min(ts),
        "max_ms": 1e3 * max(ts),
    }


def time_alternating(fns: dict, rounds: int, deadline: float = float("inf")) -> dict:
    """{name: fn} -> {name: median/min/max ms}: one warm-up call each (compilation), then
    `rounds` rounds in which every fn runs once, in turn. Stops early at `deadline`
    (time.monotonic()) after at least one round."""
    for fn in fns.values():
        fn()
    ts = {name: [] for name in fns}
    for r in range(rounds):
        if r and time.monotonic() > deadline:
            break
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            ts[name].append(time.perf_counter() - t)
    return {name: _stats(t) for name, t in ts.items()}


def _jax_grad_fn(f, *args):
    g = jax.jit(jax.grad(lambda *a: jnp.sum(f(*a) ** 2), argnums=tuple(range(len(args)))))
    return lambda: jax.block_until_ready(g(*args))


def _torch_grad_fn(f, *args):
    import torch

    def run():
        ts = [a.detach().requires_grad_(True) for a in args]
        (f(*ts) ** 2).sum().backward()
        if ts[0].is_cuda:
            torch.cuda.synchronize()

    return run


def _torch_device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _nchw(x: np.ndarray):
    import torch

    return torch.tensor(x).permute(0, 3, 1, 2).contiguous().to(_torch_device())


def conv_fns(name: str, batch: int, lowerings=CONV_LOWERINGS, with_torch: bool = True) -> dict:
    """The candidates for one paper conv layer (forward + gradient w.r.t. input and kernel)."""
    hw, cin, cout, k, stride, pad, groups = PAPER_CONVS[name]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, hw, hw, cin)).astype(np.float32)
    w = rng.normal(scale=0.01, size=(k, k, cin // groups, cout)).astype(np.float32)
    fns = {}
    for lw in lowerings:
        f = lambda x, w, lw=lw: conv.grouped_conv(  # noqa: E731
            x, w, stride=stride, padding=pad, groups=groups, lowering=lw
        )
        fns[f"jax_{lw}"] = _jax_grad_fn(f, jnp.asarray(x), jnp.asarray(w))
    if with_torch:
        import torch

        wt = torch.tensor(w).permute(3, 2, 0, 1).contiguous().to(_torch_device())
        f = lambda x, w: torch.nn.functional.conv2d(x, w, stride=stride, padding=pad, groups=groups)  # noqa: E731
        fns[f"torch_groups{groups}"] = _torch_grad_fn(f, _nchw(x), wt)
    return fns


def lrn_fns(batch: int, with_torch: bool = True) -> dict:
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
    fns = {
        "jax_reduce_window_sqrt": _jax_grad_fn(ours, jnp.asarray(x)),
        "jax_reduce_window_pow": _jax_grad_fn(power, jnp.asarray(x)),
        "jax_banded_matmul": _jax_grad_fn(banded, jnp.asarray(x)),
    }
    if with_torch:
        import torch

        torch_lrn = torch.nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)
        fns["torch_LocalResponseNorm"] = _torch_grad_fn(torch_lrn, _nchw(x))
    return fns


def pool_fns(batch: int, with_torch: bool = True) -> dict:
    x = np.random.default_rng(0).normal(size=(batch, 55, 55, 96)).astype(np.float32)
    x = np.maximum(x, 0)  # after a ReLU: ties at 0
    fns = {}
    for lowering in ("reduce_window", "shifts"):
        f = lambda a, lw=lowering: pool.max_pool(a, 3, 2, lw)  # noqa: E731
        fns[f"jax_{lowering}"] = _jax_grad_fn(f, jnp.asarray(x))
    if with_torch:
        import torch

        f = lambda a: torch.nn.functional.max_pool2d(a, 3, 2)  # noqa: E731
        fns["torch_max_pool2d"] = _torch_grad_fn(f, _nchw(x))
    return fns


def fastest_jax(timings: dict) -> str:
    """The lowering of our fastest candidate ("jax_im2col" -> "im2col")."""
    ours = {k: v["median_ms"] for k, v in timings.items() if k.startswith("jax_")}
    return min(ours, key=ours.get).removeprefix("jax_")


def auto_choices(convs: dict, pools: dict | None) -> dict:
    """What "auto" should resolve to per layer, from these timings: conv.resolve_lowering keys on
    the stride (conv1 strided, conv2..conv5 stride 1), pool.resolve_lowering on the backend."""
    out = {f"{name}": fastest_jax(t) for name, t in convs.items()}
    stride1 = [out[n] for n in convs if PAPER_CONVS[n][4] == 1]
    if stride1:
        out["stride 1 (most layers)"] = max(set(stride1), key=stride1.count)
    if pools:
        out["pool"] = fastest_jax(pools)
    return out


def hardware() -> dict:
    import torch

    from alexnet_jax import metrics

    return {
        **metrics.hardware(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def print_table(title: str, timings: dict) -> None:
    print(title)
    for name, t in timings.items():
        print(f"  {name:26s} {t['median_ms']:9.2f} ms  ({t['min_ms']:.2f}..{t['max_ms']:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--layers", default=",".join(PAPER_CONVS))
    parser.add_argument("--lowerings", default=",".join(CONV_LOWERINGS))
    parser.add_argument("--sections", default="conv,lrn,pool")
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    if args.batch < 1 or args.rounds < 1:
        parser.error("--batch and --rounds must be >= 1")
    unknown = set(args.layers.split(",")) - set(PAPER_CONVS)
    if unknown:
        parser.error(f"--layers: {sorted(unknown)} unknown; use some of {','.join(PAPER_CONVS)}")
    import torch

    torch.set_num_threads(len(os.sched_getaffinity(0)))  # the cores this process may use
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    sections = args.sections.split(",")
    record = {
        "command": "python -m benchmarks.bench_layers "
        f"--batch={args.batch} --rounds={args.rounds} --layers={args.layers} "
        f"--lowerings={args.lowerings} --sections={args.sections}",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": commit.stdout.strip(),
        "hardware": hardware(),
        "conv_forward_and_grad": {},
    }
    if "conv" in sections:
        for name in args.layers.split(","):
            fns = conv_fns(name, args.batch, args.lowerings.split(","))
            t = time_alternating(fns, args.rounds)
            record["conv_forward_and_grad"][name] = t
            print_table(f"{name} {PAPER_CONVS[name]} (batch {args.batch}):", t)
    if "lrn" in sections:
        record["lrn1_forward_and_grad"] = time_alternating(lrn_fns(args.batch), args.rounds)
        print_table(f"lrn1 (batch {args.batch}):", record["lrn1_forward_and_grad"])
    if "pool" in sections:
        record["pool1_forward_and_grad"] = time_alternating(pool_fns(args.batch), args.rounds)
        print_table(f"pool1 (batch {args.batch}):", record["pool1_forward_and_grad"])
    record["auto_should_pick"] = auto_choices(
        record["conv_forward_and_grad"], record.get("pool1_forward_and_grad")
    )
    print("fastest of ours:", json.dumps(record["auto_should_pick"]))
    print(json.dumps(record["hardware"]))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(record, f, indent=2)


if __name__ == "__main__":
    main()
