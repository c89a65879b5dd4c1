"""The training system: steps in every layout, evaluation, resume, signals, NaN stop, bad input
(Sec. 5)."""

import functools
import gzip
import itertools
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from alexnet_jax import checkpoint, cli, idx, input_pipeline, main, metrics, optim, parallel, train
from alexnet_jax.errors import InputError
from tests import tiny
from tests.conftest import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REAL_FASHION = "/usr/share/datasets/fashion-mnist"


@pytest.fixture
def tiny_fashion(tmp_path) -> str:
    """A Fashion-MNIST-layout directory of IDX files: 32 train and 21 test 28x28 images."""
    tiny.fake_fashion(tmp_path / "fashion", n_train=32, n_test=21)
    return str(tmp_path / "fashion")


def _config(data_dir: str, **overrides):
    config = load_config("fashion_mnist", "smoke")
    config.input.data_dir = data_dir
    config.input.train_limit = config.input.eval_limit = None
    return tiny.override(config, **overrides)


def test_read_idx_and_its_errors(tmp_path):
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    tiny.write_idx(str(tmp_path / "a.gz"), a)
    np.testing.assert_array_equal(idx.read_idx(str(tmp_path / "a.gz")), a)
    with gzip.open(tmp_path / "a.gz", "rb") as f:
        data = f.read()
    with gzip.open(tmp_path / "cut.gz", "wb") as f:
        f.write(data[:-3])
    with pytest.raises(ValueError, match="cut.gz is truncated: header says"):
        idx.read_idx(str(tmp_path / "cut.gz"))
    with gzip.open(tmp_path / "bad.gz", "wb") as f:
        f.write(b"\x01\x02" + data[2:])
    with pytest.raises(ValueError, match="bad.gz is not an unsigned-byte IDX file"):
        idx.read_idx(str(tmp_path / "bad.gz"))
    (tmp_path / "head").write_bytes(data[:6])  # 3 dimensions announced, half of one given
    with pytest.raises(ValueError, match="head is truncated: its header ends after 6 bytes"):
        idx.read_idx(str(tmp_path / "head"))


@pytest.mark.skipif(not os.path.isdir(REAL_FASHION), reason="scripts/test.sh installs it")
def test_real_fashion_mnist_files():
    train_split = input_pipeline.Split(*idx.load_fashion_mnist(REAL_FASHION, "train"))
    test_split = input_pipeline.Split(*idx.load_fashion_mnist(REAL_FASHION, "test"))
    assert train_split.images.shape == (60000, 28, 28, 1)
    assert test_split.images.shape == (10000, 28, 28, 1)
    assert np.bincount(train_split.labels).tolist() == [6000] * 10  # the published balance
    assert np.bincount(test_split.labels).tolist() == [1000] * 10


def test_a_validation_split_held_out_of_the_idx_training_files(tmp_path):
    images = tiny.fake_fashion(tmp_path, n_train=32, n_test=21)["train"]
    c = _config(str(tmp_path), **{"input.train_limit": 24, "input.eval_split": "train[24:]"})
    data = input_pipeline.create(c)
    assert (data.num_train, data.num_eval) == (24, 8)
    held = input_pipeline.load(c.input, "train[24:]")
    np.testing.assert_array_equal(held.images, images[24:])
    np.testing.assert_array_equal(input_pipeline.load(c.input, "train[:-8]").images, images[:24])
    for split, message in (
        ("train[40:]", r"eval_split='train\[40:\]' holds no images: 'train' has 32; fix the"),
        ("validation", r"eval_split='validation' does not exist; .* sliced as 'train\[55000:\]'"),
        ("train[:5%]", r"eval_split='train\[:5%\]' does not exist"),
        ("train[-:]", r"eval_split='train\[-:\]' does not exist"),
    ):
        c.input.eval_split = split
        with pytest.raises(ValueError, match=message):
            input_pipeline.create(c)


