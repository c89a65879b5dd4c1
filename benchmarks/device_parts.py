"""The parts of benchmarks/device_check.py that touch a device, each run in its own process:

  python -m benchmarks.device_parts --worker=NAME [--kwargs=JSON] [--quick]

prints `RESULT <json>` lines (step_torch, layers and numerics print as they go, so that a
timeout keeps what finished).
See device_check.py for what each part measures and why.
"""

import argparse
import json
import time

import numpy as np

PRECISIONS = ("highest", "default", "high")  # config.model.precision; "highest" first
# --quick: the fewest ops to compile (CI's CPU spends its time compiling, not running)
QUICK_SET = "model.conv.lowering=native,model.pool.lowering=reduce_window"


def _config(name: str, overrides: str = ""):
    from benchmarks.bench_train_step import _config as load

    return load(name, overrides)


def _train_flops(m) -> float:
    """FLOPs of one image's train step: 3x the forward pass's 2*MACs (convs and dense layers)."""
    from alexnet_jax import architecture

    macs, cin = 0, m.input_channels
    convs = [s for name, s in architecture.layer_shapes(m) if name.startswith("conv")]
    for i, (h, w, c) in enumerate(convs):
        macs += h * w * c * m.conv.kernel_size[i] ** 2 * cin // m.conv.groups[i]
        cin = c
    width = int(np.prod(architecture.layer_shapes(m)[-1][1]))
    for n in (*m.fc_features, m.num_classes):
        macs, width = macs + width * n, n
    return 3 * 2 * macs


def w_peak(quick: bool) -> dict:
    import jax
    import jax.numpy as jnp

    n, reps = (256, 2) if quick else (8192, 10)
    out = {"device": str(jax.devices()[0].device_kind), "jax": jax.__version__}
    for name, dtype, prec in [
        ("bf16", jnp.bfloat16, "default"),
        ("fp32_tf32", jnp.float32, "default"),
        ("fp32_full", jnp.float32, "highest"),
    ]:
        k = jax.random.split(jax.random.key(0), 2)
        a, b = (jax.random.normal(x, (n, n), dtype) for x in k)
        with jax.default_matmul_precision(prec):
            f = jax.jit(lambda a, b: a @ b)
            jax.block_until_ready(f(a, b))
            ts = []
            for _ in range(reps):
                t = time.perf_counter()
                jax.block_until_ready(f(a, b))
                ts.append(time.perf_counter() - t)
        out[f"{name}_tflops"] = 2 * n**3 / float(np.median(ts)) / 1e12
    return out


def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def _layer_errors(grads: dict, exact: dict) -> dict:
    """Per layer: relative error of its (kernel, bias) gradient against `exact`."""
    cat = lambda g: np.concatenate([np.ravel(g["kernel"]), np.ravel(g["bias"])])  # noqa: E731
    return {name: _rel(cat(grads[name]), cat(exact[name])) for name in exact}


def w_numerics(quick: bool) -> None:
    import jax
    import optax
    import torch

    from alexnet_jax import models
    from tests import reference

    name, batch = ("fashion_mnist", 2) if quick else ("paper", 16)
    base = QUICK_SET + "," if quick else ""
    config = _config(name, base[:-1])
    rng = np.random.default_rng(0)
    params = models.init_params(models.create_model(config), config, jax.random.key(0))
    # non-trivial biases and pixel-scale inputs, so LRN and every layer matter
    params = jax.tree.map(lambda p: np.asarray(p) + rng.normal(scale=0.01, size=p.shape), params)
    params = jax.tree.map(lambda p: p.astype(np.float32), params)
    x = rng.normal(scale=50.0, size=models.input_shape(config, batch)).astype(np.float32)
    y = rng.integers(0, config.model.num_classes, batch).astype(np.int32)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def torch_run(dtype, tf32: bool):
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
        with torch.device(dev):
            tp = reference.to_torch_params(params, dtype)
            logits = reference.torch_alexnet(tp, config.model.to_dict(), x)
            torch.nn.functional.cross_entropy(logits, torch.tensor(y, dtype=torch.long)).backward()
        grads = {
            n: {
                "kernel": p["weight"].grad.cpu().numpy().transpose(2, 3, 1, 0)
                if p["weight"].ndim == 4
                else p["weight"].grad.cpu().numpy().T,
                "bias": p["bias"].grad.cpu().numpy(),
            }
            for n, p in tp.items()
        }
        return logits.detach().cpu().numpy(), grads

    exact_logits, exact = torch_run(torch.float64, False)
    out = {"config": name, "batch": batch, "torch_device": str(dev), "jax": {}, "torch_fp32": {}}
    for tf32 in (True, False):
        logits, grads = torch_run(torch.float32, tf32)
        errs = _layer_errors(grads, exact)
        out["torch_fp32"][f"tf32_{'on' if tf32 else 'off'}"] = {
            "logits": _rel(logits, exact_logits),
            "grads": errs,
            "max_grad": max(errs.values()),
        }

    def jax_run(precision: str, dtype: str = "float32"):
        c = _config(name, f"{base}model.dtype={dtype}")
        if "precision" in c.model:  # the redesign's config field, passed to every conv/dense
            c.model.precision = precision
        model = models.create_model(c)

        def loss(p):
            logits = model.apply({"params": p}, x, train=False)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), logits

        with jax.default_matmul_precision(precision):
            f = jax.jit(jax.value_and_grad(loss, has_aux=True))
            (_, logits), grads = jax.block_until_ready(f(params))
            ts = []
            for _ in range(1 if quick else 5):
                t = time.perf_counter()
                jax.block_until_ready(f(params))
                ts.append(time.perf_counter() - t)
        return np.asarray(logits), jax.device_get(grads), 1e3 * float(np.median(ts))

    out["device"] = str(jax.devices()[0].device_kind)
    for precision in ("highest",) if quick else PRECISIONS:
        logits, grads, ms = jax_run(precision)
        errs = _layer_errors(grads, exact)
        out["jax"][precision] = {
            "logits": _rel(logits, exact_logits),
            "grads": errs,
            "max_grad": max(errs.values()),
            "grad_ms": ms,
        }
        if precision == "highest":
            fp32_logits = logits
        print("RESULT " + json.dumps(out), flush=True)  # so far: a timeout keeps it
    bf16 = jax_run("highest" if quick else "default", "bfloat16")[0]
    out["bf16_logits_vs_fp32"] = _rel(bf16, fp32_logits)
    print("RESULT " + json.dumps(out), flush=True)


