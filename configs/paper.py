r"""AlexNet as published (Krizhevsky, Sutskever & Hinton 2012, Secs. 3-5, Fig. 2).

  python -m alexnet_jax.main --config=configs/paper.py --workdir=runs/paper
  python -m alexnet_jax.main --config=configs/paper.py:smoke --workdir=runs/smoke

60,965,224 learned parameters with 1000 classes (tests/test_models.py pins it).
Values marked "ours" are not given by the paper.
"""

import ml_collections
from ml_collections import config_dict

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    arg = common.parse_arg(arg, smoke=False)
    c = ml_collections.ConfigDict()
    c.seed = 0  # ours
    c.model = dict(
        num_classes=1000,  # ILSVRC (Sec. 2)
        input_size=227,  # the text says 224, but 11x11/4 VALID needs 227 for 55x55; paper224.py
        input_channels=3,
        towers=2,  # Sec. 3.2: two GPUs, half of every layer's kernels on each
        conv=dict(  # Fig. 2; groups=2 = each tower sees only its own maps
            features=(96, 256, 384, 384, 256),
            kernel_size=(11, 5, 3, 3, 3),
            stride=(4, 1, 1, 1, 1),
            padding=(0, 2, 1, 1, 1),
            groups=(1, 2, 1, 2, 2),  # conv3 and the fc layers cross towers
            # How a conv runs, not what it computes: "native" (XLA feature_group_count), "split"
            # (one conv per group), "im2col" (patches @ kernel) or "auto" (the measured best
            # per backend and stride, conv.resolve_lowering).
            lowering="auto",
        ),
        fc_features=(4096, 4096),  # fc6, fc7; fc8 has num_classes outputs
        lrn=dict(  # Sec. 3.3, after the ReLUs of conv1 and conv2
            enabled=True,
            after=(1, 2),
            convention="paper",  # alpha multiplies the sum, as printed; see lrn.py
            size=5,  # n
            k=2.0,
            alpha=1e-4,
            beta=0.75,
            within_towers=True,  # each GPU normalized only its own maps (Sec. 3.2)
        ),
        norm_before_pool=True,  # Sec. 3.5: norm, then pool (CaffeNet swaps them)
        pool=dict(after=(1, 2, 5), window=3, stride=2),  # Sec. 3.4, overlapping: z=3, s=2
        dropout=dict(rate=0.5, inputs_of=("fc7", "fc8")),  # Sec. 4.2: outputs of fc6 and fc7
        init=dict(  # Sec. 5: weights N(0, 0.01); biases 1 in conv2, conv4, conv5, fc6, fc7
            scheme="gaussian",
            weight_std=(0.01,) * 8,  # conv1..conv5, fc6, fc7, fc8
            bias=(0.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0),
        ),
        dtype="float32",  # compute dtype; "bfloat16" keeps float32 params
    )
    c.input = dict(
        dataset="imagenet2012",  # ILSVRC-2012 (Sec. 2)
        source="tfds",  # "tfds" (any TFDS dataset) or "idx" (Fashion-MNIST's original files)
        data_dir=config_dict.placeholder(str),  # None: TFDS's default data dir
        eval_split="validation",
        global_batch_size=128,  # Sec. 5; split across the local devices
        eval_batch_size=256,  # ours; the last batch is padded and masked
        normalize="mean_image",  # Sec. 2: 0..255 pixels minus the training-set mean image
        train_limit=config_dict.placeholder(int),  # None: the whole split (tests use a prefix)
        eval_limit=config_dict.placeholder(int),
    )
    c.optim = dict(
        rule="paper",  # Sec. 5: v <- 0.9 v - 0.0005 lr w - lr g; w <- w + v (see optim.py)
        base_lr=0.01,
        momentum=0.9,
        weight_decay=5e-4,
        decay_biases=True,  # the paper decays every weight; many reproductions exempt biases
    )
    c.schedule = dict(  # Sec. 5: lr / 10 when the validation error stops improving, 3 times
        factor=0.1,
        patience_epochs=2,  # ours: the paper does not say how long "stopped improving" is
        threshold=1e-3,  # ours: a gain below 0.1% top-1 is no improvement
        cooldown_epochs=0,  # ours
        max_drops=3,  # a plateau after the third drop ends training
    )
    c.num_epochs = 90  # "roughly 90 cycles through the training set"
    c.max_steps = config_dict.placeholder(int)  # None: num_epochs of steps
    c.log_every_steps = 100
    c.checkpoint = dict(every_steps=1000, keep=3)  # ours; plus the best by eval/top1_err
    if arg.smoke:  # a few steps on a few examples: the whole loop, end to end
        c.input.global_batch_size, c.input.eval_batch_size = 8, 8
        c.input.train_limit, c.input.eval_limit = 64, 20
        c.max_steps, c.log_every_steps, c.checkpoint.every_steps = 3, 1, 2
    return c
