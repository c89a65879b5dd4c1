"""Data and model parallelism: one per-device step, mapped over the devices (Secs. 3.2, 5).

The train and eval steps (train.py) and the network (models.AlexNet) are written per device,
as the paper's GPUs ran them; every cross-device exchange is an explicit collective: gradients
and metrics averaged over "batch", and Fig. 2's arrows between towers over "tower". A `Plan`
maps them over the devices in one of `config.parallelism`'s layouts:

"data"        `jax.shard_map` on a (D x 1) ("batch", "tower") mesh: every device holds all
              parameters and 1/D of the batch.
"pmap"        the same step under `jax.pmap` over axis "batch" (Sec. 5's "a pmap-ed step").
"model"       the paper's scheme (Sec. 3.2, Fig. 2): a (1 x 2) mesh, one device per tower;
              tower t holds output channels [t*C/2, (t+1)*C/2) of every kernel and bias.
"data+model"  both: a (D/2 x 2) mesh, each pair of devices one model replica.

Nothing is left to XLA's partitioner (the step's body is manual), so no convolution lowering
or metric can gather activations across devices. The parameters are the single-device model's
tree, only sharded (`param_spec`): a checkpoint moves freely between the layouts. Host batches
hold this process's rows of the global batch ([B_local, ...], input_pipeline.py).
"""

import collections
import dataclasses
import os
from collections.abc import Callable, Iterator, Sequence

import jax
import ml_collections
import numpy as np
from flax.training import train_state
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from alexnet_jax import errors, models

PARALLELISMS: tuple[str, ...] = ("data", "pmap", "model", "data+model")
AXES: tuple[str, str] = ("batch", "tower")


def initialize_distributed(c: ml_collections.ConfigDict) -> None:
    """`jax.distributed.initialize` for a multi-host run, from `config.distributed` or the env.

    Set config.distributed.{coordinator_address, num_processes, process_id} (process 0's
    "host:port", the count, this process's index), or JAX's own JAX_COORDINATOR_ADDRESS (the
    rest then comes from JAX's cluster detection: SLURM, Open MPI, ...). Neither: one process,
    nothing to do. On CPU the processes talk through gloo, JAX's default CPU collectives
    (`jax_cpu_collectives_implementation`). Call before anything asks JAX for its devices.
    """
    if c.coordinator_address is None and not os.environ.get("JAX_COORDINATOR_ADDRESS"):
        return
    jax.distributed.initialize(
        coordinator_address=c.coordinator_address,
        num_processes=c.num_processes,
        process_id=c.process_id,
    )


