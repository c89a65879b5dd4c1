"""In-memory splits checked against the config before training: one line naming the fix.

Counts (images vs labels), image shape and channels, and labels in [0, num_classes): the
mistakes that otherwise train silently wrong (a short label file scores against the wrong
images) or fail far away (a label >= num_classes makes the loss NaN at step 1).
"""

import ml_collections
import numpy as np

from alexnet_jax.errors import InputError


def split(s, m: ml_collections.ConfigDict, where: str, name: str):
    """`s` (input_pipeline.Split) if it fits `config.model` m; else InputError. Returns `s`."""
    images, labels = s.images, s.labels
    what = f"the {name} split in {where}"
    if len(images) != len(labels):
        raise InputError(
            f"{what} has {len(images)} images but {len(labels)} labels; the image and label "
            "files do not belong together: replace them with a matching pair"
        )
    if len(labels) == 0:
        raise InputError(f"{what} is empty; point config.input.data_dir at the dataset")
    if images.ndim != 4 or images.shape[-1] != m.input_channels:
        raise InputError(
            f"{what} has images of shape {images.shape[1:]} but config.model.input_channels="
            f"{m.input_channels}; set it to the images' channels ({images.shape[-1]})"
        )
    lo, hi = int(np.min(labels)), int(np.max(labels))
    if lo < 0 or hi >= m.num_classes:
        raise InputError(
            f"{what} has labels in [{lo}, {hi}] but config.model.num_classes={m.num_classes} "
            f"needs them in [0, {m.num_classes - 1}]; set num_classes to {hi + 1} or fix the "
            "label file"
        )
    return s
