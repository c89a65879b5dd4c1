r"""The converged recipe's seventh try (configs/fashion_mnist_recipe_6x6.py), 3 seeds.

  python -m experiments.sweep --sweep=experiments/sweeps/recipe_6x6.py \
      --workdir=runs/recipe_6x6 --parallel=2
  python -m experiments.tables --workdir=runs/recipe_6x6 \
      --out=experiments/results/recipe_6x6_fashion_cpu2
"""


def get_sweep() -> dict:
    return dict(
        config="configs/fashion_mnist_recipe_6x6.py",
        seeds=(0, 1, 2),
        baseline="recipe_6x6",
        variants={
            "recipe_6x6": dict(
                overrides={},
                section="Secs. 4.1, 5",
                what="recipe_holdout without pool5: fc6 reads a 6x6 map",
                claim=None,
            )
        },
    )
