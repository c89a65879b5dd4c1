"""Bad input to every entry point: a non-zero exit, exactly one line on stderr, no traceback,
and nothing in the workdir lost or half-written (issue 18's battery).

In-process through cli.run (the programs' own path from argv to exit), so no case pays for a
new interpreter; every case fails before anything compiles.
"""

import fcntl
import gzip
import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest

from alexnet_jax import checkpoint, cli, errors, evaluate, features, idx, main, stats, weights
from experiments import figures, sweep, tables
from tests import tiny

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = "--config=configs/fashion_mnist.py:smoke"


def _snapshot(d: str) -> dict[str, str]:
    out = {}
    for root, _, files in os.walk(d):
        for name in set(files) - {checkpoint.LOCK_FILE}:  # a failed run's lock: released
            p = os.path.join(root, name)
            with open(p, "rb") as f:
                out[os.path.relpath(p, d)] = hashlib.sha1(f.read()).hexdigest()
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Fake Fashion-MNIST (good and broken copies), a previous run's workdir, weights files."""
    t = tmp_path_factory.mktemp("bad")
    tiny.fake_fashion(t / "data", n_train=16, n_test=8)
    names = {"train": "train-images-idx3-ubyte.gz", "labels": "train-labels-idx1-ubyte.gz"}
    for kind in ("labels12", "short", "cut"):
        tiny.fake_fashion(t / kind, n_train=16, n_test=8)
    tiny.write_idx(str(t / "labels12" / names["labels"]), np.full(16, 12))  # 10 classes
    tiny.write_idx(str(t / "short" / names["labels"]), np.zeros(15))  # 15 labels, 16 images
    with open(t / "cut" / names["train"], "rb") as f:
        raw = f.read()
    with open(t / "cut" / names["train"], "wb") as f:
        f.write(raw[: len(raw) // 2])  # a cut download: gzip ends early
    run = t / "run"  # a previous run's files, which no failed rerun may touch
    (run / "checkpoints" / "3" / "state").mkdir(parents=True)
    (run / "checkpoints" / "3" / "state" / "data").write_bytes(os.urandom(64))
    (run / "config.json").write_text('{"seed": 0}')
    (run / "metrics.jsonl").write_text('{"step": 3, "train/loss": 2.3}\n')
    np.savez(t / "w.npz", **{"conv1/kernel": np.zeros((3, 3, 1, 4), np.float32)})
    (t / "w.bin").write_bytes(b"x")
    with open(t / "cut.npz", "wb") as f:
        f.write(open(t / "w.npz", "rb").read()[:50])  # noqa: SIM115
    (t / "syntax.py").write_text("def get_config(:\n    pass\n")
    return t


def _one_line(capsys, define, program, argv) -> str:
    with pytest.raises(SystemExit) as e:
        cli.run(define, program, ["prog", *argv])
    err = capsys.readouterr().err
    assert e.value.code not in (0, None), err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def _data(world, kind="data") -> str:
    return f"--config.input.data_dir={world / kind}"


MAIN_CASES = [
    # (argv after --workdir, expected part of the line); {w} is the module's tmp dir
    (["--config=configs/nope.py"], "--config=configs/nope.py does not exist"),
    (["--config={w}/syntax.py"], "syntax.py has a syntax error at line 1"),
    (["--config=configs/fashion_mnist.py:bogus"], "unknown config argument 'bogus'"),
    (["--config=configs/fashion_mnist.py:smoke=yes"], "config argument 'smoke=yes': smoke takes"),
    (["--config=configs/fashion_mnist.py:smoke=1"], "config argument 'smoke=1': smoke takes a"),
    ([SMOKE, "--config.optim.learning_rat=1"], "config.optim has no field 'learning_rat'"),
    ([SMOKE, "--config.optm.base_lr=1"], "did you mean config.optim?"),
    ([SMOKE, "--config.model.lrnn=1"], "did you mean config.model.lrn?"),
    ([SMOKE, "--config.optim.base_lr=fast"], "config.optim.base_lr must be a float"),
    ([SMOKE, "--config.optim.base_lr=-1"], "config.optim.base_lr=-1.0 must be a positive"),
    ([SMOKE, "--config.optim.base_lr=nan"], "config.optim.base_lr=nan must be a positive"),
    ([SMOKE, "--config.optim.momentum=1.5"], "config.optim.momentum=1.5 must be in [0, 1)"),
    ([SMOKE, "--config.optim.weight_decay=-1"], "config.optim.weight_decay=-1.0 must be"),
    ([SMOKE, "--config.optim.rule=adam"], "config.optim.rule='adam' is unknown"),
    ([SMOKE, "--config.model.num_classes=0"], "config.model.num_classes=0 must be an integer"),
    ([SMOKE, "--config.model.lrn.convention=cuda"], "lrn.convention='cuda' is unknown"),
    ([SMOKE, "--config.schedule.factor=2"], "config.schedule.factor=2.0 must be in (0, 1]"),
    ([SMOKE, "--config.schedule.drop_after_epochs=(3,2)"], "=(3, 2) must rise strictly"),
    ([SMOKE, "--config.schedule.patience_epochs=0"], "patience_epochs=0 must be an integer >= 1"),
    ([SMOKE, "--config.input.crop_padding=-1"], "config.input.crop_padding=-1 must be an integer"),
    (
        [SMOKE, "--config.input.eval_split=train[40:]", "--config.input.train_limit=64"],
        "eval_split='train[40:]' holds images that train_limit=64 trains on; set config.input",
    ),
    ([SMOKE, f"--config.seed={2**32 + 5}"], "config.seed=4294967301 must be below 2**32"),
    (  # was accepted, and its reader's queue then grew until the memory ran out
        [SMOKE, "--config.input.host_prefetch=0"],
        "config.input.host_prefetch=0 must be an integer >= 1 (a queue of 0 would not be",
    ),
    ([SMOKE, "--config.input.decode_threads=-1"], "config.input.decode_threads=-1 must be an"),
    (  # was accepted: the last 40 of 64 training images, all trained on
        [SMOKE, "--config.input.eval_split=train[-40:]", "--config.input.train_limit=64"],
        "eval_split='train[-40:]': images held out of the training split are named 'train[N:]'",
    ),
    (
        [SMOKE, "--config.input.pipeline=synthetic", "--config.input.image_size=24"],
        "config.model.input_size=28 is larger than config.input.image_size=24, the stored",
    ),
    ([SMOKE, "--config.checkpoint.keep=0"], "config.checkpoint.keep=0 must be an integer >= 1"),
    ([SMOKE, "--config.input.global_batch_size=7"], "global_batch_size=7 is not divisible by"),
    ([SMOKE, "--config.parallelism=model", "--config.model.towers=1"], "config.model.towers=1"),
    ([SMOKE, "--config.parallelism=pipeline"], "config.parallelism='pipeline' is unknown"),
    ([SMOKE, "--workdr=x"], "unknown flag --workdr; did you mean --workdir?"),
    ([SMOKE, "stray"], "unexpected arguments ['stray']"),
    ([SMOKE, "--config.input.data_dir=/nonexistent"], "Fashion-MNIST file /nonexistent/"),
    ([SMOKE, "--config.input.data_dir={w}/labels12"], "labels span [12, 12] but config.model"),
    ([SMOKE, "--config.input.data_dir={w}/short"], "16 images but 15 labels"),
    ([SMOKE, "--config.input.data_dir={w}/cut"], "is a damaged gzip file"),
]


@pytest.mark.parametrize("argv,message", MAIN_CASES, ids=[m[:40] for _, m in MAIN_CASES])
def test_main(world, capsys, argv, message):
    before = _snapshot(str(world / "run"))
    argv = [a.replace("{w}", str(world)) for a in argv]
    line = _one_line(capsys, main.define_flags, main.main, [f"--workdir={world}/run", *argv])
    assert message in line, line
    assert _snapshot(str(world / "run")) == before  # nothing lost, nothing half-written


def test_main_needs_a_workdir_and_a_writable_one(world, capsys):
    line = _one_line(capsys, main.define_flags, main.main, [SMOKE])
    assert line == "error: --workdir is required: Directory for this run's outputs."
    line = _one_line(capsys, main.define_flags, main.main, [SMOKE, "--workdir=/etc/hostname/w"])
    assert "--workdir=/etc/hostname/w is not writable" in line


def test_fashion_mnist_without_a_data_dir_is_one_line():
    with pytest.raises(errors.InputError, match="config.input.data_dir is not set; point it at"):
        idx.load_fashion_mnist(None, "train")  # e.g. source="idx" on a config without one


def test_a_busy_workdir_names_the_process_holding_it(world, capsys, tmp_path):
    with checkpoint.lock_workdir(str(tmp_path)):  # this process: the first run
        before = _snapshot(str(tmp_path))
        argv = [SMOKE, f"--workdir={tmp_path}", _data(world)]
        line = _one_line(capsys, main.define_flags, main.main, argv)
        assert f"--workdir={tmp_path} is in use by pid {os.getpid()} on " in line
        assert _snapshot(str(tmp_path)) == before
    with open(tmp_path / checkpoint.LOCK_FILE) as f:  # released with the run
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)


OTHER_CASES = [
    (evaluate, [SMOKE, "--checkpoints={w}/nowhere"], "nowhere/checkpoints does not exist"),
    (evaluate, [SMOKE, "--checkpoints={w}/run", "--which=first"], "--which=first"),
    (evaluate, [SMOKE, "--checkpoints={w}/run", "--modes=five_crop"], "'five_crop' is unknown"),
    (evaluate, ["--checkpoints={w}/run"], "--config is required"),
    (
        evaluate,
        [SMOKE, "--checkpoints={w}/run", "--config.input.eval_limit=-5"],
        "config.input.eval_limit=-5 must be an integer >= 1",
    ),
    (weights, [SMOKE, "--in={w}/missing.npz", "--out={w}/o.npz"], "missing.npz does not exist"),
    (weights, [SMOKE, "--in={w}/w.bin", "--out={w}/o.npz"], "cannot tell the weights format"),
    (weights, [SMOKE, "--in={w}/cut.npz", "--out={w}/o.npz"], "cut.npz is truncated or not a"),
    (weights, [SMOKE, "--in={w}/w.npz", "--out={w}/o.npz"], "conv1 in"),
    (weights, [SMOKE, "--in={w}/run", "--out={w}/o.npz"], "checkpoints/3 does not restore"),
    (features, [SMOKE, "--checkpoint={w}/nope.npz", "--images={w}", "--out={w}/f.npy"], "nope"),
    (
        features,  # a mistyped workdir: named as missing (was: its format cannot be told)
        [SMOKE, "--checkpoint={w}/no_run", "--images={w}", "--out={w}/f.npy"],
        "no_run does not exist; give a workdir or a weights file",
    ),
    (
        stats,
        ["--config=configs/paper.py", "--config.input.imge_size=3"],
        "did you mean config.input.image_size",
    ),
    (sweep, ["--sweep={w}/nope.py", "--workdir={w}/sw"], "--sweep="),
    (sweep, ["--sweep={w}/nope.py", "--workdir={w}/sw", "--seeds=a"], "--seeds=a: give integers"),
    (sweep, ["--sweep={w}/syntax.py", "--workdir={w}/sw"], "syntax.py has a syntax error at"),
    (sweep, ["--sweep=configs/paper.py", "--workdir={w}/sw"], "paper.py has no get_sweep()"),
    (sweep, ["--sweep={w}/nope.py", "--workdir={w}/sw", "--seeds="], "--seeds= names no seed"),
    (
        sweep,
        ["--sweep=experiments/sweeps/recipe_2x.py", "--workdir={w}/sw", "--seeds=5"],
        "[5] not among the sweep's seeds [0, 1, 2]",
    ),
    (tables, ["--out={w}/t", "--eval_json="], "--eval_json= names no file"),
    (tables, ["--out={w}/t"], "give --workdir (ablations) and/or --eval_json"),
    (tables, ["--out={w}/t", "--eval_json={w}/nope.json"], "nope.json does not exist"),
    (figures, ["--out={w}/f"], "give --workdir (a sweep) or --run (one run)"),
    (figures, ["--out={w}/f", "--run={w}/nowhere"], "nowhere has no metrics.jsonl"),
]


@pytest.mark.parametrize(
    "module,argv,message",
    OTHER_CASES,
    ids=[f"{m.__name__.split('.')[-1]}-{s[:30]}" for m, _, s in OTHER_CASES],
)
def test_other_entry_points(world, capsys, module, argv, message):
    before = _snapshot(str(world / "run"))
    argv = [a.replace("{w}", str(world)) for a in argv]
    line = _one_line(capsys, module.define_flags, module.main, argv)
    assert message in line, line
    assert _snapshot(str(world / "run")) == before
    assert not os.path.exists(world / "o.npz") and not os.path.exists(world / "f.npy")


def test_a_bug_keeps_its_traceback_while_bad_input_is_one_line():
    """A broken internal call (None where an array is expected) is not dressed up as input."""
    code = """
import jax.numpy as jnp
from alexnet_jax import cli, main
def broken(fv):
    return jnp.dot(None, jnp.ones(3))
argv = ["p", "--config=configs/fashion_mnist.py:smoke", "--workdir=/tmp/never", *{extra}]
cli.run(main.define_flags, {program}, argv)
"""
    run = lambda **kw: subprocess.run(  # noqa: E731
        [sys.executable, "-c", code.format(**kw)], cwd=ROOT, capture_output=True, text=True
    )
    r = run(program="broken", extra=[])
    assert r.returncode == 1 and "Traceback (most recent call last)" in r.stderr
    assert "in broken" in r.stderr and "TypeError" in r.stderr
    r = run(program="main.main", extra=["--config.model.num_classes=0"])
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "error: config.model.num_classes=0 must be an integer >= 1 (ImageNet: 1000)"
    ]


