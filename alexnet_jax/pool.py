"""Overlapping max-pooling (Sec. 3.4): one function, two lowerings."""

import functools
from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

from alexnet_jax import conv
from alexnet_jax.errors import InputError

Lowering = Literal["reduce_window", "shifts"]
LOWERINGS: tuple[str, ...] = ("auto", "reduce_window", "shifts")


def resolve_lowering(lowering: str, backend: str | None = None) -> Lowering:
    """ "auto" -> the measured best for `backend` (default: JAX's).

    On XLA:CPU (benchmarks/RESULTS.md) the "shifts" form ran the paper net's eval step about
    15% faster than reduce_window, and with its own gradient (no select_and_scatter) the 3x3/2
    pool's forward + gradient about 2x faster, so "auto" is "shifts" on CPU and
    "reduce_window" elsewhere (GPU/TPU: not measured by us).
    """
    if lowering not in LOWERINGS:
        raise InputError(f"unknown max-pool lowering {lowering!r}; use one of {LOWERINGS}")
    if lowering != "auto":
        return lowering  # type: ignore[return-value]
    return "shifts" if (backend or jax.default_backend()) == "cpu" else "reduce_window"


def max_pool(x: jax.Array, window: int, stride: int, lowering: Lowering) -> jax.Array:
    """Max over `window` x `window` patches every `stride` pixels, no padding (Sec. 3.4).

    "reduce_window" is flax's `nn.max_pool` (XLA's reduce_window; its gradient is XLA's
    select_and_scatter). "shifts" takes the max of the window*window strided views
    x[:, i::stride, j::stride] one after the other, replacing the running max only where a view
    is strictly greater (or NaN), and has its own gradient (`_shifts_bwd`): each output's
    gradient goes to the first maximum in row-major window order, as select_and_scatter does,
    so both lowerings give the same outputs and gradients, ties included.

    Args:
      x: [B, H, W, C] (NHWC).
    Returns:
      [B, (H - window) // stride + 1, (W - window) // stride + 1, C].
    """
    if lowering == "reduce_window":
        return nn.max_pool(x, (window, window), strides=(stride, stride), padding="VALID")
    return _shifts(x, window, stride)


def _max_and_first(x: jax.Array, window: int, stride: int) -> tuple[jax.Array, jax.Array]:
    """The max over the window's strided views, replaced only where a view is strictly greater
    (or NaN), and the index (row-major; int8 up to 127 views) of the view that gave it: the
    first maximum."""
    out = first = None
    index = jnp.int8 if window * window <= 127 else jnp.int16
    for k, v in enumerate(conv.tap_views(x, window, window, stride)):
        if out is None:
            out, first = v, jnp.zeros(v.shape, index)
            continue
        up = (v > out) | jnp.isnan(v)
        out, first = jnp.where(up, v, out), jnp.where(up, index(k), first)
    return out, first


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _shifts(x: jax.Array, window: int, stride: int) -> jax.Array:
    return _max_and_first(x, window, stride)[0]  # `first` is dead code here: XLA drops it


def _shifts_fwd(x, window, stride):
    out, first = _max_and_first(x, window, stride)
    return out, (x.shape, first)


def _shifts_bwd(window: int, stride: int, res, dy: jax.Array):
    """d/dx: dy to the first maximum of each window, summed where windows overlap.

    No select_and_scatter (XLA:CPU builds four int32 index arrays the size of the input for
    it): a col2im written as pads of a [B, P, stride, P', stride, C] view, all elementwise.
    """
    (b, h, w, c), first = res
    oh, ow = dy.shape[1], dy.shape[2]
    grads = [jnp.where(first == k, dy, jnp.zeros_like(dy)) for k in range(window * window)]
    # input row stride*o + i = stride*(o + i // stride) + i % stride
    reach = (window - 1) // stride
    ph, pw = max(-(-h // stride), oh + reach), max(-(-w // stride), ow + reach)
    blocks = []
    for er in range(stride):
        row = []
        for ec in range(stride):
            acc = jnp.zeros((b, ph, pw, c), dy.dtype)
            for i in range(er, window, stride):
                for j in range(ec, window, stride):
                    a, d = i // stride, j // stride
                    g = grads[i * window + j]
                    acc = acc + jnp.pad(g, ((0, 0), (a, ph - oh - a), (d, pw - ow - d), (0, 0)))
            row.append(acc)
        blocks.append(jnp.stack(row, axis=3))  # [B, ph, pw, stride(ec), C]
    dx = jnp.stack(blocks, axis=2)  # [B, ph, stride(er), pw, stride(ec), C]
    dx = dx.reshape(b, ph * stride, pw * stride, c)[:, :h, :w]
    return (dx,)


_shifts.defvjp(_shifts_fwd, _shifts_bwd)
