"""LRN (Sec. 3.3): each convention against its own independent oracle, edges and towers included."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow as tf
import torch

from alexnet_jax import lrn
from tests import reference

PAPER = dict(size=5, k=2.0, beta=0.75)


def _acts(shape=(2, 4, 5, 11), scale=30.0, seed=0) -> np.ndarray:
    # Large activations so that the normalizer matters: at unit scale and alpha=1e-4 it moves
    # outputs by ~0.02%, and a wrong window or a sum taken for a mean would still pass.
    return np.random.default_rng(seed).normal(scale=scale, size=shape).astype(np.float32)


@pytest.mark.parametrize("alpha", [1e-4, 0.05])
@pytest.mark.parametrize("convention", ["paper", "tensorflow"])
def test_sum_conventions_match_printed_formula(alpha, convention):
    a = _acts()
    got = lrn.local_response_norm(jnp.asarray(a), alpha=alpha, convention=convention, **PAPER)
    want = reference.lrn_paper(a, alpha=alpha, **PAPER)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5)
    assert not np.allclose(want, a / 2.0**0.75, rtol=1e-2)  # the normalizer really mattered
    # the edges: channel 0 sees channels 0..2 only, channel 10 sees 8..10 only
    full = reference.lrn_paper(np.pad(a, [(0, 0)] * 3 + [(2, 2)]), alpha=alpha, **PAPER)
    np.testing.assert_allclose(want, full[..., 2:-2])  # zero padding == cutting the window


@pytest.mark.parametrize("size,k", [(5, 1.0), (3, 2.0)])
def test_caffe_convention_matches_torch(size, k):
    a = _acts()
    got = lrn.local_response_norm(
        jnp.asarray(a), size=size, k=k, alpha=1e-3, beta=0.75, convention="caffe"
    )
    layer = torch.nn.LocalResponseNorm(size, alpha=1e-3, beta=0.75, k=k)
    want = layer(torch.tensor(a, dtype=torch.float64).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    np.testing.assert_allclose(np.asarray(got), want.numpy(), rtol=1e-5)
    # the mean, not the sum: the paper convention with the same numbers is a different layer
    summed = reference.lrn_paper(a, size=size, k=k, alpha=1e-3, beta=0.75)
    assert not np.allclose(want.numpy(), summed, rtol=1e-2)


def test_tensorflow_convention_matches_tf():
    a = _acts()
    got = lrn.local_response_norm(
        jnp.asarray(a), size=5, k=1.0, alpha=2e-3, beta=0.75, convention="tensorflow"
    )
    want = tf.nn.local_response_normalization(
        tf.constant(a, tf.float32), depth_radius=2, bias=1.0, alpha=2e-3, beta=0.75
    )
    np.testing.assert_allclose(np.asarray(got), want.numpy(), rtol=1e-5)


def test_within_towers_cuts_the_window_at_the_tower_boundary():
    a = _acts(shape=(2, 3, 3, 12))
    got = np.asarray(
        lrn.local_response_norm(jnp.asarray(a), alpha=0.05, convention="paper", groups=2, **PAPER)
    )
    want = np.concatenate(
        [reference.lrn_paper(h, alpha=0.05, **PAPER) for h in np.split(a, 2, axis=-1)], axis=-1
    )
    np.testing.assert_allclose(got, want, rtol=1e-5)
    across = reference.lrn_paper(a, alpha=0.05, **PAPER)
    np.testing.assert_allclose(got[..., :4], across[..., :4], rtol=1e-5)  # far from the boundary
    assert not np.allclose(got[..., 5:7], across[..., 5:7], rtol=1e-2)  # at the boundary


@pytest.mark.parametrize("convention", ["paper", "caffe"])
@pytest.mark.parametrize("groups", [1, 2])
def test_gradient_matches_finite_differences_float64(convention, groups):
    a = _acts(shape=(1, 2, 2, 8), scale=10.0, seed=1).astype(np.float64)
    w = np.random.default_rng(2).normal(size=a.shape)
    with jax.enable_x64(True):
        f = lambda x: jnp.sum(  # noqa: E731
            jnp.asarray(w)
            * lrn.local_response_norm(
                x, size=5, k=2.0, alpha=0.05, beta=0.75, convention=convention, groups=groups
            )
        )
        x = jnp.asarray(a)
        assert x.dtype == jnp.float64
        g = np.asarray(jax.grad(f)(x))
        eps, fd = 1e-6, np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            d = np.zeros_like(a)
            d[idx] = eps
            fd[idx] = (float(f(x + d)) - float(f(x - d))) / (2 * eps)
    # fd's own rounding: |f| ~ 30, so an ulp of f over 2 eps is ~2e-9, and a sum's order (AVX2
    # vs AVX-512) moves f by a few ulps; atol 1e-7 is ~30x that and ~1e-6 of max|g| (0.2-0.5)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-7)


def test_bfloat16_input_keeps_dtype_and_is_close():
    a = _acts()
    got = lrn.local_response_norm(
        jnp.asarray(a, jnp.bfloat16), alpha=0.05, convention="paper", **PAPER
    )
    assert got.dtype == jnp.bfloat16
    want = reference.lrn_paper(a, alpha=0.05, **PAPER)
    np.testing.assert_allclose(np.asarray(got, np.float32), want, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(convention="sum"), "unknown LRN convention 'sum'"),
        (dict(convention="paper", size=4), "size=4 must be a positive odd"),
        (dict(convention="paper", groups=3), "groups=3 does not divide the 11"),
    ],
)
def test_bad_arguments_fail_in_one_line(kwargs, match):
    args = dict(size=5, k=2.0, alpha=1e-4, beta=0.75) | kwargs
    with pytest.raises(ValueError, match=match) as e:
        lrn.local_response_norm(jnp.asarray(_acts()), **args)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("beta", [0.5, 0.75, 1.0])
def test_any_beta_and_its_gradient_match_torch_float64(beta):
    # beta=0.75 (the paper's) runs as sqrt(sqrt(n)) / n, others as pow: both against torch.
    a = _acts(shape=(2, 3, 3, 8), scale=10.0)
    w = np.random.default_rng(3).normal(size=a.shape)
    kw = dict(size=5, k=2.0, alpha=0.05, beta=beta)
    wj = jnp.asarray(w, jnp.float32)
    f = lambda x: jnp.sum(wj * lrn.local_response_norm(x, convention="caffe", **kw))  # noqa: E731
    got, grad = jax.value_and_grad(f)(jnp.asarray(a))
    xt = torch.tensor(a, dtype=torch.float64).permute(0, 3, 1, 2).requires_grad_(True)
    want = (torch.tensor(w).permute(0, 3, 1, 2) * torch.nn.LocalResponseNorm(**kw)(xt)).sum()
    want.backward()
    np.testing.assert_allclose(float(got), want.item(), rtol=1e-5)
    np.testing.assert_allclose(
        np.asarray(grad), xt.grad.permute(0, 2, 3, 1).numpy(), rtol=1e-4, atol=1e-6
    )
