r"""Published AlexNet weights in and out: bvlc_alexnet.npy, torchvision state dicts, our .npz.

Formats (`FORMATS`), all read into and written from our tree {conv1..conv5, fc6..fc8: {kernel,
bias}} (conv kernels HWIO with flax's grouped layout (kh, kw, in/groups, out); dense (in, out);
fc6's rows in our NHWC flatten order (H, W, C)):

  "npz"          ours: `np.savez` of flat "conv1/kernel" keys in our layout. No pickle.
  "bvlc_npy"     the caffe-tensorflow converter's `bvlc_alexnet.npy`: a *pickled* dict
                 {layer: [weights, biases]} (or {layer: {"weights", "biases"}}), conv weights
                 HWIO with Caffe's groups (in/groups per group, as ours), fc weights (in, out).
                 fc6's rows: "hwc" if the converter already permuted them for an NHWC flatten
                 (caffe-tensorflow does, so the common file is "hwc"), "chw" for Caffe's own
                 (C, H, W) order (a file written straight from a .caffemodel). Reading it needs
                 allow_pickle=True, which warns: a pickle can run code. Convert once to .npz.
  "torchvision"  torchvision's `alexnet` state dict (features.0/3/6/8/10, classifier.1/4/6):
                 conv weights OIHW, linear (out, in), fc6's columns in torch's (C, H, W)
                 flatten order. A `.pth` file read with torch (weights_only, no arbitrary
                 pickle); torch is imported only here. Grouped (two-tower) params export
                 in torch's Conv2d(groups=2) layout, which torchvision's one-tower net lacks.
  "orbax"        (read only) the params of one of our training checkpoints: WORKDIR,
                 WORKDIR/checkpoints or WORKDIR/checkpoints/STEP (the latest step if not named).

Preprocessing the imported nets were trained with (`preprocess`):
  "caffe"        bvlc_alexnet / bvlc_reference_caffenet: BGR channel order, pixels 0..255
                 minus the ILSVRC-2012 mean (Caffe's mean image averaged per channel,
                 `CAFFE_MEAN_BGR`). The released nets subtracted the whole 256x256 mean image;
                 the per-channel mean is the usual approximation for a centre crop.
  "torchvision"  RGB, pixels 0..1, minus `TORCHVISION_MEAN`, divided by `TORCHVISION_STD`.
Images given to `preprocess` are RGB in 0..1, [..., H, W, 3].

Which config matches which file: bvlc_alexnet.npy -> configs/bvlc_alexnet.py (norm then pool),
bvlc_reference_caffenet -> configs/caffenet.py (pool then norm); torchvision -> configs/
one_tower_owt.py (224 input, so pool5 is 6x6 and torchvision's AdaptiveAvgPool2d(6) is the
identity). A file for another variant fails in one line naming the layer and both shapes.
"""

import os
import pickle
import warnings
import zipfile

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from alexnet_jax import files, weight_layouts
from alexnet_jax.errors import InputError, MissingFileError, MissingPackageError, one_line

FORMATS: tuple[str, ...] = ("npz", "bvlc_npy", "torchvision", "orbax")
GREY: tuple[str, ...] = ("error", "sum")
PREPROCESS: tuple[str, ...] = ("caffe", "torchvision")

CAFFE_MEAN_BGR = np.array([104.00698793, 116.66876762, 122.67891434], np.float32)
TORCHVISION_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
TORCHVISION_STD = np.array([0.229, 0.224, 0.225], np.float32)

Params = weight_layouts.Params


def preprocess(images_rgb01: np.ndarray, convention: str) -> np.ndarray:
    """RGB images in 0..1, [..., H, W, 3] -> what the imported net expects (module docstring)."""
    x = np.asarray(images_rgb01, np.float32)
    if x.shape[-1] != 3:
        raise InputError(f"preprocess needs RGB images [..., H, W, 3]; got shape {x.shape}")
    if convention == "caffe":
        return x[..., ::-1] * 255.0 - CAFFE_MEAN_BGR
    if convention == "torchvision":
        return (x - TORCHVISION_MEAN) / TORCHVISION_STD
    raise InputError(f"preprocessing {convention!r} is unknown; use one of {PREPROCESS}")


def infer_format(path: str) -> str:
    """The format a path's suffix means: .npz, .npy (bvlc), .pth/.pt, a directory (orbax)."""
    if os.path.isdir(path):
        return "orbax"
    suffixes = {".npz": "npz", ".npy": "bvlc_npy", ".pth": "torchvision", ".pt": "torchvision"}
    ext = os.path.splitext(path)[1].lower()
    if ext not in suffixes:
        raise InputError(
            f"cannot tell the weights format of {path} from its suffix; name it "
            f"(format=one of {FORMATS})"
        )
    return suffixes[ext]


def _torch():
    try:
        import torch
    except ImportError as e:
        raise MissingPackageError(
            "the torchvision format needs PyTorch (pip install torch); or convert the file "
            "to .npz on a machine that has it: python -m alexnet_jax.weights --help"
        ) from e
    return torch


def _orbax_params(path: str) -> Params:
    from alexnet_jax import checkpoint  # Orbax only there

    return weight_layouts.float32_tree(checkpoint.read_params(path), path)


