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
{"checkpoints": [...], "mode": ..., "top1_err": ..., "top5_err": ..., "n": ..., "steps": [...],
"split": config.input.eval_split}.
Small datasets: see input_pipeline.py's docstring for how the crops map (config.input.crop_padding).
"""

import functools
import json
from typing import Literal

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import flags, logging

from alexnet_jax import checkpoint, cli, input_pipeline, models, parallel, train, validate
from alexnet_jax.errors import InputError

Which = Literal["latest", "best"]


def define_flags(fv: flags.FlagValues, argv: list[str]) -> None:
    cli.define_config(fv, argv)
    flags.DEFINE_list(
        "checkpoints", None, "Workdirs of trained runs (each holds checkpoints/).", flag_values=fv
    )
    flags.DEFINE_list(
        "modes", None, "center, ten_crop; default: config.input.eval_modes.", flag_values=fv
    )
    flags.DEFINE_enum(
        "which", "latest", ["latest", "best"], "Checkpoint of each workdir.", flag_values=fv
    )
    flags.DEFINE_string("out", None, "Write the rows as JSON here.", flag_values=fv)
    flags.mark_flags_as_required(["config", "checkpoints"], flag_values=fv)


def restore_params(workdir: str, config: ml_collections.ConfigDict, which: Which, template=None):
    """(params, step) of `workdir`'s latest or best checkpoint, on the host (checkpoint.read).

    `template`: the {"params", ...} tree whose shapes the checkpoint must have (the config's
    if None); another model's checkpoint is one line naming the first differing layer.
    """
    if which not in ("latest", "best"):
        raise InputError(f"--which={which!r} is unknown; use 'latest' or 'best'")
    template = template if template is not None else restore_template(config)
    return checkpoint.read(workdir, which, template["params"])


def restore_template(config: ml_collections.ConfigDict) -> dict:
    """Zeros shaped like a checkpoint of `config` (shapes traced, nothing initialised)."""

    def tree():  # init_from's file is not read: a fine-tuned run's checkpoint is enough
        state = train.create_state(config, jax.random.key(0), pretrained=False)
        return {"params": state.params, "opt_state": state.opt_state, "step": state.step}

    return jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), jax.eval_shape(tree))


def _log_mean_exp(x: jax.Array) -> jax.Array:
    """log(mean(exp(x), 0)): the log of the mean probability, without underflow."""
    return jax.nn.logsumexp(x, axis=0) - jnp.log(x.shape[0])


def log_probabilities(apply_fn, preprocess, params, batch: dict) -> jax.Array:
    """Per device: log softmax [b, classes] of the center crop [b, H, W, C], or the log of the
    softmax averaged over the ten crops [b, 10, H, W, C] (Sec. 4.1), which `preprocess` cuts on
    the device (augment.py). In logs, so that classes whose probability underflows to 0 in
    float32 keep their order for the top-5 (ties there would go to the low class indices)."""
    images = preprocess(batch)["image"]
    log_softmax = lambda x: jax.nn.log_softmax(apply_fn({"params": params}, x, train=False))  # noqa: E731
    if images.ndim == 4:
        return log_softmax(images)
    return _log_mean_exp(jax.lax.map(log_softmax, jnp.swapaxes(images, 0, 1)))  # crop by crop


def wrong_counts(apply_fn, preprocess, params: list, batch: dict) -> list:
    """Per device, summed over "batch": [top-1 errors, top-5 errors] of each net's softmax, then
    (several nets) of their average (Sec. 6's ensemble), and the count of real examples. Scalars
    only, so any layout and any number of processes gives the same numbers."""
    logs = [log_probabilities(apply_fn, preprocess, p, batch) for p in params]
    if len(logs) > 1:
        logs.append(_log_mean_exp(jnp.stack(logs)))
    mask = batch["mask"]
    sums = [[(e * mask).sum() for e in train.top_errors(p, batch["label"])] for p in logs]
    return jax.lax.psum([*sums, mask.sum()], "batch")


def run(
    config: ml_collections.ConfigDict,
    workdirs: list[str],
    modes: list[str] | None = None,
    which: Which = "latest",
) -> list[dict]:
    """Rows {"checkpoints", "mode", "top1_err", "top5_err", "n", "steps", "split"} per checkpoint
    (and their ensemble if there are several) and mode."""
    if not workdirs:
        raise InputError("--checkpoints is empty; pass one or more training workdirs")
    validate.config(config)  # as main does: e.g. eval_limit=-5 would drop the last 5 images
    modes = list(modes or config.input.eval_modes)
    for mode in modes:
        if mode not in ("center", "ten_crop"):
            raise InputError(f"--modes: {mode!r} is unknown; use center and/or ten_crop")
    model = models.create_model(config)
    plan = parallel.create(config, model)  # config.parallelism, as in training
    template = restore_template(config)
    restored = [restore_params(w, config, which, template) for w in workdirs]
    placed = plan.place([p for p, _ in restored])
    data = input_pipeline.create(config)
    groups = [[w] for w in workdirs] + ([list(workdirs)] if len(workdirs) > 1 else [])
    rows = []
    for mode in modes:
        wrong = np.zeros((len(groups), 2))
        n = 0
        p_wrong = plan.map(
            functools.partial(wrong_counts, plan.model.apply, data.eval_preprocess(mode))
        )
        for batch in data.eval():  # this process's rows; images uint8 where stored so
            keep = {k: batch[k] for k in ("image", "label", "mask")}
            *sums, count = plan.fetch(p_wrong(placed, plan.batch(keep)))
            wrong += np.asarray(sums, np.float64)
            n += int(count)
        for group, (top1, top5) in zip(groups, wrong, strict=True):
            steps = [restored[workdirs.index(w)][1] for w in group]
            rows.append(
                dict(checkpoints=group, mode=mode, top1_err=top1 / n, top5_err=top5 / n, n=n)
            )
            rows[-1].update(steps=steps, split=config.input.eval_split)  # which images
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


def main(fv: flags.FlagValues) -> list[dict]:
    logging.set_verbosity(logging.WARNING)
    rows = run(fv.config, fv.checkpoints, fv.modes, fv.which)
    print(table(rows), flush=True)
    if fv.out:
        with open(fv.out, "w") as f:
            json.dump(rows, f, indent=2)
    return rows


if __name__ == "__main__":
    cli.run(define_flags, main)
