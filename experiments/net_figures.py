r"""The paper's pictures of a trained net: Fig. 3 (conv1's kernels) and Fig. 4 (fc7 neighbours).

Fig. 3: the conv1 kernels, the first half (tower 1) above the second half (tower 2), each kernel
scaled to [0, 1] on its own, with each tower's mean colour specificity: the share of a
kernel's energy off the grey axis, ||w - mean_c(w)||^2 / ||w||^2 (0 = colour-blind, 1 = no
grey component); undefined for 1-channel input. Fig. 4: test images and the training images
nearest to them in fc7 space (Euclidean distance, Sec. 6.1). experiments/figures.py draws them
for a run (`--run`) or a sweep's baseline.
"""

import json
import math
import os

import matplotlib

matplotlib.use("Agg")
import jax  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402

from alexnet_jax.errors import InputError

DPI = 100


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