def read(
    path: str, format: str | None = None, *, allow_pickle: bool = False, fc6_rows: str = "hwc"
) -> Params:
    """A weights file -> our tree (float32 numpy), not yet checked against a model (`adapt`)."""
    if not os.path.exists(path):
        raise MissingFileError(f"weights file {path} does not exist")
    format = format or infer_format(path)
    if format not in FORMATS:
        raise InputError(f"weights format {format!r} is unknown; use one of {FORMATS}")
    if format == "orbax":
        return _orbax_params(path)
    if format == "bvlc_npy" and not allow_pickle and _npy_is_pickle(path):
        raise InputError(
            f"{path} (bvlc_npy) is a pickle, which can run code when loaded; pass "
            f"allow_pickle=True (config.init_from.allow_pickle, --allow_pickle) for a "
            f"file you trust, or convert it once to our .npz"
        )
    data = _load(path, format, allow_pickle)
    if format == "npz":
        tree = {}
        for key, value in data.items():
            name, _, leaf = key.partition("/")
            if leaf not in ("kernel", "bias"):
                raise InputError(f"{path} has key {key!r}; ours are 'conv1/kernel', ...")
            tree.setdefault(name, {})[leaf] = value
        for name, p in tree.items():
            if set(p) != {"kernel", "bias"}:
                raise InputError(f"{name} in {path} lacks { ({'kernel', 'bias'} - set(p)) }")
        return weight_layouts.float32_tree(tree, path)
    if format == "bvlc_npy":
        if data.dtype != object or data.shape != ():
            raise InputError(f"{path} holds a {data.dtype} array, not a pickled layer dict")
        return weight_layouts.from_bvlc(data.item(), fc6_rows=fc6_rows, what=path)
    if not isinstance(data, dict):
        raise InputError(f"{path} holds a {type(data).__name__}, not a state dict")
    return weight_layouts.from_torchvision(data, what=path)


def _npy_is_pickle(path: str) -> bool:
    """Whether a .npy file holds Python objects, from its header alone (nothing unpickled)."""
    try:
        with open(path, "rb") as f:
            fmt = np.lib.format
            v1 = fmt.read_magic(f) == (1, 0)
            _, _, dtype = (fmt.read_array_header_1_0 if v1 else fmt.read_array_header_2_0)(f)
    except (OSError, ValueError) as e:
        raise InputError(f"{path} is truncated or not a bvlc_npy file ({one_line(e)})") from None
    return dtype.hasobject


def _load(path: str, format: str, allow_pickle: bool):
    """The file's contents as stored (no layout conversion); one line if it cannot be read."""
    torch = _torch() if format == "torchvision" else None
    if format == "bvlc_npy" and allow_pickle:
        warnings.warn(
            f"loading pickled weights from {path}: only do this for trusted files", stacklevel=3
        )
    try:
        if format == "npz":
            with np.load(path, allow_pickle=False) as f:
                return {key: f[key] for key in f.files}
        if format == "bvlc_npy":  # encoding: Python 2 pickles
            return np.load(path, allow_pickle=allow_pickle, encoding="latin1")
        return torch.load(path, map_location="cpu", weights_only=True)
    except (EOFError, OSError, zipfile.BadZipFile, pickle.UnpicklingError, RuntimeError,
            ValueError) as e:  # fmt: skip
        raise InputError(f"{path} is truncated or not a {format} file ({one_line(e)})") from None


def write(path: str, params: Params, format: str | None = None, *, fc6_rows: str = "hwc") -> None:
    """Our tree -> a file in `format` (read(path) gives the same arrays back). Written under a
    temporary name and renamed: an error midway leaves an earlier file at `path` whole."""
    format = format or infer_format(path)
    if format not in ("npz", "bvlc_npy", "torchvision"):
        raise InputError(f"cannot write weights format {format!r}; use npz, bvlc_npy, torchvision")
    with files.replaced(path) as tmp:
        if format == "npz":
            tree = weight_layouts.float32_tree(jax.device_get(params), "params")
            flat = {f"{name}/{leaf}": v for name, p in tree.items() for leaf, v in p.items()}
            with open(tmp, "wb") as f:  # np.savez(path) would append .npz to other names
                np.savez(f, **flat)
        elif format == "bvlc_npy":
            layers = weight_layouts.to_bvlc(params, fc6_rows=fc6_rows)
            with open(tmp, "wb") as f:
                np.save(f, np.array(layers, dtype=object))
        else:
            torch = _torch()
            state = {k: torch.tensor(v) for k, v in weight_layouts.to_torchvision(params).items()}
            torch.save(state, tmp)


def _shape(x) -> tuple[int, ...]:
    return tuple(int(d) for d in x.shape)  # numpy, jax arrays and jax.ShapeDtypeStruct


