"""Orbax checkpoints of the whole run, and the only code here that touches Orbax.

A checkpoint holds the train state (params, optimizer state with its learning rate, step) and a
JSON part (the plateau schedule's state). Data order and dropout keys are functions of the
config's seed and the step, so nothing else is needed to resume a run exactly. Orbax writes each
step into a temporary directory and renames it when complete: a crash or kill -9 mid-save
leaves the previous checkpoint as the latest restorable one.

Faults, each one line: a damaged newest checkpoint (truncated, corrupt, pieces missing) is
moved aside to STEP.damaged and the newest one that restores is used; so is any step whose
metrics file (Orbax parses every step's as the manager opens) is damaged; a checkpoint of another
model names the first differing layer, one of another optimizer (rule, momentum, weight decay)
the first difference, and a resume whose config changes what the run trains
(metrics.check_same_training, against its config.json) the first changed field; none of them
moves anything. A full disk during a save names the directory and the last good step.
`lock_workdir` allows one live run per workdir.
"""

import contextlib
import dataclasses
import errno
import json
import logging
import os
import re
import shutil
import sys

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers

from alexnet_jax import files, optim
from alexnet_jax.errors import InputError, MissingFileError, one_line

BEST_METRIC = "eval/top1_err"
LOCK_FILE = files.LOCK_FILE

# Mid-epoch checkpoints have no evaluation: Orbax's warning about that would print at every one;
# reading metadata without a handler registry warns per item (we read only the state's); a
# full disk is logged with a traceback by each of Orbax's writer threads (save() says it once).
_QUIET = (
    "did not provide metrics",
    "could not be restored",
    "Metadata file does not exist",
    "Failed to get item metadata",
    "No space left on device",
)
logging.getLogger("absl").addFilter(lambda r: not any(q in r.getMessage() for q in _QUIET))


def _quiet_closed_loop(unraisable, default=sys.unraisablehook) -> None:
    """After a failed read or write, tensorstore's late callbacks hit the event loop Orbax has
    closed, each printing a RuntimeError traceback. Those alone are dropped."""
    e = unraisable.exc_value
    if not (isinstance(e, RuntimeError) and str(e) == "Event loop is closed"):
        default(unraisable)


sys.unraisablehook = _quiet_closed_loop

# What Orbax/tensorstore raise for a step whose files are truncated, corrupt or missing
# (observed: ValueError "OUT_OF_RANGE/NOT_FOUND/DATA_LOSS: Error reading ...", KeyError
# 'Item "state" was not found', UnicodeDecodeError/JSONDecodeError, FileNotFoundError).
_DAMAGE = (ValueError, KeyError, OSError)


def create(workdir: str, c: ml_collections.ConfigDict) -> ocp.CheckpointManager:
    """`config.checkpoint` -> a manager of WORKDIR/checkpoints keeping the last `keep` + best."""
    policy = checkpoint_managers.AnyPreservationPolicy(
        [
            checkpoint_managers.LatestN(c.keep),
            checkpoint_managers.BestN(
                get_metric_fn=lambda m: m[BEST_METRIC],
                reverse=True,  # lower error is better
                n=1,
                keep_checkpoints_without_metrics=False,
            ),
        ]
    )
    options = ocp.CheckpointManagerOptions(
        preservation_policy=policy,
        # best_fn makes Orbax write each step's metrics next to it, so BestN still knows the
        # best after a restart (without it a resumed run deleted the old best checkpoint).
        best_fn=lambda m: m[BEST_METRIC],
        best_mode="min",
        enable_async_checkpointing=False,
        create=True,
    )
    directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
    for step, e in _unreadable_metrics(directory):  # Orbax reads them all as it opens
        _move_aside(directory, step, f"has a damaged metrics file ({one_line(e)})")
    return ocp.CheckpointManager(directory, options=options)


def steps(directory: str) -> list[int]:
    """The steps in a checkpoints directory, named as Orbax names them (none if it is missing)."""
    names = os.listdir(directory) if os.path.isdir(directory) else []
    return sorted(int(n) for n in names if re.fullmatch(r"0|[1-9]\d*", n))


