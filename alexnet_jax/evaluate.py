r"""Top-1/top-5 error of trained checkpoints, alone and as an ensemble (Sec. 4.1, Sec. 6).

  python -m alexnet_jax.evaluate --config=configs/paper.py --checkpoints=runs/a,runs/b \
      --modes=center,ten_crop --out=eval.json [--which=latest|best]

Restores each workdir's latest checkpoint (`--which=best`: the kept one with the lowest
eval/top1_err in the workdir's metrics.jsonl; that error was measured on the split evaluated
here, so "best" selects on it) and evaluates `config.input.eval_split` once per mode:
  "center"    the central input_size crop of the 256x256 image (what training reports);
  "ten_crop"  the four corner crops, the central crop and their horizontal reflections, the
              softmax averaged over the ten (Sec. 4.1).
With several checkpoints there is one row per checkpoint and one "ensemble of N" row, whose
prediction is the softmax averaged over the checkpoints (and over the crops): the paper's
"5 CNNs" and "7 CNNs" rows of Table 2. Prints a table; --out writes a JSON list of
{"checkpoints": [...], "mode": ..., "top1_err": ..., "top5_err": ..., "n": ...}.
Small datasets: see input_pipeline.py's docstring for how the crops map (config.input.crop_padding).
"""

import functools
import json
import os
import sys
from typing import Literal

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from absl import app, flags, logging
from ml_collections import config_flags

from alexnet_jax import checkpoint, input_pipeline, models, parallel, train

Which = Literal["latest", "best"]

FLAGS = flags.FLAGS


def _define_flags() -> None:
    """Command-line flags, defined only when run as a program (other CLIs define --config too)."""
    config_flags.DEFINE_config_file("config", None, "Config file (configs/*.py).", lock_config=True)
    flags.DEFINE_list("checkpoints", None, "Workdirs of trained runs (each holds checkpoints/).")
    flags.DEFINE_list("modes", None, "center, ten_crop; default: config.input.eval_modes.")
    flags.DEFINE_enum("which", "latest", ["latest", "best"], "Checkpoint of each workdir.")
    flags.DEFINE_string("out", None, "Write the rows as JSON here.")
    flags.mark_flags_as_required(["config", "checkpoints"])


