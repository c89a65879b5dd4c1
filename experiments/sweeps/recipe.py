r"""The converged Fashion-MNIST recipe (configs/fashion_mnist_recipe.py), 3 seeds.

  python -m experiments.sweep --sweep=experiments/sweeps/recipe.py --workdir=runs/recipe \
      --parallel=3
  python -m experiments.tables --workdir=runs/recipe --out=experiments/results/recipe_fashion_cpu2

One variant: the table gives its test error as mean +- std over the seeds.
"""

from experiments.sweeps import recipe


def get_sweep() -> dict:
    return recipe("recipe", "fashion_mnist.py with crops and flips, Sec. 5's schedule to its end")
