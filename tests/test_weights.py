"""weights.py: published-weight formats against PyTorch nets that flatten pool5 in their own order.

The oracle is benchmarks/torch_alexnet.TorchAlexNet (real torch modules, NCHW flatten, so fc6's
inputs are in Caffe's/torch's (C, H, W) order), with random weights; the files are written here
the way Caffe's converter and torchvision lay them out, independently of weights.py. Widths are
shrunk (the layout is under test, not the size); input sizes are the real ones, so pool5 is 6x6.
"""

import functools
import json
import sys
import warnings

import jax
import ml_collections
import numpy as np
import pytest
import torch

from alexnet_jax import models, weight_layouts, weights
from alexnet_jax.errors import InputError
from benchmarks.torch_alexnet import TorchAlexNet
from tests.conftest import load_config

TORCHVISION_FEATURES = (0, 3, 6, 8, 10)  # torchvision's flat `features` indices of the convs


def tiny(name: str, **model) -> ml_collections.ConfigDict:
    """`configs/name.py` with narrow layers: same layer types, order, groups and input size."""
    c = load_config(name)
    c.model.conv.features = (8, 16, 24, 24, 16)
    c.model.fc_features = (32, 32)
    c.model.num_classes = 10
    for k, v in model.items():
        c.model[k] = v
    return c


def torch_net(c: ml_collections.ConfigDict, seed: int = 0) -> TorchAlexNet:
    torch.manual_seed(seed)
    return TorchAlexNet(c.model.to_dict()).double().eval()


def linears(net: TorchAlexNet) -> list[torch.nn.Linear]:
    return [m for m in net.classifier if isinstance(m, torch.nn.Linear)]


