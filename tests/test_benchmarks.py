"""The benchmark scripts: the PyTorch net computes our function, and the script runs (CI size)."""

import importlib
import json
import math
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from alexnet_jax import models
from benchmarks.torch_alexnet import TorchAlexNet, load_params
from tests.conftest import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("name", ["paper", "caffenet", "one_tower_owt", "fashion_mnist"])
def test_torch_benchmark_net_computes_our_logits(name):
    config = load_config(name)
    model = models.create_model(config)
    params = models.init_params(model, config, jax.random.key(0))
    rng = np.random.default_rng(0)
    # non-trivial biases and pixel-scale inputs, so LRN and every layer matter
    params = jax.tree.map(lambda p: p + jnp.asarray(rng.normal(scale=0.01, size=p.shape)), params)
    x = rng.normal(scale=50.0, size=models.input_shape(config, 2)).astype(np.float32)
    apply = jax.jit(model.apply, static_argnames="train")  # op by op is 3x slower on CPU
    want = np.asarray(apply({"params": params}, jnp.asarray(x), train=False))
    net = TorchAlexNet(config.model.to_dict())
    load_params(net, params)
    net.eval()
    with torch.no_grad():
        got = net(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()).numpy()
    assert np.abs(got - want).max() / np.abs(want).max() < 1e-4
    assert sum(p.numel() for p in net.parameters()) == models.count_params(params)


@pytest.mark.slow
def test_benchmark_script_runs_at_ci_size(tmp_path):
    out = tmp_path / "bench.json"
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.bench_train_step",
        "--config=fashion_mnist",
        "--batch=4",
        "--steps=2",
        "--warmup=1",
        f"--out={out}",
        "--growth_devices=2",  # (--growth_batches rows are the same workers at other batches)
    ]
    env = dict(os.environ, XLA_FLAGS="", JAX_PLATFORMS="cpu")
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    record = json.loads(out.read_text())
    for fw in ("jax", "torch"):
        for kind in ("train", "eval"):
            s = record["results"][fw][kind]
            assert 0 < s["min"] <= s["images_per_sec"] <= s["max"]
    assert record["ratio_train"] > 0 and "ours / PyTorch" in r.stdout
    assert record["allocator_env"].keys() >= {"LD_PRELOAD", "GLIBC_TUNABLES"}
    assert record["results"]["jax"]["minor_page_faults_per_train_step"] >= 0
    rows = {(g["framework"], g["batch"], g["devices"]) for g in record["growth"]}
    assert rows == {("jax", 4, 2)}
    assert next(g for g in record["growth"] if g["devices"] == 2)["device"].startswith("2 x")


def test_set_overrides_config_fields():
    from benchmarks.bench_train_step import _config

    c = _config("paper", "model.pool.lowering=reduce_window,model.dropout.rate=0.25")
    assert c.model.pool.lowering == "reduce_window" and c.model.dropout.rate == 0.25
    assert _config("paper").model.pool.lowering == "auto"
    with pytest.raises(SystemExit, match=r"config\.model\.pool\.lowring does not exist"):
        _config("paper", "model.pool.lowring=shifts")


def test_rounds_report_each_metrics_median_and_the_median_paired_ratio():
    """Was the round of the median train speed, whole (its eval too), the lower middle one of an
    even count, and the headline ratio between two different rounds."""
    from benchmarks.bench_train_step import _over_rounds, _ratios

    def run(train, evals):
        return {"train": {"images_per_sec": train}, "eval": {"images_per_sec": evals}}

    rounds = [
        {"jax": run(10.0, 80.0), "torch": run(8.0, 40.0)},
        {"jax": run(30.0, 50.0), "torch": run(10.0, 41.0)},
        {"jax": run(20.0, 60.0), "torch": run(16.0, 39.0)},
        {"jax": run(40.0, 70.0), "torch": run(20.0, 50.0)},
    ]
    out = _over_rounds(rounds)
    assert out["jax"]["train"]["images_per_sec"] == 25.0  # np.median: (20 + 30) / 2
    assert out["jax"]["eval"]["images_per_sec"] == 65.0  # not the train-median round's 50 or 60
    assert out["jax"]["train"]["min"] == 10.0 and out["jax"]["train"]["max"] == 40.0
    assert out["jax"]["rounds"] == {"train": [10.0, 30.0, 20.0, 40.0], "eval": [80, 50, 60, 70]}
    r = _ratios(out)
    assert r["ratio_per_round"]["train"] == [1.25, 3.0, 1.25, 2.0]
    assert r["ratio_train"] == 1.625  # the median of the per-round ratios
    assert r["ratio_train_of_medians"] == 25.0 / 13.0  # torch: (10 + 16) / 2


