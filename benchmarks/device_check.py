r"""The one prepared check for a lent GPU (issue 17): numerics, step speed, lowerings, a real run.

  python -m benchmarks.device_check --out=DIR [--quick] [--fashion_dir=DIR] [--parts=...]

Writes DIR/device_check.json and DIR/device_check.md; benchmarks/DEVICE.md says how to run it
on the H200 machine and what each number decides. Each part runs in its own process with its
own time limit (benchmarks/device_parts.py), so a hung compile or a missing package costs one
line, and the run stops starting parts after --budget_s (400 s: ~7 minutes on one H200):
  peak      matmul rate (bf16, fp32 as TF32, full fp32): the ceilings for TFLOP/s below.
  numerics  (1) the paper net's logits and every layer's gradient at each
            config.model.precision and in bf16, and PyTorch fp32 with TF32 on and off, against
            tests/reference.py's net in float64 on the same device: the precision to ship.
  step      (2) the train step, paper net, batch 128 and 512, fp32 and bf16: ours
            (bench_train_step.run_jax) and PyTorch at its best; torch.compile last ("compile").
  layers    (3) conv1..conv5 per lowering, LRN and the pools: what "auto" should pick here.
  train     (4) `python -m alexnet_jax.main` on configs/fashion_mnist_227.py for ~90 s from
            the IDX files in --fashion_dir, stopped by SIGTERM (the loop saves a checkpoint).
  cores     (5) our synthetic step rate over the input pipeline's per-core rate
            (benchmarks/results_input_*.json): host cores one such device needs.
`--quick`: CPU, the small fashion_mnist net, batch 2-4, 1-2 timed steps, no torch.compile.
"""

import argparse
import glob
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime

import numpy as np

from benchmarks.device_parts import QUICK_SET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NEEDED = ("jax", "flax", "optax", "orbax.checkpoint", "ml_collections", "absl", "torch")
# seconds per part on one H200, compile included (step_jax: its four processes together;
# torch.compile gets what is left); --budget_s bounds the whole run
LIMIT = {"peak": 15, "numerics": 60, "step_jax": 120, "step_torch": 35, "layers": 60}
PARTS = ("peak", "numerics", "step", "layers", "train", "compile", "cores")
ABSENT_OK = ("tensorflow", "clu")  # the H200 machine has neither: the core must not need them
GRAD_TOL = 5e-3  # a precision may ship if logits and every gradient are this close to float64


class Clock:
    """The whole run's budget: each part gets min(its own limit, what is left)."""

    def __init__(self, budget_s: float):
        self.end = time.monotonic() + budget_s

    def left(self) -> float:
        return self.end - time.monotonic()


def _one_line(stderr: str) -> str:
    """The line that names the problem: the last `error: ...` or `...Error: ...` line."""
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:") or "Error:" in ln or ln == "Error"]
    return (errors or lines or ["no error output"])[-1][:300]


def spawn(a, clock: Clock, worker: str, limit: float, **kwargs) -> tuple[list, str | None]:
    """Runs device_parts' `worker` in a fresh process within min(limit, time left).

    Returns (results, None) or (partial results, one line saying why it stopped)."""
    timeout = min(limit * (4 if a.quick else 1), clock.left())  # CI's CPU compiles slowly
    if timeout < 5:
        return [], f"skipped: the {a.budget_s:.0f} s budget ran out"
    cmd = [sys.executable, "-m", "benchmarks.device_parts", f"--worker={worker}"]
    cmd += [f"--kwargs={json.dumps(kwargs)}"] + ["--quick"] * a.quick
    p = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=_env(a),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: a timeout ends torch.compile's too
    )
    try:
        out, err = p.communicate(timeout=timeout)
        why = None if p.returncode == 0 else _one_line(err)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        why = f"stopped at its {timeout:.0f} s limit"
    results = [json.loads(ln[7:]) for ln in out.splitlines() if ln.startswith("RESULT ")]
    return results, why


