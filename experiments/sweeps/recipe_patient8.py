r"""The converged recipe's ninth try (configs/fashion_mnist_recipe_patient8.py), 3 seeds.

  python -m experiments.sweep --sweep=experiments/sweeps/recipe_patient8.py \
      --workdir=runs/recipe_patient8 --parallel=2
  python -m experiments.tables --workdir=runs/recipe_patient8 \
      --out=experiments/results/recipe_patient8_fashion_cpu2
"""

from experiments.sweeps import recipe


def get_sweep() -> dict:
    return recipe("recipe_patient8", "recipe_patient with patience 8 and an 80-epoch cap")