def test_training_batches_are_a_seeded_permutation_and_resume_exactly(tiny_fashion):
    c = _config(tiny_fashion)
    split = input_pipeline.load(c.input, "train")
    ident = lambda x: x  # noqa: E731
    it = input_pipeline.train_batches(
        split, global_batch=8, seed=3, start_step=0, input_size=28, normalize=ident
    )
    first = [next(it) for _ in range(8)]  # two epochs of 4 steps
    assert first[0]["image"].shape == (8, 28, 28, 1)  # [B, H, W, C]: the steps split it
    epoch0 = np.concatenate([b["label"].reshape(-1) for b in first[:4]])
    assert sorted(epoch0.tolist()) == sorted(split.labels.tolist())  # each example once
    epoch1 = np.concatenate([b["label"].reshape(-1) for b in first[4:]])
    assert not np.array_equal(epoch0, epoch1)  # a new order each epoch
    resumed = input_pipeline.train_batches(
        split, global_batch=8, seed=3, start_step=6, input_size=28, normalize=ident
    )
    for want in first[6:]:
        got = next(resumed)
        np.testing.assert_array_equal(got["image"], want["image"])


def test_the_background_reader_ends_with_its_consumer():
    """A run that stops early (or a test) must not leave the reader thread holding the split."""
    ended = threading.Event()

    def forever():
        try:
            yield from itertools.count()
        finally:
            ended.set()

    it = input_pipeline.background(forever(), size=2)
    assert [next(it), next(it)] == [0, 1]
    it.close()
    assert ended.wait(10)


def test_evaluation_counts_every_example_once(tiny_fashion):
    """21 test images in batches of 8: padded, masked, equal to numpy top-k."""
    c = _config(tiny_fashion)
    state = train.create_state(c, jax.random.key(0))
    split = input_pipeline.load(c.input, "test")
    normalize = input_pipeline.normalizer(c.input, input_pipeline.load(c.input, "train"))
    plan = tiny.plan(c)
    batches = input_pipeline.eval_batches(split, global_batch=8, input_size=28, normalize=normalize)
    p_eval = plan.map(train.eval_step)
    got = train.evaluate_batches(plan, p_eval, plan.place(state), batches, len(split.labels))
    x = normalize(split.images.astype(np.float32))
    apply = jax.jit(state.apply_fn, static_argnames="train")  # one compile, not op by op
    logits = np.asarray(apply({"params": state.params}, x, train=False), np.float64)
    tiny.assert_ranks_apart(logits)
    order = np.argsort(-logits, axis=1)
    top1 = np.mean(order[:, 0] != split.labels)
    top5 = np.mean([y not in row[:5] for y, row in zip(split.labels, order, strict=True)])
    logp = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True))
    logp -= logits.max(1, keepdims=True)
    loss = -np.mean(logp[np.arange(21), split.labels])
    assert got["eval/top1_err"] == pytest.approx(top1, abs=1e-9)
    assert got["eval/top5_err"] == pytest.approx(top5, abs=1e-9)
    assert got["eval/loss"] == pytest.approx(loss, rel=1e-5)


@pytest.mark.multidevice
def test_device_prefetch_keeps_the_order_and_sends_ahead():
    sent = []

    def put(x):
        sent.append(x)
        return -x

    batches = parallel.prefetch(iter(range(6)), put, size=2)
    assert next(batches) == 0 and sent == [0, 1, 2]  # two batches on their way
    assert list(batches) == [-1, -2, -3, -4, -5] and sent == list(range(6))


@pytest.mark.multidevice
@pytest.mark.slow  # 3 train-step compiles
def test_pmap_and_data_take_the_one_device_steps():
    """Three steps with dropout on: jax.pmap and shard_map run the same per-device step, so
    they agree to 1e-6, and both equal one device on the whole batch (masks included).

    Computed in float64 (the parameters stay float32): in float32 a ReLU or max-pool near-tie
    that one summation order flips moves a gradient by ~1e-2 (tests/test_layouts.py)."""
    with jax.enable_x64(True):
        _pmap_data_and_one_device_steps()