def _env(a) -> dict:
    env = dict(os.environ, XLA_PYTHON_CLIENT_PREALLOCATE="false", PYTHONUNBUFFERED="1")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if a.quick:  # CPU; compile with less LLVM work (a third less CPU time on 2 cores)
        fast = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
        env.update(JAX_PLATFORMS="cpu", CUDA_VISIBLE_DEVICES="")
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {fast}".strip()
    return env


def part_train(a, clock: Clock) -> dict:
    """(4) the project's entry point on fashion_mnist_227 (quick: fashion_mnist:smoke), stopped
    by SIGTERM after `run_s` (the loop saves a checkpoint and exits 0)."""
    run_s = 150 if a.quick else 90  # quick: the smoke config's 3 steps end it
    if clock.left() < (30 if a.quick else 60):
        return {"skipped": f"skipped: the {a.budget_s:.0f} s budget ran out"}
    if not glob.glob(os.path.join(a.fashion_dir, "train-images-idx3-ubyte*")):
        return {"skipped": f"skipped: no Fashion-MNIST IDX files in --fashion_dir={a.fashion_dir}"}
    workdir = os.path.abspath(a.workdir or tempfile.mkdtemp(prefix="device_check_run_"))
    config = "configs/fashion_mnist.py:smoke" if a.quick else "configs/fashion_mnist_227.py"
    cmd = [sys.executable, "-m", "alexnet_jax.main", f"--config={config}", f"--workdir={workdir}"]
    cmd += [f"--config.input.data_dir={os.path.abspath(a.fashion_dir)}"]
    if a.quick:
        cmd += [f"--config.{kv}" for kv in QUICK_SET.split(",")]
    else:
        cmd += ["--config.log_every_steps=20", "--config.input.eval_limit=2000"]
    t0 = time.monotonic()
    with open(os.path.join(a.out, "train_run.log"), "w") as log:
        p = subprocess.Popen(cmd, cwd=ROOT, env=_env(a), stdout=log, stderr=subprocess.STDOUT)
        try:
            p.wait(timeout=min(run_s, clock.left() - 25))
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=max(5.0, min(40.0, clock.left() - 5)))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    out = {"command": " ".join(cmd[1:]), "wall_s": time.monotonic() - t0, "rc": p.returncode}
    with open(os.path.join(a.out, "train_run.log")) as f:
        text = f.read()
    if p.returncode == -signal.SIGTERM:
        return {**out, "skipped": f"did not reach the training loop in {run_s} s (train_run.log)"}
    if p.returncode != 0:
        return {
            **out,
            "skipped": f"failed (exit {p.returncode}): {_one_line(text)} (train_run.log)",
        }
    rows = []
    if os.path.exists(os.path.join(workdir, "metrics.jsonl")):
        with open(os.path.join(workdir, "metrics.jsonl")) as f:
            rows = [json.loads(ln) for ln in f if ln.strip()]
    train = [r for r in rows if "train/loss" in r]
    waits = [r[k] for r in train for k in r if "wait" in k]
    out.update(
        steps=max((r["step"] for r in rows), default=0),
        images_per_sec=float(np.median([r["images_per_sec"] for r in train])) if train else None,
        first_loss=train[0]["train/loss"] if train else None,
        last_loss=train[-1]["train/loss"] if train else None,
        data_wait_fraction=float(np.median(waits)) if waits else "not reported by the loop",
        eval=[r for r in rows if "eval/top1_err" in r][-1:],
        tensorboard_events=len(
            glob.glob(os.path.join(workdir, "**", "events.out.tfevents*"), recursive=True)
        ),
        checkpoints=sorted(os.listdir(os.path.join(workdir, "checkpoints")))
        if os.path.isdir(os.path.join(workdir, "checkpoints"))
        else [],
    )
    return out


