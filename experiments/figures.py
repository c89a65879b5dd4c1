r"""Figures (PNG): training curves of a run and of a sweep, Fig. 3's conv1 kernels, Fig. 4.

  python -m experiments.figures --workdir=runs/ablations --out=experiments/results/ablations
  python -m experiments.figures --run=runs/fm --out=experiments/results/fm   # one run

Curves: training loss and validation top-1/top-5 error against epoch, a dotted line where the
plateau schedule divided the learning rate (Sec. 5). Fig. 3: the conv1 kernels, the first half
(tower 1) above the second half (tower 2), each kernel scaled to [0, 1] on its own, with each
tower's mean colour specificity: the share of a kernel's energy off the grey axis,
||w - mean_c(w)||^2 / ||w||^2 (0 = colour-blind, 1 = no grey component); undefined for
1-channel input. Fig. 4: test images and the training images nearest to them in fc7 space
(Euclidean distance, Sec. 6.1).
"""

import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import jax  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402
from absl import flags  # noqa: E402

from alexnet_jax.errors import InputError, MissingFileError

DPI = 100


def read_metrics(run_dir: str) -> tuple[list[dict], float]:
    """metrics.jsonl rows and the run's steps per epoch (from provenance.json's final step)."""
    if not os.path.isfile(os.path.join(run_dir, "metrics.jsonl")):
        raise MissingFileError(f"{run_dir} has no metrics.jsonl; pass a training --workdir")
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f if line.strip()]
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


def _curve_axes(title: str):
    fig, (ax_loss, ax_err) = plt.subplots(1, 2, figsize=(10, 4), dpi=DPI)
    ax_loss.set(xlabel="epoch", ylabel="training loss", title=title)
    ax_err.set(xlabel="epoch", ylabel="validation error", title=title)
    return fig, ax_loss, ax_err


def plot_run(run_dir: str, out_png: str) -> None:
    """Training loss and validation top-1/top-5 error vs epoch of one run, lr drops dotted."""
    rows, spe = read_metrics(run_dir)
    fig, ax_loss, ax_err = _curve_axes(os.path.basename(os.path.normpath(run_dir)))
    tr = [r for r in rows if "train/loss" in r]
    ev = [r for r in rows if "eval/top1_err" in r]
    ax_loss.plot([r["step"] / spe for r in tr], [r["train/loss"] for r in tr], label="train loss")
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


def plot_sweep(workdir: str, out_png: str) -> None:
    """Every variant of a sweep overlaid: seed mean (thick) and each seed (thin)."""
    with open(os.path.join(workdir, "sweep.json")) as f:
        manifest = json.load(f)
    fig, ax_loss, ax_err = _curve_axes("sweep: " + os.path.basename(os.path.normpath(workdir)))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, variant in enumerate(manifest["variants"]):
        c = colours[i % len(colours)]
        curves = []
        for r in (r for r in manifest["runs"] if r["variant"] == variant):
            rows, spe = read_metrics(os.path.join(workdir, r["run_dir"]))
            tr = [x for x in rows if "train/loss" in x]
            ev = [x for x in rows if "eval/top1_err" in x]
            ax_loss.plot([x["step"] / spe for x in tr], [x["train/loss"] for x in tr], c=c, lw=0.5)
            ax_err.plot(
                [x["step"] / spe for x in ev], [x["eval/top1_err"] for x in ev], c=c, lw=0.5
            )
            curves.append(([x["step"] / spe for x in ev], [x["eval/top1_err"] for x in ev]))
        n = min(len(x) for x, _ in curves)
        mean = np.mean([y[:n] for _, y in curves], axis=0)
        ax_err.plot(curves[0][0][:n], mean, "o-", c=c, lw=2, label=f"{variant} (top-1)")
    ax_err.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_png)
    plt.close(fig)


def colour_specificity(kernels: np.ndarray) -> np.ndarray:
    """[kh, kw, C, K] -> [K]: ||w - mean_c(w)||^2 / ||w||^2 per kernel; nan if C == 1."""
    if kernels.shape[2] == 1:
        return np.full(kernels.shape[3], np.nan)
    w = kernels.astype(np.float64)
    chroma = w - w.mean(axis=2, keepdims=True)
    return (chroma**2).sum((0, 1, 2)) / np.maximum((w**2).sum((0, 1, 2)), 1e-30)


