r"""The converged recipe's eighth try (configs/fashion_mnist_recipe_patient.py), 3 seeds.

  python -m experiments.sweep --sweep=experiments/sweeps/recipe_patient.py \
      --workdir=runs/recipe_patient --parallel=2
  python -m experiments.tables --workdir=runs/recipe_patient \
      --out=experiments/results/recipe_patient_fashion_cpu2
"""

from experiments.sweeps import recipe


def get_sweep() -> dict:
    return recipe("recipe_patient", "recipe_6x6 with patience 5 and a 50-epoch cap")
