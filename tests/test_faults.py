"""Faults during a run: kill -9 (mid-save and between steps), SIGTERM during an evaluation and
during a save, a damaged newest checkpoint, no space left during a save, a changed model, two
runs on one workdir. Each resumes to the bit-identical end, or stops in one line.

Cheap by construction: a tiny net, 8 steps of 8 examples, and XLA's persistent compilation
cache shared by this process and the two killed subprocesses, so the step compiles once.
"""

import errno
import functools
import json
import os
import shutil
import subprocess
import sys

import jax
import ml_collections
import numpy as np
import pytest

from alexnet_jax import checkpoint, cli, errors, main, metrics, optim, train
from tests import tiny

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A driver for the subprocesses: `python -c DRIVER FAULT STEP ARGV...` runs the program with a
# fault injected at STEP.
DRIVER = """
import os, signal, sys
from orbax.checkpoint._src.path import atomicity
from alexnet_jax import checkpoint, cli, main
fault, at = sys.argv[1], int(sys.argv[2])
finalize, save = atomicity.AtomicRenameTemporaryPath.finalize, checkpoint.save
async def kill_before_rename(self):  # the step's files are written, Orbax has not renamed them
    if self._final_path.name == str(at):
        os.kill(os.getpid(), signal.SIGKILL)
    return await finalize(self)
def kill_after_save(mngr, state, *a, **k):  # between a save and the next step
    save(mngr, state, *a, **k)
    if int(state.step) == at:
        os.kill(os.getpid(), signal.SIGKILL)
if fault == "kill_in_save":
    atomicity.AtomicRenameTemporaryPath.finalize = kill_before_rename
if fault == "kill_after_save":
    checkpoint.save = kill_after_save
cli.run(main.define_flags, main.main, ["main", *sys.argv[3:]])
"""


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """XLA's persistent compilation cache, here and in the subprocesses (they inherit env)."""
    from jax._src import compilation_cache

    directory = str(tmp_path_factory.mktemp("xla_cache"))
    settings = {
        "jax_compilation_cache_dir": directory,
        "jax_persistent_cache_min_compile_time_secs": 0.0,
        "jax_persistent_cache_min_entry_size_bytes": 0,
    }
    old = {k: getattr(jax.config, k) for k in settings}
    for k, v in settings.items():
        jax.config.update(k, v)
    compilation_cache.reset_cache()  # so that this process opens the new directory
    yield {k.upper(): str(v) for k, v in settings.items()}
    for k, v in old.items():
        jax.config.update(k, v)
    compilation_cache.reset_cache()


def _argv(workdir: str, data: str) -> list[str]:
    return [
        "--config=configs/fashion_mnist.py:smoke",
        f"--workdir={workdir}",
        f"--config.input.data_dir={data}",
        "--config.input.train_limit=16",  # 2 steps an epoch
        "--config.input.eval_limit=8",
        "--config.model.conv.features=(8,16,24,24,16)",
        "--config.model.fc_features=(32,32)",
        "--config.max_steps=8",
        "--config.checkpoint.every_steps=2",
    ]


def _run(argv: list[str]) -> dict:
    return cli.run(main.define_flags, main.main, ["main", *argv])


def _subprocess(cache: dict, fault: str, step: int, argv: list[str]):
    env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2", **cache)
    cmd = [sys.executable, "-c", DRIVER, fault, str(step), *argv]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def _steps(workdir: str) -> list[str]:
    return sorted(os.listdir(os.path.join(workdir, "checkpoints")))