def tower_split(kernels: np.ndarray, towers: int) -> list[np.ndarray]:
    """conv1's [kh, kw, C, K] kernels per tower: tower t has output maps t*K/T .. (t+1)*K/T."""
    k = kernels.shape[3]
    if k % towers:
        raise InputError(f"conv1 has {k} kernels, not divisible by config.model.towers={towers}")
    return np.split(kernels, towers, axis=3)


def kernel_mosaic(kernels: np.ndarray, towers: int, cols: int = 16, gap: int = 1) -> np.ndarray:
    """Fig. 3: [H, W, 3] image of the kernels, tower 1's rows above tower 2's, a blank row
    between towers; each kernel min-max scaled to [0, 1]; grey kernels repeated on 3 channels."""
    kh, kw, c, _ = kernels.shape
    blocks = []
    for part in tower_split(kernels, towers):
        n = part.shape[3]
        cols_ = min(cols, n)
        rows = math.ceil(n / cols_)
        block = np.ones((rows * (kh + gap), cols_ * (kw + gap), 3))
        for i in range(n):
            w = part[..., i].astype(np.float64)
            w = (w - w.min()) / max(w.max() - w.min(), 1e-12)
            if c == 1:
                w = np.repeat(w, 3, axis=2)
            r, q = divmod(i, cols_)
            block[r * (kh + gap) : r * (kh + gap) + kh, q * (kw + gap) : q * (kw + gap) + kw] = w
        blocks.append(block)
    width = max(b.shape[1] for b in blocks)
    padded = [
        np.pad(b, ((0, 0), (0, width - b.shape[1]), (0, 0)), constant_values=1) for b in blocks
    ]
    sep = np.ones((kh + gap, width, 3))
    return np.concatenate([x for b in padded for x in (b, sep)][:-1], axis=0)


def plot_fig3(kernels: np.ndarray, towers: int, out_png: str) -> list[float]:
    """Fig. 3 as a PNG; returns each tower's mean colour specificity (nan for grey input)."""
    spec = [float(np.mean(colour_specificity(p))) for p in tower_split(kernels, towers)]
    image = kernel_mosaic(kernels, towers)
    fig, ax = plt.subplots(figsize=(8, 8 * image.shape[0] / image.shape[1] + 0.8), dpi=DPI)
    ax.imshow(image, interpolation="nearest")
    ax.axis("off")
    words = [
        f"tower {t + 1}: " + ("undefined (1-channel input)" if math.isnan(s) else f"{s:.3f}")
        for t, s in enumerate(spec)
    ]
    ax.set_title(
        f"conv1 kernels {kernels.shape[:3]}, top: tower 1; colour specificity " + ", ".join(words),
        fontsize=8,
    )
    fig.tight_layout()
    fig.savefig(out_png)
    plt.close(fig)
    return spec


def nearest(train_feats: np.ndarray, query_feats: np.ndarray, k: int) -> np.ndarray:
    """[Q, k] indices of the k training vectors nearest to each query, Euclidean (Sec. 6.1)."""
    d2 = (
        (query_feats**2).sum(1)[:, None]
        - 2 * query_feats @ train_feats.T
        + (train_feats**2).sum(1)[None, :]
    )
    return np.argsort(d2, axis=1, kind="stable")[:, :k]


def plot_fig4(queries: np.ndarray, train: np.ndarray, idx: np.ndarray, out_png: str) -> None:
    """Fig. 4 (right): each query image, then its nearest training images by fc7 distance."""
    q, k = idx.shape
    fig, axes = plt.subplots(q, k + 1, figsize=(1.2 * (k + 1), 1.2 * q), dpi=DPI, squeeze=False)
    for i in range(q):
        row = [queries[i], *train[idx[i]]]
        for j, img in enumerate(row):
            ax = axes[i, j]
            ax.imshow(img.squeeze(), cmap="gray" if img.shape[-1] == 1 else None)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title("test" if j == 0 else f"#{j}", fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png)
    plt.close(fig)


