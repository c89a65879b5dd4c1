r"""The converged recipe's third try (configs/fashion_mnist_recipe_wide.py), 3 seeds.

  python -m experiments.sweep --sweep=experiments/sweeps/recipe_wide.py \
      --workdir=runs/recipe_wide --parallel=2
  python -m experiments.tables --workdir=runs/recipe_wide \
      --out=experiments/results/recipe_wide_fashion_cpu2
"""

from experiments.sweeps import recipe


def get_sweep() -> dict:
    return recipe("recipe_wide", "recipe_long at 1.5x the widths, scheduled on a held-out split")
