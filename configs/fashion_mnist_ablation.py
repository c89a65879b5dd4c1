r"""The CPU-sized base of the ablation sweeps: configs/fashion_mnist.py at half width, on a prefix.

Sized (ours) so that 6 variants x 3 seeds finish in about an hour on a 2-core CPU shared with
three other engineers' test runs (load average 8-12, where a nice'd run gets ~1/8 of a core):
half of fashion_mnist.py's kernels in every layer (16, 48, 64, 64, 48 conv kernels, 256-unit
fc6/fc7), the first 5,000 training images, 2 epochs (78 steps of 128), evaluated on the first
4,000 test images after each epoch. That is far from converged: it measures the ablations
early in training, on little data. Everything else (topology with two towers, paper LRN,
3/2 pooling, dropout 0.5, PyTorch init, Sec. 5's optimizer, plateau schedule with patience 1 and
a 1% threshold) is fashion_mnist.py's. The ablations switch fields of this config
(experiments/sweeps/ablations.py):

  python -m experiments.sweep --sweep=experiments/sweeps/ablations.py --workdir=runs/ablations
"""

import ml_collections

from configs import common, fashion_mnist


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = fashion_mnist.get_config(arg)
    c.model.conv.features = (16, 48, 64, 64, 48)  # ours: half of fashion_mnist.py's
    c.model.fc_features = (256, 256)
    if not common.parse_arg(arg, smoke=False).smoke:  # smoke keeps its few images
        c.input.train_limit = 5_000  # ours: the first 5k of the 60k training images
        c.input.eval_limit = 4_000  # ours: the first 4k of the 10k test images
    c.num_epochs = 2  # ours
    c.checkpoint.keep = 1  # ours: a sweep keeps only the last (and best) checkpoint per run
    return c