def np32(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy().astype(np.float32)


def bvlc_dict(net: TorchAlexNet, fc6_rows: str, as_dict: bool) -> dict:
    """What caffe-tensorflow writes: conv OIHW -> HWIO, fc (out, in) -> (in, out), and fc6's
    rows re-ordered for an NHWC flatten ("hwc"; kaffe's DataReshaper) or left as Caffe's "chw"."""
    out = {}
    for i, seq in enumerate(net.features):
        out[f"conv{i + 1}"] = [np32(seq[0].weight).transpose(2, 3, 1, 0), np32(seq[0].bias)]
    c, h, w = net.pool5_shape
    for j, fc in enumerate(linears(net)):
        k = np32(fc.weight)
        if j == 0 and fc6_rows == "hwc":
            k = k.reshape(-1, c, h, w).transpose(2, 3, 1, 0).reshape(h * w * c, -1)
        else:
            k = k.T
        out[f"fc{6 + j}"] = [k, np32(fc.bias)]
    if as_dict:  # newer caffe-tensorflow: {"weights": W, "biases": b}
        out = {n: {"weights": w, "biases": b} for n, (w, b) in out.items()}
    return out


def torchvision_state(net: TorchAlexNet) -> dict[str, torch.Tensor]:
    """TorchAlexNet's tensors under torchvision.models.AlexNet's state-dict keys."""
    state = {}
    for i, seq in zip(TORCHVISION_FEATURES, net.features, strict=True):
        state[f"features.{i}.weight"], state[f"features.{i}.bias"] = seq[0].weight, seq[0].bias
    # the classifier is already torchvision's: Dropout, Linear, ReLU, Dropout, Linear, ReLU, Linear
    state.update({f"classifier.{k}": v for k, v in net.classifier.state_dict().items()})
    return {k: v.detach().float().clone() for k, v in state.items()}


@functools.cache
def _forward(config_json: str):
    model = models.create_model(ml_collections.ConfigDict(json.loads(config_json)))
    return jax.jit(lambda p, x: model.apply({"params": p}, x, train=False))


def our_logits(c, params, x) -> np.ndarray:
    return np.asarray(_forward(c.to_json())(params, x))  # compiled once per config


def torch_logits(net, x_nhwc) -> np.ndarray:
    with torch.no_grad():
        return net(torch.tensor(x_nhwc, dtype=torch.float64).permute(0, 3, 1, 2)).numpy()


def template(c) -> dict:
    model = models.create_model(c)
    return jax.eval_shape(lambda: models.init_params(model, c, jax.random.key(0)))


def random_params(c, seed: int = 0) -> dict:
    """Random float32 params of `c`'s shapes (nothing compiled)."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda s: rng.normal(scale=0.05, size=s.shape).astype(np.float32), template(c)
    )


def assert_logits_close(got, want):
    scale = np.abs(want).max()
    assert scale > 1e-2 and want.std() > 1e-3  # the logits are not all ~0
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * scale)


def rgb01(n: int, size: int) -> np.ndarray:
    return np.random.default_rng(1).uniform(size=(n, size, size, 3)).astype(np.float32)


@pytest.mark.parametrize(
    "name, fc6_rows, as_dict", [("caffenet", "hwc", False), ("bvlc_alexnet", "chw", True)]
)
def test_bvlc_npy_file_gives_the_caffe_style_torch_nets_logits(tmp_path, name, fc6_rows, as_dict):
    c = tiny(name)
    assert c.model.conv.groups == (1, 2, 1, 2, 2) and c.model.lrn.convention == "caffe"
    net = torch_net(c)
    path = str(tmp_path / "bvlc_alexnet.npy")
    np.save(path, bvlc_dict(net, fc6_rows, as_dict), allow_pickle=True)  # a pickled dict
    with pytest.warns(UserWarning, match="pickled weights"):
        tree = weights.read(path, allow_pickle=True, fc6_rows=fc6_rows)
    params, kept = weights.adapt(tree, template(c), what=path)
    assert kept == []
    x = weights.preprocess(rgb01(2, 227), "caffe")  # BGR, 0..255 minus the mean: both nets
    want = torch_logits(net, x)
    assert_logits_close(our_logits(c, params, x), want)
    # the row order is a real choice: the other one gives other logits
    with pytest.warns(UserWarning):
        wrong = weights.read(
            path, allow_pickle=True, fc6_rows="chw" if fc6_rows == "hwc" else "hwc"
        )
    assert np.abs(our_logits(c, wrong, x) - want).max() > 1e-2 * np.abs(want).max()


def test_torchvision_state_dict_gives_the_one_tower_torch_nets_logits(tmp_path):
    c = tiny("one_tower_owt")
    c.model.conv.features = (8, 16, 24, 16, 16)
    net = torch_net(c, seed=1)
    path = str(tmp_path / "alexnet.pth")
    torch.save(torchvision_state(net), path)
    params, _ = weights.adapt(weights.read(path), template(c), what=path)
    x = weights.preprocess(rgb01(2, 224), "torchvision")
    assert_logits_close(our_logits(c, params, x), torch_logits(net, x))


def test_a_bfloat16_torchvision_state_dict_loads_as_torch_widens_it(tmp_path):
    """numpy has no bfloat16: the tensors are widened to float32 (was a TypeError traceback)."""
    c = tiny("one_tower_owt")
    c.model.conv.features = (8, 16, 24, 16, 16)
    state = {k: v.to(torch.bfloat16) for k, v in torchvision_state(torch_net(c, seed=1)).items()}
    got = {}
    for name, s in (("bf16", state), ("f32", {k: v.float() for k, v in state.items()})):
        torch.save(s, str(tmp_path / f"{name}.pth"))
        got[name] = weights.adapt(weights.read(str(tmp_path / f"{name}.pth")), template(c))[0]
    for layer, p in got["f32"].items():
        for k in ("kernel", "bias"):
            np.testing.assert_array_equal(got["bf16"][layer][k], p[k])


def test_torchvision_export_loads_into_torch_and_gives_our_logits():
    c = tiny("one_tower_owt")
    c.model.conv.features = (8, 16, 24, 16, 16)
    params = random_params(c, 3)
    net = torch_net(c)
    state = {k: torch.tensor(v) for k, v in weight_layouts.to_torchvision(params).items()}
    for i, seq in zip(TORCHVISION_FEATURES, net.features, strict=True):
        seq[0].weight.data = state.pop(f"features.{i}.weight").double()
        seq[0].bias.data = state.pop(f"features.{i}.bias").double()
    net.classifier.load_state_dict({k.removeprefix("classifier."): v for k, v in state.items()})
    x = weights.preprocess(rgb01(2, 224), "torchvision")
    assert_logits_close(our_logits(c, params, x), torch_logits(net.double(), x))


@pytest.mark.parametrize(
    "fmt, suffix, kw",
    [
        ("npz", ".npz", {}),
        ("bvlc_npy", ".npy", {"fc6_rows": "hwc"}),
        ("bvlc_npy", ".npy", {"fc6_rows": "chw"}),
        ("torchvision", ".pth", {}),
    ],
)
def test_export_then_import_is_identical(tmp_path, fmt, suffix, kw):
    c = tiny("one_tower_owt")
    c.model.conv.features = (8, 16, 24, 16, 16)
    params = random_params(c, 2)
    path = str(tmp_path / f"w{suffix}")
    weights.write(path, params, **kw)
    if fmt == "bvlc_npy":
        with pytest.warns(UserWarning):
            back = weights.read(path, allow_pickle=True, **kw)
    else:
        back = weights.read(path)
    assert weights.infer_format(path) == fmt
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, np.asarray(b)), back, params)
    assert jax.tree.structure(back) == jax.tree.structure(params)


def test_bvlc_export_is_caffe_tensorflows_layout(tmp_path):
    """Written file = what the converter writes for the torch net with the same weights."""
    c = tiny("caffenet")
    net = torch_net(c)
    params = {}
    for name, (w, b) in bvlc_dict(net, "hwc", False).items():
        params[name] = {"kernel": w, "bias": b}
    for rows in ("hwc", "chw"):
        path = str(tmp_path / f"{rows}.npy")
        weights.write(path, params, fc6_rows=rows)
        got = np.load(path, allow_pickle=True).item()
        want = bvlc_dict(net, rows, False)
        assert sorted(got) == sorted(want)
        for name in want:
            assert isinstance(got[name], list)
            for g, w in zip(got[name], want[name], strict=True):
                np.testing.assert_array_equal(g, w)


def _npz(tmp_path, tree, name="w.npz") -> str:
    path = str(tmp_path / name)
    weights.write(path, tree)
    return path


def _one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


def test_wrong_shape_missing_layer_wrong_variant_are_one_line_errors(tmp_path):
    c = tiny("caffenet")
    t = template(c)
    params = random_params(c)
    bad = {n: dict(p) for n, p in params.items()}
    bad["conv2"]["kernel"] = np.zeros((5, 5, 8, 16), np.float32)  # groups=1 layout
    with pytest.raises(ValueError) as e:
        weights.adapt(weights.read(_npz(tmp_path, bad)), t, what="w.npz")
    assert "conv2/kernel in w.npz has shape (5, 5, 8, 16) but the model needs (5, 5, 4, 16)" in (
        _one_line(e)
    )
    missing = {n: p for n, p in params.items() if n != "fc7"}
    with pytest.raises(ValueError, match="layer fc7 is missing from") as e:
        weights.adapt(weights.read(_npz(tmp_path, missing)), t)
    _one_line(e)
    # a one-tower torchvision file for the two-tower Caffe net
    owt = tiny("one_tower_owt")
    owt.model.conv.features = (16, 16, 24, 16, 16)
    other = random_params(owt)
    path = str(tmp_path / "owt.pth")
    weights.write(path, other)
    with pytest.raises(ValueError) as e:
        weights.adapt(weights.read(path), t, what=path)
    msg = _one_line(e)
    assert "conv1/kernel" in msg and "(11, 11, 3, 16)" in msg and "(11, 11, 3, 8)" in msg
    extra = {**params, "conv6": params["conv5"]}
    with pytest.raises(ValueError, match=r"layers \['conv6'\] that the model lacks"):
        weights.adapt(extra, t)
    # a new head is kept only where asked, and only when just the class count differs
    eleven = tiny("caffenet", num_classes=11)
    with pytest.raises(
        ValueError, match=r"fc8/kernel .* \(32, 10\) but the model needs \(32, 11\)"
    ):
        weights.adapt(params, template(eleven))
    out, kept = weights.adapt(params, template(eleven), new_head=True)
    assert kept == ["fc8"] and out["fc8"]["kernel"].shape == (32, 11)


@pytest.mark.parametrize("suffix", [".npz", ".npy", ".pth"])
def test_truncated_files_are_one_line_errors(tmp_path, suffix):
    c = tiny("caffenet")
    params = random_params(c)
    path = str(tmp_path / f"w{suffix}")
    weights.write(path, params)
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    with warnings.catch_warnings(), pytest.raises(ValueError, match="is truncated or not a") as e:
        warnings.simplefilter("ignore")  # the .npy pickle warning
        weights.read(path, allow_pickle=True)
    _one_line(e)


def test_pickle_needs_the_flag_and_warns(tmp_path):
    path = str(tmp_path / "bvlc_alexnet.npy")
    np.save(path, {"conv1": [np.zeros((1, 1, 1, 1)), np.zeros(1)]}, allow_pickle=True)
    with pytest.raises(ValueError, match="is a pickle.*allow_pickle=True") as e:
        weights.read(path)
    _one_line(e)
    with pytest.warns(UserWarning, match="only do this for trusted files"):
        tree = weights.read(path, allow_pickle=True)
    assert tree["conv1"]["kernel"].dtype == np.float32
    # Python 2 pickles (the original file's) need encoding="latin1"
    with open(path, "wb") as f:
        np.save(f, np.array({"fc6": [np.ones((1, 1))]}, dtype=object), allow_pickle=True)
    with (
        pytest.raises(ValueError, match=r"layer 'fc6' .* is not \[weights, biases\]"),
        pytest.warns(UserWarning),
    ):
        weights.read(path, allow_pickle=True)
    np.save(path, np.ones((2, 2), np.float32))  # not a pickle: no flag to ask for (was asked)
    with pytest.raises(InputError, match="bvlc_alexnet.npy holds a float32 array, not a pickled"):
        weights.read(path)


def test_a_bug_in_a_layout_conversion_keeps_its_traceback(tmp_path, monkeypatch):
    """Only reading the file is guarded: a ValueError of ours is not called a damaged file."""
    path = str(tmp_path / "w.npy")
    weights.write(path, random_params(tiny("caffenet")))

    def bug(*args, **kwargs):
        raise ValueError("cannot reshape array of size 6 into shape (4,)")

    monkeypatch.setattr(weight_layouts, "from_bvlc", bug)
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="cannot reshape") as e:
        weights.read(path, allow_pickle=True)
    assert not isinstance(e.value, InputError)  # was "w.npy is truncated or not a bvlc_npy file"


def test_other_bad_inputs_are_one_line_errors(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        weights.read(str(tmp_path / "nope.npz"))
    page = tmp_path / "page.npz"
    page.write_bytes(b"<html>404 Not Found</html>")  # numpy raises a plain ValueError
    with pytest.raises(InputError, match="page.npz is truncated or not a npz file") as e:
        weights.read(str(page))
    _one_line(e)
    page.unlink()
    (tmp_path / "w.bin").write_bytes(b"x")
    with pytest.raises(ValueError, match="cannot tell the weights format"):
        weights.read(str(tmp_path / "w.bin"))
    with pytest.raises(ValueError, match="weights format 'caffemodel' is unknown"):
        weights.read(str(tmp_path / "w.bin"), "caffemodel")
    np.savez(tmp_path / "ints.npz", **{"conv1/kernel": np.zeros(2, np.int8), "conv1/bias": [0]})
    with pytest.raises(ValueError, match="conv1/kernel .* has dtype int8"):
        weights.read(str(tmp_path / "ints.npz"))
    with pytest.raises(ValueError, match="fc6_rows='whc' is unknown"):
        weight_layouts.from_bvlc({}, fc6_rows="whc")
    params, earlier = random_params(tiny("caffenet", input_size=67)), tmp_path / "w.npy"
    weights.write(str(earlier), params)
    before = earlier.read_bytes()
    with pytest.raises(ValueError, match="fc6_rows='whc' is unknown"):  # over an earlier file
        weights.write(str(earlier), params, fc6_rows="whc")
    assert earlier.read_bytes() == before  # kept whole, and no temporary file left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ints.npz", "w.bin", "w.npy"]
    with pytest.raises(ValueError, match=f"cannot write {tmp_path}/no/w.npz: the directory"):
        weights.write(str(tmp_path / "no" / "w.npz"), params)
    with pytest.raises(ValueError, match="needs RGB images"):
        weights.preprocess(np.zeros((2, 4, 4, 1)), "caffe")
    monkeypatch.setitem(sys.modules, "torch", None)  # as if PyTorch were not installed
    with pytest.raises(ImportError, match="needs PyTorch"):
        weights.read(str(tmp_path / "w.bin"), "torchvision")


def test_preprocessing_conventions():
    rgb = np.array([[[[0.0, 0.5, 1.0]]]], np.float32)
    caffe = weights.preprocess(rgb, "caffe")[0, 0, 0]
    np.testing.assert_allclose(caffe, [255 - 104.00699, 127.5 - 116.66877, 0 - 122.67891], 1e-5)
    tv = weights.preprocess(rgb, "torchvision")[0, 0, 0]
    np.testing.assert_allclose(tv, [(0 - 0.485) / 0.229, (0.5 - 0.456) / 0.224, 0.594 / 0.225])


def test_bvlc_alexnet_config_has_the_papers_parameter_count_and_converts(tmp_path):
    c = load_config("bvlc_alexnet")
    shapes = template(c)
    assert sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes)) == 60_965_224
    assert not c.model.lrn.within_towers and c.model.norm_before_pool
    small = tiny("bvlc_alexnet")
    net = torch_net(small)
    src, dst = str(tmp_path / "bvlc_alexnet.npy"), str(tmp_path / "bvlc_alexnet.npz")
    np.save(src, bvlc_dict(net, "hwc", False), allow_pickle=True)
    with pytest.warns(UserWarning):
        params = weights.convert(small, src, dst, allow_pickle=True)
    back = weights.read(dst)  # no pickle any more
    jax.tree.map(np.testing.assert_array_equal, back, params)


# The shapes of the released files (caffe-tensorflow's bvlc_alexnet.npy; torchvision's
# alexnet-owt-7be5be79.pth), as published; zeros stand in for the values.
BVLC_SHAPES = {
    "conv1": (11, 11, 3, 96),
    "conv2": (5, 5, 48, 256),
    "conv3": (3, 3, 256, 384),
    "conv4": (3, 3, 192, 384),
    "conv5": (3, 3, 192, 256),
    "fc6": (9216, 4096),
    "fc7": (4096, 4096),
    "fc8": (4096, 1000),
}
TORCHVISION_SHAPES = {
    "features.0": (64, 3, 11, 11),
    "features.3": (192, 64, 5, 5),
    "features.6": (384, 192, 3, 3),
    "features.8": (256, 384, 3, 3),
    "features.10": (256, 256, 3, 3),
    "classifier.1": (4096, 9216),
    "classifier.4": (4096, 4096),
    "classifier.6": (1000, 4096),
}


def test_the_released_files_shapes_fit_our_configs():
    zeros = lambda shape: np.broadcast_to(np.float32(0), shape)  # noqa: E731
    bvlc = {n: [zeros(s), zeros(s[-1:])] for n, s in BVLC_SHAPES.items()}
    for name in ("bvlc_alexnet", "caffenet", "paper"):
        weights.adapt(weight_layouts.from_bvlc(bvlc), template(load_config(name)))
    tv = {f"{k}.weight": zeros(s) for k, s in TORCHVISION_SHAPES.items()}
    tv.update({f"{k}.bias": zeros(s[:1]) for k, s in TORCHVISION_SHAPES.items()})
    weights.adapt(weight_layouts.from_torchvision(tv), template(load_config("one_tower_owt")))
    with pytest.raises(ValueError, match=r"conv1/kernel .* \(11, 11, 3, 64\) .* \(11, 11, 3, 96\)"):
        weights.adapt(weight_layouts.from_torchvision(tv), template(load_config("bvlc_alexnet")))