def part_cores(steps: list[dict]) -> dict:
    """(5) host cores one device needs = our best synthetic-data train rate / the prepared
    pipeline's per-core train rate (bench_input's record: one core, per CPU second), for the
    JPEG and the raw store."""
    path = os.path.join(ROOT, "benchmarks", "results_input_prepared_cpu2.json")
    if not os.path.exists(path):
        return {"skipped": f"skipped: no {os.path.relpath(path, ROOT)} (bench_input) to read"}
    with open(path) as f:
        rec = json.load(f)
    per_core = {
        r["storage"]: r["train_images_per_cpu_sec"] for r in rec.get("rows", []) if r["cores"] == 1
    }
    ours = [s["train"]["images_per_sec"] for s in steps if s.get("framework") == "jax"]
    if not per_core or not ours:
        return {"skipped": f"skipped: no per-core rate in {path} or no step rate measured"}
    return {
        "input_record": os.path.relpath(path, ROOT),
        "input_images_per_cpu_sec": per_core,  # one core's rate per second of CPU time
        "input_machine": rec.get("hardware", {}).get("cpu", ""),
        "best_train_images_per_sec": max(ours),
        "cores_needed": {k: max(ours) / v for k, v in per_core.items()},  # busy cores, at least
    }


def recommend_precision(num: dict) -> str:
    """The config.model.precision to ship: the fastest whose logits and every gradient are
    within GRAD_TOL of float64; "highest" whenever it is within 5% of that one's time."""
    ok = {p: r for p, r in num["jax"].items() if max(r["logits"], r["max_grad"]) <= GRAD_TOL}
    if not ok:
        return 'config.model.precision="highest" (none was within tolerance: see the numerics)'
    best = min(ok, key=lambda p: ok[p]["grad_ms"])
    full = num["jax"]["highest"]
    if "highest" in ok and full["grad_ms"] <= 1.05 * ok[best]["grad_ms"]:
        best = "highest"
    speed = full["grad_ms"] / ok[best]["grad_ms"]
    return (
        f'config.model.precision="{best}": logits and gradients within '
        f"{max(ok[best]['logits'], ok[best]['max_grad']):.1e} of float64 (tolerance {GRAD_TOL:g}),"
        f' {speed:.2f}x the speed of "highest" (forward + gradient, batch {num["batch"]})'
    )


def _fmt_ips(s: dict) -> str:
    return f"{s['images_per_sec']:.1f} ({s['min']:.1f}..{s['max']:.1f})"


def markdown(rec: dict) -> str:
    p, md = rec["parts"], []
    add = md.append
    add(f"# Device check, {rec['date']}, commit {rec['git_commit']}\n")
    add(f"`{rec['command']}`; {rec['wall_s']:.0f} s of a {rec['budget_s']:.0f} s budget.")
    add(f"Seconds per part: {rec['wall_s_per_part']}\n")
    add("| part | result |\n|---|---|")
    for name, why in rec["skipped"].items():
        add(f"| {name} | {why} |")
    peak = p.get("peak", {})
    for k in ("bf16", "fp32_tf32", "fp32_full"):
        if f"{k}_tflops" in peak:
            add(f"| matmul peak {k} | {peak[k + '_tflops']:.3g} TFLOP/s ({peak['device']}) |")
    for k, v in rec["recommendations"].items():
        add(f"| **{k}** | {v} |")
    num = p.get("numerics")
    if num:
        layers = list(num["jax"]["highest"]["grads"])
        add(
            f"\n## Numerics: relative error vs float64 PyTorch ({num['config']}, batch "
            f"{num['batch']}, {num['torch_device']})\n"
        )
        add("| run | logits | " + " | ".join(layers) + " | fwd+grad ms |")
        add("|---" * (len(layers) + 3) + "|")
        rows = [(f"ours {k}", v) for k, v in num["jax"].items()]
        rows += [(f"PyTorch fp32 {k}", v) for k, v in num["torch_fp32"].items()]
        for label, r in rows:
            cells = [f"{r['grads'][n]:.1e}" for n in layers]
            ms = f"{r['grad_ms']:.1f}" if "grad_ms" in r else ""
            add(f"| {label} | {r['logits']:.1e} | " + " | ".join(cells) + f" | {ms} |")
        if "bf16_logits_vs_fp32" in num:
            add(f"\nbf16 logits vs fp32 (ours): {num['bf16_logits_vs_fp32']:.1e}")
    steps = p.get("step", [])
    if steps:
        add("\n## Train step (synthetic data)\n")
        add(
            "| framework | batch | dtype | img/s median (min..max) | peak MB | TFLOP/s | of peak "
            "| ours / best PyTorch |"
        )
        add("|---|---|---|---|---|---|---|---|")
        for s in steps:
            mb = f"{s['peak_memory_mb']:.0f}" if s.get("peak_memory_mb") else ""
            add(
                f"| {s['framework']} | {s['batch']} | {s['dtype']} | {_fmt_ips(s['train'])} | "
                f"{mb} | {s['tflops']:.3g} | {s['of_peak']} | {s.get('vs_pytorch', '')} |"
            )
    lay = p.get("layers")
    if lay:
        add(f"\n## Layers, forward + gradient, batch {lay['batch']} (ms, median)\n")
        for name, t in lay["timings"].items():
            add(f"- {name}: " + ", ".join(f"{k} {v['median_ms']:.2f}" for k, v in t.items()))
        add(f'\n"auto" should pick: {lay["auto_should_pick"]}; picks now: {lay["auto_now"]}')
    if "train" in p:
        add("\n## Training run (python -m alexnet_jax.main; its config in the command)\n")
        add("\n".join(f"- {k}: {v}" for k, v in p["train"].items()))
    if "cores" in p:
        add("\n## Host cores per device\n")
        add("\n".join(f"- {k}: {v}" for k, v in p["cores"].items()))
    return "\n".join(md) + "\n"


