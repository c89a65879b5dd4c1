r"""The paper's topology scaled to CIFAR-10 (32x32 RGB, 10 classes), read through TFDS.

fashion_mnist.py's net with three input channels and a 32x32 input (shapes 32 -> 32 -> 15 ->
15 -> 7 -> 7 -> 7 -> 7 -> 3). Data (ours): TFDS `cifar10` held in memory, the test split as
the evaluation set, pixels minus the training-set mean image; training crops are random 32x32
windows of the image zero-padded by 4 (after the mean subtraction) and their reflections,
the usual CIFAR augmentation and Sec. 4.1's in spirit; PCA lighting off (switchable).

  python -m alexnet_jax.main --config=configs/cifar10.py --workdir=runs/cifar10
"""

import ml_collections

from configs import fashion_mnist


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = fashion_mnist.get_config(arg)
    c.model.input_size = 32
    c.model.input_channels = 3
    c.input.update(
        dataset="cifar10",
        source="tfds",
        data_dir=None,  # TFDS's default data dir
        eval_split="test",
        crop_padding=4,
    )
    c.input.augment.update(random_crop=True, flip=True, pca_lighting=False)
    return c
