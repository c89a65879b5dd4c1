r"""The full paper net (paper.py) on Fashion-MNIST resized to 227x227, grey, 10 classes.

Sized for GPU runs: on a 2-core CPU an epoch of 60k images at 227 takes hours.
"""

import ml_collections

from configs import paper


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = paper.get_config(arg)
    c.model.num_classes = 10
    c.model.input_channels = 1
    c.input.update(
        dataset="fashion_mnist",
        source="idx",
        data_dir="/usr/share/datasets/fashion-mnist",
        eval_split="test",
        crop_padding=15,  # ours: crops are 227x227 windows of the resized image padded to 257
        augment=dict(random_crop=False, flip=False, pca_lighting=False, pca_std=0.1),  # ours
    )
    c.num_epochs = 30  # ours
    return c
