r"""The converged Fashion-MNIST recipe (configs/fashion_mnist_recipe.py), 3 seeds.

  python -m experiments.sweep --sweep=experiments/sweeps/recipe.py --workdir=runs/recipe \
      --parallel=3
  python -m experiments.tables --workdir=runs/recipe --out=experiments/results/recipe_fashion_cpu2

One variant: the table gives its test error as mean +- std over the seeds.
"""


def get_sweep() -> dict:
    return dict(
        config="configs/fashion_mnist_recipe.py",
        seeds=(0, 1, 2),
        baseline="recipe",
        variants={
            "recipe": dict(
                overrides={},
                section="Secs. 4.1, 5",
                what="fashion_mnist.py with crops and flips, Sec. 5's schedule to its end",
                claim=None,
            )
        },
    )
