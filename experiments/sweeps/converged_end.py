r"""The ablations at convergence, run to the end of Sec. 5's schedule: 7 variants x 3 seeds.

  python -m experiments.sweep --sweep=experiments/sweeps/converged_end.py \
      --workdir=runs/converged_end --parallel=2

experiments/sweeps/converged.py's variants and claims on configs/fashion_mnist_converged_end.py,
which ends each run by the schedule instead of at 8 epochs.
"""

from experiments.sweeps import converged


def get_sweep() -> dict:
    sweep = converged.get_sweep()
    sweep["config"] = "configs/fashion_mnist_converged_end.py"
    return sweep
