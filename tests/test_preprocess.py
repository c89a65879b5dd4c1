"""preprocess.py, augment.py and stats.py against PIL, numpy and known covariances (Sec. 2, 4.1)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from alexnet_jax import augment, preprocess, stats
from alexnet_jax.errors import InputError, MissingFileError


def _smooth_image(h: int, w: int, seed: int) -> np.ndarray:
    """A uint8 RGB image with structure at several scales (so resampling errors show)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    out = [
        128 + 100 * np.sin(2 * np.pi * (rng.uniform(1, 4) * x + rng.uniform(1, 4) * y + c))
        for c in range(3)
    ]
    return np.clip(np.stack(out, -1) + rng.normal(0, 8, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("h,w,size", [(37, 53, 24), (90, 61, 32), (10, 14, 24), (40, 40, 24)])
def test_resize_small_matches_pil(h, w, size):
    image = _smooth_image(h, w, seed=h)
    got = preprocess.resize_small(tf.constant(image), size).numpy()
    short, long_ = min(h, w), max(h, w)
    new_long = int(np.floor(long_ * size / short + 0.5))
    want_hw = (size, new_long) if h <= w else (new_long, size)
    assert got.shape == (*want_hw, 3) and got.dtype == np.float32
    want = np.asarray(Image.fromarray(image).resize(want_hw[::-1], Image.BILINEAR), np.float64)
    diff = np.abs(got - want)
    assert diff.mean() < 1.0 and np.percentile(diff, 99) < 4.0, (diff.mean(), diff.max())
    nearest = np.asarray(Image.fromarray(image).resize(want_hw[::-1], Image.NEAREST), np.float64)
    assert np.abs(got - nearest).mean() > 2 * diff.mean()  # the comparison can tell filters apart


@pytest.mark.parametrize("h,w,size", [(9, 12, 4), (8, 8, 5), (256, 341, 227)])
def test_central_crop_is_the_floor_centred_window(h, w, size):
    image = np.arange(h * w * 2).reshape(h, w, 2)
    got = preprocess.central_crop(tf.constant(image), size).numpy()
    top, left = (h - size) // 2, (w - size) // 2
    np.testing.assert_array_equal(got, image[top : top + size, left : left + size])


@pytest.mark.parametrize("w", [9, 10])  # 10: W - size odd, as 256 -> 227
def test_ten_crop_returns_exactly_the_ten_patches(w):
    image = np.arange(7 * w * 3).reshape(7, w, 3)  # every pixel distinct
    got = np.asarray(augment.ten_crop(jnp.asarray(image[None]), 5))[0]
    tl, tr, bl, br = image[0:5, 0:5], image[0:5, w - 5 :], image[2:7, 0:5], image[2:7, w - 5 :]
    middle = image[1:6, (w - 5) // 2 : (w - 5) // 2 + 5]
    # the five, then "their horizontal reflections" (Sec. 4.1) in torchvision's order: the
    # corners of the reflected image (its top-left is the reflected top-right)
    want = [tl, tr, bl, br, middle] + [p[:, ::-1] for p in (tr, tl, br, bl, middle)]
    np.testing.assert_array_equal(got, np.stack(want))
    if w % 2 == 1:  # an even margin: torchvision's TenCrop (crops of the reflected image)
        mirror = image[:, ::-1]
        np.testing.assert_array_equal(got[9], mirror[1:6, (w - 5) // 2 : (w - 5) // 2 + 5])
    batched = np.asarray(augment.ten_crop(jnp.asarray(np.stack([image, image + 1000])), 5))
    np.testing.assert_array_equal(batched[1], np.stack(want) + 1000)  # [B, 10, ...]
    # the reflected five are the reflections of the five, up to corner order
    np.testing.assert_array_equal(got[6], got[0][:, ::-1])
    np.testing.assert_array_equal(got[9], got[4][:, ::-1])
    center = augment.eval_preprocess(mode="center", size=5, normalize=None)
    np.testing.assert_array_equal(center({"image": image[None]})["image"][0], want[4])


def _train_fn(**kw):
    base = dict(seed=7, size=8, normalize=None, random_crop=False, flip=False, lighting=None)
    return jax.jit(augment.train_preprocess(**{**base, **kw}))


def test_random_crop_and_flip_are_uniform_windows_fixed_by_the_index():
    """On the device, per example: image[top:top+8, left:left+8] at a uniform offset, reflected
    with p = 1/2; both functions of (seed, index) alone, so any batch layout draws the same."""
    n = 200
    image = np.arange(12 * 12).reshape(12, 12, 1).astype(np.float32)
    batch = {"image": np.broadcast_to(image, (n, 12, 12, 1)), "index": np.arange(n, dtype=np.int32)}
    f = _train_fn(random_crop=True, flip=True)
    crops = np.asarray(f(batch)["image"])

    @jax.jit
    def draws(index):
        k_crop, k_flip, _ = augment.example_keys(7, index)
        return augment.crop_offsets(k_crop, 4), augment.flips(k_flip)

    offsets, flips = (np.asarray(a) for a in draws(jnp.arange(n)))
    for crop, (top, left), flip in zip(crops, offsets, flips, strict=True):
        window = image[top : top + 8, left : left + 8]
        np.testing.assert_array_equal(crop, window[:, ::-1] if flip else window)
    tops, lefts = offsets.T
    assert set(tops) == set(range(5)) and set(lefts) == set(range(5))  # every offset 0..4
    assert np.bincount(tops).min() > 20 and np.bincount(lefts).min() > 20  # ~40 each
    assert 70 < flips.sum() < 130  # p = 1/2
    # the rows in another order (another device or process layout): the same draws per index
    perm = np.random.default_rng(0).permutation(n)
    shuffled = f({k: v[perm] for k, v in batch.items()})["image"]
    np.testing.assert_array_equal(shuffled, crops[perm])


def test_pca_lighting_noise_has_the_eigen_covariance():
    """Cov(shift) = std^2 P diag(l)^2 P^T (times scale^2): the a_i are N(0, std), independent;
    one constant per channel over the whole image (Sec. 4.1)."""
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    eigvals = np.array([0.2, 0.02, 0.005], np.float32)
    light = dict(eigvals=eigvals, eigvecs=q.astype(np.float32), std=0.1, scale=255.0)
    n = 20000
    batch = {"image": np.zeros((n, 2, 2, 3), np.float32), "index": np.arange(n, dtype=np.int32)}
    out = np.asarray(_train_fn(size=2, lighting=light)(batch)["image"], np.float64)
    np.testing.assert_allclose(out, np.broadcast_to(out[:, :1, :1], out.shape), atol=1e-4)
    s = out[:, 0, 0]
    want = 255.0**2 * 0.1**2 * q @ np.diag(eigvals.astype(np.float64) ** 2) @ q.T
    np.testing.assert_allclose(np.cov(s.T), want, atol=0.04 * np.trace(want))
    np.testing.assert_allclose(s.mean(0), 0, atol=0.05 * np.sqrt(np.trace(want)))
    # in the eigenbasis the components are uncorrelated with std 255 * 0.1 * l_i
    np.testing.assert_allclose((s @ q).std(0), 255 * 0.1 * eigvals, rtol=0.03)


def test_train_preprocess_is_the_host_formula():
    """mean subtraction, crop at the drawn offset, flip, lighting: numpy from the same draws."""
    rng = np.random.default_rng(2)
    n, size = 6, 5
    images = rng.integers(0, 256, (n, 9, 9, 3), np.uint8)
    mean = rng.uniform(0, 255, (9, 9, 3)).astype(np.float32)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    light = dict(eigvals=np.array([0.2, 0.02, 0.005]), eigvecs=q, std=0.1, scale=255.0)
    index = np.arange(100, 100 + n, dtype=np.int32)
    f = _train_fn(
        size=size, normalize=lambda x: x - mean, random_crop=True, flip=True, lighting=light
    )
    got = np.asarray(f({"image": images, "index": index})["image"])

    @jax.jit
    def draws(index):
        k_crop, k_flip, k_light = augment.example_keys(7, index)
        return (
            augment.crop_offsets(k_crop, 9 - size),
            augment.flips(k_flip),
            augment.lighting_alphas(k_light, 3, 0.1),
        )

    offsets, flips, alphas = (np.asarray(a) for a in draws(jnp.asarray(index)))
    for i in range(n):
        x = images[i].astype(np.float64) - mean
        t, s = offsets[i]
        x = x[t : t + size, s : s + size]
        x = x[:, ::-1] if flips[i] else x
        x = x + 255.0 * q @ (alphas[i].astype(np.float64) * light["eigvals"])
        np.testing.assert_allclose(got[i], x, rtol=1e-5, atol=1e-3)


def test_stats_recover_a_known_covariance_and_the_mean_image():
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    eigvals = np.array([0.03, 0.006, 0.001])
    mu = np.array([0.45, 0.4, 0.35])
    cov = q @ np.diag(eigvals) @ q.T
    images = 255 * (mu + rng.normal(size=(60, 16, 16, 3)) @ np.linalg.cholesky(cov).T)
    got = stats.from_images(images)
    pixels = images.reshape(-1, 3) / 255
    # exact against numpy on the same pixels (population covariance)...
    np.testing.assert_allclose(got.mean_image, images.mean(0), rtol=1e-5)
    np.testing.assert_allclose(got.channel_mean, pixels.mean(0), rtol=1e-5)
    np.testing.assert_allclose(got.channel_std, pixels.std(0), rtol=1e-5)
    sample = np.cov(pixels.T, bias=True)
    np.testing.assert_allclose(
        got.eigvecs @ np.diag(got.eigvals) @ got.eigvecs.T, sample, atol=1e-7
    )
    # ...and the known eigens recovered from the 15,360 draws
    np.testing.assert_allclose(got.eigvals, eigvals, rtol=0.05)
    for i in range(3):
        assert abs(abs(got.eigvecs[:, i] @ q[:, i]) - 1) < 0.01
    assert list(got.eigvals) == sorted(got.eigvals, reverse=True)


def test_statistics_file_round_trip_and_missing_file_message(tmp_path, monkeypatch):
    from configs import paper

    c = paper.get_config().input
    c.data_dir, c.manual_dir = "/data/tfds", "/data/ilsvrc"
    with pytest.raises(FileNotFoundError) as e:
        stats.load(str(tmp_path), c)
    msg = str(e.value)
    assert (
        "alexnet_stats_256.npz are missing; make them once with `python -m alexnet_jax.stats" in msg
    )
    assert "--config.input.manual_dir=/data/ilsvrc" in msg and "\n" not in msg
    st = stats.from_images(np.random.default_rng(0).integers(0, 256, (4, 256, 256, 3)))
    stats.save(st, str(tmp_path), 256, "python -m alexnet_jax.stats --config=X")
    back = stats.load(str(tmp_path), c)
    for field in ("mean_image", "eigvals", "eigvecs", "channel_mean", "channel_std"):
        np.testing.assert_array_equal(getattr(back, field), getattr(st, field))
    assert back.num_images == 4
    assert "--config=X" in (tmp_path / "alexnet_stats_256.json").read_text()
    files = sorted(tmp_path.iterdir())
    before = [f.read_bytes() for f in files]

    def full_disk(f, **arrays):
        f.write(b"PK half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    with pytest.raises(InputError, match=f"the disk of {tmp_path} is full .No space left"):
        stats.save(st, str(tmp_path), 256, "python -m alexnet_jax.stats --config=Y")
    assert sorted(tmp_path.iterdir()) == files  # the earlier files whole, no temporary left
    assert [f.read_bytes() for f in files] == before
    npz, record = tmp_path / "alexnet_stats_256.npz", tmp_path / "alexnet_stats_256.json"
    npz.write_bytes(before[files.index(npz)][:100])  # a copy cut short (was EOFError)
    with pytest.raises(InputError, match=r"alexnet_stats_256.npz is damaged .*; delete it and"):
        stats.load(str(tmp_path), c)
    record.write_text("{")  # (was JSONDecodeError)
    with pytest.raises(InputError, match=r"alexnet_stats_256.json is damaged .*; delete it and"):
        stats.check_source(str(tmp_path), 256, "abc", "python -m alexnet_jax.prepare")
    record.unlink()  # only the .npz copied (was a plain FileNotFoundError)
    with pytest.raises(MissingFileError, match=r"alexnet_stats_256.json is missing \(the stat"):
        stats.check_source(str(tmp_path), 256, "abc", "python -m alexnet_jax.prepare")
