"""Data parallelism over the local devices: `pmap` over axis "batch" (Sec. 5's batch of 128,
split across devices; gradients and metrics averaged with `lax.pmean` inside the step)."""

from collections.abc import Callable

import jax
from flax import jax_utils


def data_parallel(step_fn: Callable, *, donate_state: bool) -> Callable:
    """`step_fn(state, batch)` mapped over the local devices along axis "batch".

    The state is replicated ([D, ...] leaves) and, if `donate_state`, its buffers are donated.
    """
    return jax.pmap(step_fn, axis_name="batch", donate_argnums=(0,) if donate_state else ())


replicate = jax_utils.replicate


def unreplicate(tree):
    """The first device's copy, fetched to the host."""
    return jax.device_get(jax_utils.unreplicate(tree))
