"""Grouped convolution: one parameter layout, two lowerings (Sec. 3.2, the two towers)."""

from collections.abc import Callable
from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

Lowering = Literal["native", "split", "im2col"]
LOWERINGS: tuple[str, ...] = ("auto", "native", "split", "im2col")

Initializer = Callable[[jax.Array, tuple[int, ...], jnp.dtype], jax.Array]


def resolve_lowering(lowering: str, backend: str | None = None, stride: int = 1) -> Lowering:
    """ "auto" -> the measured best for `backend` (default: JAX's) and this layer's stride.

    On XLA:CPU (benchmarks/RESULTS.md) a feature_group_count convolution runs about 10x slower
    than one ordinary convolution per group ("split"), and the kernel gradient of the strided
    11x11 conv1 about 2x slower than the same conv as patches @ kernel ("im2col"). GPU and TPU
    keep XLA's native convolution (not measured by us yet: no accelerator was lent).
    """
    if lowering not in LOWERINGS:
        raise ValueError(f"unknown grouped-conv lowering {lowering!r}; use one of {LOWERINGS}")
    if lowering != "auto":
        return lowering  # type: ignore[return-value]
    if (backend or jax.default_backend()) == "cpu":
        return "im2col" if stride > 1 else "split"
    return "native"


def _im2col_conv(x: jax.Array, kernel: jax.Array, stride: int, padding: int) -> jax.Array:
    """An ordinary conv as one matmul: [B, H', W', kh*kw*I] patches @ [kh*kw*I, O]."""
    kh, kw, cin, cout = kernel.shape
    x = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    oh, ow = (x.shape[1] - kh) // stride + 1, (x.shape[2] - kw) // stride + 1
    cols = [
        x[:, i : i + stride * (oh - 1) + 1 : stride, j : j + stride * (ow - 1) + 1 : stride, :]
        for i in range(kh)
        for j in range(kw)
    ]
    patches = jnp.concatenate(cols, axis=-1)  # [B, oh, ow, kh*kw*I], HWIO's (kh, kw, I) order
    return jnp.dot(patches, kernel.reshape(kh * kw * cin, cout))


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
      lowering: "native" (XLA's feature_group_count), "split" (one ordinary conv per group,
        concatenated) or "im2col" (per group, patches @ kernel). All compute the same function.
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
    if lowering == "native":
        return conv(x, kernel, groups)

    def one(xg: jax.Array, kg: jax.Array) -> jax.Array:
        return conv(xg, kg, 1) if lowering == "split" else _im2col_conv(xg, kg, stride, padding)

    if groups == 1:
        return one(x, kernel)
    xs = jnp.split(x, groups, axis=-1)  # G x [B, H, W, I/G]
    ks = jnp.split(kernel, groups, axis=-1)  # G x [kh, kw, I/G, O/G]
    return jnp.concatenate([one(xg, kg) for xg, kg in zip(xs, ks, strict=True)], axis=-1)


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
    lowering: str  # "auto" or a Lowering; "auto" resolves per backend and stride
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
            lowering=resolve_lowering(self.lowering, stride=self.stride),
        )
        return y + bias
