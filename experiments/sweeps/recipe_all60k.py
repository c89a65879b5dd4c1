r"""The converged recipe's eleventh try (configs/fashion_mnist_recipe_all60k.py), 3 seeds.

  python -m experiments.sweep --sweep=experiments/sweeps/recipe_all60k.py \
      --workdir=runs/recipe_all60k --parallel=2
  python -m experiments.tables --workdir=runs/recipe_all60k \
      --out=experiments/results/recipe_all60k_fashion_cpu2
"""

from experiments.sweeps import recipe


def get_sweep() -> dict:
    return recipe("recipe_all60k", "recipe_patient on all 60k, lr / 10 after epochs 29, 36, 43")