@pytest.mark.slow
def test_kills_sigterms_and_a_damaged_checkpoint_resume_to_the_same_end(
    tmp_path, cache, monkeypatch, capsys
):
    data = str(tmp_path / "data")
    tiny.fake_fashion(data, n_train=32, n_test=8)
    ref, run = str(tmp_path / "ref"), str(tmp_path / "run")
    straight = _run(_argv(ref, data))

    # kill -9 after step 4's files are written, before Orbax renames them: 2 stays the latest
    r = _subprocess(cache, "kill_in_save", 4, _argv(run, data))
    assert r.returncode == -9, r.stderr[-2000:]
    assert "4" not in _steps(run) and "4.orbax-checkpoint-tmp" in " ".join(_steps(run))
    # kill -9 between steps (right after step 4's save)
    r = _subprocess(cache, "kill_after_save", 4, _argv(run, data))
    assert r.returncode == -9 and "resumed from" in r.stdout and "at step 2" in r.stdout
    assert "4" in _steps(run)

    # SIGTERM during the evaluation at step 6: the evaluation ends, step 6 is saved, exit 0
    def term_in_eval(*a, evaluate=train.evaluate_batches):
        os.kill(os.getpid(), 15)
        return evaluate(*a)

    with monkeypatch.context() as m:
        m.setattr(train, "evaluate_batches", term_in_eval)
        _run(_argv(run, data))
    assert "stopped by signal 15 at step 6" in capsys.readouterr().out

    # SIGTERM during the save at step 8 (the last): the save completes and, nothing being
    # left to do, the run ends as finished (not "stopped", which would ask for a rerun)
    def term_in_save(mngr, state, *a, save=checkpoint.save):
        if int(state.step) == 8:
            os.kill(os.getpid(), 15)
        save(mngr, state, *a)

    with monkeypatch.context() as m:
        m.setattr(checkpoint, "save", term_in_save)
        _run(_argv(run, data))
    assert "stopped by signal" not in capsys.readouterr().out
    with open(os.path.join(run, "provenance.json")) as f:
        assert json.load(f)["final"]["step"] == 8

    # the newest checkpoint damaged: moved aside and named, step 6 restores, same end
    arrays = os.path.join(run, "checkpoints", "8", "state", "d")
    for name in os.listdir(arrays):
        with open(os.path.join(arrays, name), "wb") as f:
            f.write(os.urandom(100))
    with open(os.path.join(run, "metrics.jsonl"), "a") as f:
        f.write('{"step": 9, "train/lo')  # and a row cut short by a kill
    end = _run(_argv(run, data))
    out = capsys.readouterr()
    [warning] = [line for line in out.err.splitlines() if line.startswith("warning:")]
    assert f"checkpoint {run}/checkpoints/8 does not restore" in warning
    assert f"moved it to {run}/checkpoints/8.damaged" in warning
    assert "8.damaged" in _steps(run) and "at step 6" in out.out

    assert end == straight
    got, want = checkpoint.read(run), checkpoint.read(ref)
    assert got[1] == want[1] == 8
    for a, b in zip(jax.tree.leaves(got[0]), jax.tree.leaves(want[0]), strict=True):
        np.testing.assert_array_equal(a, b)  # bit for bit
    # metrics.jsonl holds each row once, as the run never stopped: what the killed starts
    # logged past their last checkpoint was dropped when the next start resumed
    timing = ("wall_s", "images_per_sec", "data_wait")
    rows = {}
    for d in (run, ref):
        with open(os.path.join(d, "metrics.jsonl")) as f:
            rows[d] = [{k: v for k, v in json.loads(ln).items() if k not in timing} for ln in f]
    assert rows[run] == rows[ref] and len(rows[ref]) > 8

    def wider(workdir: str) -> str:  # a changed model on the workdir: exit 2, the last line
        with pytest.raises(SystemExit) as e:
            _run([a.replace("(32,32)", "(64,64)") for a in _argv(workdir, data)])
        assert e.value.code == 2
        return capsys.readouterr().err.strip().splitlines()[-1]

    # on this workdir: one line naming the changed field (its config.json) ...
    assert wider(run) == (
        f"error: the run in {run} was trained with config.model.fc_features=[32, 32] (its "
        "config.json) and --config has [64, 64]; resume with "
        "--config.model.fc_features='(32, 32)', or use a new --workdir"
    )
    # ... and where only its checkpoints are kept, the first differing layer
    bare = str(tmp_path / "bare")
    shutil.copytree(f"{run}/checkpoints", f"{bare}/checkpoints")
    assert wider(bare) == (
        f"error: checkpoint {bare}/checkpoints/8 does not fit --config (another model wrote "
        "it): params['fc6']['bias'] is (32,) there and (64,) in the config; use the config it "
        "was trained with, or a new --workdir to train this one"
    )


