"""Overlapping max-pooling (Sec. 3.4): one function, two lowerings."""

from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

Lowering = Literal["reduce_window", "shifts"]
LOWERINGS: tuple[str, ...] = ("auto", "reduce_window", "shifts")


def resolve_lowering(lowering: str, backend: str | None = None, train: bool = True) -> Lowering:
    """ "auto" -> the measured best for `backend` (default: JAX's) and for training or not.

    On XLA:CPU (benchmarks/RESULTS.md) the "shifts" form ran the paper net's eval step about
    15% faster than reduce_window, but its gradient made the whole train step about 5-10%
    slower (alone, the 3x3/2 pool's forward + gradient was ~5x faster: XLA fuses the
    select_and_scatter of the full step better than the isolated layer suggests). So "auto" is
    "shifts" for CPU inference and "reduce_window" otherwise (GPU/TPU: not measured by us).
    """
    if lowering not in LOWERINGS:
        raise ValueError(f"unknown max-pool lowering {lowering!r}; use one of {LOWERINGS}")
    if lowering != "auto":
        return lowering  # type: ignore[return-value]
    cpu = (backend or jax.default_backend()) == "cpu"
    return "shifts" if cpu and not train else "reduce_window"


def max_pool(x: jax.Array, window: int, stride: int, lowering: Lowering) -> jax.Array:
    """Max over `window` x `window` patches every `stride` pixels, no padding (Sec. 3.4).

    "reduce_window" is flax's `nn.max_pool`. "shifts" takes the max of the window*window
    strided views x[:, i::stride, j::stride] one after the other, replacing the running max only
    where a view is strictly greater: its gradient is a chain of elementwise selects that sends
    each output's gradient to the first maximum in row-major window order, as XLA's
    select_and_scatter does, so both lowerings give the same outputs and gradients, ties
    included.

    Args:
      x: [B, H, W, C] (NHWC).
    Returns:
      [B, (H - window) // stride + 1, (W - window) // stride + 1, C].
    """
    if lowering == "reduce_window":
        return nn.max_pool(x, (window, window), strides=(stride, stride), padding="VALID")
    oh, ow = (x.shape[1] - window) // stride + 1, (x.shape[2] - window) // stride + 1
    out = None
    for i in range(window):
        for j in range(window):
            v = x[:, i : i + stride * (oh - 1) + 1 : stride, j : j + stride * (ow - 1) + 1 : stride]
            out = v if out is None else jnp.where(v > out, v, out)
    return out
