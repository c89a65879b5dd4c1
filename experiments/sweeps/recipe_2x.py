r"""The converged recipe's fourth try (configs/fashion_mnist_recipe_2x.py), 3 seeds.

  python -m experiments.sweep --sweep=experiments/sweeps/recipe_2x.py \
      --workdir=runs/recipe_2x --parallel=2
  python -m experiments.tables --workdir=runs/recipe_2x \
      --out=experiments/results/recipe_2x_fashion_cpu2
"""

from experiments.sweeps import recipe


def get_sweep() -> dict:
    return recipe("recipe_2x", "recipe_wide at 2x the widths of fashion_mnist.py")