def adapt(
    tree: Params,
    template: dict,
    *,
    what: str = "the file",
    skip=(),
    grey: str = "error",
    new_head: bool = False,
) -> tuple[dict, list[str]]:
    """Checks `tree` against the model's `template` params; returns (params, kept from template).

    Every template layer not in `skip` must be in `tree` with the template's shapes, except:
    grey="sum" turns a 3-channel conv1 into the 1-channel one a grey model has (the sum over
    colours: exactly the 3-channel net fed the grey image as R=G=B); new_head=True keeps the
    template's last layer (a new random head) when only its width (the class count) differs.
    """
    if grey not in GREY:
        raise InputError(f"grey={grey!r} is unknown; use one of {GREY}")
    unknown = sorted(set(skip) - set(template))
    if unknown:
        raise InputError(
            f"skip names layers {unknown} that the model lacks; it has {sorted(template)}"
        )
    extra = sorted(set(tree) - set(template))
    if extra:
        raise InputError(
            f"{what} has layers {extra} that the model lacks ({sorted(template)}); the file "
            f"is for another network"
        )
    head = max((n for n in template if n.startswith("fc")), key=lambda n: int(n[2:]))
    out, kept = {}, []
    for name in sorted(template):
        if name in skip:
            out[name], kept = template[name], [*kept, name]
            continue
        if name not in tree:
            raise InputError(
                f"layer {name} is missing from {what} (it has {sorted(tree)}); add it to "
                f"init_from.skip to start it from random"
            )
        p = dict(tree[name])
        want = {k: _shape(v) for k, v in template[name].items()}
        got = {k: _shape(v) for k, v in p.items()}
        rgb_to_grey = (
            name == "conv1"
            and len(got["kernel"]) == 4
            and (got["kernel"][2], want["kernel"][2]) == (3, 1)
        )
        if rgb_to_grey and grey == "sum":
            p["kernel"] = p["kernel"].sum(axis=2, keepdims=True)
            got["kernel"] = p["kernel"].shape
        if (
            new_head
            and name == head
            and got != want
            and (got["kernel"][:-1] == want["kernel"][:-1])
        ):
            out[name], kept = template[name], [*kept, name]
            continue
        for leaf in ("kernel", "bias"):
            if got.get(leaf) != want[leaf]:
                hint = "a different variant (towers, widths, input size, classes) than the config"
                if rgb_to_grey:
                    hint = "a grey model: set grey='sum' (config.init_from.grey)"
                raise InputError(
                    f"{name}/{leaf} in {what} has shape {got.get(leaf)} but the model needs "
                    f"{want[leaf]}: the file is for {hint}"
                )
        out[name] = p
    return out, kept


def init_from(c: ml_collections.ConfigDict, params: dict) -> dict:
    """`config.init_from` applied to freshly initialized params (fine-tuning, Sec. 5's init aside).

    Layers in c.skip, and fc8 when only the class count differs, keep their random init.
    """
    tree = read(c.path, c.format, allow_pickle=c.allow_pickle, fc6_rows=c.fc6_rows)
    out, kept = adapt(tree, params, what=c.path, skip=tuple(c.skip), grey=c.grey, new_head=True)
    print(
        f"initialized from {c.path} ({c.format or infer_format(c.path)}); "
        f"random init kept for {kept or 'no layer'}",
        flush=True,
    )
    return jax.tree.map(lambda t, v: jnp.asarray(v, t.dtype), dict(params), out)


def convert(config: ml_collections.ConfigDict, src: str, dst: str, **read_kw) -> dict:
    """`src` checked against `config`'s model (every layer) and written to `dst`; the params."""
    from alexnet_jax import models

    model = models.create_model(config)
    template = jax.eval_shape(lambda: models.init_params(model, config, jax.random.key(0)))
    params, _ = adapt(read(src, **read_kw), template, what=src, grey=config.init_from.grey)
    write(dst, params)
    return params


def define_flags(fv, argv: list[str]) -> None:
    """python -m alexnet_jax.weights --config=C --in=SRC --out=DST [--format=F --allow_pickle]."""
    from absl import flags

    from alexnet_jax import cli

    cli.define_config(fv, argv, "Config whose model the weights are for.")
    d = dict(flag_values=fv)
    flags.DEFINE_string(
        "in", None, "Weights to read (weights.FORMATS, or a training workdir).", **d
    )
    flags.DEFINE_string("out", None, "File to write; the format follows its suffix.", **d)
    flags.DEFINE_enum("format", None, FORMATS, "Format of --in; default: from its suffix.", **d)
    flags.DEFINE_bool("allow_pickle", False, "Allow a pickled bvlc_npy --in (trusted files).", **d)
    flags.DEFINE_enum(
        "fc6_rows", "hwc", weight_layouts.FC6_ROWS, "fc6 row order of a bvlc_npy --in.", **d
    )
    flags.mark_flags_as_required(["config", "in", "out"], **d)


def main(fv) -> dict:
    params = convert(
        fv.config, fv["in"].value, fv.out, format=fv.format, allow_pickle=fv.allow_pickle,
        fc6_rows=fv.fc6_rows,
    )  # fmt: skip
    n = sum(v.size for p in params.values() for v in p.values())
    print(f"wrote {fv.out}: {sorted(params)}, {n:,} parameters, checked against the config")
    return params


if __name__ == "__main__":
    from alexnet_jax import cli

    cli.run(define_flags, main)