def _pmap_data_and_one_device_steps():
    c = tiny.config(**{"model.dropout.rate": 0.5, "model.dtype": "float64"})
    state = tiny.train_state(c)
    step = functools.partial(train.train_step, dropout_key=jax.random.key(1))
    batches = [tiny.batch(c, n=8, seed=seed) for seed in range(3)]
    params = {}
    for name in ("pmap", "data", "one"):
        plan = (
            tiny.one_device(c) if name == "one" else tiny.plan(tiny.override(c, parallelism=name))
        )
        s, p_step = plan.place(state), plan.map(step, donate=True)
        for batch in batches:
            s, metrics = p_step(s, plan.batch(batch))
        params[name] = tiny.flat(plan.fetch(s).params)
        assert np.isfinite(plan.fetch(metrics)["train/loss"])
    initial = tiny.flat(state.params)
    for key, want in params["one"].items():
        assert tiny.rel(params["pmap"][key], params["data"][key]) < 1e-6, key
        assert tiny.rel(params["data"][key], want) < 1e-5, key
        assert tiny.rel(want, initial[key]) > 1e-4, key  # the steps moved it


@pytest.mark.multidevice
def test_batch_not_divisible_by_devices_is_one_line(tiny_fashion, tmp_path):
    # (130, the example, is divisible by 2; 129 is not)
    c = _config(tiny_fashion, **{"input.global_batch_size": 129})
    with pytest.raises(ValueError) as e:
        train.train_and_evaluate(c, str(tmp_path / "run"))
    assert str(e.value) == (
        "config.input.global_batch_size=129 is not divisible by the 2 model replicas of "
        "parallelism='data'; use a multiple of 2"
    )
    c = _config(tiny_fashion, **{"input.global_batch_size": 64})
    with pytest.raises(ValueError, match=r"global_batch_size=64 is larger than the 32 training"):
        train.train_and_evaluate(c, str(tmp_path / "run"))


def _final_params(workdir: str, config) -> dict:
    state = train.create_state(config, jax.random.key(0))
    mngr = checkpoint.create(workdir, config.checkpoint)
    state, plateau = checkpoint.restore(mngr, state, optim.Plateau(lr=0.0))
    mngr.close()
    return int(state.step), jax.device_get(state.params), plateau


@pytest.mark.slow
def test_resume_is_bit_identical(tiny_fashion, tmp_path):
    """6 steps straight == 3 steps, stop, resume for 3 more (an epoch end, eval, lr kept)."""
    straight = _config(tiny_fashion, max_steps=6)
    train.train_and_evaluate(straight, str(tmp_path / "a"))
    first = _config(tiny_fashion, max_steps=3)
    train.train_and_evaluate(first, str(tmp_path / "b"))
    train.train_and_evaluate(straight, str(tmp_path / "b"))
    step_a, params_a, plateau_a = _final_params(str(tmp_path / "a"), straight)
    step_b, params_b, plateau_b = _final_params(str(tmp_path / "b"), straight)
    assert step_a == step_b == 6
    assert plateau_a == plateau_b and plateau_a.best < 1.0  # the epoch-4 eval reached it
    for a, b in zip(jax.tree.leaves(params_a), jax.tree.leaves(params_b), strict=True):
        np.testing.assert_array_equal(a, b)
    with open(tmp_path / "b" / "metrics.jsonl") as f:
        steps = [int(line.split('"step": ')[1].split(",")[0]) for line in f]
    assert steps[:3] == [1, 2, 3] and 4 in steps[3:]  # the second part continued from step 4
    provenance = {}
    for run in ("a", "b"):
        with open(tmp_path / run / "provenance.json") as f:
            provenance[run] = json.load(f)
    assert provenance["a"]["earlier"] == []
    (first_part,) = provenance["b"]["earlier"]  # the first start's record is kept
    assert (
        first_part["wall_time_s"] > 0 and first_part["git_commit"] == provenance["b"]["git_commit"]
    )


