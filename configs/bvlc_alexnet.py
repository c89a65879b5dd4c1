r"""Caffe's `bvlc_alexnet`: the paper's layer order with Caffe's LRN, for its released weights.

Differs from paper.py only where Caffe's model differs: its LRN layer multiplies alpha by the
*mean* over local_size=5 channels, k=1, across all 96/256 channels (not within towers), and its
data layer has no PCA lighting (crops and mirroring only). Norm then pool, as in the paper
(configs/caffenet.py, `bvlc_reference_caffenet`, swaps them). Same 60,965,224 parameters as
paper.py, so `bvlc_alexnet.npy` (caffe-tensorflow's conversion) loads:

  python -m alexnet_jax.weights --config=configs/bvlc_alexnet.py --in=bvlc_alexnet.npy \
      --allow_pickle --out=bvlc_alexnet.npz           # once: check shapes, drop the pickle
  python -m alexnet_jax.features --config=configs/bvlc_alexnet.py \
      --checkpoint=bvlc_alexnet.npz --preprocess=caffe --images=DIR --out=fc7.npy

Inputs: BGR, 0..255 minus the ILSVRC mean (weights.preprocess(images, "caffe")).
"""

import ml_collections

from configs import paper


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = paper.get_config(arg)
    c.model.lrn.convention = "caffe"
    c.model.lrn.k = 1.0
    c.model.lrn.within_towers = False
    c.input.augment.pca_lighting = False  # Caffe: crops and mirroring only
    return c
