"""Process-wide test settings: 2 host devices (before jax is imported), TF on CPU, fixtures."""

import os
import tempfile

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
).strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # tf.data and torch oracles stay on the CPU
# One XLA compilation cache for the whole run, shared by pytest-xdist's workers and by the
# programs the tests start (they inherit the environment): the same small steps are compiled
# by many tests. New for every run, so no test ever sees an executable from older code. The
# size bound makes JAX lock the directory (filelock), so concurrent writers are safe.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="alexnet_jax_xla_cache_")
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    os.environ["JAX_COMPILATION_CACHE_MAX_SIZE"] = str(8 << 30)

import functools  # noqa: E402
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
)
# Built from the configs above with other data or sizes: counted and shape-checked, while the
# PyTorch comparisons run on CONFIGS (the same layers).
DERIVED_CONFIGS = (
    "fashion_mnist_227",  # paper's layers with a grey conv1 and 10 classes
    "bvlc_alexnet",
    "finetune_fashion",
    "cifar10",
    "fashion_mnist_ablation",
    "fashion_mnist_converged",
    "fashion_mnist_converged_end",
    "fashion_mnist_converged_patient",
    "fashion_mnist_recipe",
    "fashion_mnist_recipe_long",
    "fashion_mnist_recipe_wide",
    "fashion_mnist_recipe_2x",
    "fashion_mnist_recipe_holdout",
    "fashion_mnist_recipe_he",
    "fashion_mnist_recipe_6x6",
    "fashion_mnist_recipe_patient",
    "fashion_mnist_recipe_patient8",
    "fashion_mnist_recipe_dropout",
    "fashion_mnist_recipe_all60k",
)


def load_config(name: str, arg: str | None = None) -> ml_collections.ConfigDict:
    return importlib.import_module(f"configs.{name}").get_config(arg)


def pytest_xdist_node_collection_finished(node, ids):
    """Under `--dist loadgroup` the tests of a module marked xdist_group reach the controller as
    "...@group"; without it xdist deals them out one by one and each worker builds the module's
    fixtures again (pytest-xdist issue #1386, pytest 9.2): stop, naming the fix."""
    if node.config.getvalue("dist") != "loadgroup":
        return
    for nodeid in ids:
        path = os.path.join(str(node.config.rootpath), nodeid.split("::")[0])
        if "@" not in nodeid and "xdist_group(" in _text(path):
            pytest.exit(
                f"error: pytest-xdist did not group {nodeid} (pytest-xdist issue #1386, pytest "
                "9.2); install the test extras' pytest: pip install -e '.[test]'",
                returncode=4,
            )


@functools.cache
def _text(path: str) -> str:
    with open(path) as f:
        return f.read()


@pytest.fixture(scope="session", autouse=True)
def _two_host_devices():
    assert jax.local_device_count() == 2, "tests expect XLA_FLAGS to give 2 host devices"
