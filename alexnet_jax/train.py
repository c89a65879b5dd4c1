"""The training loop (Sec. 5): per-device train/eval steps and `train_and_evaluate`."""

import dataclasses
import functools
import signal
import sys
import time
from collections.abc import Callable, Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training import train_state
from jax.experimental.multihost_utils import process_allgather

from alexnet_jax import (
    checkpoint,
    errors,
    input_pipeline,
    metrics,
    models,
    optim,
    parallel,
    weights,
)

Batch = dict[str, jax.Array]  # "image": [b, H, W, C], "label": [b] int32, "mask": [b] float32
Metrics = dict[str, jax.Array]
TrainState = train_state.TrainState  # step, params, opt_state (with the lr), apply_fn, tx


def _identity(batch: Batch) -> Batch:
    return batch


def top_errors(logits: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per-example top-1 and top-5 errors (0/1), the paper's metrics (Sec. 6), of logits or
    probabilities; ties go to the lower class (lax.top_k)."""
    top5 = jax.lax.top_k(logits, min(5, logits.shape[-1]))[1]
    in_top5 = jnp.any(top5 == labels[:, None], axis=-1)
    return (top5[:, 0] != labels).astype(jnp.float32), (~in_top5).astype(jnp.float32)


def train_step(
    state: TrainState, batch: Batch, *, dropout_key: jax.Array, preprocess=_identity
) -> tuple[TrainState, Metrics]:
    """One step of Sec. 5's SGD, per device, on this device's rows of the global batch.

    Run by `parallel.Plan.map`: gradients and metrics are averaged over axis "batch", so any
    number of devices takes the step of one device on the whole batch. Dropout masks are
    functions of (dropout_key, step, example, unit) (models.AlexNet).
    """
    batch = preprocess(batch)
    key = jax.random.fold_in(dropout_key, state.step)

    def loss_fn(params):
        logits = state.apply_fn(
            {"params": params}, batch["image"], train=True, rngs={"dropout": key}
        )
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()
        return loss, logits

    (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    grads = jax.lax.pmean(grads, "batch")
    top1, _ = top_errors(logits, batch["label"])
    m = jax.lax.pmean({"train/loss": loss, "train/top1_err": top1.mean()}, "batch")
    m["lr"] = state.opt_state.hyperparams["learning_rate"]
    return state.apply_gradients(grads=grads), m


def eval_step(state: TrainState, batch: Batch, *, preprocess=_identity) -> Metrics:
    """Sums over the real (mask=1) examples of the global batch: loss, errors, count."""
    batch = preprocess(batch)
    logits = state.apply_fn({"params": state.params}, batch["image"], train=False)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
    top1, top5 = top_errors(logits, batch["label"])
    mask = batch["mask"]
    sums = {"loss": loss * mask, "top1": top1 * mask, "top5": top5 * mask, "n": mask}
    return jax.lax.psum({k: v.sum() for k, v in sums.items()}, "batch")


def evaluate_batches(plan: parallel.Plan, p_eval, state, batches, n: int) -> dict[str, float]:
    """Validation loss, top-1 and top-5 error over padded, masked host batches of n examples."""
    totals = None
    for batch in batches:
        sums = p_eval(state, plan.batch(batch))
        totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
    t = {k: float(v) for k, v in plan.fetch(totals).items()}
    assert t["n"] == n, (t["n"], n)
    return {
        "eval/loss": t["loss"] / t["n"],
        "eval/top1_err": t["top1"] / t["n"],
        "eval/top5_err": t["top5"] / t["n"],
    }


def create_state(
    config: ml_collections.ConfigDict,
    key: jax.Array,
    *,
    model: models.AlexNet | None = None,
    pretrained: bool = True,
) -> TrainState:
    """A fresh state of `model` (default: config's): random init, then `config.init_from`'s
    weights if `pretrained`."""
    model = model or models.create_model(config)
    params = models.init_params(model, config, key)
    if pretrained and config.init_from.path is not None:  # a new fc8 if the classes differ
        params = weights.init_from(config.init_from, params)
    return TrainState.create(apply_fn=model.apply, params=params, tx=optim.build(config.optim))


class _StopRequested:
    """SIGTERM/SIGINT set this process's flag; the loop saves a checkpoint and returns (a
    second Ctrl-C raises KeyboardInterrupt; the last checkpoint stays whole).

    One process stops at the next step. Several agree first, every `every` steps and between
    epochs (`now`): a process that entered the save's barrier alone while the others stepped
    on would wait for ever, and they for its share of the next step's gradients.
    """

    def __init__(self, every: int):
        self.signum = None  # this process's signal
        self.stopping = False  # agreed by every process
        self.every = every if jax.process_count() > 1 else 1
        self.previous = {s: signal.signal(s, self._handle) for s in (signal.SIGTERM, signal.SIGINT)}

    def _handle(self, signum, frame):
        self.signum = signum
        if signum == signal.SIGINT:  # a second Ctrl-C interrupts at once (e.g. a stuck reader)
            signal.signal(signum, self.previous[signum])

    def now(self, step: int, between_epochs: bool = False) -> bool:
        """Whether every process stops after `step`; every process makes the same calls."""
        if between_epochs or step % self.every == 0:
            mine = np.int32(self.signum is not None)
            self.stopping = bool(
                mine if jax.process_count() == 1 else process_allgather(mine).any()
            )
        return self.stopping

    def restore(self):
        for s, h in self.previous.items():
            signal.signal(s, h)


@dataclasses.dataclass
class _Loop:
    """What the parts of the loop share: the plan, its compiled steps, data and run files."""

    plan: parallel.Plan
    train: Callable  # plan.map(train_step), donated state
    eval: Callable  # plan.map(eval_step)
    data: input_pipeline.Data
    run: metrics.Run
    mngr: object  # checkpoint.create's
    stop: _StopRequested
    batches: metrics.Timed  # this process's training batches from start_step on, input wait
    stuck: metrics.StuckLoss
    batch_size: int
    steps_per_epoch: int
    total: int
    log_every: int
    save_every: int
    start_step: int = 0


def _build(config, plan, data, run, mngr, start_step: int) -> _Loop:
    """The mapped steps, the epoch's length and the stop flag: the loop's parts (Sec. 5)."""
    c = config.input
    steps_per_epoch = data.num_train // c.global_batch_size
    if steps_per_epoch == 0:
        raise errors.InputError(
            f"config.input.global_batch_size={c.global_batch_size} is larger than the "
            f"{data.num_train} training examples; use a smaller batch"
        )
    dropout_key = jax.random.split(jax.random.key(config.seed))[1]
    # Crops, flips, lighting and the mean run on the device, inside the steps (augment.py).
    step = functools.partial(train_step, dropout_key=dropout_key, preprocess=data.train_preprocess)
    center = functools.partial(eval_step, preprocess=data.eval_preprocess("center"))
    return _Loop(
        plan=plan,
        train=plan.map(step, donate=True),
        eval=plan.map(center),
        data=data,
        run=run,
        mngr=mngr,
        batches=metrics.Timed(data.train(start_step)),  # resumes exactly at start_step
        stuck=metrics.StuckLoss(config.model.num_classes, config.warn_stuck_steps),
        batch_size=c.global_batch_size,
        steps_per_epoch=steps_per_epoch,
        total=config.max_steps or config.num_epochs * steps_per_epoch,
        log_every=config.log_every_steps,
        save_every=config.checkpoint.every_steps,
        start_step=start_step,
        # last: once the handlers are set, only the caller's `finally` puts them back
        stop=_StopRequested(every=config.log_every_steps),  # with the progress line's sync
    )


def _restore(config, model, mngr) -> tuple[TrainState, optim.Plateau]:
    """The latest checkpoint's state and schedule, or Sec. 5's init and the base lr."""
    init_key = jax.random.split(jax.random.key(config.seed))[0]
    # A resumed run restores its own params: the pretrained file is not needed (nor read) again.
    state = create_state(config, init_key, model=model, pretrained=mngr.latest_step() is None)
    plateau = optim.Plateau(lr=config.optim.base_lr)
    state, plateau = checkpoint.restore(mngr, state, plateau)  # past damaged ones, named
    return _reopen(state, plateau, config.schedule) if plateau.done else (state, plateau)


def _reopen(state, plateau, s: ml_collections.ConfigDict) -> tuple[TrainState, optim.Plateau]:
    """A run the plateau rule ended (Sec. 5), resumed: a larger max_drops trains on."""
    more = optim.reopen(plateau, factor=s.factor, cooldown=s.cooldown_epochs, max_drops=s.max_drops)
    if more == plateau:
        print(
            f"the plateau rule ended this run after {plateau.drops} divisions of the lr "
            f"(config.schedule.max_drops={s.max_drops}): nothing left to train; raise "
            "max_drops to go on",
            flush=True,
        )
        return state, plateau
    print(f"the plateau rule had ended this run; max_drops={s.max_drops} divides the lr now: "
          f"{plateau.lr:g} -> {more.lr:g}", flush=True)  # fmt: skip
    return state.replace(opt_state=optim.set_learning_rate(state.opt_state, more.lr)), more


def _log(loop: _Loop, pending: list, step: int, t0: float) -> None:
    """The mean of the pending steps' metrics to metrics.jsonl, TensorBoard and the progress
    line; a NaN/Inf loss stops the run before anything is saved. Steps are dispatched
    asynchronously, so the window since `t0` is closed only once their metrics are fetched."""
    host = zip([i for i, _ in pending], loop.plan.fetch([m for _, m in pending]), strict=True)
    host = list(host)
    seconds = time.time() - t0
    for i, m in host:
        if not np.isfinite(m["train/loss"]):
            raise FloatingPointError(
                f"non-finite training loss {m['train/loss']} at step {i}; the last good "
                f"checkpoint is in {loop.mngr.directory}"
            )
    scalars = {k: float(np.mean([m[k] for _, m in host])) for k in host[0][1]}
    warning = loop.stuck.update(step, scalars["train/loss"], window=len(host))
    if warning:
        print(warning, file=sys.stderr, flush=True)
    scalars["images_per_sec"] = len(host) * loop.batch_size / seconds
    scalars["data_wait"] = loop.batches.fraction(seconds)  # share of the time spent on input
    loop.run.write(step, scalars)
    elapsed, done = time.time() - loop.run.t0, step - loop.start_step
    epoch = step / loop.steps_per_epoch
    print(metrics.progress_line(step, loop.total, epoch, scalars, elapsed, done), flush=True)


def _save(loop: _Loop, state, plateau, evals: dict | None = None) -> None:
    checkpoint.save(loop.mngr, loop.plan.fetch(state), plateau, evals)


def _train_epoch(loop: _Loop, state, plateau, batches: Iterator, step: int, end: int):
    """SGD steps from `step` to `end` (the epoch's or the run's end): logs every log_every,
    checkpoints every save_every, and on SIGTERM/SIGINT saves and returns early."""
    pending, t = [], time.time()
    while step < end:
        state, m = loop.train(state, next(batches))
        step += 1
        pending.append((step, m))
        stop = loop.stop.now(step, between_epochs=step == end)  # read once: a signal may come
        save = step % loop.save_every == 0 or stop
        if step % loop.log_every == 0 or step == end or save:
            _log(loop, pending, step, t)
            pending, t = [], time.time()
        if save and step < end:
            _save(loop, state, plateau)
            t = time.time()  # images/s counts training steps only
        if stop:
            break
    return state, step


def _evaluate(loop: _Loop, state, step: int) -> dict:
    """Sec. 6's validation loss, top-1 and top-5 error of the central crops."""
    data = loop.data
    summary = evaluate_batches(loop.plan, loop.eval, state, data.eval(), data.num_eval)
    return {**summary, "step": step, "epoch": step / loop.steps_per_epoch}


def _schedule(state, plateau, top1_err: float, epoch: int, s: ml_collections.ConfigDict):
    """Sec. 5: the lr multiplied by `s.factor` (0.1: divided by 10) when the validation error
    stops improving, or after the fixed epochs `s.drop_after_epochs` (ours) where given."""
    if s.drop_after_epochs:
        plateau = optim.fixed_update(
            plateau, epoch, factor=s.factor, drop_after_epochs=tuple(s.drop_after_epochs)
        )
    else:
        plateau = optim.plateau_update(
            plateau,
            top1_err,
            factor=s.factor,
            patience=s.patience_epochs,
            threshold=s.threshold,
            cooldown=s.cooldown_epochs,
            max_drops=s.max_drops,
        )
    return state.replace(opt_state=optim.set_learning_rate(state.opt_state, plateau.lr)), plateau


def _train(loop: _Loop, config, state, plateau) -> dict:
    """Epochs of training, each followed by evaluation, the schedule and a checkpoint."""
    step, summary = loop.start_step, {}
    batches = parallel.prefetch(loop.batches, loop.plan.batch, config.input.device_prefetch)
    while step < loop.total and not plateau.done and not loop.stop.now(step, between_epochs=True):
        end = min(loop.total, (step // loop.steps_per_epoch + 1) * loop.steps_per_epoch)
        state, step = _train_epoch(loop, state, plateau, batches, step, end)
        if step < end:  # stopped by a signal, saved
            break
        summary = _evaluate(loop, state, step)
        evals = {k: v for k, v in summary.items() if k.startswith("eval/")}
        loop.run.write(step, evals)
        if step % loop.steps_per_epoch == 0:
            epoch = step // loop.steps_per_epoch
            state, plateau = _schedule(
                state, plateau, summary["eval/top1_err"], epoch, config.schedule
            )
        print(
            f"eval at step {step}: top1_err {summary['eval/top1_err']:.4f} top5_err "
            f"{summary['eval/top5_err']:.4f} loss {summary['eval/loss']:.4f}; lr {plateau.lr:g}",
            flush=True,
        )
        _save(loop, state, plateau, evals)
    if loop.stop.stopping and step < loop.total and not plateau.done:  # else nothing was left
        why = f"signal {loop.stop.signum}" if loop.stop.signum else "another process's signal"
        print(
            f"stopped by {why} at step {step}; checkpoint saved in "
            f"{loop.mngr.directory}; rerun with the same --workdir to resume",
            flush=True,
        )
        return summary
    summary = summary or _evaluate(loop, state, step)  # resumed a finished run
    loop.run.finish(summary)
    return summary


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Trains and evaluates; resumes from the latest checkpoint in `workdir` if there is one.

    Returns the last evaluation's metrics with the step and epoch. A second live run on the
    same `workdir`, or one that cannot be written, fails in one line (checkpoint.lock_workdir).
    """
    model = models.create_model(config)
    plan = parallel.create(config, model)  # every config/device check, before the workdir
    with checkpoint.lock_workdir(workdir):  # one live run per workdir
        metrics.check_same_training(workdir, config)  # a resume: before anything loads
        data = input_pipeline.create(config)  # "memory", "prepared", "stream", "synthetic"
        mngr = checkpoint.create(workdir, config.checkpoint)
        try:
            state, plateau = _restore(config, model, mngr)
            # after the data and checkpoint checks: a bad rerun overwrites none of the run's files
            run = metrics.Run(workdir, config, start_step=int(state.step))
            loop = _build(config, plan, data, run, mngr, start_step=int(state.step))
            try:
                print(
                    f"{models.count_params(state.params):,} learned parameters; {loop.total} "
                    f"steps of {loop.batch_size} on {jax.device_count()} x {jax.devices()[0]}, "
                    f"{config.parallelism} parallel on a mesh {dict(plan.mesh.shape)}",
                    flush=True,
                )
                if loop.start_step:
                    print(f"resumed from {mngr.directory} at step {loop.start_step}", flush=True)
                return _train(loop, config, plan.place(state), plateau)
            finally:
                loop.stop.restore()
        finally:
            mngr.close()
