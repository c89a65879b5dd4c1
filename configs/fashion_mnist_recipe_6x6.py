r"""The converged recipe, seventh try: fc6 reads a 6x6 map, as in Fig. 2, not a 2x2 one.

  python -m experiments.sweep --sweep=experiments/sweeps/recipe_6x6.py \
      --workdir=runs/recipe_6x6 --parallel=2

Six tries ended at 7.0-8.2% test error with ten crops, and from the third on the clean training
error stayed at 4.7-5.8% whatever the width (1.5x, 2x), schedule noise, init or weight decay
(experiments/results/recipe_he_fashion_cpu2/). One thing the scaling to 28x28 changed and no
try did: the paper's pool5 leaves fc6 a 6x6x256 map (Fig. 2, 224 -> 55 -> 27 -> 13 -> 6), ours
a 2x2 one (28 -> 28 -> 13 -> 6 -> 2) that drops conv5's last row and column.
Changed here (ours), from the fifth try (configs/fashion_mnist_recipe_holdout.py):
- No pool after conv5 (pools after conv1 and conv2 only): fc6 reads conv5's 6x6x144 map, and
  has 5184 x 768 weights (5.15M in the net, was 1.61M).
Everything else is the fifth try: 1.5x widths, no dropout, crops and flips, Sec. 5's optimizer,
lr / 10 after 3 epochs without a 0.1-point gain on a 10k held-out split, 3 times, 30-epoch cap.
Measured (2026-12-03, 2-core Intel Xeon, commit 0b49c4a, 3 seeds): 92.40% (92.70% with ten
crops), not the target; seed 0 92.60% (93.07%), seed 1, its lr divided after epoch 12, 92.21%
(experiments/results/recipe_6x6_fashion_cpu2/).
"""

import ml_collections

from configs import fashion_mnist_recipe_holdout


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = fashion_mnist_recipe_holdout.get_config(arg)
    c.model.pool.after = (1, 2)  # ours: fc6 reads conv5's 6x6 map (was pooled to 2x2)
    return c