def test_a_resume_that_changes_what_is_trained_is_one_line_and_changes_nothing(
    tiny_fashion, tmp_path
):
    """Fields that leave no trace in the state (decay_biases, the dropout rate, the pipeline)
    are checked against the run's config.json, and the run's files stay as they were; the
    schedule, max_steps, data paths, precision, fields an older config.json lacks, and the
    pipeline None named as the one it ran may change."""
    workdir = str(tmp_path / "run")
    train.train_and_evaluate(_config(tiny_fashion, max_steps=2), workdir)
    before = {n: (tmp_path / "run" / n).read_bytes() for n in ("config.json", "metrics.jsonl")}
    for changed, message in [
        ({"optim.decay_biases": False}, "config.optim.decay_biases=True (its config.json)"),
        ({"model.dropout.rate": 0.0}, "--config.model.dropout.rate=0.5, or use a new --workdir"),
        (
            {"input.pipeline": "synthetic"},
            "config.input.pipeline='memory' (its config.json) and --config has 'synthetic'",
        ),
        (  # was accepted: the plateau rule's best error came from the other images
            {"input.eval_limit": 16},
            "config.input.eval_limit=None (its config.json) and --config has 16; resume with",
        ),
        (  # no flag sets None back
            {"input.train_limit": 64},
            "has 64; resume with the --config file and :arg it was trained with, without "
            "--config.input.train_limit",
        ),
    ]:
        with pytest.raises(InputError, match="or use a new --workdir") as e:
            train.train_and_evaluate(_config(tiny_fashion, max_steps=4, **changed), workdir)
        assert message in str(e.value) and "\n" not in str(e.value)
        assert {n: (tmp_path / "run" / n).read_bytes() for n in before} == before
        assert os.listdir(tmp_path / "run" / "checkpoints") == ["2"]
    record = json.loads(before["config.json"])
    del record["optim"]["decay_biases"]  # as if written before the field existed
    (tmp_path / "run" / "config.json").write_text(json.dumps(record))
    moved = shutil.copytree(tiny_fashion, tmp_path / "moved")
    allowed = {
        "optim.decay_biases": False,
        "model.precision": "highest",
        "schedule.patience_epochs": 2,
        "input.pipeline": "memory",  # what None ran for Fashion-MNIST (pipeline_of)
    }
    got = train.train_and_evaluate(_config(str(moved), max_steps=4, **allowed), workdir)
    assert got["step"] == 4


@pytest.mark.parametrize(
    "field, value",
    [
        ("model.fc_features", (32, 32)),
        ("optim.frozen_layers", ("conv1",)),
        ("optim.low_lr_layers", ("fc6", "fc7")),
        ("model.dropout.rate", 0.25),
        ("input.normalize", "mean_std"),
    ],
)
def test_the_refused_resume_names_a_flag_that_gives_back_the_trained_value(tmp_path, field, value):
    """The fix in the refusal, split as a shell splits it, parses (cli) to what was trained."""
    (tmp_path / "checkpoints" / "2").mkdir(parents=True)
    trained = cli.load_config("configs/fashion_mnist.py")
    section, name = field.rsplit(".", 1)
    functools.reduce(getattr, section.split("."), trained)[name] = value
    (tmp_path / "config.json").write_text(trained.to_json_best_effort())
    with pytest.raises(InputError) as e:
        metrics.check_same_training(str(tmp_path), cli.load_config("configs/fashion_mnist.py"))
    fix = str(e.value).split("; resume with ", 1)[1].rsplit(", or use a new --workdir", 1)[0]
    argv = ["main", "--config=configs/fashion_mnist.py", "--workdir=x", *shlex.split(fix)]
    parsed = cli.parse(main.define_flags, argv).config
    assert functools.reduce(getattr, field.split("."), parsed) == value