def _unreadable_metrics(directory: str):
    """(step, error) of each checkpoint whose metrics (best_fn's JSON) are not what `create`'s
    BestN reads: a number under BEST_METRIC."""
    for step in steps(directory):
        path = os.path.join(directory, str(step), "metrics", "metrics")
        try:
            with open(path, "rb") as f:
                m = json.loads(f.read())
            if m is not None and not isinstance(m.get(BEST_METRIC), (int, float)):
                raise ValueError(f"no number under {BEST_METRIC!r}")
        except FileNotFoundError:
            continue  # a step saved without metrics (mid-epoch)
        except (ValueError, AttributeError) as e:  # AttributeError: JSON that is not a dict
            yield step, e


def _tree(state) -> dict:
    return {"params": state.params, "opt_state": state.opt_state, "step": state.step}


def _no_space(e: BaseException) -> bool:
    if isinstance(e, OSError):
        return e.errno == errno.ENOSPC
    text = str(e)  # tensorstore: ValueError "RESOURCE_EXHAUSTED: ... [os_error_code='28']"
    return "RESOURCE_EXHAUSTED" in text or f"os_error_code='{errno.ENOSPC}'" in text


def save(
    mngr: ocp.CheckpointManager, state, plateau: optim.Plateau, metrics: dict | None = None
) -> None:
    """Saves `state` (host copy) and the schedule at `state.step`; blocks. Non-finite params
    are never saved: the last checkpoint stays the last good one.

    A full disk is one line (the directory, the last good step); every earlier checkpoint is
    left as it was, and Orbax's half-written STEP.orbax-checkpoint-tmp is removed (if a writer
    thread recreates it, restore ignores it and the next save of that step replaces it).
    """
    step = int(state.step)
    host = jax.device_get(_tree(state))
    for path, x in jax.tree_util.tree_leaves_with_path(host["params"]):
        if not np.isfinite(x).all():  # a finite loss can still give non-finite gradients
            raise FloatingPointError(
                f"non-finite params{jax.tree_util.keystr(path)} at step {step}, not saved; the "
                f"last good checkpoint is step {mngr.latest_step()} in {mngr.directory}"
            )
    try:
        mngr.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(host),
                schedule=ocp.args.JsonSave(dataclasses.asdict(plateau)),
            ),
            metrics=metrics,
            force=True,
        )
        mngr.wait_until_finished()
    except (ValueError, OSError) as e:
        if not _no_space(e):
            raise
        directory = str(mngr.directory)
        for name in os.listdir(directory):  # Orbax's STEP.orbax-checkpoint-tmp*, never renamed
            if re.fullmatch(rf"{step}\.orbax-checkpoint-tmp.*", name):
                shutil.rmtree(os.path.join(directory, name), ignore_errors=True)
        mngr.reload()
        last = mngr.latest_step()
        raise InputError(
            f"no space left in {directory} while saving step {step}; the last good checkpoint "
            f"is step {last}; free space and rerun with the same --workdir to resume"
        ) from None


def _leaf_shapes(tree) -> dict[str, tuple]:
    """{"params['fc6']['bias']": shape, "opt_state['inner_state'][0]['trace']...": shape}: one
    spelling for a live state (namedtuple fields) and a saved one's metadata (dict keys)."""
    out = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        keys = [getattr(k, "key", getattr(k, "name", getattr(k, "idx", k))) for k in path]
        shape = leaf.shape if hasattr(leaf, "shape") else np.shape(leaf)  # metadata: .shape
        out[str(keys[0]) + "".join(f"[{k!r}]" for k in keys[1:])] = tuple(shape)
    return out


def _saved_shapes(step_dir: str) -> dict[str, tuple]:
    meta = ocp.StandardCheckpointer().metadata(os.path.join(step_dir, "state")).item_metadata
    if meta is None or "params" not in meta.tree:
        raise KeyError(f"{step_dir}/state has no readable array metadata")
    return _leaf_shapes(meta.tree)


