r"""The paper's ablations at convergence: configs/fashion_mnist_converged.py, 3 seeds each.

  python -m experiments.sweep --sweep=experiments/sweeps/converged.py --workdir=runs/converged \
      --parallel=2

The variants of experiments/sweeps/ablations.py (same fields, same claims), plus no
augmentation (Sec. 4.1) and Caffe's LRN convention. `claim` is the paper's change in (top-1,
top-5) error, in points, when the variant replaces the baseline's choice (positive = worse).
Sec. 4.1 gives no number for crops and flips on their own ("substantial overfitting" without
them), so that claim is None. The "tensorflow" LRN convention computes the paper's layer
(tests/test_lrn.py), so its runs would repeat the baseline and are left out.
"""

from experiments.sweeps import ablations


def get_sweep() -> dict:
    sweep = ablations.get_sweep()
    sweep["config"] = "configs/fashion_mnist_converged.py"
    sweep["variants"]["no_augmentation"] = dict(
        overrides={"input.augment.random_crop": False, "input.augment.flip": False},
        section="Sec. 4.1",
        what="no random crops, no flips",
        claim=None,
    )
    return sweep
