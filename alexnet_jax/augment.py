"""The paper's per-example image work on the accelerator, inside the jitted step (Sec. 2, 4.1).

Pipelines send uint8 [B, S, S, C] images (S = 256 for ImageNet: 4x fewer bytes than float32)
or, for small in-memory datasets, already normalised float32 ones, with each example's
"index" (its position in the run's global order). Here, in pure JAX:

  training:    normalize (minus the mean image) -> zero padding -> random size x size crop
               -> horizontal flip (p = 1/2) -> PCA lighting             (Sec. 2, 4.1)
  evaluation:  normalize -> padding -> the central crop ("center") or the ten crops
               ("ten_crop": 4 corners + center, and the same of the reflected image, Sec. 4.1)

Every draw is a stateless function of (seed, index): key_i = fold_in(key(seed), index_i), split
into the crop, flip and lighting keys. The draws are thus the same in any device layout, batch
split or process count, and a resumed run repeats them exactly. Offsets are uniform integers
in [0, S - size] (top, left), flips Bernoulli(1/2), lighting a_i ~ N(0, std) (Sec. 4.1).

Lighting units: the paper does not say in what units its RGB values are. We follow
fb.resnet.torch and take the eigens of the covariance of pixel values in [0, 1] (its largest
eigenvalue on ImageNet is ~0.22: with 0..255 values it would be ~14000 and a_i ~ N(0, 0.1)
would shift pixels by ~1400 levels); `scale` converts the shift into the image's units: 255
for mean-subtracted 0..255 pixels, 1/std_c for per-channel standardised ones. The shift is one
constant per channel, so it commutes with the crop, flip and mean subtraction.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from alexnet_jax.errors import InputError

Batch = dict[str, jax.Array]
Normalize = Callable[[jax.Array], jax.Array]  # float32 [..., S, S, C] 0..255 -> network input


def example_keys(seed: int, index: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """[B] indices -> the crop, flip and lighting keys of each example ([B] keys each)."""
    keys = jax.vmap(lambda i: jax.random.split(jax.random.fold_in(jax.random.key(seed), i), 3))(
        index
    )
    return keys[:, 0], keys[:, 1], keys[:, 2]


def crop_offsets(keys: jax.Array, space: int) -> jax.Array:
    """[B, 2] (top, left), uniform integers in [0, space] (space = S - size)."""
    return jax.vmap(lambda k: jax.random.randint(k, (2,), 0, space + 1))(keys)


def flips(keys: jax.Array) -> jax.Array:
    """[B] bool: reflect this example (probability 1/2)."""
    return jax.vmap(lambda k: jax.random.bernoulli(k))(keys)


def lighting_alphas(keys: jax.Array, channels: int, std: float) -> jax.Array:
    """[B, C] a_i ~ N(0, std), one draw per example per use (Sec. 4.1)."""
    return jax.vmap(lambda k: std * jax.random.normal(k, (channels,)))(keys)


def crop(images: jax.Array, offsets: jax.Array, size: int) -> jax.Array:
    """[B, S, S, C] -> [B, size, size, C], example b's window at offsets[b] = (top, left)."""
    c = images.shape[-1]
    return jax.vmap(lambda x, o: jax.lax.dynamic_slice(x, (o[0], o[1], 0), (size, size, c)))(
        images, offsets
    )


def pad(images: jax.Array, p: int) -> jax.Array:
    return jnp.pad(images, ((0, 0), (p, p), (p, p), (0, 0))) if p else images


def center_crop(images: jax.Array, size: int) -> jax.Array:
    """The central window; offsets floor((S - size) / 2) (preprocess.central_crop's)."""
    top, left = (images.shape[-3] - size) // 2, (images.shape[-2] - size) // 2
    return images[..., top : top + size, left : left + size, :]


def ten_crop(images: jax.Array, size: int) -> jax.Array:
    """[B, S, S, C] -> [B, 10, size, size, C]: the four corner patches, the center one, then
    "their horizontal reflections" (Sec. 4.1), in torchvision's TenCrop order. The reflections
    are of the patches, as Caffe's oversample; torchvision crops the reflected image, whose
    center patch is one pixel off when S - size is odd (256 -> 227)."""
    h, w = images.shape[-3], images.shape[-2]
    corners = [(0, 0), (0, w - size), (h - size, 0), (h - size, w - size)]
    crops = [images[:, t : t + size, s : s + size] for t, s in corners]
    crops.append(center_crop(images, size))
    mirrored = [crops[i][:, :, ::-1] for i in (1, 0, 3, 2, 4)]  # the reflected image's corners
    return jnp.stack(crops + mirrored, axis=1)


def lighting_shift(alphas: jax.Array, eigvals, eigvecs, scale) -> jax.Array:
    """[B, C] alphas -> [B, C] per-channel shift [p1 p2 p3][a1 l1, a2 l2, a3 l3]^T * scale."""
    return (alphas * jnp.asarray(eigvals)) @ jnp.asarray(eigvecs).T * jnp.asarray(scale)


def train_preprocess(
    *,
    seed: int,
    size: int,
    normalize: Normalize | None,
    padding: int = 0,
    random_crop: bool = True,
    flip: bool = True,
    lighting: dict | None = None,
) -> Callable[[Batch], Batch]:
    """batch -> batch with "image" the network's [B, size, size, C] float32 input (Sec. 4.1).

    normalize=None: the images are already normalised (memory pipeline). `lighting`:
    dict(eigvals, eigvecs, std, scale) (units: module docstring), or None.
    Needs batch["index"] when anything is random.
    """

    def f(batch: Batch) -> Batch:
        x = batch["image"].astype(jnp.float32)
        x = pad(x if normalize is None else normalize(x), padding)
        if not (random_crop or flip or lighting):
            return {**batch, "image": center_crop(x, size)}
        k_crop, k_flip, k_light = example_keys(seed, batch["index"])
        if random_crop:
            x = crop(x, crop_offsets(k_crop, x.shape[1] - size), size)
        else:
            x = center_crop(x, size)
        if flip:
            x = jnp.where(flips(k_flip)[:, None, None, None], x[:, :, ::-1], x)
        if lighting:
            a = lighting_alphas(k_light, x.shape[-1], lighting["std"])
            shift = lighting_shift(a, lighting["eigvals"], lighting["eigvecs"], lighting["scale"])
            x = x + shift[:, None, None, :]
        return {**batch, "image": x}

    return f


def eval_preprocess(
    *, mode: str, size: int, normalize: Normalize | None, padding: int = 0
) -> Callable[[Batch], Batch]:
    """batch -> batch with the central crop [B, size, size, C] or ten crops [B, 10, ...]."""
    if mode not in ("center", "ten_crop"):
        raise InputError(f"evaluation mode {mode!r} is unknown; use 'center' or 'ten_crop'")
    view = center_crop if mode == "center" else ten_crop

    def f(batch: Batch) -> Batch:
        x = batch["image"].astype(jnp.float32)
        return {
            **batch,
            "image": view(pad(x if normalize is None else normalize(x), padding), size),
        }

    return f


def normalizer(kind: str, mean_image=None, channel_mean=None, channel_std=None) -> Normalize:
    """Sec. 2's "mean_image" (0..255 minus the training-set mean image) or "mean_std"."""
    if kind == "mean_image":
        mean = np.asarray(mean_image, np.float32)
        return lambda x: x - mean
    mean, std = np.asarray(channel_mean, np.float32), np.asarray(channel_std, np.float32)
    return lambda x: (x / 255.0 - mean) / std
