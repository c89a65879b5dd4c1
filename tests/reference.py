"""Independent oracles, written from the paper and from PyTorch; never imports alexnet_jax.

- `lrn_paper`: float64 loops, straight from Sec. 3.3's printed formula.
- `TorchAlexNet`: the network of Fig. 2 in PyTorch functional ops (conv2d(groups=...),
  max_pool2d, nn.LocalResponseNorm, linear), built from the same `config.model` fields and
  loaded with our parameter tree; it flattens in its own NCHW order and permutes fc6's rows.
"""

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812


def lrn_paper(a: np.ndarray, size: int, k: float, alpha: float, beta: float) -> np.ndarray:
    """b^i = a^i / (k + alpha * sum_{j=max(0,i-n/2)}^{min(N-1,i+n/2)} (a^j)^2)^beta.

    Channels last; float64; the window cut at the first and last channel.
    """
    a = a.astype(np.float64)
    n = a.shape[-1]
    out = np.empty_like(a)
    for i in range(n):
        lo, hi = max(0, i - size // 2), min(n - 1, i + size // 2)
        s = np.zeros(a.shape[:-1])
        for j in range(lo, hi + 1):
            s += a[..., j] ** 2
        out[..., i] = a[..., i] / (k + alpha * s) ** beta
    return out


def torch_lrn(x: torch.Tensor, lrn: dict, groups: int) -> torch.Tensor:
    """LRN on NCHW with torch.nn.LocalResponseNorm (alpha multiplies the mean over `size`).

    The paper and TF multiply the sum instead, i.e. torch's alpha = their alpha * size.
    `groups` > 1 normalizes each channel group on its own (one tower per GPU).
    """
    alpha = lrn["alpha"] if lrn["convention"] == "caffe" else lrn["alpha"] * lrn["size"]
    layer = torch.nn.LocalResponseNorm(lrn["size"], alpha=alpha, beta=lrn["beta"], k=lrn["k"])
    return torch.cat([layer(c) for c in torch.chunk(x, groups, dim=1)], dim=1)


def to_torch_params(params: dict, dtype=torch.float64) -> dict[str, dict[str, torch.Tensor]]:
    """Our tree (HWIO convs, (in, out) dense) -> torch layouts (OIHW, (out, in)), leaf tensors."""
    out = {}
    for name, p in params.items():
        w = np.asarray(p["kernel"], np.float64)
        w = w.transpose(3, 2, 0, 1) if w.ndim == 4 else w.T
        out[name] = {
            "weight": torch.tensor(w, dtype=dtype, requires_grad=True),
            "bias": torch.tensor(
                np.asarray(p["bias"], np.float64), dtype=dtype, requires_grad=True
            ),
        }
    return out


def grads_to_ours(tparams: dict) -> dict:
    """Gradients of torch leaves, back in our layouts."""
    out = {}
    for name, p in tparams.items():
        g = p["weight"].grad.numpy()
        out[name] = {
            "kernel": g.transpose(2, 3, 1, 0) if g.ndim == 4 else g.T,
            "bias": p["bias"].grad.numpy(),
        }
    return out


def torch_alexnet(
    tparams: dict,
    m: dict,
    images_nhwc: np.ndarray,
    *,
    masks: dict[str, np.ndarray] | None = None,
    test_scale: float | None = None,
) -> torch.Tensor:
    """Logits of the net that `m` (config.model as a dict) describes.

    Dropout: `masks` {fc layer name: 0/1 mask of its input} multiplies inputs without rescaling
    (the paper's training); `test_scale` multiplies the inputs of those layers at test time (the
    paper's 0.5). With neither, dropout is off.
    """
    dtype = next(iter(tparams.values()))["weight"].dtype
    x = torch.tensor(np.asarray(images_nhwc, np.float64), dtype=dtype).permute(0, 3, 1, 2)
    c = m["conv"]
    towers = m["towers"] if m["lrn"]["within_towers"] else 1
    for i in range(len(c["features"])):
        n, p = i + 1, tparams[f"conv{i + 1}"]
        x = F.conv2d(
            x,
            p["weight"],
            p["bias"],
            stride=c["stride"][i],
            padding=c["padding"][i],
            groups=c["groups"][i],
        )
        x = F.relu(x)
        norm = m["lrn"]["enabled"] and n in m["lrn"]["after"]
        pool = n in m["pool"]["after"]
        pool_fn = lambda t: F.max_pool2d(t, m["pool"]["window"], m["pool"]["stride"])  # noqa: E731
        if m["norm_before_pool"]:
            x = torch_lrn(x, m["lrn"], towers) if norm else x
            x = pool_fn(x) if pool else x
        else:
            x = pool_fn(x) if pool else x
            x = torch_lrn(x, m["lrn"], towers) if norm else x
    x = x.permute(0, 2, 3, 1).flatten(1)  # NHWC order, as the JAX net's fc6 rows are
    first = len(c["features"]) + 1
    n_fc = len(m["fc_features"]) + 1
    for j in range(n_fc):
        name = f"fc{first + j}"
        if name in m["dropout"]["inputs_of"]:
            if masks is not None:
                x = x * torch.tensor(masks[name], dtype=dtype)
            elif test_scale is not None:
                x = x * test_scale
        x = F.linear(x, tparams[name]["weight"], tparams[name]["bias"])
        if j < n_fc - 1:
            x = F.relu(x)
    return x
