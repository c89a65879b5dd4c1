r"""Sec. 3.3's LRN on/off trained longer: does the short sweep's no-LRN advantage last?

  python -m experiments.sweep --sweep=experiments/sweeps/lrn_longer.py --workdir=runs/lrn_longer

The ablation config with 10,000 training images and 4 epochs (312 steps of 128) instead of
5,000 and 2 (78 steps); still evaluated on the first 4,000 test images. Claim as in
ablations.py: +1.4 / +1.2 points of top-1 / top-5 error without LRN.
"""

LONGER = {"input.train_limit": 10_000, "num_epochs": 4}


def get_sweep() -> dict:
    return dict(
        config="configs/fashion_mnist_ablation.py",
        seeds=(0, 1, 2),
        baseline="baseline",
        variants={
            "baseline": dict(
                overrides=LONGER, section="Secs. 3-4", what="paper LRN, 4 epochs", claim=None
            ),
            "no_lrn": dict(
                overrides={**LONGER, "model.lrn.enabled": False},
                section="Sec. 3.3",
                what="no LRN, 4 epochs",
                claim=(1.4, 1.2),
            ),
        },
    )
