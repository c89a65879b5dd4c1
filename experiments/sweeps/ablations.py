r"""The paper's ablations on the CPU-sized Fashion-MNIST config, 3 seeds each.

  python -m experiments.sweep --sweep=experiments/sweeps/ablations.py --workdir=runs/ablations

`claim` is the paper's change in (top-1, top-5) error, in percentage points, when the variant
replaces the baseline's choice (positive = the variant is worse), None where the paper gives no
number. Left out: PCA lighting (Sec. 4.1, about 1 point of top-1): Fashion-MNIST is greyscale,
so there is no colour to perturb and the claim cannot be tested on it. The "tensorflow" LRN
convention is numerically the "paper" one (lrn.py, tests/test_lrn.py), so it is in
lrn_conventions.py, not here: on a shared CPU its three runs would repeat the baseline.
"""

TOWER_HALF = (8, 24, 32, 32, 48)  # the base's (16, 48, 64, 64, 48) with conv1-conv4 halved


def get_sweep() -> dict:
    return dict(
        config="configs/fashion_mnist_ablation.py",
        seeds=(0, 1, 2),
        baseline="baseline",
        variants={
            "baseline": dict(
                overrides={},
                section="Secs. 3-4",
                what="paper LRN, overlapping 3/2 pooling, two towers, dropout 0.5",
                claim=None,
            ),
            "no_lrn": dict(
                overrides={"model.lrn.enabled": False},
                section="Sec. 3.3",
                what="no local response normalization",
                claim=(1.4, 1.2),
            ),
            "pool_2x2": dict(
                overrides={"model.pool.window": 2, "model.pool.stride": 2},
                section="Sec. 3.4",
                what="non-overlapping 2/2 max pooling",
                claim=(0.4, 0.3),
            ),
            "one_tower_half": dict(
                overrides={
                    "model.towers": 1,
                    "model.conv.features": TOWER_HALF,
                    "model.conv.groups": (1, 1, 1, 1, 1),
                    "model.lrn.within_towers": False,
                },
                section="Sec. 3.2",
                what="one tower, half the kernels in conv1-conv4",
                claim=(1.7, 1.2),
            ),
            "no_dropout": dict(
                overrides={"model.dropout.rate": 0.0},
                section="Sec. 4.2",
                what="no dropout (paper: 'substantial overfitting', no number)",
                claim=None,
            ),
            "lrn_caffe": dict(
                overrides={"model.lrn.convention": "caffe"},
                section="Sec. 3.3 / Caffe",
                what="LRN with alpha on the mean (Caffe), same k, n, alpha, beta",
                claim=None,
            ),
        },
    )
