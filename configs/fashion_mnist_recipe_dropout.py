r"""The converged recipe, tenth try: the eighth with Sec. 4.2's dropout back on fc6 and fc7.

  python -m experiments.sweep --sweep=experiments/sweeps/recipe_dropout.py \
      --workdir=runs/recipe_dropout --seeds=0

The eighth try (configs/fashion_mnist_recipe_patient.py, 93.10% over 3 seeds) and the ninth
(patience 8, seed 0: 93.00%) fit the training set to 2.2-3.3% clean error against ~7% test
error: the nets now overfit. Dropout was switched off in the second try, when a 25-epoch
schedule underfit (5.5-6.6% clean training error); the paper adds it because "without dropout,
our network exhibits substantial overfitting" (Sec. 4.2).
Changed here, from the eighth try:
- Dropout 0.5 on the outputs of fc6 and fc7 (Sec. 4.2; fc6 holds 4.0M of the net's 5.15M
  weights).
- Capped at 80 epochs (ours; was 50): "dropout roughly doubles the number of iterations required
  to converge" (Sec. 4.2).
Everything else is the eighth try: 1.5x widths, no pool5, crops and flips, Sec. 5's optimizer,
the lr divided after 5 evaluations without a 0.1-point gain on train[50000:], three times.
"""

import ml_collections

from configs import common, fashion_mnist_recipe_patient


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = fashion_mnist_recipe_patient.get_config(arg)
    c.model.dropout.rate = 0.5  # Sec. 4.2 (the second to ninth tries had 0)
    if not common.parse_arg(arg, smoke=False).smoke:
        c.num_epochs = 80  # ours: a cap; was 50
    return c
