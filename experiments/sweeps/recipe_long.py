r"""The converged recipe's second try (configs/fashion_mnist_recipe_long.py), 3 seeds.

  python -m experiments.sweep --sweep=experiments/sweeps/recipe_long.py \
      --workdir=runs/recipe_long --parallel=3
  python -m experiments.tables --workdir=runs/recipe_long \
      --out=experiments/results/recipe_long_fashion_cpu2
"""


def get_sweep() -> dict:
    return dict(
        config="configs/fashion_mnist_recipe_long.py",
        seeds=(0, 1, 2),
        baseline="recipe_long",
        variants={
            "recipe_long": dict(
                overrides={},
                section="Secs. 4.1, 5",
                what="the recipe without dropout, patience 3, at most 25 epochs",
                claim=None,
            )
        },
    )
