r"""The converged recipe's sixth try (configs/fashion_mnist_recipe_he.py), 3 seeds.

  python -m experiments.sweep --sweep=experiments/sweeps/recipe_he.py \
      --workdir=runs/recipe_he --parallel=2
  python -m experiments.tables --workdir=runs/recipe_he \
      --out=experiments/results/recipe_he_fashion_cpu2
"""

from experiments.sweeps import recipe


def get_sweep() -> dict:
    return recipe("recipe_he", "recipe_holdout with He init on standardised input")
