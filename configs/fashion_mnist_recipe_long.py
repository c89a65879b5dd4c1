r"""The converged recipe, second try: no dropout, a patient schedule, a longer cap.

  python -m experiments.sweep --sweep=experiments/sweeps/recipe_long.py \
      --workdir=runs/recipe_long --parallel=3

configs/fashion_mnist_recipe.py (full-width fashion_mnist.py net, crops and flips, Sec. 5's
optimizer and schedule to its end) reached 91.44% over 3 seeds, short of the 93.5% target, and
underfit: its clean training error was 6.6-7.6% (experiments/results/recipe_fashion_cpu2/).
Changed here (ours), each from that run:
- No dropout (Sec. 4.2 is switched off): one seed without it fitted the training set better
  (5.72% vs 6.59% clean error) and tested better (7.79% vs 8.16%).
- The lr is divided after 3 epochs without a 0.1-point gain (was 2): two of the three seeds
  divided it after epoch 6 on a noisy test error, and the seed that kept 0.01 longest was best.
- Capped at 25 epochs (was 20), sized so 3 seeds at once fit about two hours of 2 cores.
Measured (2026-12-02, 2-core Intel Xeon, 3 seeds at once, 118 minutes): 92.02% (92.45% with ten
crops); better than the first try on every seed, still short of the 93.5% target: clean training
error 5.5-6.6% (experiments/results/recipe_long_fashion_cpu2/).
"""

import ml_collections

from configs import common, fashion_mnist_recipe


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = fashion_mnist_recipe.get_config(arg)
    c.model.dropout.rate = 0.0  # ours: the recipe underfits (see above)
    c.schedule.patience_epochs = 3  # ours: was 2
    if not common.parse_arg(arg, smoke=False).smoke:
        c.num_epochs = 25  # ours: a cap; was 20
    return c
