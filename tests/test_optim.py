"""Sec. 5's update rule and schedule, against numpy loops of the printed equations."""

import dataclasses

import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from alexnet_jax import optim

A = np.diag([1.0, 3.0, 0.5])  # a small quadratic: loss = 0.5 w^T A w - b^T w
B = np.array([1.0, -2.0, 0.3])
LRS = [0.1] * 10 + [0.01] * 10  # a drop at step 10


def _grad(w):
    return A @ w - B


def _numpy_loop(rule: str, wd=5e-4, m=0.9) -> np.ndarray:
    w, v = np.array([1.0, 1.0, -1.0]), np.zeros(3)
    for lr in LRS:
        g = _grad(w)
        if rule == "paper":  # Sec. 5, as printed
            v = m * v - wd * lr * w - lr * g
            w = w + v
        elif rule == "optax":  # torch.optim.SGD / optax.sgd with coupled decay
            v = m * v + (g + wd * w)
            w = w - lr * v
        else:  # decoupled: the decay never enters the momentum
            v = m * v + g
            w = w - lr * v - lr * wd * w
    return w


def _optax_loop(rule: str) -> np.ndarray:
    c = ml_collections.ConfigDict(
        dict(rule=rule, base_lr=LRS[0], momentum=0.9, weight_decay=5e-4, decay_biases=True)
    )
    tx = optim.build(c)
    params = {"w": {"kernel": jnp.array([1.0, 1.0, -1.0], jnp.float64)}}
    state = tx.init(params)
    for lr in LRS:
        state = optim.set_learning_rate(state, lr)
        g = {"w": {"kernel": jnp.asarray(_grad(np.asarray(params["w"]["kernel"])))}}
        updates, state = tx.update(g, state, params)
        params = optax.apply_updates(params, updates)
    return np.asarray(params["w"]["kernel"])


@pytest.mark.parametrize("rule", ["paper", "optax", "decoupled"])
def test_rules_match_numpy_loops_across_an_lr_drop(rule):
    import jax

    with jax.enable_x64(True):
        got = _optax_loop(rule)
    np.testing.assert_allclose(got, _numpy_loop(rule), rtol=1e-6, atol=1e-9)


def test_paper_rule_differs_from_optax_sgd_right_after_a_drop():
    """The rate inside the velocity is a real difference, not an assumed one."""
    paper, plain = _numpy_loop("paper"), _numpy_loop("optax")
    assert np.abs(paper - plain).max() > 1e-3
    # and before the drop they agree (constant lr), up to where weight decay enters
    global LRS
    saved, LRS = LRS, [0.1] * 10
    try:
        np.testing.assert_allclose(_numpy_loop("paper"), _numpy_loop("optax"), rtol=1e-9)
    finally:
        LRS = saved


def test_bias_exemption_from_weight_decay():
    c = ml_collections.ConfigDict(
        dict(rule="paper", base_lr=1.0, momentum=0.0, weight_decay=0.5, decay_biases=False)
    )
    tx = optim.build(c)
    params = {"fc6": {"kernel": jnp.ones(2), "bias": jnp.ones(2)}}
    zeros = {"fc6": {"kernel": jnp.zeros(2), "bias": jnp.zeros(2)}}
    updates, _ = tx.update(zeros, tx.init(params), params)
    np.testing.assert_allclose(updates["fc6"]["kernel"], -0.5)
    np.testing.assert_allclose(updates["fc6"]["bias"], 0.0)


def test_unknown_rule_is_a_one_line_error():
    c = ml_collections.ConfigDict(
        dict(rule="adam", base_lr=1.0, momentum=0.0, weight_decay=0.5, decay_biases=False)
    )
    with pytest.raises(ValueError, match=r"config\.optim\.rule='adam' is unknown"):
        optim.build(c)


KW = dict(factor=0.1, patience=2, threshold=0.001, cooldown=1, max_drops=3)


def test_plateau_drops_exactly_where_expected_and_at_most_three_times():
    errors = [0.9, 0.8, 0.7, 0.7, 0.7, 0.6, 0.6, 0.6, 0.6, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
    s, lrs, done = optim.Plateau(lr=0.01), [], []
    for e in errors:
        s = optim.plateau_update(s, e, **KW)
        lrs.append(s.lr)
        done.append(s.done)
    # index 4: second evaluation without improvement -> drop, then one evaluation of cooldown;
    # 6, 7 bad -> drop at 7; 8 is cooldown; 9 improves; 10, 11 bad -> third drop at 11;
    # 12 is cooldown; 13, 14 bad -> a fourth plateau: done at 14, lr unchanged.
    want = [0.01] * 4 + [1e-3] * 3 + [1e-4] * 4 + [1e-5] * 5
    np.testing.assert_allclose(lrs, want, rtol=1e-12)
    assert s.drops == 3 and done.index(True) == 14
    assert optim.plateau_update(s, 0.1, **KW) == s  # nothing changes once done


def test_a_run_ended_by_the_rule_reopens_as_a_larger_max_drops_would_have_run_it():
    errors = [0.9, 0.8, 0.7, 0.7, 0.7, 0.6, 0.6, 0.6, 0.6, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
    three, four = optim.Plateau(lr=0.01), optim.Plateau(lr=0.01)
    for e in errors:  # the last one ends the max_drops=3 run (the test above)
        three = optim.plateau_update(three, e, **KW)
        four = optim.plateau_update(four, e, **{**KW, "max_drops": 4})
    assert three.done and not four.done and four.drops == 4
    kw = dict(factor=KW["factor"], cooldown=KW["cooldown"])
    assert optim.reopen(three, **kw, max_drops=4) == four
    assert optim.reopen(three, **kw, max_drops=3) is three  # nothing more allowed
    assert optim.reopen(four, **kw, max_drops=9) is four  # not ended: unchanged


def test_fixed_drops_come_after_the_listed_epochs_whatever_the_error():
    s, lrs = optim.Plateau(lr=0.01), []
    for epoch in range(1, 9):
        s = optim.fixed_update(s, epoch, factor=0.1, drop_after_epochs=(3, 5, 6))
        lrs.append(s.lr)
    np.testing.assert_allclose(lrs, [0.01] * 2 + [1e-3] * 2 + [1e-4] + [1e-5] * 3, rtol=1e-12)
    assert s.drops == 3 and not s.done  # num_epochs ends such a run


def test_plateau_threshold_counts_tiny_gains_as_no_improvement():
    s = optim.Plateau(lr=1.0)
    for e in [0.5, 0.4995, 0.4991]:  # gains below threshold=0.001
        s = optim.plateau_update(s, e, **KW)
    assert s.drops == 1 and s.best == 0.5


def test_plateau_state_round_trips_through_a_dict():
    s = optim.Plateau(lr=1e-3, best=0.25, bad_epochs=1, cooldown=0, drops=1, done=False)
    assert optim.Plateau(**dataclasses.asdict(s)) == s
