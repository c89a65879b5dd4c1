"""What a run leaves behind: config.json, provenance.json, metrics.jsonl, TensorBoard events,
a progress line with images/s, the input wait and ETA, and a final top-1/top-5 table; a resume
is checked against the run's config.json (check_same_training).

TensorBoard events are written with the `tensorboard` package's own event writer, which needs
no TensorFlow (JAX-only GPU boxes train too); metrics.jsonl is always written.
"""

import datetime
import errno
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import time
import types

import jax
import ml_collections
from flax.traverse_util import flatten_dict

from alexnet_jax import checkpoint, cli, files, input_pipeline
from alexnet_jax.errors import InputError


def _git_commit() -> str:
    """HEAD of the checkout, "+dirty" if tracked files changed. Without git or outside a
    checkout (a GPU box sent a copy of the tree): $ALEXNET_GIT_COMMIT, which the sender sets,
    else "unknown"."""
    here = os.path.dirname(os.path.abspath(__file__))
    git = lambda *a: subprocess.run(["git", "-C", here, *a], capture_output=True, text=True)  # noqa: E731
    try:
        head = git("rev-parse", "HEAD").stdout.strip()
        dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    except FileNotFoundError:  # no git on this machine (e.g. a bare GPU box)
        head = dirty = ""
    if not head:
        return os.environ.get("ALEXNET_GIT_COMMIT", "unknown")
    return head + ("+dirty" if dirty else "")


def _command() -> str:
    prog = sys.argv[0]
    if prog.endswith(os.path.join("alexnet_jax", "main.py")):
        prog = "-m alexnet_jax.main"
    return cli.command(f"python {prog}", sys.argv[1:])


def hardware() -> dict:
    cpu = ""
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    return {
        "devices": [str(d) for d in jax.devices()],
        "device_kind": jax.devices()[0].device_kind,
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "python": platform.python_version(),
        "host": platform.node(),
    }


class _Events:
    """TensorBoard scalars in WORKDIR/events.out.tfevents.*, without TensorFlow."""

    def __init__(self, workdir: str):
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self.event, self.summary = event_pb2.Event, summary_pb2.Summary
        self.writer = EventFileWriter(workdir)

    def restart(self, step: int) -> None:
        """TensorBoard drops the events at `step` and after written by an earlier start (the
        steps logged past its last checkpoint, which this start writes again)."""
        log = self.event(wall_time=time.time(), step=step)
        log.session_log.status = log.session_log.START
        self.writer.add_event(log)

    def __call__(self, step: int, scalars: dict[str, float]) -> None:
        values = [self.summary.Value(tag=k, simple_value=float(v)) for k, v in scalars.items()]
        self.writer.add_event(
            self.event(wall_time=time.time(), step=step, summary=self.summary(value=values))
        )

    def flush(self) -> None:
        self.writer.flush()


# What a resume may not change: the function trained and each step's update (the model, the
# optimizer, the data, its order and augmentation, the evaluation the plateau rule and the best
# checkpoint compare against), less how a layer runs (lowering, precision) and the init, which
# a resume does not use. The schedule, max_steps, the eval batch size and paths may change.
TRAINING_FIELDS = (
    "model",
    "optim",
    "seed",
    "input.dataset",
    "input.source",
    "input.pipeline",
    "input.train_limit",
    "input.eval_split",
    "input.eval_limit",
    "input.global_batch_size",
    "input.shuffle_buffer",
    "input.augment",
    "input.crop_padding",
    "input.image_size",
    "input.normalize",
)
NOT_TRAINING_FIELDS = (
    "model.conv.lowering",
    "model.pool.lowering",
    "model.precision",
    "model.init",
)


def _under(field: str, prefixes: tuple[str, ...]) -> bool:
    return any(field == p or field.startswith(p + ".") for p in prefixes)


