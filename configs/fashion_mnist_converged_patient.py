r"""The ablation net under Sec. 5's schedule with patience 3: each lr held until the test error
has not improved for 3 epochs, not 1.

  python -m experiments.sweep --sweep=experiments/sweeps/converged_patient.py \
      --workdir=runs/converged_patient --parallel=2 --seeds=0

configs/fashion_mnist_converged_end.py divides the lr after the first epoch whose test error is
not 0.1 points below the best (patience 1). At lr 0.01 that error wanders by ~0.5 points from
epoch to epoch while its trend still falls, so its runs left lr 0.01 after epochs 4-9 and ended
after 9-15 (experiments/results/ablations_end_fashion_cpu2/); the recipe's tries found the same
noise cost test accuracy (README, "A converged recipe"). Changed here (ours): patience 3 and a
60-epoch guard. Everything else is fashion_mnist_converged_end.py's, so the two sweeps differ in
how long each lr is held and nothing else.
Cost (measured; 2-core AMD EPYC, 2026-12-07, commit d36d7a4): a seed's 7 runs took 6,086-6,393 s
two at a time (21-35 epochs each, 2.4x the patience-1 runs'), so one seed per 3-hour session:
the sweep runs in parts, `--seeds` (experiments/results/ablations_patient_fashion_cpu2/).
"""

import ml_collections

from configs import common, fashion_mnist_converged_end


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = fashion_mnist_converged_end.get_config(arg)
    c.schedule.patience_epochs = 3  # ours: Sec. 5's "stopped improving", read over 3 epochs
    if not common.parse_arg(arg, smoke=False).smoke:
        c.num_epochs = 60  # ours: a guard; the schedule is expected to end the run first
    return c
