r"""Figures (PNG): training curves of a run and of a sweep, the ablation bars, Fig. 3 and 4.

  python -m experiments.figures --workdir=runs/ablations --out=experiments/results/ablations
  python -m experiments.figures --run=runs/fm --out=experiments/results/fm   # one run

Curves: training loss and validation top-1/top-5 error against epoch, a dotted line where the
plateau schedule divided the learning rate (Sec. 5), the loss of a uniform guess, ln(classes),
dashed. A sweep also gets its ablation table as bars (deltas.png: each variant's change in test
error, +-2 SE, beside the paper's) and, when it has a no_dropout variant, Sec. 4.2's train vs
test error (overfitting_dropout.png). Fig. 3 and Fig. 4 of a run: experiments/net_figures.py.
"""

import itertools
import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from absl import flags  # noqa: E402

from alexnet_jax import cli, files
from alexnet_jax.errors import InputError, MissingFileError
from experiments import net_figures, tables
from experiments import sweep as sweep_lib

DPI = 100


def read_metrics(run_dir: str) -> tuple[list[dict], float]:
    """metrics.jsonl rows and the run's steps per epoch (from provenance.json's final step)."""
    if not os.path.isfile(os.path.join(run_dir, "metrics.jsonl")):
        raise MissingFileError(f"{run_dir} has no metrics.jsonl; pass a training --workdir")
    rows = files.read_rows(os.path.join(run_dir, "metrics.jsonl"))
    # runs resumed before train.py dropped a killed start's rows hold some steps twice
    rows = list({("eval/top1_err" in r, r["step"]): r for r in rows}.values())
    rows.sort(key=lambda r: (r["step"], "eval/top1_err" in r))
    with open(os.path.join(run_dir, "provenance.json")) as f:
        final = json.load(f).get("final")
    if not final:
        raise InputError(f"{run_dir} has not finished (no final result in provenance.json)")
    return rows, final["step"] / final["epoch"]


def lr_drops(rows: list[dict]) -> list[int]:
    """Steps of the evaluations after which the learning rate was divided (Sec. 5)."""
    drops, last_lr, last_eval = [], None, 0
    for r in rows:
        if "eval/top1_err" in r:
            last_eval = r["step"]
        if "lr" in r:
            if last_lr is not None and r["lr"] < last_lr * (1 - 1e-3):
                drops.append(last_eval)
            last_lr = r["lr"]
    return drops


def _run_config(run_dir: str) -> dict:
    with open(os.path.join(run_dir, "config.json")) as f:
        return json.load(f)


def chance_loss(run_dir: str) -> float:
    """ln(num_classes): the loss of a uniform guess, where a net that cannot learn stays."""
    return math.log(_run_config(run_dir)["model"]["num_classes"])


def eval_label(run_dir: str) -> str:
    """What the run's evaluations measured: the error on its config's input.eval_split (the
    test set for most Fashion-MNIST runs, a held-out validation split for others)."""
    return f"error on {_run_config(run_dir)['input']['eval_split']!r}"


def _curve_axes(title: str, run_dir: str):
    fig, (ax_loss, ax_err) = plt.subplots(1, 2, figsize=(10, 4), dpi=DPI)
    ax_loss.set(xlabel="epoch", ylabel="training loss", title=title)
    ax_err.set(xlabel="epoch", ylabel=eval_label(run_dir), title=title)
    return fig, ax_loss, ax_err


def plot_run(run_dir: str, out_png: str) -> None:
    """Training loss and validation top-1/top-5 error vs epoch of one run, lr drops dotted."""
    rows, spe = read_metrics(run_dir)
    fig, ax_loss, ax_err = _curve_axes(os.path.basename(os.path.normpath(run_dir)), run_dir)
    tr = [r for r in rows if "train/loss" in r]
    ev = [r for r in rows if "eval/top1_err" in r]
    ax_loss.plot([r["step"] / spe for r in tr], [r["train/loss"] for r in tr], label="train loss")
    ax_loss.axhline(chance_loss(run_dir), ls="--", c="grey", lw=1, label="ln(classes)")
    for key, label in (("eval/top1_err", "top-1"), ("eval/top5_err", "top-5")):
        ax_err.plot([r["step"] / spe for r in ev], [r[key] for r in ev], "o-", label=label)
    for i, s in enumerate(lr_drops(rows)):
        for ax in (ax_loss, ax_err):
            ax.axvline(s / spe, ls=":", c="k", label="lr / 10" if i == 0 and ax is ax_err else None)
    ax_loss.legend()
    ax_err.legend()
    fig.tight_layout()
    fig.savefig(out_png)
    plt.close(fig)