def load_run(run_dir: str):
    """(config, model, params) of a run's latest checkpoint."""
    from alexnet_jax import checkpoint, models

    with open(os.path.join(run_dir, "config.json")) as f:
        config = ml_collections.ConfigDict(json.load(f))
    model = models.create_model(config)
    shapes = jax.eval_shape(lambda: models.init_params(model, config, jax.random.key(0)))
    return config, model, checkpoint.read_params(run_dir, "latest", shapes)


def fc7_features(model, params, images: np.ndarray, batch: int = 500) -> np.ndarray:
    """fc7 activations (after the ReLU) of network-input images [N, H, W, C]."""
    from alexnet_jax import models

    f = jax.jit(lambda x: models.activations(model, params, x)["fc7"])
    return np.concatenate(
        [np.asarray(f(images[i : i + batch])) for i in range(0, len(images), batch)]
    )


def figures_for_run(run_dir: str, out: str, name: str, queries: int = 6, k: int = 6) -> dict:
    """Curves, Fig. 3 and Fig. 4 of one run into OUT/NAME_*.png; returns what they measured."""
    from alexnet_jax import input_pipeline

    os.makedirs(out, exist_ok=True)
    plot_run(run_dir, os.path.join(out, f"{name}_curves.png"))
    config, model, params = load_run(run_dir)
    kernels = np.asarray(params["conv1"]["kernel"])
    spec = plot_fig3(kernels, config.model.towers, os.path.join(out, f"{name}_fig3_conv1.png"))
    c = config.input
    train = input_pipeline.load(c, "train")
    if c.train_limit is not None:
        train = input_pipeline.Split(train.images[: c.train_limit], train.labels[: c.train_limit])
    test = input_pipeline.load(c, c.eval_split)
    normalize = input_pipeline.normalizer(c, train)
    if train.images.shape[1] != config.model.input_size:
        raise InputError("Fig. 4 here needs images stored at config.model.input_size")
    prep = lambda x: np.asarray(normalize(x.astype(np.float32)))  # noqa: E731
    pick = np.random.default_rng(0).choice(len(test.labels), queries, replace=False)
    train_f = fc7_features(model, params, prep(train.images))
    query_f = fc7_features(model, params, prep(test.images[pick]))
    idx = nearest(train_f, query_f, k)
    plot_fig4(test.images[pick], train.images, idx, os.path.join(out, f"{name}_fig4_fc7_nn.png"))
    same = float(np.mean(train.labels[idx] == test.labels[pick][:, None]))
    return {
        "colour_specificity": spec,
        "fig4_neighbour_label_agreement": same,
        "fig4_test_index": pick.tolist(),
    }


def define_flags(fv: flags.FlagValues, argv: list[str]) -> None:
    """The command-line flags (defined only when run as a program, so modules import cleanly)."""
    d = dict(flag_values=fv)
    flags.DEFINE_string(
        "workdir", None, "A sweep's workdir: overlaid curves, and per-variant figures.", **d
    )
    flags.DEFINE_string("run", None, "One run's workdir.", **d)
    flags.DEFINE_string("out", None, "Directory for the PNGs.", **d)
    flags.mark_flags_as_required(["out"], **d)


def main(fv: flags.FlagValues) -> None:
    if not (fv.workdir or fv.run):
        raise InputError("give --workdir (a sweep) or --run (one run)")
    os.makedirs(fv.out, exist_ok=True)
    measured = {"command": " ".join(["python -m experiments.figures", *sys.argv[1:]])}
    if fv.run:
        measured["run"] = figures_for_run(fv.run, fv.out, "run")
    if fv.workdir:
        plot_sweep(fv.workdir, os.path.join(fv.out, "sweep_curves.png"))
        with open(os.path.join(fv.workdir, "sweep.json")) as f:
            manifest = json.load(f)
        first = {}
        for r in manifest["runs"]:
            first.setdefault(r["variant"], r["run_dir"])
        for variant, run_dir in first.items():
            plot_run(
                os.path.join(fv.workdir, run_dir),
                os.path.join(fv.out, f"{variant}_curves.png"),
            )
        base = first[manifest["baseline"]]
        measured[base] = figures_for_run(os.path.join(fv.workdir, base), fv.out, "baseline")
    text = json.dumps(measured, indent=2).replace("NaN", "null")  # nan: undefined (grey input)
    with open(os.path.join(fv.out, "figures.json"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    from alexnet_jax import cli

    cli.run(define_flags, main)
