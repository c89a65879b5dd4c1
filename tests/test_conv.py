"""Grouped convolution (Sec. 3.2): the lowerings against torch conv2d(groups=...), each other."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from alexnet_jax import conv

CASES = [  # (in, out, kernel, stride, padding, groups): conv2 of the paper, conv1-like, 4 groups,
    (16, 8, 5, 1, 2, 2),  # and a strided padded one with one group
    (6, 12, 11, 4, 0, 2),
    (8, 8, 3, 1, 1, 4),
    (3, 4, 5, 2, 1, 1),
]
LOWERINGS = ["native", "split", "im2col", "hybrid"]


def _case(cin, cout, ksize, groups, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2, 23, 23, cin)).astype(np.float32)
    w = rng.normal(size=(ksize, ksize, cin // groups, cout)).astype(np.float32)
    return x, w


def _torch_conv(x, w, stride, padding, groups):
    xt = torch.tensor(x, dtype=torch.float64).permute(0, 3, 1, 2)
    wt = torch.tensor(w, dtype=torch.float64).permute(3, 2, 0, 1)  # HWIO -> OIHW
    return F.conv2d(xt, wt, stride=stride, padding=padding, groups=groups).permute(0, 2, 3, 1)


@pytest.mark.parametrize("lowering", LOWERINGS)
@pytest.mark.parametrize("cin,cout,ksize,stride,padding,groups", CASES)
def test_matches_torch_grouped_conv(lowering, cin, cout, ksize, stride, padding, groups):
    x, w = _case(cin, cout, ksize, groups)
    ours = jax.jit(
        functools.partial(
            conv.grouped_conv, stride=stride, padding=padding, groups=groups, lowering=lowering
        )
    )
    got = ours(jnp.asarray(x), jnp.asarray(w))
    want = _torch_conv(x, w, stride, padding, groups).numpy()
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-4)
    if groups == 1:
        return
    # the towers really are separate: changing group 2's inputs leaves group 1's outputs alone
    x2 = x.copy()
    x2[..., cin // groups :] += 1.0
    got2 = ours(jnp.asarray(x2), jnp.asarray(w))
    k = cout // groups
    np.testing.assert_array_equal(np.asarray(got2)[..., :k], np.asarray(got)[..., :k])
    assert not np.allclose(np.asarray(got2)[..., k:], np.asarray(got)[..., k:])


@pytest.mark.parametrize("cin,cout,ksize,stride,padding,groups", CASES)
def test_lowerings_give_same_outputs_and_gradients(cin, cout, ksize, stride, padding, groups):
    x, w = _case(cin, cout, ksize, groups, seed=1)
    cot = np.random.default_rng(2).normal(size=_torch_conv(x, w, stride, padding, groups).shape)

    def loss(x, w, lowering):
        y = conv.grouped_conv(
            x, w, stride=stride, padding=padding, groups=groups, lowering=lowering
        )
        return jnp.sum(y * cot)

    grad = jax.jit(jax.grad(loss, argnums=(0, 1)), static_argnums=2)  # one compile, not op by op
    grads = {lw: grad(jnp.asarray(x), jnp.asarray(w), lw) for lw in LOWERINGS}
    # against torch autograd in float64
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    y = F.conv2d(
        xt.permute(0, 3, 1, 2),
        wt.permute(3, 2, 0, 1),
        stride=stride,
        padding=padding,
        groups=groups,
    ).permute(0, 2, 3, 1)
    (y * torch.tensor(cot)).sum().backward()
    for lw, (dx, dw) in grads.items():
        np.testing.assert_allclose(
            np.asarray(dw), wt.grad.numpy(), rtol=1e-4, atol=1e-3, err_msg=lw
        )
        np.testing.assert_allclose(
            np.asarray(dx), xt.grad.numpy(), rtol=1e-4, atol=1e-3, err_msg=lw
        )


def test_module_keeps_flax_grouped_layout():
    m = conv.GroupedConv(
        features=8,
        kernel_size=3,
        stride=1,
        padding=1,
        groups=2,
        lowering="split",
        kernel_init=jax.nn.initializers.normal(1.0),
        bias_init=jax.nn.initializers.zeros,
    )
    p = m.init(jax.random.key(0), jnp.zeros((1, 5, 5, 6)))["params"]
    assert p["kernel"].shape == (3, 3, 3, 8) and p["bias"].shape == (8,)
    flax_conv = nn.Conv(8, (3, 3), padding=1, feature_group_count=2)
    assert flax_conv.init(jax.random.key(0), jnp.zeros((1, 5, 5, 6)))["params"]["kernel"].shape == (
        3,
        3,
        3,
        8,
    )


def test_lowering_names():
    assert conv.resolve_lowering("auto", "cpu") == "hybrid"  # measured: benchmarks/RESULTS.md
    assert conv.resolve_lowering("auto", "cpu", stride=4) == "im2col"
    assert conv.resolve_lowering("auto", "gpu", stride=4) == "native"
    assert conv.resolve_lowering("native", "cpu") == "native"
    with pytest.raises(ValueError, match="unknown grouped-conv lowering 'fast'"):
        conv.resolve_lowering("fast")
