r"""The converged recipe's eighth try (configs/fashion_mnist_recipe_patient.py), 3 seeds.

  python -m experiments.sweep --sweep=experiments/sweeps/recipe_patient.py \
      --workdir=runs/recipe_patient --parallel=2
  python -m experiments.tables --workdir=runs/recipe_patient \
      --out=experiments/results/recipe_patient_fashion_cpu2
"""


def get_sweep() -> dict:
    return dict(
        config="configs/fashion_mnist_recipe_patient.py",
        seeds=(0, 1, 2),
        baseline="recipe_patient",
        variants={
            "recipe_patient": dict(
                overrides={},
                section="Secs. 4.1, 5",
                what="recipe_6x6 with patience 5 and a 50-epoch cap",
                claim=None,
            )
        },
    )