def check_fits(step_dir: str, saved: dict, want: dict) -> None:
    """A checkpoint of another model (params differ) or of another optimizer rule or frozen/low-lr
    layers (its state differs): one line naming the first difference; nothing is moved. Fields
    that leave no state (decay_biases, low_lr_factor) are metrics.check_same_training's."""
    for name in sorted(saved.keys() | want.keys(), key=lambda n: (not n.startswith("params"), n)):
        if saved.get(name) == want.get(name):
            continue
        if name.startswith("params"):
            raise InputError(
                f"checkpoint {step_dir} does not fit --config (another model wrote it): "
                f"{name} is {saved.get(name)} there and {want.get(name)} in the config; "
                "use the config it was trained with, or a new --workdir to train this one"
            )
        raise InputError(
            f"checkpoint {step_dir} holds another optimizer's state: {name} is "
            f"{saved.get(name)} there and {want.get(name)} in the config; resume with the "
            "config.optim it was trained with (rule, frozen_layers, low_lr_layers), or use a new "
            "--workdir"
        )


def check_hyperparams(step_dir: str, saved, want) -> None:
    """Momentum and weight decay are the config's, not state: a resume that changes them is one
    line (the learning rate is the schedule's state and is restored)."""
    for name in sorted(set(want.hyperparams) - {"learning_rate"}):
        was, now = float(saved.hyperparams[name]), float(want.hyperparams[name])
        if was != now:
            raise InputError(
                f"checkpoint {step_dir} was trained with config.optim.{name}={was:g} and "
                f"--config has {now:g}; resume with {was:g}, or use a new --workdir"
            )


def _not_restoring(e: BaseException) -> str:
    return f"does not restore ({one_line(e)})"


def _move_aside(directory: str, step: int, why: str) -> str:
    step_dir = os.path.join(directory, str(step))
    aside = f"{step_dir}.damaged"
    if jax.process_index() == 0:
        n = 1
        while os.path.exists(aside):
            aside, n = f"{step_dir}.damaged{n}", n + 1
        os.rename(step_dir, aside)
    print(
        f"warning: checkpoint {step_dir} {why}; moved it to {aside}",
        file=sys.stderr,
        flush=True,
    )
    return aside


def restore(mngr: ocp.CheckpointManager, state, plateau: optim.Plateau):
    """(state, plateau) from the newest checkpoint that restores, or the arguments unchanged
    if there is none. The newer ones, which did not restore where an older one did, are moved
    aside (STEP.damaged) and named, one line each. If none restores, nothing is moved: the
    cause may be the filesystem or another Orbax, not the files."""
    template = jax.device_get(_tree(state))
    want = _leaf_shapes(template)
    failed = []  # (step, why), newest first
    for step in sorted(mngr.all_steps(), reverse=True):
        step_dir = os.path.join(str(mngr.directory), str(step))
        try:
            saved = _saved_shapes(step_dir)
        except _DAMAGE as e:
            failed.append((step, _not_restoring(e)))
            continue
        check_fits(step_dir, saved, want)
        try:
            restored = mngr.restore(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(template),
                    schedule=ocp.args.JsonRestore(),
                ),
            )
            schedule = optim.Plateau(**restored["schedule"])
        except (*_DAMAGE, TypeError) as e:  # TypeError: a schedule JSON that is not ours
            failed.append((step, _not_restoring(e)))
            continue
        for s, why in failed:  # so that the next save is the newest step again
            _move_aside(str(mngr.directory), s, why)
        mngr.reload()
        t = restored["state"]
        check_hyperparams(step_dir, t["opt_state"], template["opt_state"])
        state = state.replace(params=t["params"], opt_state=t["opt_state"], step=t["step"])
        return state, schedule
    if failed:
        steps = ", ".join(str(s) for s, _ in failed)
        raise InputError(
            f"no checkpoint in {mngr.directory} restores (steps {steps}; the newest "
            f"{failed[0][1]}); nothing was moved: if orbax-checkpoint or the filesystem changed "
            "since they were written, undo that and rerun; if they are damaged, use a new "
            "--workdir to start from step 0"
        )
    return state, plateau