def make_mesh(
    parallelism: str, towers: int, devices: Sequence[jax.Device] | None = None
) -> jax.sharding.Mesh:
    """A ("batch", "tower") mesh over `devices` (default: all devices of all processes).

    "data" and "pmap": (D, 1); "model": (1, 2), one device per tower; "data+model": (D/2, 2).
    Bad combinations are one-line InputErrors naming the config field and the fix.
    """
    devices = list(jax.devices() if devices is None else devices)
    n = len(devices)
    if parallelism not in PARALLELISMS:
        raise errors.InputError(
            f"config.parallelism={parallelism!r} is unknown; use one of {PARALLELISMS}"
        )
    if parallelism in ("data", "pmap"):
        shape = (n, 1)
    else:
        if towers != 2:
            raise errors.InputError(
                f"config.parallelism={parallelism!r} splits the paper's two towers over devices, "
                f"but config.model.towers={towers}; use a two-tower config (configs/paper.py) "
                "or parallelism='data'"
            )
        if n % towers:
            raise errors.InputError(
                f"config.parallelism={parallelism!r} needs an even number of devices (one per "
                f"tower), found {n}; use a multiple of 2 devices or parallelism='data'"
            )
        if parallelism == "model" and n != towers:
            raise errors.InputError(
                f"config.parallelism='model' uses exactly 2 devices (one per tower), found {n}; "
                f"use parallelism='data+model' for {n} devices"
            )
        shape = (n // towers, towers)
    # In jax.devices() order: a process's devices are neighbours, so with whole replicas per
    # host the towers talk within a host and only gradients cross between hosts.
    mesh_devices = np.asarray(devices, dtype=object).reshape(shape)
    auto = (jax.sharding.AxisType.Auto,) * 2
    return jax.sharding.Mesh(mesh_devices, AXES, axis_types=auto)


def param_spec(path: tuple, leaf, towers: int) -> P:
    """Where one leaf of a step's inputs or outputs lives on the mesh.

    Kernels and biases (of the params, and of the optimizer's momentum, which has their tree)
    are split on their last dim, the output channel, over "tower" (Sec. 3.2) when towers > 1;
    scalars (step, learning rate, metrics) are replicated; every other array holds one row per
    example (images, labels, logits) and is split over "batch".
    """
    name = getattr(path[-1], "key", None) if path else None
    if name in ("kernel", "bias"):
        return P(*(None,) * (np.ndim(leaf) - 1), "tower") if towers > 1 else P()
    return P() if np.ndim(leaf) == 0 else P("batch")


def specs(tree, towers: int):
    """`param_spec` of every leaf of `tree`."""
    return jax.tree_util.tree_map_with_path(lambda p, x: param_spec(p, x, towers), tree)


def shardings(tree, mesh: jax.sharding.Mesh):
    """A `NamedSharding` for every leaf of `tree` (a train state, a param tree or a batch)."""
    towers = mesh.shape["tower"]
    return jax.tree.map(lambda s: NamedSharding(mesh, s), specs(tree, towers))


def _check_towers(model: models.AlexNet, towers: int) -> None:
    """One-line errors for two-tower nets whose layers do not split into whole towers."""
    widths = [*model.conv_features, *model.fc_features, model.num_classes]
    for name, width in zip(models.layer_names(model), widths, strict=True):
        if width % towers:
            raise errors.InputError(
                f"{name} has {width} outputs, not divisible by {towers} towers; model "
                "parallelism needs every layer's width to be a multiple of config.model.towers"
            )
    for i, g in enumerate(model.conv_groups):
        if g > 1 and g % towers:
            raise errors.InputError(
                f"config.model.conv.groups[{i}]={g} is neither 1 nor a multiple of {towers} "
                "towers; model parallelism needs whole groups on each tower"
            )
    if model.lrn_spec is not None and model.lrn_spec.groups % towers:
        raise errors.InputError(
            "config.model.lrn.within_towers=False normalizes across the tower boundary, which "
            "the paper's towers never did (Sec. 3.2); set within_towers=True for model "
            "parallelism"
        )


@dataclasses.dataclass(frozen=True)
class Plan:
    """How a run is laid out: the per-device network and how steps are mapped over devices."""

    model: models.AlexNet  # per device: tower_axis/batch_axis bound to this layout's axes
    mesh: jax.sharding.Mesh  # ("batch", "tower") over all devices
    pmap: bool = False  # map with jax.pmap over the local devices instead of shard_map

    @property
    def towers(self) -> int:
        return self.mesh.shape["tower"]

    def _pmap_sharding(self) -> NamedSharding:
        """The leading axis over this process's devices of the mesh: what `jax.pmap` maps."""
        local = [d for d in self.mesh.devices.flat if d.process_index == jax.process_index()]
        return NamedSharding(jax.sharding.Mesh(np.asarray(local), ("batch",)), P("batch"))

    def map(self, fn: Callable, *, donate: bool = False) -> Callable:
        """`fn(state_or_params, batch) -> out`, written per device, run on every device.

        Inputs and outputs are laid out by `param_spec`; use `place` and `batch` for the
        inputs and `fetch` for outputs wanted on the host. `donate` donates the first input.
        """
        donate_argnums = (0,) if donate else ()
        if self.pmap:
            devices = list(self.mesh.devices.flat)
            return jax.pmap(fn, "batch", devices=devices, donate_argnums=donate_argnums)

        def mapped(*args):
            shard = lambda out_specs: jax.shard_map(  # noqa: E731
                fn,
                mesh=self.mesh,
                in_specs=specs(args, self.towers),
                out_specs=out_specs,
                check_vma=False,  # the collectives are explicit: pmap's semantics
            )
            out = jax.eval_shape(shard(P()), *args)  # only the output tree and ranks are used
            return shard(specs(out, self.towers))(*args)

        return jax.jit(mapped, donate_argnums=donate_argnums)

    def place(self, tree):
        """A host train state or param tree on the devices (a state gets the per-device
        network as its apply_fn). Every process must pass the same host values."""
        if isinstance(tree, train_state.TrainState):
            tree = tree.replace(apply_fn=self.model.apply)
        tree = jax.device_get(tree)  # host copies: nothing aliases what a step donates
        if not self.pmap:
            return jax.device_put(tree, shardings(tree, self.mesh))
        sharding = self._pmap_sharding()
        n = sharding.mesh.size
        return jax.device_put(jax.tree.map(lambda x: np.stack([x] * n), tree), sharding)

    def batch(self, batch: dict) -> dict[str, jax.Array]:
        """This process's rows of the global batch ([B_local, ...] numpy) -> device arrays."""
        if self.pmap:
            sharding = self._pmap_sharding()
            n = sharding.mesh.size
            local = {k: np.reshape(v, (n, -1, *np.shape(v)[1:])) for k, v in batch.items()}
            return jax.device_put(local, sharding)
        sharding = NamedSharding(self.mesh, P("batch"))
        return {
            k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
            for k, v in batch.items()
        }

    def fetch(self, tree):
        """Outputs of a mapped step on the host: under pmap, one copy of the replicated leaves
        and the per-example rows of all devices in order."""
        if not self.pmap:
            return jax.device_get(tree)

        def one(path, x):
            per_device = param_spec(path, x[0], 1)
            return x[0] if per_device == P() else np.reshape(x, (-1, *np.shape(x)[2:]))

        return jax.tree_util.tree_map_with_path(one, jax.device_get(tree))


def prefetch(batches: Iterator[dict], put: Callable, size: int) -> Iterator[dict]:
    """Host-to-device prefetch: `size` batches already sent (`put`, e.g. `Plan.batch`) ahead of
    the one the step consumes, so the copy overlaps the previous step. The order is unchanged."""
    queue = collections.deque()
    for batch in batches:
        queue.append(put(batch))
        if len(queue) > size:
            yield queue.popleft()
    yield from queue


def create(
    config: ml_collections.ConfigDict,
    model: models.AlexNet,
    devices: Sequence[jax.Device] | None = None,
) -> Plan:
    """`config.parallelism` -> the mesh over `devices` (default: all) and `model` bound to its
    axes. Raises one-line InputErrors for a layout the devices or the config cannot give.
    """
    mesh = make_mesh(config.parallelism, config.model.towers, devices)
    replicas = mesh.shape["batch"]
    for field in ("global_batch_size", "eval_batch_size"):
        size = config.input[field]
        if size % replicas:
            raise errors.InputError(
                f"config.input.{field}={size} is not divisible by the {replicas} model "
                f"replicas of parallelism={config.parallelism!r}; use a multiple of {replicas}"
            )
    towers = mesh.shape["tower"]
    if towers > 1:
        _check_towers(model, towers)
    per_device = model.clone(batch_axis="batch", tower_axis="tower" if towers > 1 else None)
    return Plan(per_device, mesh, pmap=config.parallelism == "pmap")