def _manifest(workdir: str, manifest: dict | None) -> dict:
    if manifest is None:
        with open(os.path.join(workdir, "sweep.json")) as f:
            manifest = json.load(f)
    return manifest


def _variant_curves(workdir: str, manifest: dict, variant: str) -> list[tuple]:
    """(steps per epoch, train rows, eval rows) of each finished run of `variant`."""
    out = []
    for r in (r for r in manifest["runs"] if r["variant"] == variant):
        rows, spe = read_metrics(os.path.join(workdir, r["run_dir"]))
        out.append(
            (spe, [x for x in rows if "train/loss" in x], [x for x in rows if "eval/top1_err" in x])
        )
    return out


def _seed_mean(xs: list[list[float]]) -> np.ndarray:
    n = min(len(x) for x in xs)
    return np.mean([x[:n] for x in xs], axis=0)


def plot_sweep(workdir: str, out_png: str, manifest: dict | None = None) -> None:
    """Every variant of a sweep overlaid: seed mean (thick) and each seed (thin), the loss axis
    cut at 2 ln(classes); `manifest` (default WORKDIR/sweep.json) may hold only finished runs."""
    manifest = _manifest(workdir, manifest)
    first_run = os.path.join(workdir, manifest["runs"][0]["run_dir"])
    title = "sweep: " + os.path.basename(os.path.normpath(workdir))
    fig, ax_loss, ax_err = _curve_axes(title, first_run)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, variant in enumerate(manifest["variants"]):
        c, curves = colours[i % len(colours)], _variant_curves(workdir, manifest, variant)
        for spe, tr, ev in curves:
            ax_loss.plot([x["step"] / spe for x in tr], [x["train/loss"] for x in tr], c=c, lw=0.5)
            ax_err.plot(
                [x["step"] / spe for x in ev], [x["eval/top1_err"] for x in ev], c=c, lw=0.5
            )
        if curves:
            spe, _, ev = curves[0]
            mean = _seed_mean([[x["eval/top1_err"] for x in e] for _, _, e in curves])
            ax_err.plot(
                [x["step"] / spe for x in ev][: len(mean)],
                mean,
                "o-",
                c=c,
                lw=2,
                label=f"{variant} (top-1)",
            )
    chance = chance_loss(first_run)
    ax_loss.axhline(chance, ls="--", c="grey", lw=1, label="ln(classes)")
    ax_loss.set_ylim(0, min(ax_loss.get_ylim()[1], 2 * chance))  # a first-steps spike, cut
    ax_loss.legend(fontsize=7)
    ax_err.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_png)
    plt.close(fig)


def plot_deltas(rows: list[dict], baseline: str, out_png: str) -> None:
    """The ablation table (experiments/tables.py's rows) as bars: each variant's change in
    top-1 and top-5 test error against the baseline, +-2 SE, beside the paper's (diamonds)."""
    rows = [r for r in rows if r["variant"] != baseline]
    fig, axes = plt.subplots(1, 2, figsize=(11, 1.2 + 0.5 * len(rows)), dpi=DPI, sharey=True)
    y = np.arange(len(rows))[::-1]
    for ax, m in zip(axes, ("top1", "top5"), strict=True):
        d = np.array([r[f"d_{m}"] for r in rows])
        se = np.nan_to_num(np.array([r[f"d_{m}_se"] for r in rows]))
        ax.barh(y, d, xerr=2 * se, color="tab:blue", alpha=0.7, capsize=3, label="ours, ±2 SE")
        paper = [(yy, r[f"paper_d_{m}"]) for yy, r in zip(y, rows, strict=True)]
        paper = [(yy, p) for yy, p in paper if p is not None]
        if paper:
            ax.plot([p for _, p in paper], [yy for yy, _ in paper], "kD", label="paper")
        ax.axvline(0, c="k", lw=0.8)
        n = "/".join(str(k) for k in sorted({r["n"] for r in rows}))
        ax.set(
            xlabel=f"Δ {m[:3]}-{m[3]} error vs {baseline} (points; + = worse)",
            title=f"{'top-1' if m == 'top1' else 'top-5'}: mean of n={n} seeds",
        )
        ax.legend(fontsize=7, loc="lower right")
    axes[0].set_yticks(y, [f"{r['variant']} ({r['section']})" for r in rows], fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png)
    plt.close(fig)


