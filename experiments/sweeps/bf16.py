r"""bfloat16 compute with float32 parameters (config.model.dtype) against float32: the accuracy
effect on the CPU-sized ablation config (issue 8 asks for it; the paper trained in float32).

  python -m experiments.sweep --sweep=experiments/sweeps/bf16.py --workdir=runs/bf16

No paper claim: the table's "paper" columns stay empty.
"""


def get_sweep() -> dict:
    return dict(
        config="configs/fashion_mnist_ablation.py",
        seeds=(0, 1, 2),
        baseline="float32",
        variants={
            "float32": dict(overrides={}, section="Sec. 5", what="float32 compute", claim=None),
            "bfloat16": dict(
                overrides={"model.dtype": "bfloat16"},
                section="ours",
                what="bfloat16 compute, float32 params and logits",
                claim=None,
            ),
        },
    )