def _manager(tmp_path, steps=(1, 2, 3)):
    mngr = checkpoint.create(str(tmp_path), ml_collections.ConfigDict(dict(keep=5)))
    for s in steps:
        checkpoint.save(mngr, tiny.small_state(s, float(s)), optim.Plateau(lr=0.01, drops=s))
    return mngr


@pytest.mark.parametrize("damage", ["truncated", "corrupt", "missing_state", "schedule_json"])
def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(tmp_path, capsys, damage):
    mngr = _manager(tmp_path)
    newest = tmp_path / "checkpoints" / "3"
    arrays = [p for p in (newest / "state").rglob("*") if p.is_file() and p.parent.name == "d"]
    if damage == "truncated":
        for p in arrays:
            os.truncate(p, p.stat().st_size // 2)
    elif damage == "corrupt":
        for p in arrays:
            p.write_bytes(os.urandom(p.stat().st_size))
    elif damage == "missing_state":
        for p in (newest / "state").rglob("*"):
            if p.is_file():
                p.unlink()
    else:
        (newest / "schedule" / "metadata").write_bytes(b"\xa3 not json")
    state, plateau = checkpoint.restore(mngr, tiny.small_state(0, 0.0), optim.Plateau(lr=0.01))
    assert int(state.step) == 2 and plateau.drops == 2
    np.testing.assert_array_equal(state.params["fc8"]["kernel"], np.full((3, 2), 2.0))
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"warning: checkpoint {newest} does not restore (")
    assert os.path.isdir(f"{newest}.damaged") and mngr.all_steps() == [1, 2]
    mngr.close()


@pytest.mark.parametrize("damaged, text", [(3, None), (1, b'{"eval/top1_err": "x"}')])
def test_a_checkpoint_whose_metrics_file_is_damaged_is_moved_aside_as_the_run_opens(
    tmp_path, capsys, damaged, text
):
    """Orbax's manager parses every step's metrics (best_fn) as it opens, and BestN reads the
    number in them at the next save: a truncated file, or JSON without that number, in the
    newest step or an older one, is moved aside in one line, not a traceback that blocks every
    resume of the workdir; the run restores the newest other step and saves on."""
    c = ml_collections.ConfigDict(dict(keep=5))
    mngr = checkpoint.create(str(tmp_path), c)
    for s in (1, 2, 3):
        plateau = optim.Plateau(lr=0.01, drops=s)
        checkpoint.save(mngr, tiny.small_state(s, float(s)), plateau, {"eval/top1_err": 1 / s})
    mngr.close()
    step_dir = tmp_path / "checkpoints" / str(damaged)
    path = step_dir / "metrics" / "metrics"
    if text is None:
        os.truncate(path, path.stat().st_size // 2)
    else:
        path.write_bytes(text)
    mngr = checkpoint.create(str(tmp_path), c)
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"warning: checkpoint {step_dir} has a damaged metrics file (")
    assert line.endswith(f"moved it to {step_dir}.damaged")
    assert mngr.all_steps() == [s for s in (1, 2, 3) if s != damaged]
    state, plateau = checkpoint.restore(mngr, tiny.small_state(0, 0.0), optim.Plateau(lr=0.01))
    assert int(state.step) == plateau.drops == max({1, 2, 3} - {damaged})
    checkpoint.save(mngr, tiny.small_state(4, 4.0), optim.Plateau(lr=0.01), {"eval/top1_err": 0.1})
    assert mngr.all_steps()[-1] == 4 and os.path.isdir(f"{step_dir}.damaged")
    mngr.close()