def plot_overfitting(
    workdir: str, variants: tuple[str, ...], out_png: str, manifest: dict | None = None
) -> dict:
    """Sec. 4.2's claim as curves: training vs evaluation top-1 error per epoch, seed means,
    named by the runs' input.eval_split (the test set, or a held-out validation split). The
    training error is the trainer's running one, averaged over each epoch's logged steps (with
    dropout and augmentation on, as the net trains). The curves are seed means up to the
    shortest run (runs a plateau schedule ends at different epochs); the returned gap (points) is
    the mean over seeds of each run's gap at its own last epoch."""
    manifest = _manifest(workdir, manifest)
    first_run = os.path.join(workdir, manifest["runs"][0]["run_dir"])
    split = _run_config(first_run)["input"]["eval_split"]  # "test" or e.g. "train[55000:]"
    fig, (ax, ax_gap) = plt.subplots(1, 2, figsize=(11, 4), dpi=DPI)
    colours, gaps = plt.rcParams["axes.prop_cycle"].by_key()["color"], {}
    for i, variant in enumerate(variants):
        c, train, test = colours[i % len(colours)], [], []
        for _, tr, ev in _variant_curves(workdir, manifest, variant):
            bounds = [0] + [x["step"] for x in ev]
            train.append(
                [
                    np.mean([x["train/top1_err"] for x in tr if a < x["step"] <= b])
                    for a, b in itertools.pairwise(bounds)
                ]
            )
            test.append([x["eval/top1_err"] for x in ev])
        if not test:
            continue
        tr_m, te_m = 100 * _seed_mean(train), 100 * _seed_mean(test)
        epochs = np.arange(1, len(te_m) + 1)
        ax.plot(epochs, tr_m, "--", c=c, label=f"{variant}: train (running)")
        ax.plot(epochs, te_m, "o-", c=c, label=f"{variant}: {split}")
        ax_gap.plot(epochs, te_m - tr_m, "o-", c=c, label=variant)
        ends = [te[-1] - tr[-1] for tr, te in zip(train, test, strict=True)]
        gaps[variant] = 100 * float(np.mean(ends))
    ax.set(xlabel="epoch", ylabel="top-1 error (%)", title=f"Sec. 4.2: train vs {split} error")
    ax_gap.axhline(0, c="k", lw=0.8)
    ax_gap.set(
        xlabel="epoch",
        ylabel=f"{split} − train top-1 error (points)",
        title="overfitting: the gap (seed means)",
    )
    ax.legend(fontsize=7)
    ax_gap.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_png)
    plt.close(fig)
    return gaps


def figures_for_run(run_dir: str, out: str, name: str, queries: int = 6, k: int = 6) -> dict:
    """Curves, Fig. 3 and Fig. 4 of one run into OUT/NAME_*.png; returns what they measured.
    Fig. 4 needs the stored images at the net's input size; otherwise it is named as not drawn."""
    from alexnet_jax import input_pipeline

    os.makedirs(out, exist_ok=True)
    plot_run(run_dir, os.path.join(out, f"{name}_curves.png"))
    config, model, params = net_figures.load_run(run_dir)
    kernels = np.asarray(params["conv1"]["kernel"])
    spec = net_figures.plot_fig3(
        kernels, config.model.towers, os.path.join(out, f"{name}_fig3_conv1.png")
    )
    measured = {"colour_specificity": spec}
    c = config.input
    train = input_pipeline.load(c, "train")
    if train.images.shape[1] != config.model.input_size:
        measured["fig4"] = (
            f"not drawn: the stored images are {train.images.shape[1]}x{train.images.shape[1]} "
            f"and the net reads {config.model.input_size}x{config.model.input_size} "
            "(resized in the pipeline)"
        )
        return measured
    train = input_pipeline.limit(train, c.train_limit)
    test = input_pipeline.load(c, c.eval_split)
    normalize = input_pipeline.normalizer(c, train)
    prep = lambda x: np.asarray(normalize(x.astype(np.float32)))  # noqa: E731
    pick = np.random.default_rng(0).choice(len(test.labels), queries, replace=False)
    train_f = net_figures.fc7_features(model, params, prep(train.images))
    query_f = net_figures.fc7_features(model, params, prep(test.images[pick]))
    idx = net_figures.nearest(train_f, query_f, k)
    net_figures.plot_fig4(
        test.images[pick], train.images, idx, os.path.join(out, f"{name}_fig4_fc7_nn.png")
    )
    same = float(np.mean(train.labels[idx] == test.labels[pick][:, None]))
    return {**measured, "fig4_neighbour_label_agreement": same, "fig4_test_index": pick.tolist()}