def check_same_training(workdir: str, config: ml_collections.ConfigDict) -> None:
    """Where `workdir` holds a checkpoint, a config that changes a TRAINING_FIELDS field against
    the run's config.json (decay_biases, low_lr_factor, dropout, augmentation, ... which the
    state cannot show) is one line naming the first. Run before anything loads or moves; fields
    config.json lacks (older code) are not compared, nor is a config.json that is missing or
    not JSON (the state's own checks still run in `checkpoint.restore`)."""
    if not checkpoint.steps(os.path.join(workdir, "checkpoints")):
        return  # a fresh run, or one killed before its first checkpoint: it starts anew
    try:
        with open(os.path.join(workdir, "config.json")) as f:
            was = flatten_dict(json.load(f), sep=".")
    except (FileNotFoundError, ValueError):
        return
    now = flatten_dict(json.loads(config.to_json_best_effort()), sep=".")
    for flat in (was, now):  # pipeline None is the dataset's default: compare what ran
        if "input.pipeline" in flat:
            i = types.SimpleNamespace(
                pipeline=flat["input.pipeline"], dataset=flat.get("input.dataset")
            )
            flat["input.pipeline"] = input_pipeline.pipeline_of(i)
    for field in sorted(now):
        if not _under(field, TRAINING_FIELDS) or _under(field, NOT_TRAINING_FIELDS):
            continue
        if field in was and was[field] != now[field]:
            old = was[field]
            if old is None:  # no flag sets None: only a config file (or its :arg) does
                fix = f"the --config file and :arg it was trained with, without --config.{field}"
            else:
                fix = f"--config.{field}={_shell_word(old)}"
            raise InputError(
                f"the run in {workdir} was trained with config.{field}={old!r} "
                f"(its config.json) and --config has {now[field]!r}; resume with {fix}, or "
                "use a new --workdir"
            )


def _shell_word(value) -> str:
    """A JSON value as --config.F takes it, one shell word: a list as a quoted tuple."""
    if isinstance(value, list):  # ml_collections parses a tuple field with literal_eval
        items = [json.dumps(x) if isinstance(x, str) else repr(x) for x in value]
        value = f"({', '.join(items)}{',' if len(items) == 1 else ''})"
    return shlex.quote(value if isinstance(value, str) else repr(value))


def _disk(workdir: str):
    """A full disk while the run writes its logs is one line, as in checkpoint.save; the
    checkpoints are not touched, and a row cut short is dropped when the run resumes."""
    return files.no_space_is(
        f"the disk of {workdir} is full (writing the run's logs: {os.strerror(errno.ENOSPC)}); "
        "free space and rerun with the same --workdir, which resumes from its last checkpoint"
    )


class Run:
    """The files of one run in its workdir; only process 0 writes. `start_step`: the step the
    run resumes from; what an earlier start logged after it (past its last checkpoint, before
    a kill) is dropped, since this start logs those steps again. On process 0, the only one
    that writes, the workdir exists and is writable: train_and_evaluate holds its lock
    (checkpoint.lock_workdir) around the run."""

    def __init__(self, workdir: str, config: ml_collections.ConfigDict, start_step: int = 0):
        self.workdir, self.t0 = workdir, time.time()
        self.main = jax.process_index() == 0
        self.events = _Events(workdir) if self.main else None
        if not self.main:
            return
        with _disk(workdir):
            _drop_rows_after(os.path.join(workdir, "metrics.jsonl"), start_step)
            self.events.restart(start_step + 1)
            config_json = os.path.join(workdir, "config.json")
            with files.replaced(config_json) as tmp, open(tmp, "w") as f:
                f.write(config.to_json_best_effort(indent=2))  # whole: a resume compares it
            self.provenance = {
                "command": _command(),
                "git_commit": _git_commit(),
                "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                "hardware": hardware(),
                "earlier": _earlier_segments(workdir),
            }
            self._write_provenance()

    def _write_provenance(self) -> None:
        """Written to a temporary name and renamed: a kill mid-write leaves the last one whole."""
        files.write_json(os.path.join(self.workdir, "provenance.json"), self.provenance)

    def write(self, step: int, scalars: dict[str, float]) -> None:
        """One line of metrics.jsonl and TensorBoard scalars; the wall time so far."""
        if not self.main:
            return
        row = {"step": step, "wall_s": round(time.time() - self.t0, 2), **scalars}
        with _disk(self.workdir):
            self.events(step, scalars)
            with open(os.path.join(self.workdir, "metrics.jsonl"), "a") as f:
                f.write(json.dumps(row) + "\n")
            self.provenance["wall_time_s"] = round(time.time() - self.t0, 1)
            self._write_provenance()

    def finish(self, summary: dict) -> str:
        """Prints and writes the final table (results.md); records wall time in provenance."""
        table = "\n".join(
            [
                "| step | epoch | eval/top1_err | eval/top5_err | eval/loss |",
                "|---|---|---|---|---|",
                f"| {summary['step']} | {summary['epoch']:.2f} | {summary['eval/top1_err']:.4f} | "
                f"{summary['eval/top5_err']:.4f} | {summary['eval/loss']:.4f} |",
            ]
        )
        print(table, flush=True)
        if self.main:
            with _disk(self.workdir):
                self.events.flush()
                with open(os.path.join(self.workdir, "results.md"), "w") as f:
                    f.write(table + "\n")
                self.provenance["wall_time_s"] = round(time.time() - self.t0, 1)
                self.provenance["final"] = summary
                self._write_provenance()
        return table


