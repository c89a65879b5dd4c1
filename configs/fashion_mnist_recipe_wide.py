r"""The converged recipe, third try: 1.5x the widths, scheduled on a held-out validation split.

  python -m experiments.sweep --sweep=experiments/sweeps/recipe_wide.py \
      --workdir=runs/recipe_wide --parallel=2

configs/fashion_mnist_recipe_long.py reached 92.02% over 3 seeds (92.45% with ten crops), short
of the 93.5% target, and underfit: clean training error 5.5-6.6%, close to the ~6.5% test error
the target needs (experiments/results/recipe_long_fashion_cpu2/). Changed here (ours), each from
that config:
- 1.5x every width: 48, 144, 192, 192, 144 conv kernels and 768-unit fc6/fc7 (1.61M weights,
  was 0.72M); the same topology, towers, LRN, pooling and init. Its cost on 2 cores is in
  experiments/results/recipe_wide_fashion_cpu2/README.md (from the training logs).
- The plateau rule reads a validation split held out of training (the last 5,000 training
  images; training uses the first 55,000), not the test set, which only `evaluate` reads.
Measured (2026-12-02/03, 2-core AMD EPYC, 3 seeds): 92.52% (92.83% with ten crops), short of
the target; the seed whose lr was divided after epoch 12 on a noisy held-out error ended 0.4-0.5
points below the other two (experiments/results/recipe_wide_fashion_cpu2/).
"""

import ml_collections

from configs import common, fashion_mnist_recipe_long


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = fashion_mnist_recipe_long.get_config(arg)
    c.model.conv.features = (48, 144, 192, 192, 144)  # ours: 1.5x (see above)
    c.model.fc_features = (768, 768)  # ours: 1.5x
    if not common.parse_arg(arg, smoke=False).smoke:
        c.input.eval_split = "train[55000:]"  # ours: a held-out validation split...
        c.input.train_limit = 55_000  # ...that training never sees
    return c
