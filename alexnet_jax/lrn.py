"""Local response normalization across channels (Sec. 3.3)."""

from typing import Literal

import jax
import jax.numpy as jnp
from jax import lax

from alexnet_jax.errors import InputError

Convention = Literal["paper", "caffe", "tensorflow"]
CONVENTIONS: tuple[str, ...] = ("paper", "caffe", "tensorflow")


def local_response_norm(
    x: jax.Array,
    *,
    size: int,
    k: float,
    alpha: float,
    beta: float,
    convention: Convention,
    groups: int = 1,
) -> jax.Array:
    """Local response normalization across channels (Sec. 3.3).

    b_i = a_i / (k + alpha * S_i) ** beta, where S_i is the sum of a_j**2 over the `size`
    channels centred on channel i, the window cut at the first and last channel.

    `convention` names what `alpha` multiplies; the same numbers give different layers:
      "paper"       the sum, as printed in Sec. 3.3.
      "caffe"       the mean, S_i / size, always dividing by `size` (also at the edges): Caffe's
                    LRN layer, cuda-convnet's code (`scale /= size`), torch.nn.LocalResponseNorm.
      "tensorflow"  the sum, in TF's terms depth_radius = size // 2, bias = k
                    (tf.nn.local_response_normalization); numerically the "paper" layer.

    `groups` > 1 cuts the window at group boundaries too: each of the paper's two GPUs
    normalized only the maps it held (Sec. 3.2), so channel 47 does not see channel 48.

    The windowed sum is one `lax.reduce_window` over the channel axis (measured faster on
    XLA:CPU than a banded matmul: benchmarks/RESULTS.md). The normalizer is computed in
    float32 whatever the input dtype.

    Args:
      x: activations, [..., C], channels last.
    Returns:
      Array of x's shape and dtype.
    """
    if convention not in CONVENTIONS:
        raise InputError(f"unknown LRN convention {convention!r}; use one of {CONVENTIONS}")
    if size < 1 or size % 2 == 0:
        raise InputError(f"LRN size={size} must be a positive odd number of channels")
    channels = x.shape[-1]
    if channels % groups:
        raise InputError(f"LRN groups={groups} does not divide the {channels} channels")
    a = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    sq = (a * a).reshape(*a.shape[:-1], groups, channels // groups)
    r = size // 2
    ndim = sq.ndim
    window_sum = lax.reduce_window(
        sq,
        0.0,
        lax.add,
        window_dimensions=(1,) * (ndim - 1) + (size,),
        window_strides=(1,) * ndim,
        padding=((0, 0),) * (ndim - 1) + ((r, r),),
    ).reshape(a.shape)
    scale = alpha / size if convention == "caffe" else alpha
    return (a * _power(k + scale * window_sum, -beta)).astype(x.dtype)


def _power(n: jax.Array, exponent: float) -> jax.Array:
    """n ** exponent; the paper's -0.75 as sqrt(sqrt(n)) / n, which with its gradient ran about
    1.4x faster on XLA:CPU than pow's exp(log) (benchmarks/RESULTS.md), within 1.2e-7 relative
    of float64 (rsqrt(n) * sqrt(rsqrt(n)) was faster still but 2e-7 off, enough to flip a near
    tie in the test models' max-pools against PyTorch float64)."""
    if exponent == -0.75:
        return jnp.sqrt(jnp.sqrt(n)) / n
    return n**exponent