def _drop_rows_after(path: str, step: int) -> None:
    """Keeps the rows of metrics.jsonl up to `step` (every row of a step is written before its
    checkpoint); a line cut short by a kill goes too."""
    if not os.path.isfile(path):
        return
    with open(path) as f:
        lines = f.readlines()
    keep = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if row.get("step", 0) <= step:
            keep.append(line if line.endswith("\n") else line + "\n")
    if keep != lines:
        with files.replaced(path) as tmp, open(tmp, "w") as f:
            f.writelines(keep)


def _earlier_segments(workdir: str) -> list[dict]:
    """A resumed run's earlier starts (command, commit, start, wall time so far), oldest first,
    from the provenance.json it left: each session's part of a run keeps its provenance."""
    path = os.path.join(workdir, "provenance.json")
    if not os.path.isfile(path):
        return []
    try:
        with open(path) as f:
            old = json.load(f)
    except (OSError, ValueError):
        return [{"note": "provenance.json of an earlier start was unreadable"}]
    keep = ("command", "git_commit", "started", "hardware", "wall_time_s")
    return [*old.get("earlier", []), {k: old[k] for k in keep if k in old}]


def progress_line(
    step: int,
    total: int,
    epoch: float,
    scalars: dict,
    elapsed: float,
    done_steps: int,
) -> str:
    """step/total, epoch, loss, top-1 error, lr, images/s, input wait, ETA.

    "data_wait" (if given): the fraction of the wall time the loop waited for its next batch
    (`Timed`); near 1 means the run is input-bound.
    """
    eta = (total - step) * elapsed / max(done_steps, 1)
    wait = f"data_wait {scalars['data_wait']:.0%}  " if "data_wait" in scalars else ""
    return (
        f"step {step}/{total}  epoch {epoch:.2f}  loss {scalars['train/loss']:.4f}  "
        f"top1_err {scalars['train/top1_err']:.4f}  lr {scalars['lr']:.2g}  "
        f"{scalars['images_per_sec']:.0f} images/s  {wait}"
        f"ETA {datetime.timedelta(seconds=round(eta))}"
    )


class Timed:
    """An iterator wrapper that adds up the seconds spent waiting in next() (the input wait).

    `fraction(wall_s)` is the waited share of `wall_s` seconds of training (the loop's logging
    window) and restarts the count: the loop logs it as "data_wait" (timm's "data time").
    """

    def __init__(self, batches):
        self.batches, self.waited = iter(batches), 0.0

    def __iter__(self):
        return self

    def __next__(self):
        t = time.perf_counter()
        try:
            return next(self.batches)
        finally:
            self.waited += time.perf_counter() - t

    def fraction(self, wall_s: float) -> float:
        f, self.waited = self.waited / max(wall_s, 1e-9), 0.0
        return min(f, 1.0)


class StuckLoss:
    """Warns once when the training loss has stayed within 1% of ln(num_classes), the loss of
    a uniform guess, for `steps` steps in a row: the net is not learning.

    The known trap is Sec. 5's own init (N(0, 0.01) weights, biases 1): Caffe's bvlc_alexnet
    notes a flat loss with it, and so did our CPU-sized nets. `steps=0` turns the check off.
    """

    def __init__(self, num_classes: int, steps: int):
        self.num_classes, self.steps = num_classes, steps
        self.chance, self.since, self.warned = math.log(num_classes), None, False

    def update(self, step: int, loss: float, window: int = 1) -> str | None:
        """The one-line warning, the first time the loss has been flat for `steps` steps.

        `loss` is the mean over the `window` steps ending at `step` (the trainer's logging
        window): one batch's loss scatters by more than 1% around ln(C) even when the net
        learns nothing (+-3% at 32 images), its mean over the window does not."""
        if not self.steps or self.warned or self.num_classes < 2:
            return None
        if abs(loss - self.chance) > 0.01 * self.chance:
            self.since = None
            return None
        self.since = step - window + 1 if self.since is None else self.since
        if step - self.since + 1 < self.steps:
            return None
        self.warned = True
        return (
            f"warning: the training loss has stayed at ln({self.num_classes}) = {self.chance:.3f} "
            f"(chance) for {step - self.since + 1} steps (since step {self.since}): the net is "
            "not learning. Likely the init (Sec. 5's N(0, 0.01) with biases 1 is a known trap) "
            "or the learning rate: try --config.model.init.scheme=pytorch, a smaller "
            "--config.model.init.weight_std or init.bias, or another --config.optim.base_lr; "
            "--config.warn_stuck_steps=0 silences this"
        )
