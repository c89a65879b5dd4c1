r"""The converged recipe, fifth try: the third try's net, scheduled on a 10k held-out split.

  python -m experiments.sweep --sweep=experiments/sweeps/recipe_holdout.py \
      --workdir=runs/recipe_holdout --parallel=3

The third (configs/fashion_mnist_recipe_wide.py, 1.5x widths) and fourth (2x) tries fell short
of the 93.5% target, and in each the seed whose lr was first divided early (after epoch 11 or
12) ended worst: the plateau rule read a 5,000-image held-out error whose binomial SE (~0.4
points) is larger than the gains it looks for. The seeds divided late reached 93.0-93.15% with
ten crops (experiments/results/recipe_wide_fashion_cpu2/, recipe_2x_fashion_cpu2/).
Changed here (ours), from the third try:
- The plateau rule reads the last 10,000 training images (`train[50000:]`, SE ~0.27 points);
  training reads the first 50,000.
- Capped at 30 epochs (was 25), so a late first division still leaves room for the others.
The same 1.5x net (48, 144, 192, 192, 144 conv kernels, 768-unit fc6/fc7), no dropout, random
crops and flips, Sec. 5's optimizer, lr / 10 after 3 epochs without a 0.1-point gain, 3 times.
Measured (2026-12-03, 2-core AMD EPYC, seed 0 only): 92.59% (92.92% with ten crops); its lr was
still first divided after epoch 17 (experiments/results/recipe_holdout_fashion_cpu2/).
"""

import ml_collections

from configs import common, fashion_mnist_recipe_wide


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = fashion_mnist_recipe_wide.get_config(arg)
    if not common.parse_arg(arg, smoke=False).smoke:
        c.input.eval_split = "train[50000:]"  # ours: 10k held out (was 5k)...
        c.input.train_limit = 50_000  # ...that training never sees
        c.num_epochs = 30  # ours: a cap; was 25
    return c
