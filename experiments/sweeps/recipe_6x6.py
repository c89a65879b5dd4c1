r"""The converged recipe's seventh try (configs/fashion_mnist_recipe_6x6.py), 3 seeds.

  python -m experiments.sweep --sweep=experiments/sweeps/recipe_6x6.py \
      --workdir=runs/recipe_6x6 --parallel=2
  python -m experiments.tables --workdir=runs/recipe_6x6 \
      --out=experiments/results/recipe_6x6_fashion_cpu2
"""

from experiments.sweeps import recipe


def get_sweep() -> dict:
    return recipe("recipe_6x6", "recipe_holdout without pool5: fc6 reads a 6x6 map")