def define_flags(fv: flags.FlagValues, argv: list[str]) -> None:
    """The command-line flags (defined only when run as a program, so modules import cleanly)."""
    d = dict(flag_values=fv)
    flags.DEFINE_string(
        "workdir", None, "A sweep's workdir: overlaid curves, and per-variant figures.", **d
    )
    flags.DEFINE_string("run", None, "One run's workdir.", **d)
    flags.DEFINE_string("out", None, "Directory for the PNGs.", **d)
    flags.DEFINE_bool("partial", False, "Draw the finished runs of an unfinished sweep.", **d)
    flags.DEFINE_list("seeds", None, "Draw only these of the sweep's seeds (default: all).", **d)
    flags.DEFINE_bool(
        "net_figures",
        True,
        "Fig. 3 and Fig. 4 of the baseline's seed 0 (needs its checkpoint); "
        "--nonet_figures draws only what metrics.jsonl gives, e.g. from committed run_files/.",
        **d,
    )
    flags.mark_flags_as_required(["out"], **d)


def main(fv: flags.FlagValues) -> None:
    if not (fv.workdir or fv.run):
        raise InputError("give --workdir (a sweep) or --run (one run)")
    os.makedirs(fv.out, exist_ok=True)
    measured = {"command": cli.command("python -m experiments.figures", sys.argv[1:])}
    if fv.run:
        measured["run"] = figures_for_run(fv.run, fv.out, "run")
    if fv.workdir:
        with open(os.path.join(fv.workdir, "sweep.json")) as f:
            manifest = tables.finished(
                fv.workdir, json.load(f), fv.partial, sweep_lib.parse_seeds(fv.seeds)
            )
        plot_sweep(fv.workdir, os.path.join(fv.out, "sweep_curves.png"), manifest)
        runs = {
            r["run_dir"]: tables.read_run(os.path.join(fv.workdir, r["run_dir"]))
            for r in manifest["runs"]
        }
        rows = tables.ablation_rows(manifest, runs)
        if len(rows) > 1:
            plot_deltas(rows, manifest["baseline"], os.path.join(fv.out, "deltas.png"))
        if "no_dropout" in manifest["variants"]:
            measured["overfitting_gap_points"] = plot_overfitting(
                fv.workdir,
                (manifest["baseline"], "no_dropout"),
                os.path.join(fv.out, "overfitting_dropout.png"),
                manifest,
            )
        first = {}
        for r in manifest["runs"]:
            first.setdefault(r["variant"], r["run_dir"])
        for variant, run_dir in first.items():
            plot_run(
                os.path.join(fv.workdir, run_dir),
                os.path.join(fv.out, f"{variant}_curves.png"),
            )
        if fv.net_figures:
            base = first[manifest["baseline"]]
            try:
                measured[base] = figures_for_run(os.path.join(fv.workdir, base), fv.out, "baseline")
            except MissingFileError as e:
                raise MissingFileError(f"Fig. 3/4: {e}; or pass --nonet_figures") from None
    text = json.dumps(measured, indent=2).replace("NaN", "null")  # nan: undefined (grey input)
    with open(os.path.join(fv.out, "figures.json"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    cli.run(define_flags, main)