def _raises(error: Exception):
    def raise_(*args, **kwargs):
        raise error

    return raise_


def _empty_arrays(tmp_path, step: int) -> None:
    for p in (tmp_path / "checkpoints" / str(step) / "state").rglob("*"):
        if p.is_file() and p.parent.name == "d":
            p.write_bytes(b"")


def test_the_newer_checkpoints_are_moved_aside_only_once_an_older_one_restores(
    tmp_path, capsys, monkeypatch
):
    """Steps 3 and 2 damaged: 1 restores, then both are moved aside. When none restores, as
    under an I/O error or another Orbax, nothing is moved and the error names the steps."""
    mngr = _manager(tmp_path, steps=(1, 2, 3))
    with monkeypatch.context() as m:
        m.setattr(mngr, "restore", _raises(OSError(errno.EIO, os.strerror(errno.EIO))))
        with pytest.raises(errors.InputError) as e:
            checkpoint.restore(mngr, tiny.small_state(0, 0.0), optim.Plateau(lr=0.01))
    d = tmp_path / "checkpoints"
    assert str(e.value) == (
        f"no checkpoint in {d} restores (steps 3, 2, 1; the newest does not restore ([Errno 5] "
        "Input/output error)); nothing was moved: if orbax-checkpoint or the filesystem "
        "changed since they were written, undo that and rerun; if they are damaged, use a new "
        "--workdir to start from step 0"
    )
    assert sorted(os.listdir(d)) == ["1", "2", "3"] and capsys.readouterr().err == ""
    for step in (2, 3):
        _empty_arrays(tmp_path, step)
    state, plateau = checkpoint.restore(mngr, tiny.small_state(0, 0.0), optim.Plateau(lr=0.01))
    assert int(state.step) == plateau.drops == 1
    assert sorted(os.listdir(d)) == ["1", "2.damaged", "3.damaged"] and mngr.latest_step() == 1
    warnings = capsys.readouterr().err.splitlines()
    assert [w.split(";")[-1] for w in warnings] == [
        f" moved it to {d}/3.damaged",
        f" moved it to {d}/2.damaged",
    ]
    checkpoint.save(mngr, tiny.small_state(2, 2.0), optim.Plateau(lr=0.01))  # step 2 again
    assert mngr.all_steps() == [1, 2]
    mngr.close()


def test_no_space_while_logging_is_one_line(tmp_path, monkeypatch):
    """ENOSPC appending to metrics.jsonl, writing results.md, or raised again by TensorBoard's
    writer thread is one line naming the workdir and the fix; another OSError keeps its
    traceback."""
    run = metrics.Run(str(tmp_path), ml_collections.ConfigDict(dict(seed=0)))
    run.write(1, {"train/loss": 1.0})

    def fails(code):
        return _raises(OSError(code, os.strerror(code)))

    full = (
        f"the disk of {tmp_path} is full (writing the run's logs: No space left on device); "
        "free space and rerun with the same --workdir, which resumes from its last checkpoint"
    )
    write, finish = (
        functools.partial(run.write, 2, {"train/loss": 0.5}),
        functools.partial(run.finish, _SUMMARY),
    )
    for target, name, calls in [
        (metrics._Events, "__call__", [write]),
        (run.events, "flush", [finish]),
        (metrics, "open", [write, finish]),
    ]:
        with monkeypatch.context() as patch:
            patch.setattr(target, name, fails(errno.ENOSPC), raising=False)
            for call in calls:
                with pytest.raises(errors.InputError) as e:
                    call()
                assert str(e.value) == full
    monkeypatch.setattr(metrics, "open", fails(errno.EACCES), raising=False)
    with pytest.raises(PermissionError):
        run.write(2, {"train/loss": 0.5})


_SUMMARY = {"step": 2, "epoch": 1.0, "eval/top1_err": 0.5, "eval/top5_err": 0.1, "eval/loss": 1.0}


