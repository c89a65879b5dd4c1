"""The training loop: pure train/eval steps and `train_and_evaluate(config, workdir)` (Sec. 5)."""

import functools
import signal
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training import train_state

from alexnet_jax import checkpoint, input_pipeline, metrics, models, optim, parallel, weights
from alexnet_jax.errors import InputError

Batch = dict[str, jax.Array]  # "image": [B, H, W, C] float32, "label": [B] int32, "mask": [B]
Metrics = dict[str, jax.Array]
TrainState = train_state.TrainState  # step, params, opt_state (with the lr), apply_fn, tx


def _errors(logits: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per-example top-1 and top-5 errors (0/1), the paper's metrics (Sec. 6)."""
    top5 = jax.lax.top_k(logits, min(5, logits.shape[-1]))[1]
    in_top5 = jnp.any(top5 == labels[:, None], axis=-1)
    return (top5[:, 0] != labels).astype(jnp.float32), (~in_top5).astype(jnp.float32)


def train_step(
    state: TrainState,
    batch: Batch,
    dropout_key: jax.Array,
    axis_name: str | None = "batch",
    preprocess=lambda b: b,
) -> tuple[TrainState, Metrics]:
    """One step of Sec. 5's SGD on this device's share of the global batch.

    Pure. Mapped over axis "batch" (jax.pmap, as the tests do): gradients and metrics are averaged
    there, so D devices take the same step as one device on the whole batch. Dropout masks
    differ per step and per device. With `axis_name=None` the step sees the whole global batch
    (jit over a mesh, parallel.Plan): no collectives here, the shardings place the work.
    """
    batch = preprocess(batch)  # on-device augmentation (input_pipeline's train_preprocess)
    # With axis_name=None the whole batch is replica 0: one device draws the masks it drew
    # under pmap, and a mesh of any size draws those of one device (sharding-invariant bits).
    replica = 0 if axis_name is None else jax.lax.axis_index(axis_name)
    key = jax.random.fold_in(jax.random.fold_in(dropout_key, state.step), replica)
    pmean = (
        (lambda x: x)
        if axis_name is None
        else functools.partial(jax.lax.pmean, axis_name=axis_name)
    )

    def loss_fn(params):
        logits = state.apply_fn(
            {"params": params}, batch["image"], train=True, rngs={"dropout": key}
        )
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()
        return loss, logits

    (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    grads = pmean(grads)
    top1, _ = _errors(logits, batch["label"])
    m = pmean({"train/loss": loss, "train/top1_err": top1.mean()})
    m["lr"] = state.opt_state.hyperparams["learning_rate"]
    return state.apply_gradients(grads=grads), m


def eval_step(
    state: TrainState, batch: Batch, axis_name: str | None = "batch", preprocess=lambda b: b
) -> Metrics:
    """Sums over the real (mask=1) examples of this batch, all devices: loss, errors, count."""
    batch = preprocess(batch)  # on-device crops (input_pipeline's eval_preprocess)
    logits = state.apply_fn({"params": state.params}, batch["image"], train=False)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
    top1, top5 = _errors(logits, batch["label"])
    mask = batch["mask"]
    sums = {"loss": loss * mask, "top1": top1 * mask, "top5": top5 * mask, "n": mask}
    sums = {k: v.sum() for k, v in sums.items()}
    return sums if axis_name is None else jax.lax.psum(sums, axis_name=axis_name)


def evaluate(p_eval, state, split, config, normalize) -> dict[str, float]:
    """Validation loss, top-1 and top-5 error over an in-memory split, each example once."""
    batches = input_pipeline.eval_batches(
        split,
        global_batch=config.input.eval_batch_size,
        input_size=config.model.input_size,
        normalize=normalize,
    )
    return evaluate_batches(p_eval, state, batches, len(split.labels))


def evaluate_batches(p_eval, state, batches, n: int) -> dict[str, float]:
    """Validation loss, top-1 and top-5 error over padded, masked batches of n examples."""
    totals = None
    for batch in batches:
        sums = p_eval(state, batch)
        totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
    t = {k: float(np.ravel(v)[0]) for k, v in jax.device_get(totals).items()}  # pmap: [D]
    assert t["n"] == n, (t["n"], n)
    return {
        "eval/loss": t["loss"] / t["n"],
        "eval/top1_err": t["top1"] / t["n"],
        "eval/top5_err": t["top5"] / t["n"],
    }


def create_state(
    config: ml_collections.ConfigDict, key: jax.Array, *, pretrained: bool = True
) -> TrainState:
    """A fresh state: random init, then `config.init_from`'s weights if `pretrained`."""
    model = models.create_model(config)
    params = models.init_params(model, config, key)
    if pretrained and config.init_from.path is not None:  # a new fc8 if the classes differ
        params = weights.init_from(config.init_from, params)
    return TrainState.create(apply_fn=model.apply, params=params, tx=optim.build(config.optim))


class _StopRequested:
    """SIGTERM/SIGINT set a flag; the loop saves a checkpoint and returns at the next step."""

    def __init__(self):
        self.signum = None
        self.previous = {s: signal.signal(s, self._handle) for s in (signal.SIGTERM, signal.SIGINT)}

    def _handle(self, signum, frame):
        self.signum = signum

    def restore(self):
        for s, h in self.previous.items():
            signal.signal(s, h)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Trains and evaluates; resumes from the latest checkpoint in `workdir` if there is one.

    Returns the last evaluation's metrics with the step and epoch.
    """
    c = config.input
    data = input_pipeline.create(config)  # "memory" or "stream" (ImageNet), config.input
    input_pipeline.per_device(c.global_batch_size, jax.local_device_count())
    steps_per_epoch = data.num_train // c.global_batch_size
    if steps_per_epoch == 0:
        raise InputError(
            f"config.input.global_batch_size={c.global_batch_size} is larger than the "
            f"{data.num_train} training examples; use a smaller batch"
        )
    total = config.max_steps or config.num_epochs * steps_per_epoch
    init_key, dropout_key = jax.random.split(jax.random.key(config.seed))
    plan = parallel.create(config, models.create_model(config))

    mngr = checkpoint.create(workdir, config.checkpoint)
    # A resumed run restores its own params: the pretrained file is not needed (nor read) again.
    state = create_state(config, init_key, pretrained=mngr.latest_step() is None)
    print(
        f"{models.count_params(state.params):,} learned parameters; {total} steps of "
        f"{c.global_batch_size} on {jax.local_device_count()} x {jax.devices()[0]}, "
        f"{config.parallelism} parallel on a mesh {dict(plan.mesh.shape)}",
        flush=True,
    )
    plateau = optim.Plateau(lr=config.optim.base_lr)
    state, plateau = checkpoint.restore_latest(mngr, state, plateau)
    run = metrics.Run(workdir, config)  # after the data and checkpoint checks: a bad rerun
    # overwrites none of the run's files
    step = int(state.step)
    if step:
        print(f"resumed from {mngr.directory} at step {step}", flush=True)
    state = plan.place(state)  # config.parallelism: "data", "model" (Sec. 3.2) or both
    p_train = plan.jit(
        functools.partial(
            train_step, dropout_key=dropout_key, axis_name=None, preprocess=data.train_preprocess
        ),
        donate=True,
    )
    center = data.eval_preprocess("center")
    p_eval = plan.step(
        functools.partial(eval_step, axis_name=None, preprocess=center), donate=False
    )
    timed = metrics.Timed(data.train(step))  # from this step on: resumes exactly
    batches = parallel.prefetch(timed, plan.batch, c.device_prefetch)  # placed on the mesh
    s = config.schedule
    plateau_kw = dict(
        factor=s.factor,
        patience=s.patience_epochs,
        threshold=s.threshold,
        cooldown=s.cooldown_epochs,
        max_drops=s.max_drops,
    )
    stop, pending, summary = _StopRequested(), [], {}
    t_log, steps_since, start_step = time.time(), 0, step

    def flush() -> None:
        """Fetches pending step metrics; a NaN/Inf loss stops the run before anything is saved."""
        nonlocal pending, t_log, steps_since
        if not pending:
            return
        host = jax.device_get(pending)
        for i, m in host:
            if not np.isfinite(m["train/loss"]):
                raise FloatingPointError(
                    f"non-finite training loss {m['train/loss']} at step {i}; the last good "
                    f"checkpoint is in {mngr.directory}"
                )
        scalars = {k: float(np.mean([m[k] for _, m in host])) for k in host[0][1]}
        dt = time.time() - t_log
        scalars["images_per_sec"] = steps_since * c.global_batch_size / dt
        scalars["data_wait"] = timed.fraction(dt)
        run.write(step, scalars)
        print(
            metrics.progress_line(
                step,
                total,
                step / steps_per_epoch,
                scalars,
                time.time() - run.t0,
                step - start_step,
            ),
            flush=True,
        )
        pending, t_log, steps_since = [], time.time(), 0

    try:
        while step < total and not plateau.done:
            state, m = p_train(state, next(batches))
            step += 1
            steps_since += 1
            pending.append((step, m))
            if step % config.log_every_steps == 0:
                flush()
            epoch_end, last = step % steps_per_epoch == 0, step == total
            if epoch_end or last:  # every epoch (Sec. 5's schedule) and at the end
                flush()
                summary = evaluate_batches(p_eval, state, data.eval(), data.num_eval)
                summary.update(step=step, epoch=step / steps_per_epoch)
                run.write(step, {k: v for k, v in summary.items() if k.startswith("eval/")})
                if epoch_end:
                    plateau = optim.plateau_update(plateau, summary["eval/top1_err"], **plateau_kw)
                    lr = optim.set_learning_rate(state.opt_state, plateau.lr)
                    state = state.replace(opt_state=lr)
                print(
                    f"eval at step {step}: top1_err {summary['eval/top1_err']:.4f} top5_err "
                    f"{summary['eval/top5_err']:.4f} loss {summary['eval/loss']:.4f}; "
                    f"lr {plateau.lr:g}",
                    flush=True,
                )
            if epoch_end or last or step % config.checkpoint.every_steps == 0 or stop.signum:
                flush()
                evals = {k: v for k, v in summary.items() if k.startswith("eval/")}
                checkpoint.save(mngr, state, plateau, evals if epoch_end or last else None)
                t_log = time.time()  # images/s counts training steps only
            if stop.signum:
                print(
                    f"stopped by signal {stop.signum} at step {step}; checkpoint saved in "
                    f"{mngr.directory}; rerun with the same --workdir to resume",
                    flush=True,
                )
                return summary
    finally:
        stop.restore()
        mngr.close()
    if not summary:  # resumed a finished run: evaluate what was restored
        summary = evaluate_batches(p_eval, state, data.eval(), data.num_eval)
        summary.update(step=step, epoch=step / steps_per_epoch)
    run.finish(summary)
    return summary
