"""Overlapping max-pooling (Sec. 3.4): both lowerings against torch max_pool2d, ties included."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from alexnet_jax import models, pool
from tests import tiny


def _torch_pool(x, cotangent, window, stride):
    """torch's max_pool2d output and input gradient for `cotangent`, in NHWC float64."""
    xt = torch.tensor(x, dtype=torch.float64).permute(0, 3, 1, 2).requires_grad_(True)
    y = F.max_pool2d(xt, window, stride)
    y.backward(torch.tensor(cotangent, dtype=torch.float64).permute(0, 3, 1, 2))
    return y.detach().permute(0, 2, 3, 1).numpy(), xt.grad.permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize("lowering", ["reduce_window", "shifts"])
@pytest.mark.parametrize("window,stride,size", [(3, 2, 13), (3, 2, 14), (2, 2, 9)])
@pytest.mark.parametrize("ties", [False, True])
def test_matches_torch_max_pool_and_its_gradient(lowering, window, stride, size, ties):
    rng = np.random.default_rng(size + 10 * ties)
    x = rng.normal(size=(2, size, size, 3))
    if ties:  # after a ReLU most of a window is 0: many equal maxima, gradient to the first
        x = np.maximum(rng.integers(-3, 3, size=x.shape), 0)
    x = x.astype(np.float32)
    y, vjp = jax.vjp(lambda a: pool.max_pool(a, window, stride, lowering), jnp.asarray(x))
    cotangent = rng.normal(size=y.shape).astype(np.float32)
    (dx,) = vjp(jnp.asarray(cotangent))
    y_ref, dx_ref = _torch_pool(x, cotangent, window, stride)
    np.testing.assert_array_equal(np.asarray(y), y_ref)
    np.testing.assert_allclose(np.asarray(dx), dx_ref, rtol=1e-6, atol=1e-6)
    if ties:  # some windows really held their maximum twice or more
        win = np.lib.stride_tricks.sliding_window_view(x, (window, window), axis=(1, 2))
        win = win[:, ::stride, ::stride].reshape(*y.shape, -1)
        assert np.any(np.sum(win == win.max(-1, keepdims=True), -1) > 1)


def test_the_first_maximum_of_a_window_of_144_positions():
    """More positions than an int8 index holds: the shifts lowering's index still names the
    first maximum (row-major), which its gradient follows (op by op: no 144-view compile)."""
    x = np.zeros((1, 12, 12, 2), np.float32)
    x[0, 11, 8, 0] = x[0, 11, 9, 0] = 1.0  # a tie at positions 140 and 141: the first wins
    x[0, 0, 1, 1] = 2.0  # position 1
    out, first = pool._max_and_first(jnp.asarray(x), 12, 12)
    np.testing.assert_array_equal(np.asarray(out).ravel(), [1.0, 2.0])
    np.testing.assert_array_equal(np.asarray(first).ravel(), [140, 1])


def test_lowering_names():
    # measured on the whole train and eval steps: benchmarks/RESULTS.md
    assert pool.resolve_lowering("auto", "cpu") == "shifts"
    assert pool.resolve_lowering("auto", "gpu") == "reduce_window"
    assert pool.resolve_lowering("reduce_window", "cpu") == "reduce_window"
    with pytest.raises(ValueError, match="unknown max-pool lowering 'fast'"):
        pool.resolve_lowering("fast")
    # the field reaches the module (tests/test_models.py compares whole nets, "auto" = shifts
    # on CPU, with PyTorch's logits and gradients)
    assert (
        models.create_model(tiny.config(**{"model.pool.lowering": "reduce_window"})).pool_lowering
        == "reduce_window"
    )
    c = tiny.config(**{"model.pool.lowering": "fast"})
    with pytest.raises(ValueError, match="config.model.pool.lowering='fast' is unknown"):
        models.create_model(c)


def test_shifts_propagates_nan_like_reduce_window():
    # a NaN activation must reach the loss (train.py stops on a non-finite loss), not be
    # dropped by the max
    x = np.abs(np.random.default_rng(0).normal(size=(1, 7, 7, 2))).astype(np.float32)
    x[0, 2, 2, 1] = np.nan
    for lowering in ("reduce_window", "shifts"):
        y = np.asarray(pool.max_pool(jnp.asarray(x), 3, 2, lowering))
        assert np.isnan(y[0, :, :, 1]).sum() == 4, lowering  # the 4 windows holding (2, 2)
        assert not np.isnan(y[..., 0]).any()
