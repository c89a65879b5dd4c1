"""Grouped convolution: one parameter layout, several lowerings (Sec. 3.2, the two towers)."""

import functools
from collections.abc import Callable
from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from alexnet_jax.errors import InputError

Lowering = Literal["native", "split", "im2col", "hybrid"]
LOWERINGS: tuple[str, ...] = ("auto", "native", "split", "im2col", "hybrid")

Initializer = Callable[[jax.Array, tuple[int, ...], jnp.dtype], jax.Array]


def resolve_lowering(lowering: str, backend: str | None = None, stride: int = 1) -> Lowering:
    """ "auto" -> the measured best for `backend` (default: JAX's) and this layer's stride.

    On XLA:CPU (benchmarks/RESULTS.md) a feature_group_count convolution ran about 10x slower
    than one ordinary convolution per group ("split"); the kernel gradient of the strided 11x11
    conv1 about 2x slower than the same conv as patches @ kernel ("im2col"); and the kernel
    gradients of the stride-1 layers 2-5x slower than their forward passes, which "hybrid"
    replaces by one GEMM per kernel tap. GPU and TPU keep XLA's native convolution (not
    measured by us yet: no accelerator was lent).
    """
    if lowering not in LOWERINGS:
        raise InputError(f"unknown grouped-conv lowering {lowering!r}; use one of {LOWERINGS}")
    if lowering != "auto":
        return lowering  # type: ignore[return-value]
    if (backend or jax.default_backend()) == "cpu":
        return "im2col" if stride > 1 else "hybrid"
    return "native"


def tap_views(x: jax.Array, kh: int, kw: int, stride: int) -> list[jax.Array]:
    """The kh*kw strided views of [B, H, W, C] a VALID window meets, row-major in (i, j):
    view (i, j) = x[:, i::stride, j::stride] cut to the [B, H', W', C] output grid."""
    oh, ow = (x.shape[1] - kh) // stride + 1, (x.shape[2] - kw) // stride + 1
    return [
        x[:, i : i + stride * (oh - 1) + 1 : stride, j : j + stride * (ow - 1) + 1 : stride]
        for i in range(kh)
        for j in range(kw)
    ]


def _pad(x: jax.Array, padding: int) -> jax.Array:
    return jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))


def _patches(x: jax.Array, kh: int, kw: int, stride: int, padding: int) -> jax.Array:
    """[B, H, W, I] -> [B, H', W', kh*kw*I] im2col patches, in HWIO's (kh, kw, I) order."""
    return jnp.concatenate(tap_views(_pad(x, padding), kh, kw, stride), axis=-1)


def _im2col_conv(x, kernel, stride: int, padding: int, precision=None) -> jax.Array:
    """An ordinary conv as one matmul: [B, H', W', kh*kw*I] patches @ [kh*kw*I, O]."""
    kh, kw, cin, cout = kernel.shape
    patches = _patches(x, kh, kw, stride, padding)
    return jnp.dot(patches, kernel.reshape(kh * kw * cin, cout), precision=precision)


def _xla_conv(x, kernel, stride: int, padding: int, groups: int, precision=None) -> jax.Array:
    return lax.conv_general_dilated(
        x,
        kernel,
        window_strides=(stride, stride),
        padding=((padding, padding), (padding, padding)),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=groups,
        precision=precision,
    )


def _split_conv(x, kernel, stride: int, padding: int, groups: int, precision=None) -> jax.Array:
    """One ordinary XLA convolution per group, concatenated."""
    if groups == 1:
        return _xla_conv(x, kernel, stride, padding, 1, precision)
    xs, ks = jnp.split(x, groups, axis=-1), jnp.split(kernel, groups, axis=-1)
    return jnp.concatenate(
        [_xla_conv(a, k, stride, padding, 1, precision) for a, k in zip(xs, ks, strict=True)],
        axis=-1,
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def _hybrid_conv(x, kernel, stride: int, padding: int, groups: int, precision) -> jax.Array:
    return _split_conv(x, kernel, stride, padding, groups, precision)


def _hybrid_fwd(x, kernel, stride, padding, groups, precision):
    return _split_conv(x, kernel, stride, padding, groups, precision), (x, kernel)


def _hybrid_bwd(stride, padding, groups, precision, res, dy):
    """dx as XLA's transposed convolution; dK as GEMMs over all B*H'*W' positions.

    XLA:CPU runs the kernel gradient of a convolution as a convolution with the batch as the
    contraction, 3-5x slower than the forward pass (benchmarks/RESULTS.md). Here it is one
    GEMM per kernel tap and group: x shifted by (i, j), as [B*H'*W', I/G], transposed, @ dy.
    """
    x, kernel = res
    _, vjp = jax.vjp(lambda a: _split_conv(a, kernel, stride, padding, groups, precision), x)
    (dx,) = vjp(dy)
    kh, kw, cin_g, cout = kernel.shape
    views = tap_views(_pad(x, padding), kh, kw, stride)  # kh*kw x [B, H', W', I]
    cout_g = cout // groups
    dk = []
    for g in range(groups):
        dyg = dy[..., g * cout_g : (g + 1) * cout_g].reshape(-1, cout_g)
        taps = [  # [I/G, O/G]
            jnp.dot(
                v[..., g * cin_g : (g + 1) * cin_g].reshape(-1, cin_g).T, dyg, precision=precision
            )
            for v in views
        ]
        dk.append(jnp.stack(taps).reshape(kh, kw, cin_g, cout_g))
    return dx, jnp.concatenate(dk, axis=-1).astype(kernel.dtype)


_hybrid_conv.defvjp(_hybrid_fwd, _hybrid_bwd)


def grouped_conv(
    x: jax.Array,
    kernel: jax.Array,
    *,
    stride: int,
    padding: int,
    groups: int,
    lowering: Lowering,
    precision: str | None = None,
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
        concatenated), "im2col" (per group, patches @ kernel) or "hybrid" ("split" with the
        kernel gradient as GEMMs, `_hybrid_bwd`). All compute the same function.
      precision: of every convolution and matmul (jax.lax.Precision's names; None: JAX's
        default, which may use TF32 for float32 on recent NVIDIA GPUs).
    Returns:
      [B, H', W', O].
    """
    if lowering == "native":
        return _xla_conv(x, kernel, stride, padding, groups, precision)
    if lowering == "split":
        return _split_conv(x, kernel, stride, padding, groups, precision)
    if lowering == "hybrid":
        return _hybrid_conv(x, kernel, stride, padding, groups, precision)
    if groups == 1:
        return _im2col_conv(x, kernel, stride, padding, precision)
    xs = jnp.split(x, groups, axis=-1)  # G x [B, H, W, I/G]
    ks = jnp.split(kernel, groups, axis=-1)  # G x [kh, kw, I/G, O/G]
    return jnp.concatenate(
        [_im2col_conv(a, k, stride, padding, precision) for a, k in zip(xs, ks, strict=True)],
        axis=-1,
    )


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
    precision: str | None = None  # grouped_conv's

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
            precision=self.precision,
        )
        return y + bias