def w_step_jax(quick: bool, batch: int, dtype: str) -> dict:
    from benchmarks import bench_train_step

    name, steps, warmup = ("fashion_mnist", 2, 1) if quick else ("paper", 20, 3)
    overrides = f"{QUICK_SET + ',' if quick else ''}model.dtype={dtype}"
    r = bench_train_step.run_jax(name, batch, steps, warmup, overrides)
    flops = _train_flops(_config(name).model)
    return {"batch": batch, "dtype": dtype, "flops_per_image": flops, **r}


def w_step_torch(quick: bool, compile_: bool) -> None:
    import torch

    from benchmarks.torch_alexnet import TorchAlexNet

    name, steps, warmup = ("fashion_mnist", 2, 1) if quick else ("paper", 20, 3)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    config = _config(name)
    m, o = config.model, config.optim
    for batch in (4,) if quick else (128, 512):
        for dtype in ("float32", "bfloat16"):
            torch._dynamo.reset()  # each shape and dtype compiled afresh, not as dynamic shapes
            net = TorchAlexNet(m.to_dict()).to(dev).to(memory_format=torch.channels_last)
            opt = torch.optim.SGD(
                net.parameters(), lr=o.base_lr, momentum=o.momentum, weight_decay=o.weight_decay
            )
            model = torch.compile(net) if compile_ else net
            x = torch.randn(batch, m.input_channels, m.input_size, m.input_size, device=dev)
            x = x.to(memory_format=torch.channels_last)
            y = torch.randint(0, m.num_classes, (batch,), device=dev)
            amp = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dtype == "bfloat16")
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            times, t_first = [], time.perf_counter()
            for i in range(warmup + steps):
                t = time.perf_counter()
                opt.zero_grad(set_to_none=True)
                with amp:
                    loss = torch.nn.functional.cross_entropy(model(x), y)
                loss.backward()
                opt.step()
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                if i >= warmup:
                    times.append(time.perf_counter() - t)
            ips = [batch / t for t in times]
            peak = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else None
            r = {"batch": batch, "dtype": dtype, "compile": compile_, "peak_memory_mb": peak}
            r["settings"] = "channels_last, cudnn.benchmark, TF32 on, bf16 by autocast"
            r["train"] = {"images_per_sec": float(np.median(ips)), "min": min(ips), "max": max(ips)}
            r["warmup_s"] = time.perf_counter() - t_first - sum(times)
            r["flops_per_image"] = _train_flops(m)
            r["device"] = torch.cuda.get_device_name() if dev.type == "cuda" else "cpu"
            print("RESULT " + json.dumps(r), flush=True)  # partial results survive a timeout


def w_layers(quick: bool, deadline: float) -> None:
    """Per layer (pools first), prints everything so far and what "auto" should pick from it."""
    import jax

    from alexnet_jax import conv, pool
    from benchmarks import bench_layers as bl

    backend = jax.default_backend()
    now = {
        "conv stride > 1": conv.resolve_lowering("auto", backend, stride=4),
        "conv stride 1": conv.resolve_lowering("auto", backend, stride=1),
        "pool": pool.resolve_lowering("auto", backend),
    }
    batch, rounds = (1, 1) if quick else (128, 10)
    fns = {"pool1": lambda: bl.pool_fns(batch), "lrn1": lambda: bl.lrn_fns(batch)}
    for name in ("conv4",) if quick else tuple(bl.PAPER_CONVS):
        fns[name] = lambda name=name: bl.conv_fns(name, batch)
    out = {"batch": batch, "auto_now": now, "timings": {}}
    for name, make in fns.items():
        out["timings"][name] = bl.time_alternating(make(), rounds, deadline)
        convs = {k: v for k, v in out["timings"].items() if k.startswith("conv")}
        out["auto_should_pick"] = bl.auto_choices(convs, out["timings"]["pool1"])
        print("RESULT " + json.dumps(out), flush=True)  # so far: a timeout keeps it


WORKERS = {
    "peak": w_peak,
    "numerics": w_numerics,
    "step_jax": w_step_jax,
    "step_torch": w_step_torch,
    "layers": w_layers,
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", choices=sorted(WORKERS), required=True)
    p.add_argument("--kwargs", default="{}", help="JSON keyword arguments of the worker")
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    r = WORKERS[a.worker](a.quick, **json.loads(a.kwargs))
    if r is not None:  # the others print their results as they go
        print("RESULT " + json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
