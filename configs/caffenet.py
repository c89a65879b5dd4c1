r"""Caffe's reference net (`bvlc_reference_caffenet`): the paper's layers with Caffe's choices.

- pool before norm (conv, ReLU, pool, LRN), not the paper's norm-then-pool;
- Caffe's LRN layer: alpha multiplies the *mean* over local_size=5 channels, k=1, across all
  96/256 channels (Caffe does not split the towers for LRN);
- Caffe's init for it: weights N(0, 0.01), fc6/fc7 N(0, 0.005); biases as the paper's (1 in
  conv2, conv4, conv5, fc6, fc7; BVLC/caffe models/bvlc_reference_caffenet/train_val.prototxt,
  commit 74bf4b7). Caffe's bvlc_alexnet uses 0.1 there (experiments/sweeps/init.py's caffe_init);
- Caffe's data layer: random 227 crops and mirroring, no PCA lighting (Sec. 4.1's second form).
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
    c.input.augment.pca_lighting = False  # Caffe: crops and mirroring only
    return c