def test_a_run_the_plateau_rule_ended_trains_on_when_resumed_with_a_larger_max_drops(
    tiny_fashion, tmp_path, capsys
):
    """threshold=1: only the first evaluation improves, so with patience 1 the rule ends the
    run after epoch 2 (max_drops=0). Resumed with max_drops=1, that plateau divides the lr and
    epoch 3 trains at base / 10 until the next plateau ends it (was: nothing trained, silently)."""
    c = _config(tiny_fashion, max_steps=None, num_epochs=5, log_every_steps=1)
    c.schedule.update(threshold=1.0, patience_epochs=1, cooldown_epochs=0, max_drops=0)
    train.train_and_evaluate(c, str(tmp_path))
    step, _, ended = _final_params(str(tmp_path), c)
    assert step == 8 and ended.done
    assert train._reopen("state", ended, c.schedule) == ("state", ended)  # the same schedule
    assert "ended this run after 0 divisions of the lr (config.schedule.max_drops=0): " in (
        capsys.readouterr().out  # says why nothing trains
    )
    c.schedule.max_drops = 1
    train.train_and_evaluate(c, str(tmp_path))
    assert "max_drops=1 divides the lr now" in capsys.readouterr().out
    with open(tmp_path / "metrics.jsonl") as f:
        lrs = {r["step"]: r["lr"] for r in map(json.loads, f) if "lr" in r}
    base = c.optim.base_lr
    np.testing.assert_allclose([lrs[s] for s in range(1, 13)], [base] * 8 + [base * 0.1] * 4)
    step, _, plateau = _final_params(str(tmp_path), c)
    assert step == 12 and plateau.drops == 1 and plateau.done


def test_fixed_schedule_divides_the_lr_after_the_listed_epoch(tiny_fashion, tmp_path):
    """drop_after_epochs=(1,): epoch 1 at the base rate, epoch 2 at base * factor, whatever the
    validation error says (4 steps per epoch here)."""
    c = _config(tiny_fashion, max_steps=8, log_every_steps=1)
    c.schedule.drop_after_epochs = (1,)
    train.train_and_evaluate(c, str(tmp_path))
    with open(tmp_path / "metrics.jsonl") as f:
        lrs = {r["step"]: r["lr"] for r in map(json.loads, f) if "lr" in r}
    base = c.optim.base_lr
    np.testing.assert_allclose([lrs[s] for s in range(1, 9)], [base] * 4 + [base * 0.1] * 4)
    _, _, plateau = _final_params(str(tmp_path), c)
    assert plateau.drops == 1 and not plateau.done


def _main(*args: str, **popen) -> subprocess.Popen:
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="", PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "alexnet_jax.main", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def test_a_second_ctrl_c_interrupts_at_once():
    """The first SIGINT asks for a save at the next step; a second one does not wait for it."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # Python's own
    stop = train._StopRequested(every=1)
    try:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.now(0) and stop.signum == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):  # was ignored: only kill -9 ended a stuck run
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        stop.restore()
        signal.signal(signal.SIGINT, before)


def test_a_run_that_fails_before_its_first_step_leaves_the_signal_handlers_as_they_were(
    tiny_fashion, tmp_path, monkeypatch
):
    """They were left set when the loop's parts failed after the handlers (data, StuckLoss), so
    a later Ctrl-C in that process was swallowed by the dead run's flag."""
    before = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)]

    def fails(*args):
        raise InputError("a bad field")

    monkeypatch.setattr(metrics, "StuckLoss", fails)
    with pytest.raises(InputError, match="a bad field"):
        train.train_and_evaluate(_config(tiny_fashion, max_steps=2), str(tmp_path))
    assert [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)] == before


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_exits_0_and_resumes(tiny_fashion, tmp_path):
    workdir = str(tmp_path / "run")
    args = [
        "--config=configs/fashion_mnist.py:smoke",
        f"--workdir={workdir}",
        f"--config.input.data_dir={tiny_fashion}",
        "--config.checkpoint.every_steps=100000",
    ]
    proc = _main(*args, "--config.max_steps=100000")
    for line in proc.stdout:
        if line.startswith("step 5/"):
            break
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)  # stops at the next step, not after 100,000
    assert proc.returncode == 0, err[-2000:]
    assert "stopped by signal 15" in out
    step, params, _ = _final_params(workdir, _config(tiny_fashion))
    assert step >= 5 and all(np.isfinite(p).all() for p in jax.tree.leaves(params))
    proc = _main(*args, f"--config.max_steps={step + 2}")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    assert f"at step {step}" in out and f"step {step + 2}/{step + 2}" in out


