r"""The ablations at convergence with a patient schedule: 7 variants x 3 seeds.

  python -m experiments.sweep --sweep=experiments/sweeps/converged_patient.py \
      --workdir=runs/converged_patient --parallel=2 --seeds=0

experiments/sweeps/converged.py's variants and claims on
configs/fashion_mnist_converged_patient.py (plateau patience 3, not 1).
"""

from experiments.sweeps import converged


def get_sweep() -> dict:
    sweep = converged.get_sweep()
    sweep["config"] = "configs/fashion_mnist_converged_patient.py"
    return sweep
