"""The paper's image preprocessing, as TensorFlow ops on one image for tf.data (Sec. 2, 4.1).

Training (Sec. 2, 4.1):   decode -> resize_small(256) -> central_crop(256) -> normalize
                          -> random_crop(227) -> flip -> pca_lighting
Evaluation (Sec. 4.1):    decode -> resize_small(256) -> central_crop(256) -> normalize
                          -> central_crop(227)   ("center")   or   ten_crop(227)   ("ten_crop")

The mean image is subtracted from the 256x256 image *before* the crop, as in the paper ("we
subtracted the mean activity over the training set from each pixel", then "extracting random
224x224 patches"), so every crop sees the mean image's matching window. Lighting adds one
constant per channel to every pixel, so it commutes with cropping, flipping and the mean
subtraction and is applied last, on the small crop.

Randomness is stateless: each op takes a `seed` ([2] int tensor) that input_pipeline derives
from config.seed, the epoch and the example's position, so a resumed run sees the same crops.
"""

import tensorflow as tf

Image = tf.Tensor  # [H, W, C]
Seed = tf.Tensor  # [2] int32/int64, for tf.random.stateless_* ops


def decode(data: tf.Tensor) -> Image:
    """JPEG (or PNG) bytes -> uint8 [H, W, 3]; grey images are replicated to three channels."""
    return tf.io.decode_image(data, channels=3, expand_animations=False)


def resize_small(image: Image, size: int) -> Image:
    """Rescales so the shorter side is `size`, keeping the aspect ratio (Sec. 2) -> float32.

    The longer side becomes round(long * size / short). Bilinear with antialiasing, like PIL's
    `Image.resize(..., BILINEAR)` (tests/test_preprocess.py compares the two); the result is
    not rounded back to uint8.
    """
    shape = tf.shape(image)
    h, w = tf.cast(shape[0], tf.float64), tf.cast(shape[1], tf.float64)
    scale = size / tf.minimum(h, w)
    new_h = tf.cast(tf.floor(h * scale + 0.5), tf.int32)
    new_w = tf.cast(tf.floor(w * scale + 0.5), tf.int32)
    out = tf.image.resize(image, tf.stack([new_h, new_w]), method="bilinear", antialias=True)
    return tf.cast(out, tf.float32)


def _window(image: Image, top, left, size: int) -> Image:
    return image[..., top : top + size, left : left + size, :]


def central_crop(image: Image, size: int) -> Image:
    """The central size x size window (Sec. 2); offsets floor((H - size) / 2), same for W.

    [..., H, W, C] -> [..., size, size, C]. torchvision rounds the offset instead
    (int(round(...))): for an odd H - size it starts one pixel lower than ours.
    """
    shape = tf.shape(image)
    return _window(image, (shape[-3] - size) // 2, (shape[-2] - size) // 2, size)


def random_crop(image: Image, size: int, seed: Seed) -> Image:
    """A size x size window at a uniformly random offset (Sec. 4.1: 227 of 256)."""
    return tf.image.stateless_random_crop(image, [size, size, tf.shape(image)[-1]], seed)


def flip(image: Image, seed: Seed) -> Image:
    """The horizontal reflection with probability 1/2 (Sec. 4.1)."""
    return tf.image.stateless_random_flip_left_right(image, seed)


def pca_lighting(
    image: Image,
    seed: Seed,
    *,
    eigvals: tf.Tensor,
    eigvecs: tf.Tensor,
    std: float,
    scale: tf.Tensor,
) -> Image:
    """ "Fancy PCA" lighting (Sec. 4.1): [p1 p2 p3][a1 l1, a2 l2, a3 l3]^T added to every pixel.

    a_i ~ N(0, std), drawn once per call (once per image per use).

    The paper does not say in what units its RGB values are. We follow fb.resnet.torch and
    take the eigens of the covariance of pixel values in [0, 1] (its largest eigenvalue on
    ImageNet is ~0.22: with 0..255 values it would be ~14000 and a_i ~ N(0, 0.1) would shift
    pixels by ~1400 levels). `scale` ([C]) converts that shift into the image's units: 255 for
    mean-subtracted 0..255 pixels, 1/std_c for per-channel standardised ones.

    Args:
      image: [H, W, C] float32.
      seed: this draw's seed: a new draw every time an image is used.
      eigvals: [C], eigvecs: [C, C] (column i is p_i), of the [0, 1]-pixel covariance.
    """
    alpha = tf.random.stateless_normal(tf.shape(eigvals), seed, stddev=std, dtype=tf.float32)
    shift = tf.linalg.matvec(eigvecs, alpha * eigvals)  # [C], in [0, 1] units
    return image + shift * scale


def five_crop(image: Image, size: int) -> Image:
    """[..., 5, size, size, C]: the four corner windows and the central one (Sec. 4.1).

    Order top-left, top-right, bottom-left, bottom-right, center (torchvision's FiveCrop).
    """
    shape = tf.shape(image)
    h, w = shape[-3], shape[-2]
    corners = [(0, 0), (0, w - size), (h - size, 0), (h - size, w - size)]
    crops = [_window(image, t, s, size) for t, s in corners]
    return tf.stack([*crops, central_crop(image, size)], axis=-4)


def ten_crop(image: Image, size: int) -> Image:
    """[..., 10, size, size, C]: five_crop, then five_crop of the reflected image (Sec. 4.1).

    "the network makes a prediction by extracting five 224x224 patches (the four corner patches
    and the center patch) as well as their horizontal reflections ... and averaging the
    predictions made by the network's softmax layer on the ten patches". Crop i + 5 is not the
    reflection of crop i for the corners: it is the reflected image's corner i (torchvision's
    TenCrop order), so the set of ten is the same.
    """
    reflected = image[..., ::-1, :]
    return tf.concat([five_crop(image, size), five_crop(reflected, size)], axis=-4)