def _of_peak(s: dict, peak: dict) -> None:
    """Achieved TFLOP/s of a train step and its share of the matching matmul peak."""
    s["tflops"] = s["train"]["images_per_sec"] * s["flops_per_image"] / 1e12
    key = "bf16_tflops" if s["dtype"] == "bfloat16" else "fp32_tf32_tflops"
    s["of_peak"] = f"{s['tflops'] / peak[key]:.0%} of {key}" if key in peak else ""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="directory for device_check.json and .md")
    p.add_argument("--quick", action="store_true", help="CPU, tiny sizes (CI)")
    p.add_argument("--fashion_dir", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--workdir", default="", help="the training run's (default: a new /tmp dir)")
    p.add_argument("--parts", default=",".join(PARTS), help="a subset of " + ",".join(PARTS))
    p.add_argument("--commit", default="", help="git commit to record (default: git's)")
    p.add_argument("--budget_s", type=float, default=400.0)
    a = p.parse_args()
    t0, clock, want = time.monotonic(), Clock(a.budget_s), set(a.parts.split(","))
    if not want <= set(PARTS):
        p.error(f"--parts: {sorted(want - set(PARTS))} unknown; use some of {','.join(PARTS)}")
    os.makedirs(a.out, exist_ok=True)
    missing = [m for m in NEEDED if importlib.util.find_spec(m.split(".")[0]) is None]
    for m in missing:
        print(f"missing Python package {m}: carry its wheel as benchmarks/DEVICE.md says")
    absent = [m for m in ABSENT_OK if importlib.util.find_spec(m) is None]
    if absent:
        print(f"not installed: {', '.join(absent)} (fine: the training core must not need them)")
    parts, skipped, recs, walls, steps = {}, {}, {}, {}, []

    def run(part, worker, limit, needs, **kw):
        if needs & set(missing):
            skipped[part] = f"skipped: needs {', '.join(sorted(needs & set(missing)))}"
            return []
        t = time.monotonic()
        results, why = spawn(a, clock, worker, limit, **kw)
        walls[part] = round(time.monotonic() - t, 1)
        if why:
            skipped[part] = why
            print(f"{part}: {why}", flush=True)
        return results

    configs = {"ml_collections", "jax"}
    if "peak" in want:
        parts["peak"] = (run("peak", "peak", LIMIT["peak"], {"jax"}) or [{}])[0]
    if "numerics" in want:
        num = run("numerics", "numerics", LIMIT["numerics"], configs | {"torch"})
        if num:  # each line holds everything so far
            parts["numerics"] = num[-1]
            recs["ship precision"] = recommend_precision(num[-1])
    if "step" in want:
        group = Clock(min(LIMIT["step_jax"], clock.left()))
        for batch in (4,) if a.quick else (128, 512):
            for dtype in ("float32",) if a.quick else ("float32", "bfloat16"):
                kw = dict(batch=batch, dtype=dtype)
                r = run(f"step jax {batch} {dtype}", "step_jax", group.left(), configs, **kw)
                steps += [{"framework": "jax", **x} for x in r]
        r = run(
            "step torch", "step_torch", LIMIT["step_torch"], configs | {"torch"}, compile_=False
        )
        steps += [{"framework": "torch", **x} for x in r]
    if "layers" in want:
        deadline = time.monotonic() + 0.6 * min(LIMIT["layers"], clock.left())
        lay = run("layers", "layers", LIMIT["layers"], {"jax", "torch"}, deadline=deadline)
        if lay:  # each line holds everything so far
            parts["layers"] = lay[-1]
            recs["auto lowerings"] = (
                f"should pick {parts['layers']['auto_should_pick']}, "
                f"picks now {parts['layers']['auto_now']}"
            )
    if "train" in want:
        t = time.monotonic()
        parts["train"] = part_train(a, clock)
        walls["train"] = round(time.monotonic() - t, 1)
        if "skipped" in parts["train"]:
            skipped["train"] = parts["train"]["skipped"]
    if "compile" in want and a.quick:
        skipped["step torch.compile"] = "skipped in --quick"
    elif "compile" in want:
        kw = dict(compile_=True)
        r = run("step torch.compile", "step_torch", clock.left() - 5, configs | {"torch"}, **kw)
        steps += [{"framework": "torch.compile", **x} for x in r]
    for s in steps:
        _of_peak(s, parts.get("peak", {}))
        rivals = [
            t["train"]["images_per_sec"]
            for t in steps
            if t["framework"] != "jax" and (t["batch"], t["dtype"]) == (s["batch"], s["dtype"])
        ]
        if s["framework"] == "jax" and rivals:
            s["vs_pytorch"] = f"{s['train']['images_per_sec'] / max(rivals):.2f}x"
    if steps:
        parts["step"] = steps
        ratios = [
            f"{s['batch']} {s['dtype']} {s['vs_pytorch']}" for s in steps if "vs_pytorch" in s
        ]
        recs["train step, ours / best PyTorch"] = ", ".join(ratios)
    if "cores" in want:
        parts["cores"] = part_cores(steps)
        if "skipped" in parts["cores"]:
            skipped["cores"] = parts["cores"]["skipped"]
        else:
            need = parts["cores"]["cores_needed"]
            recs["host cores, at least (CPU seconds per second)"] = ", ".join(
                f"{n:.1f} ({k} store)" for k, n in need.items()
            )
    rec = {
        "command": " ".join(["python -m benchmarks.device_check", *sys.argv[1:]]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": a.commit or _git_commit(),
        "budget_s": a.budget_s,
        "wall_s": time.monotonic() - t0,
        "wall_s_per_part": walls,
        "missing_packages": missing,
        "skipped": skipped,
        "recommendations": recs,
        "parts": parts,
    }
    with open(os.path.join(a.out, "device_check.json"), "w") as f:
        json.dump(rec, f, indent=2)
    text = markdown(rec)
    with open(os.path.join(a.out, "device_check.md"), "w") as f:
        f.write(text)
    print(text)


def _git_commit() -> str:
    if shutil.which("git") is None:
        return "unknown (no git here: pass --commit)"
    r = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True)
    return r.stdout.decode().strip() or "unknown (not a git checkout: pass --commit)"


if __name__ == "__main__":
    main()