def test_no_space_during_a_save_is_one_line_and_keeps_the_last_good_checkpoint(
    tmp_path, monkeypatch
):
    """ENOSPC injected where Orbax finalizes a step (its files written, not yet renamed)."""
    from orbax.checkpoint._src.path import atomicity

    mngr = _manager(tmp_path, steps=(1, 2))
    finalize = atomicity.AtomicRenameTemporaryPath.finalize

    async def full_disk(self):
        if self._final_path.name == "3":
            raise OSError(errno.ENOSPC, "No space left on device")
        return await finalize(self)

    monkeypatch.setattr(atomicity.AtomicRenameTemporaryPath, "finalize", full_disk)
    with pytest.raises(errors.InputError) as e:
        checkpoint.save(mngr, tiny.small_state(3, 3.0), optim.Plateau(lr=0.01))
    d = tmp_path / "checkpoints"
    assert str(e.value) == (
        f"no space left in {d} while saving step 3; the last good checkpoint is step 2; free "
        "space and rerun with the same --workdir to resume"
    )
    assert sorted(os.listdir(d)) == ["1", "2"]  # the half-written step removed, the rest kept
    mngr.close()
    monkeypatch.undo()  # space is back: the rerun resumes from step 2 and saves again
    mngr = checkpoint.create(str(tmp_path), ml_collections.ConfigDict(dict(keep=5)))
    state, plateau = checkpoint.restore(mngr, tiny.small_state(0, 0.0), optim.Plateau(lr=0.01))
    assert int(state.step) == 2 and plateau.drops == 2
    checkpoint.save(mngr, tiny.small_state(3, 3.0), optim.Plateau(lr=0.01))
    assert mngr.all_steps() == [1, 2, 3]
    mngr.close()


def test_real_tensorstore_no_space_error_is_recognised():
    e = ValueError(
        'RESOURCE_EXHAUSTED: Failed writing: "/x/7.orbax-checkpoint-tmp/state/d/a": Failed to '
        "write 496 bytes to file 6: No space left on device [os_error_code='28']"
    )  # what Orbax 0.12.8 raised on a full 400 KB tmpfs
    assert checkpoint._no_space(e) and not checkpoint._no_space(ValueError("OUT_OF_RANGE"))


def test_read_params_is_the_one_reader(tmp_path):
    _manager(tmp_path).close()
    for path, which, step in (
        (tmp_path, "latest", 3),
        (tmp_path / "checkpoints", 2, 2),
        (tmp_path / "checkpoints" / "1", "latest", 1),
    ):
        params = checkpoint.read_params(str(path), which)
        np.testing.assert_array_equal(params["fc8"]["kernel"], np.full((3, 2), float(step)))
    with pytest.raises(errors.InputError, match=r"has steps \[1, 2, 3\]"):
        checkpoint.read_params(str(tmp_path), 7)
    wrong = {"fc8": {"kernel": np.zeros((4, 2)), "bias": np.zeros(2)}}
    with pytest.raises(errors.InputError, match=r"params\['fc8'\]\['kernel'\] is \(3, 2\) there"):
        checkpoint.read_params(str(tmp_path), template=wrong)


def test_one_live_run_per_workdir(tmp_path):
    """The lock is the kernel's: a second holder is refused while the first lives, and a
    killed holder (its file closed by the kernel) leaves nothing stale."""
    code = (
        "import sys, time\nfrom alexnet_jax import checkpoint\n"
        "with checkpoint.lock_workdir(sys.argv[1]):\n    print('held', flush=True)\n"
        "    time.sleep(60)\n"
    )
    p = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert p.stdout.readline().strip() == "held"
        with pytest.raises(errors.InputError) as e, checkpoint.lock_workdir(str(tmp_path)):
            pass
        assert str(e.value).startswith(f"--workdir={tmp_path} is in use by pid {p.pid} on ")
        assert f"-c {tmp_path}" in str(e.value)  # the first process's command
    finally:
        p.kill()
        p.wait()
    with checkpoint.lock_workdir(str(tmp_path)):  # kill -9 left no stale lock
        pass
