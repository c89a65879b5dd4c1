r"""Fine-tune imported AlexNet weights (bvlc_alexnet) on Fashion-MNIST: 10 classes, grey.

  python -m alexnet_jax.weights --config=configs/bvlc_alexnet.py --in=bvlc_alexnet.npy \
      --allow_pickle --out=bvlc_alexnet.npz
  python -m alexnet_jax.main --config=configs/finetune_fashion.py --workdir=runs/ft \
      --config.init_from.path=bvlc_alexnet.npz
  (add :smoke to the config for a few steps on a few images)

Model: configs/bvlc_alexnet.py (227 input; Fashion-MNIST's 28x28 images are resized to it) with
a new 10-way fc8 from the paper's N(0, 0.01) init (weights.adapt keeps the random head when
only the class count differs). Grey input meets the 3-channel conv1 by summing conv1's kernel
over its colour axis (init_from.grey="sum"): exactly the pretrained net fed the grey image as
R=G=B, at a third of conv1's input cost. Pixels are 0..255 minus Fashion-MNIST's mean image,
the same units as Caffe's BGR-minus-ILSVRC-mean (and for R=G=B the colour order is moot).

Optimizer (ours, after Caffe's fine-tuning recipe, where pretrained layers learn 10x slower
than the new one): the paper's rule, lr 0.01 for fc8, 0.001 (low_lr_factor 0.1) for conv3-fc7,
conv1 and conv2 frozen (generic edge/colour filters; conv1 is also the collapsed grey one).
Any of it can be overridden, e.g. --config.optim.frozen_layers="()".

Without --config.init_from.path this trains the same net from random init: the baseline.
"""

import ml_collections

from configs import bvlc_alexnet, common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = bvlc_alexnet.get_config(arg)
    c.model.num_classes = 10
    c.model.input_channels = 1
    c.init_from.grey = "sum"  # the format follows the suffix (.npz, .npy, .pth)
    c.optim.update(
        frozen_layers=("conv1", "conv2"),
        low_lr_layers=("conv3", "conv4", "conv5", "fc6", "fc7"),
        low_lr_factor=0.1,
    )
    c.input.update(
        dataset="fashion_mnist",
        source="idx",
        data_dir="/usr/share/datasets/fashion-mnist",  # Debian's dataset-fashion-mnist
        eval_split="test",  # Fashion-MNIST has no validation split
        normalize="mean_image",
        crop_padding=15,  # as fashion_mnist_227.py: crops are 227 windows of the image padded
        # ours: no augmentation, as the other Fashion-MNIST configs (PCA lighting needs colour)
        augment=dict(random_crop=False, flip=False, pca_lighting=False, pca_std=0.1),
    )
    if not common.parse_arg(arg, smoke=False).smoke:
        c.num_epochs = 3  # ours: fine-tuning needs far fewer epochs than training from scratch
        c.schedule.patience_epochs = 1
        c.log_every_steps = 50
    return c
