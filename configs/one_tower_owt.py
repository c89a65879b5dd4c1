r"""The single-tower "one weird trick" AlexNet (Krizhevsky 2014), as torchvision's `alexnet`.

64, 192, 384, 256, 256 kernels, no groups, no LRN, 224 input with conv1 padded by 2, dropout on
the *inputs* of fc6 and fc7 (torchvision's order), PyTorch's default init. 61,100,840 parameters.
"""

import ml_collections

from configs import paper


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = paper.get_config(arg)
    m = c.model
    m.input_size = 224
    m.towers = 1
    m.conv.features = (64, 192, 384, 256, 256)
    m.conv.padding = (2, 2, 1, 1, 1)
    m.conv.groups = (1, 1, 1, 1, 1)
    m.lrn.enabled = False
    m.lrn.within_towers = False
    m.dropout.inputs_of = ("fc6", "fc7")
    m.init.scheme = "pytorch"
    return c
