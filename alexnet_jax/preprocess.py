"""Sec. 2's rescaling as TensorFlow ops on one image, for the TFDS stream (stream.py, stats.py).

  decode -> resize_small(256) -> central_crop(256)

prepare.py does the same with PIL (once); the per-example work after it (mean image, random
227 crop, flip, PCA lighting, ten crops) runs on the device (augment.py). The mean image is
subtracted from the 256x256 image *before* the crop, as in the paper ("we subtracted the mean
activity over the training set from each pixel", then "extracting random 224x224 patches").
"""

import tensorflow as tf

Image = tf.Tensor  # [H, W, C]


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
