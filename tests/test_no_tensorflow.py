"""The core trains where TensorFlow is not installed (JAX-only GPU boxes): issue 16, item 3.

A subprocess whose import system cannot find `tensorflow` (a sitecustomize on PYTHONPATH hides
it from the path finder, as if it were not installed) trains the smoke config on tiny
Fashion-MNIST IDX files through `python -m alexnet_jax.main`, and writes its files.
"""

import json
import os
import subprocess
import sys

import pytest

from tests import tiny

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

HIDE_TF = """
import importlib.machinery
import sys

import pytest


class _NoTF(importlib.machinery.PathFinder):
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            return None
        return super().find_spec(name, path, target)


sys.meta_path[:] = [_NoTF if f is importlib.machinery.PathFinder else f for f in sys.meta_path]
"""


@pytest.mark.slow  # ~25 s: a subprocess compiles and trains the (narrowed) smoke net
def test_smoke_config_trains_without_tensorflow(tmp_path):
    tiny.fake_fashion(tmp_path / "fashion", n_train=24, n_test=10)
    (tmp_path / "hide").mkdir()
    (tmp_path / "hide" / "sitecustomize.py").write_text(HIDE_TF)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path / "hide"), ROOT]),
        "JAX_DISABLE_MOST_OPTIMIZATIONS": "true",  # compile time is all this test would wait on
        "XLA_FLAGS": "",
    }
    check = [sys.executable, "-c", "import tensorflow"]
    assert subprocess.run(check, env=env, capture_output=True).returncode != 0
    workdir = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "alexnet_jax.main", "--config=configs/fashion_mnist.py:smoke",
        f"--workdir={workdir}", f"--config.input.data_dir={tmp_path / 'fashion'}",
        "--config.max_steps=2", "--config.model.conv.features=(8,16,24,24,16)",
        "--config.model.fc_features=(32,32)",
    ]  # fmt: skip
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "data_wait" in r.stdout
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert rows[-2]["step"] == 2 and 0.0 <= rows[-2]["data_wait"] <= 1.0
    assert "eval/top1_err" in rows[-1]
    assert any(p.name.startswith("events.out.tfevents") for p in workdir.iterdir())
    assert (workdir / "results.md").exists() and (workdir / "checkpoints").is_dir()
