"""The paper's update rule and learning-rate schedule (Sec. 5), and the variants users compare.

The learning rate is optimizer *state* (`optax.inject_hyperparams`), changed only on the host
between epochs by the plateau controller below: Sec. 5 divides it by 10 "when the validation
error rate stopped improving", which no `schedule(step)` can express (or, ours, after fixed
epochs: `fixed_update`).
"""

import dataclasses
import math
from typing import Literal

import jax
import ml_collections
import optax

from alexnet_jax.errors import InputError

Rule = Literal["paper", "optax", "decoupled"]
RULES: tuple[str, ...] = ("paper", "optax", "decoupled")


def _decay_mask(params, decay_biases: bool):
    return jax.tree_util.tree_map_with_path(
        lambda path, _: decay_biases or path[-1].key != "bias", params
    )


def sgd(
    learning_rate: float,
    momentum: float,
    weight_decay: float,
    rule: Rule,
    decay_biases: bool,
    frozen_layers: tuple[str, ...] = (),
    low_lr_layers: tuple[str, ...] = (),
    low_lr_factor: float = 1.0,
) -> optax.GradientTransformation:
    """SGD with momentum and weight decay, in one of three orders (Sec. 5).

    "paper"      v <- m v - wd lr w - lr g;  w <- w + v  (Sec. 5 exactly: the rate sits inside
                 the velocity, so after a drop the velocity built at the old rate keeps its scale)
    "optax"      t <- m t + (g + wd w);  w <- w - lr t  (optax.sgd / torch.optim.SGD with
                 coupled decay: the rate is applied after the trace)
    "decoupled"  t <- m t + g;  w <- w - lr t - lr wd w  (decay outside the momentum, SGDW)

    All three are equal while lr is constant and nothing else changes. `decay_biases=False`
    exempts biases from weight decay: Sec. 5 writes the rule for every weight w, but
    cuda-convnet, the code the paper ran, gives biases a weight cost of 0 (as Caffe's
    bvlc_alexnet does with decay_mult 0).

    Fine-tuning: `frozen_layers` (top-level names, e.g. "conv1") get no update at all, decay
    included; `low_lr_layers` get the same rule with every update scaled by `low_lr_factor`,
    which for all three rules is the rule run at lr * low_lr_factor (each is linear in lr).
    """
    decay = optax.add_decayed_weights(weight_decay, mask=lambda p: _decay_mask(p, decay_biases))
    if rule == "paper":
        tx = optax.chain(
            decay, optax.scale_by_learning_rate(learning_rate), optax.trace(decay=momentum)
        )
    elif rule == "optax":
        tx = optax.chain(decay, optax.sgd(learning_rate, momentum=momentum))
    elif rule == "decoupled":
        tx = optax.chain(
            optax.trace(decay=momentum), decay, optax.scale_by_learning_rate(learning_rate)
        )
    else:
        raise InputError(f"config.optim.rule={rule!r} is unknown; use one of {RULES}")
    if not frozen_layers and not low_lr_layers:
        return tx
    both = sorted(set(frozen_layers) & set(low_lr_layers))
    if both:
        raise InputError(f"config.optim: {both} are in both frozen_layers and low_lr_layers")

    def labels(params):
        missing = sorted((set(frozen_layers) | set(low_lr_layers)) - set(params))
        if missing:
            raise InputError(
                f"config.optim.frozen_layers/low_lr_layers name {missing}, which the model "
                f"lacks; it has {sorted(params)}"
            )
        return {
            name: jax.tree.map(
                lambda _, n=name: (
                    "frozen" if n in frozen_layers else "low" if n in low_lr_layers else "base"
                ),
                p,
            )
            for name, p in params.items()
        }

    return optax.multi_transform(
        {
            "base": tx,
            "low": optax.chain(tx, optax.scale(low_lr_factor)),
            "frozen": optax.set_to_zero(),
        },
        labels,
    )


