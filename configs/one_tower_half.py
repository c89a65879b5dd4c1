r"""Sec. 3.2's comparison net: one tower with half the kernels of each conv layer but the last.

"The one-GPU net actually has the same number of kernels as the two-GPU net in the final
convolutional layer" and the FC layers are unchanged, so both nets have about as many
parameters. Everything else (LRN, pooling, dropout, init) is paper.py's.
"""

import ml_collections

from configs import paper


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = paper.get_config(arg)
    c.model.towers = 1
    c.model.conv.features = (48, 128, 192, 192, 256)
    c.model.conv.groups = (1, 1, 1, 1, 1)
    c.model.lrn.within_towers = False
    return c
