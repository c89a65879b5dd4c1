r"""Weight layouts: Caffe's (bvlc_alexnet.npy) and torchvision's AlexNet <-> our params tree.

Pure numpy conversions, no I/O: weights.py reads and writes the files and its docstring gives
each format's layout. Our tree: conv kernels HWIO with flax's grouped layout, dense (in, out),
fc6's rows in our NHWC flatten order (H, W, C); Caffe's and torch's fc6 flatten (C, H, W).
"""

import jax
import numpy as np

from alexnet_jax.errors import InputError

FC6_ROWS: tuple[str, ...] = ("hwc", "chw")

# torchvision.models.AlexNet's module indices: features = conv, ReLU, pool, conv, ReLU, pool,
# conv, ReLU, conv, ReLU, conv, ReLU, pool; classifier = dropout, linear, ReLU, dropout, ...
TORCHVISION_KEYS = {
    "conv1": "features.0",
    "conv2": "features.3",
    "conv3": "features.6",
    "conv4": "features.8",
    "conv5": "features.10",
    "fc6": "classifier.1",
    "fc7": "classifier.4",
    "fc8": "classifier.6",
}

Params = dict[str, dict[str, np.ndarray]]


def _pool5_shape(tree: Params, what: str) -> tuple[int, int, int]:
    """(H, W, C) of the conv stack's output, from conv5's kernel and fc6's rows (square maps)."""
    convs = sorted((n for n in tree if n.startswith("conv")), key=lambda n: int(n[4:]))
    fcs = sorted((n for n in tree if n.startswith("fc")), key=lambda n: int(n[2:]))
    if not convs or not fcs:
        raise InputError(f"{what} has no conv or no fc layers; its layers are {sorted(tree)}")
    c = tree[convs[-1]]["kernel"].shape[-1]
    rows = tree[fcs[0]]["kernel"].shape[0]
    side = int(round((rows / c) ** 0.5)) if rows % c == 0 else 0
    if side * side * c != rows:
        raise InputError(
            f"{fcs[0]} of {what} has {rows} inputs, which is not H*H*{c} for {convs[-1]}'s {c} "
            f"channels; the file is truncated or for another network"
        )
    return side, side, c


def _permute_fc6(kernel: np.ndarray, hwc: tuple[int, int, int], src: str) -> np.ndarray:
    """fc6's (in, out) rows from `src` flatten order ("chw"/"hwc") to the other one."""
    h, w, c = hwc
    out = kernel.shape[-1]
    if src == "chw":
        return kernel.reshape(c, h, w, out).transpose(1, 2, 0, 3).reshape(h * w * c, out)
    return kernel.reshape(h, w, c, out).transpose(2, 0, 1, 3).reshape(c * h * w, out)


def _first_fc(tree: Params) -> str:
    return min((n for n in tree if n.startswith("fc")), key=lambda n: int(n[2:]))


def float32_tree(tree: Params, what: str) -> Params:
    out = {}
    for name, p in tree.items():
        for k, v in p.items():
            v = np.asarray(v)
            if not np.issubdtype(v.dtype, np.floating):
                raise InputError(f"{name}/{k} in {what} has dtype {v.dtype}; expected floats")
        out[name] = {k: np.asarray(v, np.float32) for k, v in p.items()}
    return out


def _check_fc6_rows(fc6_rows: str) -> None:
    if fc6_rows not in FC6_ROWS:
        raise InputError(f"fc6_rows={fc6_rows!r} is unknown; use one of {FC6_ROWS}")


def from_bvlc(data: dict, *, fc6_rows: str = "hwc", what: str = "bvlc_npy data") -> Params:
    """{layer: [W, b] or {"weights", "biases"}} (conv HWIO, fc (in, out)) -> our tree."""
    _check_fc6_rows(fc6_rows)
    tree = {}
    for name, value in data.items():
        if isinstance(value, dict) and {"weights", "biases"} <= set(value):
            w, b = value["weights"], value["biases"]
        elif isinstance(value, list | tuple) and len(value) == 2:
            w, b = value
        else:
            raise InputError(
                f"layer {name!r} in {what} is not [weights, biases] or {{weights, biases}}"
            )
        tree[str(name)] = {"kernel": np.asarray(w), "bias": np.asarray(b)}
    tree = float32_tree(tree, what)
    if fc6_rows == "chw":
        fc = _first_fc(tree)
        tree[fc]["kernel"] = _permute_fc6(tree[fc]["kernel"], _pool5_shape(tree, what), "chw")
    return tree


def to_bvlc(params: Params, *, fc6_rows: str = "hwc") -> dict[str, list[np.ndarray]]:
    """Our tree -> {layer: [W, b]}; fc6's rows "hwc" as caffe-tensorflow writes them, or "chw"."""
    _check_fc6_rows(fc6_rows)
    tree = float32_tree(jax.device_get(params), "params")
    out = {name: [p["kernel"], p["bias"]] for name, p in tree.items()}
    if fc6_rows == "chw":
        fc = _first_fc(tree)
        out[fc][0] = _permute_fc6(tree[fc]["kernel"], _pool5_shape(tree, "params"), "hwc")
    return out


def _numpy(v):
    """A torch tensor (bfloat16, which numpy lacks, as float32) or an array, as numpy."""
    if not hasattr(v, "detach"):
        return v
    v = v.detach().cpu()
    return (v.float() if v.is_floating_point() else v).numpy()


def from_torchvision(state: dict, *, what: str = "torchvision state dict") -> Params:
    """torchvision `alexnet` state dict (numpy or torch values) -> our tree."""
    state = {k: np.asarray(_numpy(v)) for k, v in state.items()}
    known = {f"{key}.{p}" for key in TORCHVISION_KEYS.values() for p in ("weight", "bias")}
    extra = sorted(set(state) - known)
    if extra:
        raise InputError(
            f"{what} has keys that are not torchvision AlexNet's: {extra[:4]}; expected "
            f"{sorted(known)[:4]}..."
        )
    tree = {}
    for name, key in TORCHVISION_KEYS.items():
        if f"{key}.weight" not in state or f"{key}.bias" not in state:
            continue  # reported as a missing layer by `adapt`, which knows the model
        w = state[f"{key}.weight"]
        w = w.transpose(2, 3, 1, 0) if w.ndim == 4 else w.T  # OIHW -> HWIO, (out, in) -> (in, out)
        tree[name] = {"kernel": w, "bias": state[f"{key}.bias"]}
    tree = float32_tree(tree, what)
    if "fc6" in tree and "conv5" in tree:
        tree["fc6"]["kernel"] = _permute_fc6(tree["fc6"]["kernel"], _pool5_shape(tree, what), "chw")
    return tree


def to_torchvision(params: Params) -> dict[str, np.ndarray]:
    """Our tree -> torchvision `alexnet` state dict of numpy arrays (OIHW, (out, in), CHW fc6)."""
    tree = float32_tree(jax.device_get(params), "params")
    if set(tree) != set(TORCHVISION_KEYS):
        raise InputError(
            f"torchvision's AlexNet has layers {sorted(TORCHVISION_KEYS)}; these params have "
            f"{sorted(tree)}"
        )
    hwc = _pool5_shape(tree, "params")
    out = {}
    for name, key in TORCHVISION_KEYS.items():
        w = tree[name]["kernel"]
        if name == "fc6":
            w = _permute_fc6(w, hwc, "hwc")
        out[f"{key}.weight"] = np.ascontiguousarray(w.transpose(3, 2, 0, 1) if w.ndim == 4 else w.T)
        out[f"{key}.bias"] = tree[name]["bias"]
    return out
