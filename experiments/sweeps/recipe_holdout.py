r"""The converged recipe's fifth try (configs/fashion_mnist_recipe_holdout.py), 3 seeds.

  python -m experiments.sweep --sweep=experiments/sweeps/recipe_holdout.py \
      --workdir=runs/recipe_holdout --parallel=3
  python -m experiments.tables --workdir=runs/recipe_holdout \
      --out=experiments/results/recipe_holdout_fashion_cpu2
"""

from experiments.sweeps import recipe


def get_sweep() -> dict:
    return recipe("recipe_holdout", "recipe_wide scheduled on a 10k held-out split, 30-epoch cap")
