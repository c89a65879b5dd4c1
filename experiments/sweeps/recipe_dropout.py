r"""The converged recipe's tenth try (configs/fashion_mnist_recipe_dropout.py), 3 seeds.

  python -m experiments.sweep --sweep=experiments/sweeps/recipe_dropout.py \
      --workdir=runs/recipe_dropout --parallel=2
  python -m experiments.tables --workdir=runs/recipe_dropout \
      --out=experiments/results/recipe_dropout_fashion_cpu2
"""

from experiments.sweeps import recipe


def get_sweep() -> dict:
    return recipe("recipe_dropout", "recipe_patient with dropout 0.5 on fc6/fc7, an 80-epoch cap")
