r"""The converged recipe's fifth try (configs/fashion_mnist_recipe_holdout.py), 3 seeds.

  python -m experiments.sweep --sweep=experiments/sweeps/recipe_holdout.py \
      --workdir=runs/recipe_holdout --parallel=3
  python -m experiments.tables --workdir=runs/recipe_holdout \
      --out=experiments/results/recipe_holdout_fashion_cpu2
"""


def get_sweep() -> dict:
    return dict(
        config="configs/fashion_mnist_recipe_holdout.py",
        seeds=(0, 1, 2),
        baseline="recipe_holdout",
        variants={
            "recipe_holdout": dict(
                overrides={},
                section="Secs. 4.1, 5",
                what="recipe_wide scheduled on a 10k held-out split, 30-epoch cap",
                claim=None,
            )
        },
    )
