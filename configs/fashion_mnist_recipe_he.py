r"""The converged recipe, sixth try: the fifth try's net, He's init on standardised input.

  python -m experiments.sweep --sweep=experiments/sweeps/recipe_he.py \
      --workdir=runs/recipe_he --parallel=2

The first five tries (PyTorch's default init on 0..255 pixels minus the mean image) underfit:
clean training error 4.7-5.8% after 25-30 epochs at 1.5x and 2x widths
(experiments/results/recipe_holdout_fashion_cpu2/). Changed here (ours), from
configs/fashion_mnist_recipe_holdout.py:
- He et al.'s init: weights N(0, 2 / fan_in), zero biases, which keeps the activations' scale
  through the ReLUs (PyTorch's default shrinks it ~6x in variance per layer);
- input pixels in [0, 1] standardised by the training set's mean and std (torchvision's
  convention), not 0..255 minus the mean image: on 0..255 input, He's init put the first steps'
  loss at NaN (step 5).
On 400 steps (2-core Intel Xeon, 2026-12-03, commit 4c26f32 plus the "he" scheme) the held-out
error after one epoch was 18.0% with these two changes against 19.4% for the fifth try, and 80%
(loss still at ln 10) for PyTorch's init on standardised input.
Measured (2026-12-03, commit 870781b, 2-core Intel Xeon, seed 0 only, 7,164 s): 91.94% (92.43%
with ten crops), 0.5-0.65 points below the fifth try's seed 0; clean training error 5.69%. With
weight decay 1e-4: 92.02% (92.27%), training error 5.64%
(experiments/results/recipe_he_fashion_cpu2/).
"""

import ml_collections

from configs import fashion_mnist_recipe_holdout


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = fashion_mnist_recipe_holdout.get_config(arg)
    c.model.init.scheme = "he"  # ours (see above)
    c.input.normalize = "mean_std"  # ours: torchvision's; He's init assumes unit-scale input
    return c
