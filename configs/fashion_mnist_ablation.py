r"""The CPU-sized base of the ablation sweeps: configs/fashion_mnist.py on a training prefix.

Sized (ours) so that 7 variants x 3 seeds finish in about 45 minutes on a shared 2-core CPU:
the first 10,000 training images, 3 epochs, evaluated on the whole 10,000-image test set after
every epoch. Everything else (net, optimizer, plateau schedule with patience 1 and a 1%
threshold) is fashion_mnist.py's. The ablations switch fields of this config
(experiments/sweeps/ablations.py):

  python -m experiments.sweep --sweep=experiments/sweeps/ablations.py --workdir=runs/ablations
"""

import ml_collections

from configs import fashion_mnist


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = fashion_mnist.get_config(arg)
    c.input.train_limit = 10_000  # ours: the first 10k of the 60k training images
    c.num_epochs = 3  # ours
    c.checkpoint.keep = 1  # ours: a sweep keeps only the last (and best) checkpoint per run
    return c
