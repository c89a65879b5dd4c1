r"""Sec. 3.3's LRN under the three conventions (lrn.py), same k, n, alpha, beta; 3 seeds each.

  python -m experiments.sweep --sweep=experiments/sweeps/lrn_conventions.py --workdir=runs/lrn

"paper" (alpha on the sum, as printed) and "tensorflow" compute the same layer; "caffe" puts
alpha on the mean, i.e. a normalization n times weaker with the paper's numbers. The paper
makes no claim about conventions (claim None).
"""


def get_sweep() -> dict:
    conventions = ("paper", "caffe", "tensorflow")
    return dict(
        config="configs/fashion_mnist_ablation.py",
        seeds=(0, 1, 2),
        baseline="lrn_paper",
        variants={
            f"lrn_{c}": dict(
                overrides={"model.lrn.convention": c},
                section="Sec. 3.3",
                what=f"LRN, {c} convention",
                claim=None,
            )
            for c in conventions
        },
    )