@pytest.mark.slow
def test_nan_loss_stops_in_one_line_and_keeps_the_last_good_checkpoint(tiny_fashion, tmp_path):
    workdir = str(tmp_path / "run")
    proc = _main(
        "--config=configs/fashion_mnist.py:smoke",
        f"--workdir={workdir}",
        f"--config.input.data_dir={tiny_fashion}",
        "--config.max_steps=50",
        "--config.checkpoint.every_steps=1",
        "--config.optim.base_lr=1e12",
    )
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: non-finite training loss") and "at step" in last
    bad_step = int(last.split("at step ")[1].split(";")[0])
    assert "Traceback" not in err
    step, params, _ = _final_params(workdir, _config(tiny_fashion))
    assert step == bad_step - 1
    assert all(np.isfinite(p).all() for p in jax.tree.leaves(params))


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir(REAL_FASHION), reason="scripts/test.sh installs it")
def test_end_to_end_on_real_fashion_mnist(tmp_path):
    """A short real run: loss falls, files agree, the final table is the last evaluation."""
    workdir = str(tmp_path / "run")
    proc = _main(
        "--config=configs/fashion_mnist.py",
        f"--workdir={workdir}",
        "--config.input.train_limit=2048",
        "--config.input.eval_limit=1000",
        "--config.input.global_batch_size=64",
        "--config.log_every_steps=8",
        "--config.num_epochs=2",
        "--config.optim.base_lr=0.02",
    )
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    losses = [r["train/loss"] for r in rows if "train/loss" in r]
    assert np.isfinite(losses).all() and losses[-1] < 0.8 * losses[0]
    evals = [r for r in rows if "eval/top1_err" in r]
    assert [r["step"] for r in evals] == [32, 64]  # after every epoch
    assert evals[-1]["eval/top1_err"] < 0.5  # far better than chance (0.9)
    with open(os.path.join(workdir, "results.md")) as f:
        assert f"{evals[-1]['eval/top1_err']:.4f}" in f.read()
    with open(os.path.join(workdir, "config.json")) as f:
        config = json.load(f)
    assert config["optim"]["base_lr"] == 0.02  # the override reached the run...
    assert rows[0]["lr"] == pytest.approx(0.02)  # ...and the optimizer
    with open(os.path.join(workdir, "provenance.json")) as f:
        prov = json.load(f)
    assert prov["git_commit"] and "alexnet_jax.main" in prov["command"] and prov["wall_time_s"] > 0
    assert ocp.CheckpointManager(os.path.join(workdir, "checkpoints")).latest_step() == 64
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(workdir))


def test_the_commit_on_a_machine_without_git_comes_from_the_sender(monkeypatch, tmp_path):
    """A GPU box gets a copy of the tree, without .git and maybe without git: provenance takes
    $ALEXNET_GIT_COMMIT."""
    real = subprocess.run

    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    def not_a_checkout(cmd, **kwargs):  # the real git, run in a directory outside any checkout
        return real([*cmd[:2], str(tmp_path), *cmd[3:]], **kwargs)

    for run in (no_git, not_a_checkout):
        monkeypatch.setattr(metrics.subprocess, "run", run)
        monkeypatch.setenv("ALEXNET_GIT_COMMIT", "ef75353")
        assert metrics._git_commit() == "ef75353"
        monkeypatch.delenv("ALEXNET_GIT_COMMIT")
        assert metrics._git_commit() == "unknown"


