r"""Caffe's reference net (`bvlc_reference_caffenet`): the paper's layers with Caffe's choices.

- pool before norm (conv, ReLU, pool, LRN), not the paper's norm-then-pool;
- Caffe's LRN layer: alpha multiplies the *mean* over local_size=5 channels, k=1, across all
  96/256 channels (Caffe does not split the towers for LRN);
- Caffe's init: weights N(0, 0.01), fc6/fc7 N(0, 0.005); biases 0.1 where the paper uses 1.
"""

import ml_collections

from configs import paper


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = paper.get_config(arg)
    c.model.norm_before_pool = False
    c.model.lrn.convention = "caffe"
    c.model.lrn.k = 1.0
    c.model.lrn.within_towers = False
    c.model.init.weight_std = (0.01, 0.01, 0.01, 0.01, 0.01, 0.005, 0.005, 0.01)
    c.model.init.bias = (0.0, 0.1, 0.0, 0.1, 0.1, 0.1, 0.1, 0.0)
    return c
