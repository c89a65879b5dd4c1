r"""The paper's topology scaled to Fashion-MNIST (28x28 grey, 10 classes) for CPU runs.

Kept from paper.py: five conv layers with two-tower groups in conv2, conv4, conv5 and conv3
crossing, ReLU, paper LRN (within towers) after conv1 and conv2, norm then overlapping 3/2 max
pooling after conv1, conv2, conv5, three FC layers with dropout 0.5 on fc6/fc7 outputs, the
paper's init. Scaled (ours): 5x5/1 conv1 and 3x3 conv2, narrower layers; shapes are
28 -> 28 -> 13 -> 13 -> 6 -> 6 -> 6 -> 6 -> 2.
"""

import ml_collections

from configs import common, paper


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = paper.get_config(arg)
    m = c.model
    m.num_classes = 10
    m.input_size = 28
    m.input_channels = 1
    m.conv.features = (48, 128, 192, 192, 128)
    m.conv.kernel_size = (5, 3, 3, 3, 3)
    m.conv.stride = (1, 1, 1, 1, 1)
    m.conv.padding = (2, 1, 1, 1, 1)
    m.fc_features = (512, 512)
    if not common.parse_arg(arg, smoke=False).smoke:
        c.smoke_steps = 20  # a small net: more steps of the smoke run fit in a few seconds
    return c