def test_tfds_source_reads_any_tfds_dataset_by_name():
    import tensorflow_datasets as tfds

    c = load_config("fashion_mnist", "smoke").input
    c.source = "tfds"
    with tfds.testing.mock_data(num_examples=12):
        split = input_pipeline.load(c, "train")
    assert split.images.shape == (12, 28, 28, 1) and split.images.dtype == np.uint8
    assert split.labels.shape == (12,) and split.labels.max() < 10
    c.dataset = "no_such_dataset"
    with pytest.raises(
        ValueError, match="TFDS does not know config.input.dataset='no_such_dataset'"
    ):
        input_pipeline.load(c, "train")


def test_tfds_splits_take_slices_by_their_split_name():
    from types import SimpleNamespace

    from alexnet_jax import sources

    info = SimpleNamespace(splits={"train": SimpleNamespace(num_examples=60000), "test": None})
    b = SimpleNamespace(name="fashion_mnist", info=info)
    sources.check_split(b, "train[55000:]", "config.input.eval_split")  # a held-out slice
    with pytest.raises(ValueError, match=r"'valid\[5:\]': fashion_mnist has no split 'valid';"):
        sources.check_split(b, "valid[5:]", "config.input.eval_split")
    assert sources.split_spec(b, "train", 100) == "train[:100]"
    assert sources.split_spec(b, "train[55000:]", None) == "train[55000:]"
    with pytest.raises(ValueError, match=r"limit of 100 images on the sliced split 'train\[55"):
        sources.split_spec(b, "train[55000:]", 100)


def test_stuck_loss_warns_once_after_the_configured_steps_and_not_for_a_falling_loss():
    from alexnet_jax import metrics

    chance = np.log(10)
    stuck = metrics.StuckLoss(num_classes=10, steps=3)
    said = [stuck.update(i, chance * (1 + 0.005 * (-1) ** i)) for i in range(1, 6)]
    assert said[:2] == [None, None] and said[3:] == [None, None]  # once, at the third step
    assert said[2].startswith("warning: the training loss has stayed at ln(10) = 2.303")
    assert "--config.model.init.scheme=pytorch" in said[2] and "\n" not in said[2]
    falling = metrics.StuckLoss(num_classes=10, steps=3)
    # within 1% at steps 1, 2 and 4, but never 3 in a row: a net that learns
    losses = [chance, chance * 0.995, chance * 0.95, chance * 1.001, chance * 0.9, chance * 0.8]
    assert all(falling.update(i, loss) is None for i, loss in enumerate(losses, 1))
    assert metrics.StuckLoss(num_classes=10, steps=0).update(1, chance) is None  # off
    # window means: a flat loss whose single batches scatter by 3% is still seen as flat
    windows = metrics.StuckLoss(num_classes=10, steps=150)
    said = [windows.update(step, chance * 1.004, window=10) for step in range(10, 200, 10)]
    assert said.index(next(filter(None, said))) == 14  # step 150: steps 1..150 are flat
    assert "for 150 steps (since step 1)" in said[14]


def test_a_net_that_cannot_learn_gets_the_one_line_warning(tiny_fashion, tmp_path, capsys):
    """Sec. 5's init trap in miniature: weights so small that the logits stay ~0, the loss at
    ln(10), whatever the (tiny) learning rate does."""
    c = tiny.override(
        tiny.config(),
        **{
            "input.data_dir": tiny_fashion,
            "input.train_limit": None,
            "input.eval_limit": None,
            "model.init.scheme": "gaussian",
            "model.init.weight_std": (1e-4,) * 8,
            "model.init.bias": (0.0,) * 8,
            "optim.base_lr": 1e-6,
            "warn_stuck_steps": 3,
        },
    )
    train.train_and_evaluate(c, str(tmp_path / "run"))
    warnings = [line for line in capsys.readouterr().err.splitlines() if "not learning" in line]
    assert len(warnings) == 1 and "for 3 steps (since step 1)" in warnings[0]