def best_step(workdir: str, steps: list[int]) -> int:
    """The step among `steps` with the lowest eval/top1_err in WORKDIR/metrics.jsonl."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} is missing, so there is no best step; use --which=latest")
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    scored = [(r[checkpoint.BEST_METRIC], r["step"]) for r in rows if checkpoint.BEST_METRIC in r]
    scored = [(err, step) for err, step in scored if step in steps]
    if not scored:
        raise ValueError(
            f"no checkpoint in {workdir} has an {checkpoint.BEST_METRIC} in metrics.jsonl; "
            "use --which=latest"
        )
    return min(scored)[1]


def restore_params(workdir: str, config: ml_collections.ConfigDict, which: Which, template=None):
    """(params, step) of `workdir`'s latest or best checkpoint, on the host.

    `template`: the {"params", "opt_state", "step"} tree to restore into (numpy zeros of the
    config's shapes if None).
    """
    directory = os.path.join(workdir, "checkpoints")
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            f"{directory} does not exist; pass the --workdir of a training run "
            "(python -m alexnet_jax.main --config=... --workdir=DIR)"
        )
    if which not in ("latest", "best"):
        raise ValueError(f"--which={which!r} is unknown; use 'latest' or 'best'")
    template = template if template is not None else restore_template(config)
    mngr = checkpoint.create(workdir, config.checkpoint)
    try:
        steps = mngr.all_steps()
        if not steps:
            raise FileNotFoundError(f"{directory} holds no checkpoint; train first")
        step = max(steps) if which == "latest" else best_step(workdir, steps)
        try:
            restored = mngr.restore(
                step, args=ocp.args.Composite(state=ocp.args.StandardRestore(template))
            )
        except (ValueError, KeyError, TypeError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(
                f"checkpoint {directory}/{step} does not fit --config ({first}); pass the "
                "config it was trained with"
            ) from None
    finally:
        mngr.close()
    params = restored["state"]["params"]
    got = {jax.tree_util.keystr(k): np.shape(v) for k, v in jax.tree.leaves_with_path(params)}
    want = {
        jax.tree_util.keystr(k): np.shape(v)
        for k, v in jax.tree.leaves_with_path(template["params"])
    }
    for name in sorted(got.keys() | want.keys()):
        if got.get(name) != want.get(name):
            raise ValueError(
                f"checkpoint {directory}/{step} does not fit --config: params{name} is "
                f"{got.get(name)} there and {want.get(name)} in the config; pass the config "
                "it was trained with"
            )
    return params, step


def restore_template(config: ml_collections.ConfigDict) -> dict:
    """Zeros shaped like a checkpoint of `config` (shapes traced, nothing initialised)."""

    def tree():
        state = train.create_state(config, jax.random.key(0))
        return {"params": state.params, "opt_state": state.opt_state, "step": state.step}

    return jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), jax.eval_shape(tree))


def probabilities(apply_fn, params, batch: dict) -> jax.Array:
    """Per device: softmax [b, classes] of batch["image"] [b, H, W, C], or averaged over the
    crops of [b, K, H, W, C]."""
    images = batch["image"]
    softmax = lambda x: jax.nn.softmax(apply_fn({"params": params}, x, train=False))  # noqa: E731
    if images.ndim == 4:
        return softmax(images)
    return jax.lax.map(softmax, jnp.swapaxes(images, 0, 1)).mean(0)  # one crop at a time


def errors(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-example top-1 and top-5 errors (0/1); ties go to the lower class, as lax.top_k."""
    top5 = np.argsort(-probs, axis=1, kind="stable")[:, :5]
    return top5[:, 0] != labels, ~(top5 == labels[:, None]).any(1)


def run(
    config: ml_collections.ConfigDict,
    workdirs: list[str],
    modes: list[str] | None = None,
    which: Which = "latest",
) -> list[dict]:
    """Rows {"checkpoints", "mode", "top1_err", "top5_err", "n", "steps"} for each checkpoint
    (and their ensemble if there are several) and mode."""
    if not workdirs:
        raise ValueError("--checkpoints is empty; pass one or more training workdirs")
    modes = list(modes or config.input.eval_modes)
    for mode in modes:
        if mode not in ("center", "ten_crop"):
            raise ValueError(f"--modes: {mode!r} is unknown; use center and/or ten_crop")
    model = models.create_model(config)
    plan = parallel.create(config, model)  # config.parallelism, as in training
    template = restore_template(config)
    restored = [restore_params(w, config, which, template) for w in workdirs]
    placed = [plan.place(p) for p, _ in restored]
    p_probs = plan.map(functools.partial(probabilities, plan.model.apply))
    data = input_pipeline.create(config)
    groups = [[w] for w in workdirs] + ([list(workdirs)] if len(workdirs) > 1 else [])
    rows = []
    for mode in modes:
        wrong = np.zeros((len(groups), 2))
        n = 0
        for batch in data.eval(mode):
            real = batch["mask"] > 0
            labels = batch["label"][real]
            images = plan.batch({"image": batch["image"]})
            probs = [plan.fetch(p_probs(p, images))[real] for p in placed]
            if len(probs) > 1:
                probs.append(np.mean(probs, axis=0))  # the ensemble: softmax averaged
            for i, p in enumerate(probs):
                wrong[i] += [e.sum() for e in errors(p, labels)]
            n += int(real.sum())
        for group, (top1, top5) in zip(groups, wrong, strict=True):
            steps = [restored[workdirs.index(w)][1] for w in group]
            rows.append(
                dict(checkpoints=group, mode=mode, top1_err=top1 / n, top5_err=top5 / n, n=n)
            )
            rows[-1]["steps"] = steps
    return rows


def table(rows: list[dict]) -> str:
    """The rows as a fixed-width text table."""
    lines = [f"{'checkpoint':<40} {'mode':<9} {'top-1 err':>9} {'top-5 err':>9} {'n':>7}"]
    for r in rows:
        ckpts = r["checkpoints"]
        name = f"{ckpts[0]} (step {r['steps'][0]})" if len(ckpts) == 1 else None
        name = name or f"ensemble of {len(ckpts)}"
        lines.append(
            f"{name:<40} {r['mode']:<9} {r['top1_err']:>9.4f} {r['top5_err']:>9.4f} {r['n']:>7}"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    import tensorflow as tf

    tf.config.set_visible_devices([], "GPU")  # tf.data only; the accelerator is JAX's
    try:
        rows = run(FLAGS.config, FLAGS.checkpoints, FLAGS.modes, FLAGS.which)
    except (ValueError, OSError) as e:  # bad input: one line, no traceback
        sys.exit(f"error: {e}")
    print(table(rows), flush=True)
    if FLAGS.out:
        with open(FLAGS.out, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    _define_flags()
    app.run(main)
