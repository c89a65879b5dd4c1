"""features.py: the CLI on a folder of PNGs against the PyTorch net's fc7; layers, crops, errors."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest
import tensorflow as tf
import torch

from alexnet_jax import features, models, weights
from tests.test_weights import bvlc_dict, random_params, tiny, torch_net

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NARROW = [  # tests.test_weights.tiny as command-line overrides
    "--config.model.conv.features=(8,16,24,24,16)",
    "--config.model.fc_features=(32,32)",
    "--config.model.num_classes=10",
]


def write_pngs(directory, images: dict[str, np.ndarray]) -> None:
    for name, img in images.items():
        path = os.path.join(directory, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(tf.io.encode_png(img).numpy())


def torch_fc7(net, x_nhwc: np.ndarray) -> np.ndarray:
    """fc7 after its ReLU: the classifier up to fc8 (Linear, ReLU, Dropout, Linear, ReLU)."""
    with torch.no_grad():
        x = torch.tensor(x_nhwc, dtype=torch.float64).permute(0, 3, 1, 2)
        return net.classifier[:5](torch.flatten(net.features(x), 1)).numpy()


def test_cli_fc7_of_a_folder_equals_the_torch_nets(tmp_path):
    """bvlc_npy weights, default (Caffe) preprocessing, a batch that does not divide the set."""
    c = tiny("caffenet")
    net = torch_net(c)
    np.save(tmp_path / "bvlc.npy", bvlc_dict(net, "hwc", False), allow_pickle=True)
    rng = np.random.default_rng(0)
    rgb = {
        "b.png": rng.integers(0, 256, (227, 227, 3), np.uint8),
        "a.png": rng.integers(0, 256, (227, 227, 3), np.uint8),
        "sub/c.png": rng.integers(0, 256, (227, 227, 3), np.uint8),
    }
    grey = rng.integers(0, 256, (227, 227, 1), np.uint8)  # TF decodes it to R=G=B
    write_pngs(tmp_path / "imgs", {**rgb, "d.png": grey})
    (tmp_path / "imgs" / "notes.txt").write_text("not an image")
    out = tmp_path / "feats.npy"
    cmd = [sys.executable, "-m", "alexnet_jax.features", "--config=configs/caffenet.py", *NARROW]
    cmd += [f"--checkpoint={tmp_path / 'bvlc.npy'}", "--allow_pickle", "--batch=3"]
    cmd += [f"--images={tmp_path / 'imgs'}", f"--out={out}", "--resize=227"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "features fc7: 4/4 images" in proc.stdout and "wrote" in proc.stdout
    names = (tmp_path / "feats.files.txt").read_text().split()
    assert names == ["a.png", "b.png", "d.png", "sub/c.png"]
    pixels = [rgb.get(n, np.repeat(grey, 3, -1)) for n in names]
    bgr = np.stack(pixels).astype(np.float64)[..., ::-1] - weights.CAFFE_MEAN_BGR
    want = torch_fc7(net, bgr)
    got = np.load(out)
    assert got.shape == (4, 32) and (want > 0).any()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_any_layer_padding_and_bad_inputs(tmp_path):
    c = tiny("caffenet", input_size=67)
    params = jax.tree.map(jax.numpy.asarray, random_params(c))
    rng = np.random.default_rng(1)
    images = {f"{i}.png": rng.integers(0, 256, (67, 67, 3), np.uint8) for i in range(3)}
    write_pngs(tmp_path / "imgs", images)
    out = str(tmp_path / "pool2.npy")
    got = features.extract(
        c, params, str(tmp_path / "imgs"), out, layer="pool2", batch=2, preprocess="torchvision",
        resize=67,
    )  # fmt: skip
    x = weights.preprocess(np.stack(list(images.values())) / 255.0, "torchvision")
    want = jax.jit(models.activations, static_argnums=0)(models.create_model(c), params, x)["pool2"]
    assert got.shape == (3, 3, 3, 16)
    np.testing.assert_allclose(got, np.asarray(want), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(np.load(out), got)
    (tmp_path / "imgs" / "3.png").write_bytes(b"not a png")  # fails in the second batch
    with pytest.raises(ValueError, match="cannot decode image .*3.png"):
        features.extract(c, params, str(tmp_path / "imgs"), out, layer="pool2", batch=2,
                         preprocess="torchvision", resize=67)  # fmt: skip
    np.testing.assert_array_equal(np.load(out), got)  # the earlier file is kept whole
    assert sorted(os.listdir(tmp_path)) == ["imgs", "pool2.files.txt", "pool2.npy"]
    assert (tmp_path / "pool2.files.txt").read_text() == "0.png\n1.png\n2.png\n"  # and its rows
    missing = tmp_path / "no_dir" / "pool2.npy"
    with pytest.raises(ValueError, match=f"cannot write {missing}: the directory .*no_dir does no"):
        features.extract(c, params, str(tmp_path / "imgs"), str(missing), layer="pool2",
                         preprocess="torchvision", resize=67)  # fmt: skip
    with pytest.raises(
        ValueError,
        match=r"--layer='fc9' is unknown; use one of \['conv1', 'pool1', 'norm1', 'conv2'",
    ):
        features.extract(c, params, str(tmp_path / "imgs"), out, layer="fc9")
    with pytest.raises(ValueError, match="--resize=60 is smaller than the model's input_size=67"):
        features.extract(c, params, str(tmp_path / "imgs"), out, preprocess="caffe", resize=60)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        features.list_images(str(tmp_path / "empty"))
    (tmp_path / "empty" / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot decode image .*bad.png"):
        features.read_image(str(tmp_path / "empty" / "bad.png"), 3)
    grey = tiny("caffenet", input_size=67, input_channels=1)
    with pytest.raises(ValueError, match="needs a 3-channel model.*--preprocess=config"):
        features.make_input_fn(grey, "caffe", 67)


def test_config_preprocessing_of_a_prepared_dataset_is_its_evaluation_input(tmp_path):
    """ImageNet-style data (not in memory): Sec. 2's rescale and crop to image_size as prepare.py
    stores it, minus the stored mean image, the central input_size crop; against PIL."""
    from PIL import Image

    from alexnet_jax import stats
    from tests.fake_ilsvrc import reference_fixed_size

    c = tiny("caffenet", input_size=67)
    c.input.update(pipeline="prepared", prepared_dir=str(tmp_path), image_size=72, storage="raw")
    rng = np.random.default_rng(0)
    st = stats.from_images(rng.integers(0, 256, (3, 72, 72, 3), dtype=np.uint8))
    stats.save(st, str(tmp_path), 72, "test")
    pixels = rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    got = features.make_input_fn(c, "config", 256)(str(tmp_path / "a.png"))
    want = (reference_fixed_size(pixels, 72) - st.mean_image)[2:69, 2:69]
    assert got.shape == (67, 67, 3)
    np.testing.assert_allclose(got, want, atol=1e-4)  # prepare.py's PIL rescale, raw storage
    c.input.pipeline = "synthetic"
    with pytest.raises(ValueError, match="'synthetic' has none; use --preprocess=caffe"):
        features.make_input_fn(c, "config", 256)


def test_centre_crop_is_the_central_window_after_the_shorter_side_resize():
    img = np.random.default_rng(2).uniform(0, 255, (40, 60, 3)).astype(np.float32)
    np.testing.assert_allclose(features.centre_crop(img, 40, 30).numpy(), img[5:35, 15:45], 1e-5)
    big = features.centre_crop(img, 80, 70).numpy()  # 80x120, then the central 70x70
    assert big.shape == (70, 70, 3)
    twice = tf.image.resize(img, (80, 120), method="bilinear", antialias=True).numpy()
    np.testing.assert_allclose(big, twice[5:75, 25:95], rtol=1e-6)
