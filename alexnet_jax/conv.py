"""Grouped convolution: one parameter layout, two lowerings (Sec. 3.2, the two towers)."""

from collections.abc import Callable
from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

Lowering = Literal["native", "split"]
LOWERINGS: tuple[str, ...] = ("auto", "native", "split")

# Measured defaults per backend (benchmarks/bench_layers.py, benchmarks/RESULTS.md). XLA:CPU runs
# a feature_group_count convolution an order of magnitude slower than the same work as one
# ordinary convolution per group. GPU and TPU keep XLA's native grouped convolution (not
# measured by us yet: no accelerator was lent when this was written).
DEFAULT_LOWERING: dict[str, Lowering] = {"cpu": "split", "gpu": "native", "tpu": "native"}

Initializer = Callable[[jax.Array, tuple[int, ...], jnp.dtype], jax.Array]


def resolve_lowering(lowering: str, backend: str | None = None) -> Lowering:
    """ "auto" -> the measured default of `backend` (the default JAX backend if None)."""
    if lowering not in LOWERINGS:
        raise ValueError(f"unknown grouped-conv lowering {lowering!r}; use one of {LOWERINGS}")
    if lowering != "auto":
        return lowering  # type: ignore[return-value]
    return DEFAULT_LOWERING.get(backend or jax.default_backend(), "native")


def grouped_conv(
    x: jax.Array,
    kernel: jax.Array,
    *,
    stride: int,
    padding: int,
    groups: int,
    lowering: Lowering,
) -> jax.Array:
    """2-D convolution whose input and output channels are split into `groups` (Sec. 3.2).

    Output channels [g*O/G, (g+1)*O/G) see only input channels [g*I/G, (g+1)*I/G): with
    groups=2 this is the paper's pair of towers, each GPU convolving only its own maps.

    Args:
      x: [B, H, W, I] (NHWC).
      kernel: [kh, kw, I / groups, O] (HWIO), the layout of flax's `feature_group_count`,
        whatever the lowering, so that checkpoints never depend on how the conv runs.
      stride, padding: the same on both spatial axes; padding is symmetric, in pixels.
      lowering: "native" (XLA's feature_group_count) or "split" (one ordinary conv per group,
        concatenated). Both compute the same function.
    Returns:
      [B, H', W', O].
    """
    conv = lambda lhs, rhs, g: lax.conv_general_dilated(  # noqa: E731
        lhs,
        rhs,
        window_strides=(stride, stride),
        padding=((padding, padding), (padding, padding)),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=g,
    )
    if groups == 1 or lowering == "native":
        return conv(x, kernel, groups)
    xs = jnp.split(x, groups, axis=-1)  # G x [B, H, W, I/G]
    ks = jnp.split(kernel, groups, axis=-1)  # G x [kh, kw, I/G, O/G]
    return jnp.concatenate([conv(xg, kg, 1) for xg, kg in zip(xs, ks, strict=True)], axis=-1)


class GroupedConv(nn.Module):
    """A conv layer with flax's grouped parameter layout and a choice of lowering (Sec. 3.2).

    Parameters: `kernel` [kh, kw, in/groups, features] and `bias` [features], float32 (or
    `param_dtype`); the computation runs in `dtype`.
    """

    features: int
    kernel_size: int
    stride: int
    padding: int
    groups: int
    lowering: Lowering
    kernel_init: Initializer
    bias_init: Initializer
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        shape = (self.kernel_size, self.kernel_size, x.shape[-1] // self.groups, self.features)
        kernel = self.param("kernel", self.kernel_init, shape, self.param_dtype)
        bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype)
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
        y = grouped_conv(
            x,
            kernel,
            stride=self.stride,
            padding=self.padding,
            groups=self.groups,
            lowering=self.lowering,
        )
        return y + bias