def validate(c: ml_collections.ConfigDict) -> None:
    """One-line InputErrors for a `config.optim` that cannot train (Sec. 5's fields)."""
    if c.rule not in RULES:
        raise InputError(f"config.optim.rule={c.rule!r} is unknown; use one of {RULES}")
    if not (isinstance(c.base_lr, int | float) and math.isfinite(c.base_lr) and c.base_lr > 0):
        raise InputError(
            f"config.optim.base_lr={c.base_lr} must be a positive finite number (Sec. 5: 0.01)"
        )
    if not (isinstance(c.momentum, int | float) and 0 <= c.momentum < 1):
        raise InputError(f"config.optim.momentum={c.momentum} must be in [0, 1) (Sec. 5: 0.9)")
    if not (isinstance(c.weight_decay, int | float) and 0 <= c.weight_decay < math.inf):
        raise InputError(
            f"config.optim.weight_decay={c.weight_decay} must be finite and >= 0 (Sec. 5: 0.0005)"
        )
    factor = c.get("low_lr_factor", 1.0)
    if not (isinstance(factor, int | float) and 0 <= factor < math.inf):
        raise InputError(f"config.optim.low_lr_factor={factor} must be finite and >= 0")


def build(c: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """`config.optim` -> the transformation, with the learning rate injected as state."""
    validate(c)
    static = ("rule", "decay_biases", "frozen_layers", "low_lr_layers", "low_lr_factor")
    return optax.inject_hyperparams(sgd, static_args=static)(
        learning_rate=c.base_lr,
        momentum=c.momentum,
        weight_decay=c.weight_decay,
        rule=c.rule,
        decay_biases=c.decay_biases,
        frozen_layers=tuple(c.get("frozen_layers", ())),  # absent in hand-made configs
        low_lr_layers=tuple(c.get("low_lr_layers", ())),
        low_lr_factor=float(c.get("low_lr_factor", 1.0)),
    )


def set_learning_rate(opt_state, lr: float):
    """A copy of `build`'s state with the learning rate replaced (same shape, dtype, placement)."""
    old = opt_state.hyperparams["learning_rate"]
    new = jax.numpy.full_like(old, lr)
    return opt_state._replace(hyperparams={**opt_state.hyperparams, "learning_rate": new})


@dataclasses.dataclass(frozen=True)
class Plateau:
    """State of Sec. 5's schedule: lr divided by 10 when validation error stops improving."""

    lr: float
    best: float = float("inf")  # best validation error so far
    bad_epochs: int = 0  # evaluations since the last improvement
    cooldown: int = 0  # evaluations left before a plateau may be detected again
    drops: int = 0
    done: bool = False  # a plateau after the last allowed drop: training ends


def fixed_update(s: Plateau, epoch: int, *, factor: float, drop_after_epochs) -> Plateau:
    """After epoch `epoch`: the rate multiplied by `factor` if `epoch` is in `drop_after_epochs`
    (ours: the epochs at which a run's plateau rule divided it, for a rerun that has no
    validation split left to read); pure."""
    if epoch not in drop_after_epochs:
        return s
    return dataclasses.replace(s, lr=s.lr * factor, drops=s.drops + 1)


def plateau_update(
    s: Plateau,
    val_error: float,
    *,
    factor: float,
    patience: int,
    threshold: float,
    cooldown: int,
    max_drops: int,
) -> Plateau:
    """One evaluation's step of the schedule; pure.

    An evaluation improves if val_error < best - threshold. After `patience` evaluations in a
    row without improvement (and outside a cooldown) the rate is multiplied by `factor`; after
    `max_drops` drops the next plateau ends training ("reduced three times prior to
    termination", Sec. 5).
    """
    if s.done:
        return s
    if val_error < s.best - threshold:
        s = dataclasses.replace(s, best=val_error, bad_epochs=0)
    else:
        s = dataclasses.replace(s, bad_epochs=s.bad_epochs + 1)
    if s.cooldown > 0:
        return dataclasses.replace(s, cooldown=s.cooldown - 1, bad_epochs=0)
    if s.bad_epochs < patience:
        return s
    if s.drops >= max_drops:
        return dataclasses.replace(s, done=True)
    return dataclasses.replace(
        s, lr=s.lr * factor, drops=s.drops + 1, bad_epochs=0, cooldown=cooldown
    )


def reopen(s: Plateau, *, factor: float, cooldown: int, max_drops: int) -> Plateau:
    """A run the plateau rule ended, resumed with a larger `max_drops`: the plateau that ended it
    divides the rate now, as `plateau_update` would have with that `max_drops`; pure."""
    if not s.done or s.drops >= max_drops:
        return s
    return dataclasses.replace(
        s, lr=s.lr * factor, drops=s.drops + 1, bad_epochs=0, cooldown=cooldown, done=False
    )
