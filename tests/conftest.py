"""Process-wide test settings: 2 host devices (before jax is imported), TF on CPU, fixtures."""

import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
).strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # tf.data and torch oracles stay on the CPU

import importlib  # noqa: E402

import jax  # noqa: E402
import ml_collections  # noqa: E402
import pytest  # noqa: E402

CONFIGS = (
    "paper",
    "paper224",
    "caffenet",
    "one_tower_owt",
    "one_tower_half",
    "fashion_mnist",
    "fashion_mnist_227",
)
# Built from the configs above with other data or sizes: counted and shape-checked, while the
# PyTorch comparisons run on CONFIGS (the same layers).
DERIVED_CONFIGS = ("bvlc_alexnet", "finetune_fashion", "cifar10", "fashion_mnist_ablation")


def load_config(name: str, arg: str | None = None) -> ml_collections.ConfigDict:
    return importlib.import_module(f"configs.{name}").get_config(arg)


@pytest.fixture(scope="session", autouse=True)
def _two_host_devices():
    assert jax.local_device_count() == 2, "tests expect XLA_FLAGS to give 2 host devices"
