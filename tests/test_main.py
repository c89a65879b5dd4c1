"""The entry point: config file + overrides -> locked config -> the run (smoke run for now)."""

import json
import math
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _main(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "alexnet_jax.main", *args]
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="")
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.slow
def test_smoke_run_writes_config_and_trains(tmp_path):
    r = _main(
        "--config=configs/fashion_mnist.py:smoke",
        f"--workdir={tmp_path}",
        "--config.optim.base_lr=0.02",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["optim"]["base_lr"] == 0.02  # the override reached the run
    assert config["model"]["conv"]["groups"] == [1, 2, 1, 2, 2]
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("step ")]
    assert [ln.split()[1] for ln in lines] == ["1/3", "2/3", "3/3"]
    losses = [float(ln.split()[3]) for ln in lines]
    # Sec. 5's init gives near-zero logits on 10 classes: the first loss is about ln(10)
    assert abs(losses[0] - math.log(10)) < 0.2 and all(map(math.isfinite, losses))
    assert "719,626 learned parameters" in r.stdout


@pytest.mark.parametrize(
    "override,message",
    [
        ("--config.model.lrnn=1", "lrnn"),  # a misspelt field: the config is locked
        ("--config.model.lrn.convention=cuda", "config.model.lrn.convention='cuda' is unknown"),
    ],
)
def test_bad_override_fails_naming_the_field(tmp_path, override, message):
    r = _main("--config=configs/fashion_mnist.py:smoke", f"--workdir={tmp_path}", override)
    assert r.returncode != 0
    assert message in r.stderr
