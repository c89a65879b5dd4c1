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
            # (one conv per group), "im2col" (patches @ kernel), "hybrid" (split, kernel
            # gradient as per-tap GEMMs) or "auto" (the measured best per backend and stride,
            # conv.resolve_lowering).
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
        pool=dict(
            after=(1, 2, 5),
            window=3,  # Sec. 3.4, overlapping: z=3, s=2
            stride=2,
            # How the max runs, not what it computes: "reduce_window" (flax nn.max_pool),
            # "shifts" (max of strided views, own gradient) or "auto" (the measured best per
            # backend, pool.resolve_lowering).
            lowering="auto",
        ),
        dropout=dict(rate=0.5, inputs_of=("fc7", "fc8")),  # Sec. 4.2: outputs of fc6 and fc7
        init=dict(  # Sec. 5: weights N(0, 0.01); biases 1 in conv2, conv4, conv5, fc6, fc7
            scheme="gaussian",  # or "pytorch": U(+-1/sqrt(fan_in)); "he": N(0, 2/fan_in), bias 0
            weight_std=(0.01,) * 8,  # conv1..conv5, fc6, fc7, fc8
            bias=(0.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0),
        ),
        dtype="float32",  # compute dtype; "bfloat16" keeps float32 params
        # Precision of every conv and matmul (jax.lax.Precision): "default" lets XLA choose; on
        # NVIDIA GPUs since Ampere it then runs float32 convs and matmuls in TF32 (10-bit
        # mantissa), as does "high"; "highest" is full float32 (slower). No effect on CPU.
        precision="default",
    )
    c.input = dict(
        dataset="imagenet2012",  # ILSVRC-2012 (Sec. 2)
        source="tfds",  # "tfds" (any TFDS dataset) or "idx" (Fashion-MNIST's original files)
        # "prepared": the 256x256 images `python -m alexnet_jax.prepare` wrote once (no
        # TensorFlow); "stream": tf.data over TFDS records, each JPEG decoded and rescaled every
        # epoch; "memory": the whole split held as uint8 arrays; "synthetic": one random batch
        # (times the step alone). None: "prepared" for imagenet2012, else "memory".
        pipeline=config_dict.placeholder(str),
        # prepare.py: where the shards go, how they are stored ("jpeg" at jpeg_quality, or "raw"
        # uint8, memory-mapped: 196,608 bytes per 256x256 image), examples per shard, processes
        prepared_dir=config_dict.placeholder(str),
        storage="jpeg",
        jpeg_quality=90,  # ours: see benchmarks/RESULTS.md (bytes/image, decode rate, error)
        shard_size=1024,
        prepare_workers=config_dict.placeholder(int),  # None: all cores
        decode_threads=config_dict.placeholder(int),  # "prepared" jpeg: None: all cores
        host_prefetch=2,  # batches made ahead by the reader's background thread
        data_dir=config_dict.placeholder(str),  # None: TFDS's default data dir
        # ImageNet: the directory holding ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar
        # (TFDS builds its TFRecords from them once, into data_dir; sources.py)
        manual_dir=config_dict.placeholder(str),
        # mean image and PCA eigens (prepare.py or python -m alexnet_jax.stats); None: next to
        # the prepared shards (or the TFRecords)
        stats_dir=config_dict.placeholder(str),
        image_size=256,  # Sec. 2: shorter side rescaled to 256, then the central 256x256
        crop_padding=0,  # memory pipeline: zero padding around the stored image for crops
        augment=dict(  # Sec. 4.1, each switchable (ablations)
            random_crop=True,  # random input_size windows of the 256x256 image (else central)
            flip=True,  # horizontal reflections, probability 1/2
            pca_lighting=True,  # "fancy PCA": [p1 p2 p3][a1 l1, a2 l2, a3 l3]^T on every pixel
            pca_std=0.1,  # a_i ~ N(0, 0.1), once per image per use
        ),
        # evaluate.py's default modes: "center" (the central crop; what training evaluates each
        # epoch) and "ten_crop" (4 corners + center and their reflections, softmax averaged)
        eval_modes=("center", "ten_crop"),
        shuffle_buffer=16384,  # ours: stream pipeline, examples (~1.6 GB of JPEGs for ImageNet)
        device_prefetch=2,  # ours: training batches sent to the devices ahead of their step
        eval_split="validation",
        global_batch_size=128,  # Sec. 5; split across the local devices
        eval_batch_size=256,  # ours; the last batch is padded and masked
        # "mean_image": Sec. 2, 0..255 pixels minus the training-set mean image; "mean_std":
        # pixels in [0, 1], per-channel mean and std over the training set (torchvision's)
        normalize="mean_image",
        # None: the whole split; n: the first n ("memory"), every (N/n)-th ("prepared": by class)
        train_limit=config_dict.placeholder(int),
        eval_limit=config_dict.placeholder(int),
    )
    c.optim = dict(
        rule="paper",  # Sec. 5: v <- 0.9 v - 0.0005 lr w - lr g; w <- w + v (see optim.py)
        base_lr=0.01,
        momentum=0.9,
        weight_decay=5e-4,
        decay_biases=True,  # Sec. 5's rule as printed; cuda-convnet's biases had no decay
        # Fine-tuning (not in the paper): layers never updated (optax.set_to_zero), and layers
        # whose updates are scaled by low_lr_factor (pretrained ones; Caffe's lr_mult).
        frozen_layers=(),
        low_lr_layers=(),
        low_lr_factor=1.0,
    )
    c.schedule = dict(  # Sec. 5: lr / 10 when the validation error stops improving, 3 times
        factor=0.1,
        patience_epochs=2,  # ours: the paper does not say how long "stopped improving" is
        threshold=1e-3,  # ours: a gain below 0.1% top-1 is no improvement
        cooldown_epochs=0,  # ours
        max_drops=3,  # a plateau after the third drop ends training
        # ours: fixed epochs after which the lr is multiplied by `factor`, instead of the rule
        # above (to retrain on all the data with the epochs a held-out run's rule chose);
        # () = the rule above. With it, num_epochs ends the run.
        drop_after_epochs=(),
    )
    c.init_from = dict(  # start from saved weights instead of Sec. 5's init (weights.py)
        path=config_dict.placeholder(str),  # None: random init
        format=config_dict.placeholder(str),  # npz | bvlc_npy | torchvision | orbax; None: suffix
        allow_pickle=False,  # bvlc_npy is a pickle: only for a file you trust (warns)
        fc6_rows="hwc",  # bvlc_npy fc6 row order: "hwc" (caffe-tensorflow's) or "chw" (Caffe's)
        skip=(),  # layers kept at their random init; fc8 is too when only the class count differs
        grey="error",  # "sum": a 3-channel conv1 summed over colours for a 1-channel model
    )
    c.num_epochs = 90  # "roughly 90 cycles through the training set"
    c.max_steps = config_dict.placeholder(int)  # None: num_epochs of steps
    c.log_every_steps = 100
    # ours: warn once when the training loss has stayed within 1% of ln(num_classes) (chance)
    # for this many steps (metrics.StuckLoss; 0 = never)
    c.warn_stuck_steps = 500
    c.checkpoint = dict(every_steps=1000, keep=3)  # ours; plus the best by eval/top1_err
    # How the step is spread over the devices (alexnet_jax/parallel.py): "data" (every device
    # the whole net, 1/D of the batch), "pmap" (the same with jax.pmap), "model" (Sec. 3.2:
    # 2 devices, one tower each; conv3 and fc6-fc8 gather their inputs across towers) or
    # "data+model" (a D/2 x 2 mesh). The parameters are the same tree in every layout, so
    # checkpoints move between them.
    c.parallelism = "data"
    c.distributed = dict(  # multi-host: jax.distributed.initialize (main.py); None: one process
        coordinator_address=config_dict.placeholder(str),  # "host:port" of process 0
        num_processes=config_dict.placeholder(int),
        process_id=config_dict.placeholder(int),
    )
    if arg.smoke:  # a few steps on a few examples: the whole loop, end to end
        c.input.global_batch_size, c.input.eval_batch_size = 8, 8
        c.input.train_limit, c.input.eval_limit = 64, 20
        c.max_steps, c.log_every_steps, c.checkpoint.every_steps = 3, 1, 2
    return c