def test_rounds_alternate_which_framework_runs_first(monkeypatch, tmp_path):
    """A,B then B,A (was A,B every round: one side always met the machine the other left)."""
    from benchmarks import bench_train_step

    calls, rate = [], {"images_per_sec": 1.0, "min": 1.0, "max": 1.0}

    def worker(a, fw, batch, devices):
        calls.append(fw)
        return {"train": rate, "eval": rate, "minor_page_faults_per_train_step": 0,
                "peak_memory_mb": 1.0, "device": "cpu"}  # fmt: skip

    monkeypatch.setattr(bench_train_step, "_worker", worker)
    monkeypatch.setattr(bench_train_step, "_hardware", lambda: {"cpu": "x", "cpu_count": 2})
    argv = ["--config=fashion_mnist", "--rounds=3", f"--out={tmp_path / 'r.json'}"]
    monkeypatch.setattr(sys, "argv", ["bench_train_step.py", *argv])
    bench_train_step.main()
    assert calls == ["jax", "torch", "torch", "jax", "jax", "torch"]
    assert json.loads((tmp_path / "r.json").read_text())["ratio_train"] == 1.0


@pytest.mark.parametrize(
    "script, args, message",
    [
        ("bench_train_step", ["--rounds=0"], "--rounds must be >= 1"),  # was an IndexError
        ("bench_train_step", ["--frameworks=foo"], "--frameworks=foo: use jax, torch"),
        ("bench_train_step", ["--config=nosuch"], "there is no configs/nosuch.py"),
        ("bench_train_step", ["--config=finetune_fashion"], "and the PyTorch side would not"),
        ("bench_train_step", ["--set=model.dtype=bfloat16"], "both sides must compute in bf"),
        ("bench_layers", ["--layers=conv6"], "--layers: ['conv6'] unknown"),  # was a KeyError
        ("bench_input", ["--cores=0"], "--cores=0: each must be 1 to"),  # was an OSError
        ("device_check", ["--out={tmp}", "--parts=bogus"], "--parts: ['bogus'] unknown"),
        ("comm_model_parallel", ["--config=nosuch"], "there is no configs/nosuch.py"),
    ],
)
def test_bad_benchmark_flags_are_one_line(script, args, message, tmp_path, monkeypatch, capsys):
    """In this process (argparse's exit 2 and its last line), before anything is measured."""
    module = importlib.import_module(f"benchmarks.{script}")
    argv = [x.format(tmp=tmp_path) for x in args]
    monkeypatch.setattr(sys, "argv", [f"{script}.py", *argv])
    with pytest.raises(SystemExit) as e:
        module.main(argv) if script == "comm_model_parallel" else module.main()
    assert e.value.code == 2
    assert message in capsys.readouterr().err.splitlines()[-1]


