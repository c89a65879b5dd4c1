r"""Does Sec. 5's initialisation train? The full paper net on Fashion-MNIST at 227, two inits.

  python -m experiments.sweep --sweep=experiments/sweeps/init.py --workdir=runs/init --parallel=2

Sec. 5: weights N(0, 0.01), biases 1 in conv2, conv4, conv5, fc6 and fc7. Caffe's bvlc_alexnet (its
train_val.prototxt): fc6/fc7 weights N(0, 0.005) and those biases 0.1; its README says bias 1 "gave
flat loss". Sized (ours) for a 2-core CPU, where this net trains at ~10 images/s per core: 300
steps of 32 (not 128) on the first 9,600 training images, one evaluation on the first 512 test
images, the loss logged every 10 steps. The stuck-loss warning is set to 150 steps so a run that
stays at ln(10) shows it. The claim is not a number (None).
"""

SHORT = {
    "input.global_batch_size": 32,
    "input.eval_batch_size": 128,
    "input.train_limit": 9_600,
    "input.eval_limit": 512,
    "num_epochs": 1,
    "log_every_steps": 10,
    "warn_stuck_steps": 150,
    "checkpoint.keep": 1,
}


def get_sweep() -> dict:
    return dict(
        config="configs/fashion_mnist_227.py",
        seeds=(0,),
        baseline="paper_init",
        variants={
            "paper_init": dict(
                overrides=SHORT,
                section="Sec. 5",
                what="weights N(0, 0.01); biases 1 in conv2, conv4, conv5, fc6, fc7",
                claim=None,
            ),
            "caffe_init": dict(
                overrides={
                    **SHORT,
                    "model.init.weight_std": (0.01, 0.01, 0.01, 0.01, 0.01, 0.005, 0.005, 0.01),
                    "model.init.bias": (0.0, 0.1, 0.0, 0.1, 0.1, 0.1, 0.1, 0.0),
                },
                section="Caffe",
                what="fc6/fc7 weights N(0, 0.005); those biases 0.1 instead of 1",
                claim=None,
            ),
        },
    )