def find_step(path: str, which: str | int = "latest") -> tuple[str, int]:
    """(checkpoints directory, step) for a workdir, its checkpoints/ or checkpoints/STEP."""
    path = os.path.abspath(path)
    is_workdir = os.path.isdir(os.path.join(path, "checkpoints"))  # even one named "123"
    parent, name = os.path.split(path)
    if re.fullmatch(r"\d+", name) and os.path.isdir(path) and not is_workdir:
        return parent, int(name)
    missing_step = os.path.basename(parent) == "checkpoints" and not os.path.exists(path)
    if re.fullmatch(r"\d+", name) and missing_step and os.path.isdir(parent):
        raise MissingFileError(f"{parent} has no step {name}; its steps are {steps(parent)}")
    directory = path if os.path.basename(path) == "checkpoints" else f"{path}/checkpoints"
    if not os.path.isdir(directory):
        raise MissingFileError(
            f"{directory} does not exist; pass the --workdir of a training run "
            "(python -m alexnet_jax.main --config=... --workdir=DIR)"
        )
    found = steps(directory)
    if not found:
        raise MissingFileError(
            f"{directory} holds no checkpoint (no STEP directory); train first, or pass a "
            "training --workdir, its checkpoints/ directory or checkpoints/STEP"
        )
    if which == "latest":
        return directory, found[-1]
    if which == "best":
        return directory, best_step(os.path.dirname(directory), found)
    if isinstance(which, int) and not isinstance(which, bool) and which in found:
        return directory, which
    raise InputError(f"which={which!r}: {directory} has steps {found}; or use 'latest', 'best'")


def best_step(workdir: str, steps: list[int]) -> int:
    """The step among `steps` with the lowest eval/top1_err in WORKDIR/metrics.jsonl."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        raise MissingFileError(f"{path} is missing, so there is no best step; use --which=latest")
    rows = files.read_rows(path)
    scored = [(r[BEST_METRIC], r["step"]) for r in rows if BEST_METRIC in r and r["step"] in steps]
    if not scored:
        raise InputError(
            f"no checkpoint in {workdir} has an {BEST_METRIC} in metrics.jsonl; use --which=latest"
        )
    return min(scored)[1]


def read_params(path: str, which: str | int = "latest", template=None) -> dict:
    """The params of a checkpoint (host numpy): PATH is a workdir, its checkpoints/ or
    checkpoints/STEP; `which` is "latest", "best" or a step. With `template` (a params tree
    or shapes), a checkpoint of another model is one line naming the first differing layer.
    """
    return read(path, which, template)[0]


def read(path: str, which: str | int = "latest", template=None) -> tuple[dict, int]:
    """(params, step): `read_params` with the step it read."""
    directory, step = find_step(path, which)
    step_dir = os.path.join(directory, str(step))
    try:
        saved = _saved_shapes(step_dir)
        if template is not None:  # the params only: any optimizer's checkpoint is read
            params = {k: v for k, v in saved.items() if k.startswith("params")}
            check_fits(step_dir, params, _leaf_shapes({"params": template}))
        tree = ocp.StandardCheckpointer().restore(os.path.join(step_dir, "state"))
    except _DAMAGE as e:
        if isinstance(e, InputError):
            raise
        raise InputError(
            f"checkpoint {step_dir} does not restore ({one_line(e)}); pick another step "
            "(which=STEP), or rerun training, which falls back past it"
        ) from None
    return jax.device_get(tree["params"]), step


@contextlib.contextmanager
def lock_workdir(workdir: str):
    """One live run per workdir (files.locked); a second run fails in one line."""
    if jax.process_index() != 0:  # multi-host: the processes share one run
        yield
        return
    with files.locked(workdir, "--workdir"):
        yield
