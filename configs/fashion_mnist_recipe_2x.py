r"""The converged recipe, fourth try: 2x the widths of fashion_mnist.py, held-out schedule.

  python -m experiments.sweep --sweep=experiments/sweeps/recipe_2x.py \
      --workdir=runs/recipe_2x --parallel=2

configs/fashion_mnist_recipe_wide.py (1.5x widths) reached 92.67% over 2 seeds (93.04% with ten
crops), short of the 93.5% target, with clean training error 4.7%: width helped on every measure
(experiments/results/recipe_wide_fashion_cpu2/). Changed here (ours), from that config: 2x every
width of fashion_mnist.py, 64, 192, 256, 256, 192 conv kernels and 1024-unit fc6/fc7; the same
topology, towers, LRN, pooling, init, optimizer, plateau schedule, 25-epoch cap and held-out
validation split (`train[55000:]`; training reads `train[:55000]`).
Measured (2026-12-03, 2-core AMD EPYC, seeds 0 and 1): 92.62% (92.95% with ten crops), short
of the target. Seed 1's lr was divided after epoch 11 on a noisy held-out error (92.54%, 92.75%);
seed 0's after epoch 17 (92.69%, 93.15%). Seed 2 is not run
(experiments/results/recipe_2x_fashion_cpu2/).
"""

import ml_collections

from configs import fashion_mnist_recipe_wide


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = fashion_mnist_recipe_wide.get_config(arg)
    c.model.conv.features = (64, 192, 256, 256, 192)  # ours: 2x fashion_mnist.py (see above)
    c.model.fc_features = (1024, 1024)  # ours: 2x
    return c
