r"""The converged recipe's second try (configs/fashion_mnist_recipe_long.py), 3 seeds.

  python -m experiments.sweep --sweep=experiments/sweeps/recipe_long.py \
      --workdir=runs/recipe_long --parallel=3
  python -m experiments.tables --workdir=runs/recipe_long \
      --out=experiments/results/recipe_long_fashion_cpu2
"""

from experiments.sweeps import recipe


def get_sweep() -> dict:
    return recipe("recipe_long", "the recipe without dropout, patience 3, at most 25 epochs")