def test_a_bug_in_a_config_file_keeps_its_traceback(tmp_path):
    """ml_collections turns anything get_config raises into a flag error: only our InputErrors
    (a bad `:arg`) become one line; a TypeError in the file is a bug, with its file and line."""
    path = tmp_path / "buggy.py"
    path.write_text(
        "from configs import fashion_mnist\n"
        "def get_config(arg=None):\n"
        "    c = fashion_mnist.get_config(arg)\n"
        "    c.model.fc_features = (1, 2) + [3]\n"
        "    return c\n"
    )
    with pytest.raises(RuntimeError) as e:
        cli.load_config(str(path))
    assert not isinstance(e.value, errors.InputError)
    assert 'buggy.py", line 4, in get_config' in str(e.value)
    assert "TypeError: can only concatenate tuple" in str(e.value)
    with pytest.raises(errors.InputError, match=r"^--config=configs/fashion_mnist.py:bogus: unk"):
        cli.load_config("configs/fashion_mnist.py:bogus")


def test_gzip_cut_is_caught_by_the_idx_reader(world):
    from alexnet_jax import errors, idx

    path = str(world / "cut" / "train-images-idx3-ubyte.gz")
    with pytest.raises(errors.InputError, match="is a damaged gzip file"):
        idx.read_idx(path)
    with gzip.open(world / "data" / "train-images-idx3-ubyte.gz") as f:
        assert len(f.read()) == 16 + 16 * 28 * 28  # the good copy reads whole