@pytest.mark.slow  # seven small processes, each compiling a small net: ~1 min on 2 CPU cores
def test_device_check_quick_writes_every_part(tmp_path):
    """benchmarks/device_check.py --quick (CI size, CPU): the GPU check cannot rot unseen."""
    from tests.tiny import fake_fashion

    fake_fashion(tmp_path / "fashion", 64, 20)  # what the smoke config reads (64 + 20)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "benchmarks.device_check", "--quick", f"--out={out}"]
    cmd += [f"--fashion_dir={tmp_path / 'fashion'}", f"--workdir={tmp_path / 'run'}"]
    cmd += ["--budget_s=900"]
    env = dict(os.environ, XLA_FLAGS="", JAX_PLATFORMS="cpu")
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    rec = json.loads((out / "device_check.json").read_text())
    assert rec["skipped"] == {"step torch.compile": "skipped in --quick"}, rec["skipped"]
    parts = rec["parts"]
    assert parts.keys() == {"peak", "numerics", "step", "layers", "train", "cores"}
    assert parts["peak"]["fp32_full_tflops"] > 0
    # fp32 on the CPU: both frameworks' logits near float64 (continuous at a ReLU or pool kink);
    # the gradients are reported, not bounded here: a ReLU input within an fp32 rounding of 0
    # moves a layer's gradient by percents (their float64 checks: tests/test_models.py)
    num = parts["numerics"]
    assert num["jax"]["highest"]["logits"] < 1e-3 and num["torch_fp32"]["tf32_off"]["logits"] < 1e-3
    assert all(math.isfinite(r["max_grad"]) for r in num["jax"].values())
    assert 0 < num["bf16_logits_vs_fp32"] < 0.1
    assert "precision" in rec["recommendations"]["ship precision"]
    assert {(s["framework"], s["dtype"]) for s in parts["step"]} == {
        ("jax", "float32"),
        ("torch", "float32"),
        ("torch", "bfloat16"),
    }
    for s in parts["step"]:
        assert 0 < s["train"]["min"] <= s["train"]["images_per_sec"] <= s["train"]["max"]
        assert s["tflops"] > 0
    assert set(parts["layers"]["timings"]["conv4"]) >= {"jax_native", "jax_hybrid", "jax_im2col"}
    assert parts["layers"]["auto_should_pick"]["pool"] in ("shifts", "reduce_window")
    train = parts["train"]
    assert train["steps"] == 3 and train["checkpoints"] and train["tensorboard_events"] >= 1
    assert set(parts["cores"]["cores_needed"]) == {"jpeg", "raw"}
    assert all(n > 0 for n in parts["cores"]["cores_needed"].values())
    md = (out / "device_check.md").read_text()
    assert "| part | result |" in md and "## Train step" in md and "## Numerics" in md


def test_device_check_recommends_the_fastest_precision_within_tolerance():
    from benchmarks.device_check import recommend_precision

    def num(**runs):  # precision -> (max error against float64, forward + gradient ms)
        jax = {p: {"logits": e, "max_grad": e, "grad_ms": ms} for p, (e, ms) in runs.items()}
        return {"batch": 16, "jax": jax}

    tf32 = num(highest=(1e-6, 20.0), default=(1e-3, 10.0), high=(1e-3, 12.0))
    assert recommend_precision(tf32).startswith('config.model.precision="default"')
    assert "2.00x" in recommend_precision(tf32)
    free = num(highest=(1e-6, 10.2), default=(1e-3, 10.0), high=(1e-3, 10.0))  # within 5%
    assert recommend_precision(free).startswith('config.model.precision="highest"')
    loose = num(highest=(1e-6, 20.0), default=(2e-2, 10.0), high=(1e-3, 15.0))
    assert recommend_precision(loose).startswith('config.model.precision="high"')


def test_bench_layers_auto_choices_take_our_fastest_lowering():
    from benchmarks.bench_layers import auto_choices

    def t(**ms):
        return {k: {"median_ms": v} for k, v in ms.items()}

    convs = {
        "conv1": t(jax_native=3.0, jax_im2col=2.0, torch_groups1=1.0),  # PyTorch is not ours
        "conv2": t(jax_split=1.0, jax_hybrid=2.0),
        "conv3": t(jax_split=2.0, jax_hybrid=1.0),
        "conv4": t(jax_split=1.0, jax_hybrid=2.0),
    }
    got = auto_choices(convs, t(jax_reduce_window=2.0, jax_shifts=1.0, torch_max_pool2d=0.5))
    assert got == {
        "conv1": "im2col",
        "conv2": "split",
        "conv3": "hybrid",
        "conv4": "split",
        "stride 1 (most layers)": "split",  # conv1 (stride 4) is not counted
        "pool": "shifts",
    }
