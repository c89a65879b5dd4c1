"""Orbax checkpoints of the whole run: keep the last k and the best, written atomically.

A checkpoint holds the train state (params, optimizer state with its learning rate, step) and a
JSON part (the plateau schedule's state). Data order and dropout keys are functions of the
config's seed and the step, so nothing else is needed to resume a run exactly. Orbax writes each
step into a temporary directory and renames it when complete: a crash or kill -9 mid-save
leaves the previous checkpoint as the latest restorable one.
"""

import dataclasses
import logging
import os

import jax
import ml_collections
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers

from alexnet_jax import optim

BEST_METRIC = "eval/top1_err"

# Mid-epoch checkpoints have no evaluation: Orbax's warning about that would print at every one.
logging.getLogger("absl").addFilter(lambda r: "did not provide metrics" not in r.getMessage())


def create(workdir: str, c: ml_collections.ConfigDict) -> ocp.CheckpointManager:
    """`config.checkpoint` -> a manager of WORKDIR/checkpoints keeping the last `keep` + best."""
    policy = checkpoint_managers.AnyPreservationPolicy(
        [
            checkpoint_managers.LatestN(c.keep),
            checkpoint_managers.BestN(
                get_metric_fn=lambda m: m[BEST_METRIC],
                reverse=True,  # lower error is better
                n=1,
                keep_checkpoints_without_metrics=False,
            ),
        ]
    )
    options = ocp.CheckpointManagerOptions(
        preservation_policy=policy,
        # best_fn makes Orbax write each step's metrics next to it, so BestN still knows the
        # best after a restart (without it a resumed run deleted the old best checkpoint).
        best_fn=lambda m: m[BEST_METRIC],
        best_mode="min",
        enable_async_checkpointing=False,
        create=True,
    )
    return ocp.CheckpointManager(
        os.path.abspath(os.path.join(workdir, "checkpoints")), options=options
    )


def save(
    mngr: ocp.CheckpointManager, state, plateau: optim.Plateau, metrics: dict | None = None
) -> None:
    """Saves `state` (host copy, not replicated) and the schedule at `state.step`; blocks."""
    step = int(state.step)
    tree = {"params": state.params, "opt_state": state.opt_state, "step": state.step}
    mngr.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(jax.device_get(tree)),
            schedule=ocp.args.JsonSave(dataclasses.asdict(plateau)),
        ),
        metrics=metrics,
        force=True,
    )
    mngr.wait_until_finished()


def restore_latest(mngr: ocp.CheckpointManager, state, plateau: optim.Plateau):
    """(state, plateau) from the latest checkpoint, or the arguments unchanged if there is none."""
    step = mngr.latest_step()
    if step is None:
        return state, plateau
    tree = {"params": state.params, "opt_state": state.opt_state, "step": state.step}
    restored = mngr.restore(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(jax.device_get(tree)),
            schedule=ocp.args.JsonRestore(),
        ),
    )
    t = restored["state"]
    state = state.replace(params=t["params"], opt_state=t["opt_state"], step=t["step"])
    return state, optim.Plateau(**restored["schedule"])
