r"""A converged Fashion-MNIST recipe in the paper's spirit: fashion_mnist.py trained to the end.

  python -m experiments.sweep --sweep=experiments/sweeps/recipe.py --workdir=runs/recipe \
      --parallel=3

fashion_mnist.py's net (full width: 32, 96, 128, 128, 96 conv kernels, 512-unit fc6/fc7, two
towers, paper LRN, 3/2 pooling, dropout 0.5, PyTorch's init) and Sec. 5's optimizer, with:
- Sec. 4.1's augmentation translated to 28x28: random 28x28 crops of the image padded to 32,
  and horizontal flips; the test image is the central crop (the image itself).
- Sec. 5's schedule run to its end: the lr is divided by 10 after 2 epochs in a row whose
  test error is not 0.1 points below the best (ours: the paper does not say how long), three
  times, and the next such plateau ends the run. Capped (ours) at 20 epochs.
The target is >= 93.5% mean test accuracy over 3 seeds (VGG16's 0.935 in the Fashion-MNIST
benchmark). Measured (2026-12-02, 2-core Intel Xeon, 3 seeds at once, 96 minutes): 91.44%
(91.84% with ten crops); not met. The net underfits (clean training error 6.6-7.6%) and the
plateau rule divides the lr early on a noisy test error: experiments/results/recipe_fashion_cpu2/.
The README's 5-epoch command (fashion_mnist.py) is unchanged.
"""

import ml_collections

from configs import common, fashion_mnist


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = fashion_mnist.get_config(arg)
    c.input.augment.update(random_crop=True, flip=True)  # Sec. 4.1, translated (ours)
    c.schedule.update(patience_epochs=2, threshold=1e-3, max_drops=3)  # Sec. 5, to its end
    if not common.parse_arg(arg, smoke=False).smoke:
        c.num_epochs = 20  # ours: a cap; the schedule ends the run first if it can
        c.log_every_steps = 100
        c.checkpoint.keep = 1
    return c
