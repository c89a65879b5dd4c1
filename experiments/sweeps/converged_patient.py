r"""The ablations at convergence with a patient schedule: 7 variants x 5 seeds.

  python -m experiments.sweep --sweep=experiments/sweeps/converged_patient.py \
      --workdir=runs/converged_patient --parallel=2 --seeds=0

experiments/sweeps/converged.py's variants and claims on
configs/fashion_mnist_converged_patient.py (plateau patience 3, not 1), over seeds 0-4:
seeds 0-2 are the 3-seed table; 3 and 4 (ours) narrow the SE of effects near 2 SE. A seed's 7
runs take ~1.8 h two at a time on 2 cores, so run one seed per session with --seeds.
"""

from experiments.sweeps import converged


def get_sweep() -> dict:
    sweep = converged.get_sweep()
    sweep["config"] = "configs/fashion_mnist_converged_patient.py"
    sweep["seeds"] = (0, 1, 2, 3, 4)
    return sweep
