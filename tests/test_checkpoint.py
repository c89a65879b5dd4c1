"""Orbax checkpoints: what is kept, what a restore gives back, and a half-written save."""

import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from alexnet_jax import checkpoint, optim
from alexnet_jax.errors import InputError
from tests import tiny


def test_keeps_the_last_k_and_the_best(tmp_path):
    mngr = checkpoint.create(str(tmp_path), ml_collections.ConfigDict(dict(keep=2)))
    errors = {2: 0.5, 4: 0.3, 6: 0.4, 8: 0.45}  # the best is step 4
    for step in range(1, 10):
        metrics = {checkpoint.BEST_METRIC: errors[step]} if step in errors else None
        checkpoint.save(mngr, tiny.small_state(step, float(step)), optim.Plateau(lr=0.01), metrics)
    assert sorted(mngr.all_steps()) == [4, 8, 9]
    mngr.close()


def test_the_best_survives_a_restart(tmp_path):
    """A resumed run (a new manager on the same directory) must not delete the old best."""
    c = ml_collections.ConfigDict(dict(keep=1))
    mngr = checkpoint.create(str(tmp_path), c)
    for step, err in ((2, 0.1), (3, 0.4)):  # the best is step 2
        metrics = {checkpoint.BEST_METRIC: err}
        checkpoint.save(mngr, tiny.small_state(step, float(step)), optim.Plateau(lr=0.01), metrics)
    mngr.close()
    mngr = checkpoint.create(str(tmp_path), c)
    for step, err in ((4, None), (5, 0.3)):
        metrics = None if err is None else {checkpoint.BEST_METRIC: err}
        checkpoint.save(mngr, tiny.small_state(step, float(step)), optim.Plateau(lr=0.01), metrics)
    assert sorted(mngr.all_steps()) == [2, 5]
    mngr.close()


def test_restore_gives_back_params_opt_state_lr_and_schedule(tmp_path):
    mngr = checkpoint.create(str(tmp_path), ml_collections.ConfigDict(dict(keep=3)))
    saved = tiny.small_state(7, 1.5)
    grads = jax.tree.map(jnp.ones_like, saved.params)
    saved = saved.apply_gradients(grads=grads)  # a non-trivial momentum trace
    saved = saved.replace(opt_state=optim.set_learning_rate(saved.opt_state, 1e-3))
    plateau = optim.Plateau(lr=1e-3, best=0.25, bad_epochs=1, drops=1)
    checkpoint.save(mngr, saved, plateau)
    mngr.close()
    mngr = checkpoint.create(str(tmp_path), ml_collections.ConfigDict(dict(keep=3)))
    got, got_plateau = checkpoint.restore(mngr, tiny.small_state(0, 0.0), optim.Plateau(lr=0.01))
    assert int(got.step) == 8 and got_plateau == plateau
    for a, b in zip(jax.tree.leaves(got.opt_state), jax.tree.leaves(saved.opt_state), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert float(got.opt_state.hyperparams["learning_rate"]) == np.float32(1e-3)
    np.testing.assert_array_equal(got.params["fc8"]["kernel"], saved.params["fc8"]["kernel"])
    assert type(got.opt_state) is type(saved.opt_state)  # the namedtuple, not a dict
    mngr.close()


@pytest.mark.parametrize(
    "changed, message",
    [
        (dict(rule="decoupled"), "holds another optimizer's state: opt_state['inner_state']"),
        (
            dict(weight_decay=0.0),
            "trained with config.optim.weight_decay=0.0005 and --config has 0",
        ),
        (dict(momentum=0.8), "trained with config.optim.momentum=0.9 and --config has 0.8"),
    ],
)
def test_a_resume_with_another_optimizer_is_one_line_and_moves_nothing(tmp_path, changed, message):
    """Another rule changes the state's tree; momentum and weight decay are the config's, not
    state. Either way the good checkpoint stays where it is (not moved aside as damaged)."""
    mngr = checkpoint.create(str(tmp_path), ml_collections.ConfigDict(dict(keep=3)))
    checkpoint.save(mngr, tiny.small_state(3, 1.0), optim.Plateau(lr=0.01))
    with pytest.raises(InputError, match="use a new --workdir") as e:
        checkpoint.restore(mngr, tiny.small_state(0, 0.0, **changed), optim.Plateau(lr=0.01))
    assert message in str(e.value)
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["3"]
    got, _ = checkpoint.restore(mngr, tiny.small_state(0, 0.0), optim.Plateau(lr=0.01))
    assert int(got.step) == 3  # the same config resumes
    mngr.close()


def test_non_finite_params_are_not_saved(tmp_path):
    mngr = checkpoint.create(str(tmp_path), ml_collections.ConfigDict(dict(keep=3)))
    checkpoint.save(mngr, tiny.small_state(1, 1.0), optim.Plateau(lr=0.01))
    with pytest.raises(FloatingPointError, match=r"params\['fc8'\]\['kernel'\] at step 2, not sa"):
        checkpoint.save(mngr, tiny.small_state(2, float("nan")), optim.Plateau(lr=0.01))
    assert mngr.all_steps() == [1]
    mngr.close()


def test_a_half_written_save_leaves_the_previous_checkpoint_restorable(tmp_path):
    """What kill -9 mid-save leaves behind: Orbax's temporary directory, never renamed."""
    mngr = checkpoint.create(str(tmp_path), ml_collections.ConfigDict(dict(keep=3)))
    checkpoint.save(mngr, tiny.small_state(5, 2.0), optim.Plateau(lr=0.01))
    mngr.close()
    tmp = tmp_path / "checkpoints" / "9.orbax-checkpoint-tmp-1795456500"
    (tmp / "state").mkdir(parents=True)
    (tmp / "state" / "garbage").write_bytes(os.urandom(100))
    mngr = checkpoint.create(str(tmp_path), ml_collections.ConfigDict(dict(keep=3)))
    assert mngr.latest_step() == 5
    got, _ = checkpoint.restore(mngr, tiny.small_state(0, 0.0), optim.Plateau(lr=0.01))
    np.testing.assert_array_equal(got.params["fc8"]["kernel"], np.full((3, 2), 2.0))
    mngr.close()


def test_a_workdir_named_by_digits_is_a_workdir_not_a_step(tmp_path):
    """find_step: a workdir may be called 123; it holds checkpoints/, so it is not a STEP."""
    for d in ("123/checkpoints/4", "123/checkpoints/8"):
        os.makedirs(tmp_path / d)
    w = str(tmp_path / "123")
    assert checkpoint.find_step(w) == (f"{w}/checkpoints", 8)
    assert checkpoint.find_step(f"{w}/checkpoints") == (f"{w}/checkpoints", 8)
    assert checkpoint.find_step(f"{w}/checkpoints/4") == (f"{w}/checkpoints", 4)
    with pytest.raises(
        FileNotFoundError, match=r"123/checkpoints has no step 9; its steps are \[4, 8\]$"
    ):
        checkpoint.find_step(f"{w}/checkpoints/9")  # was ".../9/checkpoints does not exist"
