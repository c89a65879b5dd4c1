"""Data and model parallelism on a device mesh with axes "batch" and "tower" (Secs. 3.2, 5).

"data"        every device holds all parameters and 1/D of the batch (gradients averaged).
"model"       the paper's scheme (Sec. 3.2, Fig. 2): two devices, one per tower; tower t holds
              output channels [t*C/2, (t+1)*C/2) of every layer's kernel and bias, conv1, conv2,
              the LRNs, the pools, conv4 and conv5 run with no communication, and conv3, fc6,
              fc7 and fc8 gather their inputs from both towers (`all_gather` over "tower").
"data+model"  both: a (D/2 x 2) mesh, each pair of devices one model replica; the global batch
              (Sec. 5's 128) is split over "batch".

The parameters are the single-device model's tree, only sharded (`param_spec`): a checkpoint
moves freely between the layouts. Steps are `jax.jit` with `NamedSharding`s; the per-tower
network runs under `jax.shard_map`. The legacy `pmap` helpers (`replicate`, `unreplicate`)
remain for callers that map a step over axis "batch" themselves (evaluate.py, the tests).
"""

import collections
import dataclasses
import os
from collections.abc import Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import jax_utils
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from alexnet_jax import conv, lrn, models, pool
from alexnet_jax.errors import InputError

PARALLELISMS: tuple[str, ...] = ("data", "model", "data+model")
AXES: tuple[str, str] = ("batch", "tower")


replicate = jax_utils.replicate


def unreplicate(tree):
    """The first device's copy, fetched to the host."""
    return jax.device_get(jax_utils.unreplicate(tree))


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

    "data": (D, 1); "model": (1, 2), exactly one device per tower; "data+model": (D/2, 2).
    Bad combinations are one-line ValueErrors naming the config field and the fix.
    """
    devices = list(jax.devices() if devices is None else devices)
    n = len(devices)
    if parallelism not in PARALLELISMS:
        raise InputError(
            f"config.parallelism={parallelism!r} is unknown; use one of {PARALLELISMS}"
        )
    if parallelism == "data":
        shape = (n, 1)
    else:
        if towers != 2:
            raise InputError(
                f"config.parallelism={parallelism!r} splits the paper's two towers over devices, "
                f"but config.model.towers={towers}; use a two-tower config (configs/paper.py) "
                "or parallelism='data'"
            )
        if n % towers:
            raise InputError(
                f"config.parallelism={parallelism!r} needs an even number of devices (one per "
                f"tower), found {n}; use a multiple of 2 devices or parallelism='data'"
            )
        if parallelism == "model" and n != towers:
            raise InputError(
                f"config.parallelism='model' uses exactly 2 devices (one per tower), found {n}; "
                f"use parallelism='data+model' for {n} devices"
            )
        shape = (n // towers, towers)
    # In jax.devices() order: a process's devices are neighbours, so with whole replicas per
    # host the towers talk within a host and only gradients cross between hosts.
    mesh_devices = np.asarray(devices, dtype=object).reshape(shape)
    auto = (jax.sharding.AxisType.Auto,) * 2
    return jax.sharding.Mesh(mesh_devices, AXES, axis_types=auto)


def param_spec(path: tuple, leaf: jax.Array, model_parallel: bool) -> P:
    """Where one leaf of the train state lives: kernels and biases split on their output dim.

    Conv kernels are HWIO, dense kernels (in, out): the last dim is always the output channel,
    so tower t holds [t*C/2, (t+1)*C/2) of it (Sec. 3.2). Everything else (step, learning rate)
    is replicated. Applies to the optimizer's momentum too, which has the params' tree.
    """
    name = getattr(path[-1], "key", None) if path else None
    if model_parallel and name in ("kernel", "bias") and leaf.ndim >= 1:
        return P(*(None,) * (leaf.ndim - 1), "tower")
    return P()


def shardings(tree, mesh: jax.sharding.Mesh):
    """A `NamedSharding` for every leaf of `tree` (a train state or a param tree)."""
    model_parallel = mesh.shape["tower"] > 1
    return jax.tree_util.tree_map_with_path(
        lambda path, x: NamedSharding(mesh, param_spec(path, x, model_parallel)), tree
    )


def _check_towers(model: models.AlexNet, towers: int) -> None:
    """One-line errors for two-tower nets whose layers do not split into whole towers."""
    widths = [*model.conv_features, *model.fc_features, model.num_classes]
    for name, width in zip(layer_names(model), widths, strict=True):
        if width % towers:
            raise InputError(
                f"{name} has {width} outputs, not divisible by {towers} towers; model "
                "parallelism needs every layer's width to be a multiple of config.model.towers"
            )
    for i, g in enumerate(model.conv_groups):
        if g > 1 and g % towers:
            raise InputError(
                f"config.model.conv.groups[{i}]={g} is neither 1 nor a multiple of {towers} "
                "towers; model parallelism needs whole groups on each tower"
            )
    if model.lrn_spec is not None and model.lrn_spec.groups % towers:
        raise InputError(
            "config.model.lrn.within_towers=False normalizes across the tower boundary, which "
            "the paper's towers never did (Sec. 3.2); set within_towers=True for model "
            "parallelism"
        )


def layer_names(model: models.AlexNet) -> list[str]:
    """conv1..convN, then the fc layers, the classifier last (the param tree's keys)."""
    n_conv = len(model.conv_features)
    n_fc = len(model.fc_features) + 1
    return [f"conv{i + 1}" for i in range(n_conv)] + [f"fc{n_conv + j + 1}" for j in range(n_fc)]


def _gather(x: jax.Array) -> jax.Array:
    """Both towers' channels, tower 0's first: the arrows that cross between GPUs in Fig. 2."""
    return jax.lax.all_gather(x, "tower", axis=x.ndim - 1, tiled=True)


def _own_channels(x: jax.Array, towers: int) -> jax.Array:
    """This tower's slice [t*C/T, (t+1)*C/T) of replicated maps (no communication)."""
    width = x.shape[-1] // towers
    start = jax.lax.axis_index("tower") * width
    return jax.lax.dynamic_slice_in_dim(x, start, width, axis=x.ndim - 1)


def _tower_forward(
    model: models.AlexNet, towers: int, params: dict, x: jax.Array, train: bool, key
) -> jax.Array:
    """One tower's share of `model` (Fig. 2), inside shard_map: [b, H, W, C] -> [b, classes/T].

    `params` are this tower's slices of the single-device tree. `split` says whether `x`
    holds only this tower's channels; a layer that needs both towers' maps gathers them.
    Dropout masks are drawn from `key` on the gathered inputs, so both towers drop the same
    units (the masks are not the single-device module's: same rate, another draw).
    """
    x, split = x.astype(model.dtype), False
    for i, (g, stride) in enumerate(zip(model.conv_groups, model.conv_stride, strict=True)):
        p = params[f"conv{i + 1}"]
        if split and g == 1:  # conv3: "the kernels of layer 3 take input from all kernel maps"
            x, split = _gather(x), False
        if not split and g > 1:
            x, split = _own_channels(x, towers), True
        kernel, bias = (a.astype(model.dtype) for a in (p["kernel"], p["bias"]))
        groups = g // towers if split else 1
        lowering = conv.resolve_lowering(model.conv_lowering, stride=stride)
        x = conv.grouped_conv(
            x,
            kernel,
            stride=stride,
            padding=model.conv_padding[i],
            groups=groups,
            lowering=lowering,
        )
        x, split = jax.nn.relu(x + bias), True
        n = i + 1
        stages = [("norm", n in model.lrn_after and model.lrn_spec is not None), ("pool", True)]
        for kind, active in stages if model.norm_before_pool else stages[::-1]:
            if kind == "norm" and active:
                s = model.lrn_spec
                x = lrn.local_response_norm(
                    x,
                    size=s.size,
                    k=s.k,
                    alpha=s.alpha,
                    beta=s.beta,
                    convention=s.convention,
                    groups=s.groups // towers,
                )
            if kind == "pool" and n in model.pool_after:
                lowering = pool.resolve_lowering(model.pool_lowering)
                x = pool.max_pool(x, model.pool_window, model.pool_stride, lowering)
    names = layer_names(model)[len(model.conv_features) :]
    for j, name in enumerate(names):
        x = _gather(x)  # fc6, fc7, fc8 see every unit of the layer below (Fig. 2)
        x = x.reshape(x.shape[0], -1)  # [b, H*W*C]: fc6's rows in NHWC order
        if train and name in model.dropout_inputs_of and model.dropout_rate > 0:
            keep = 1.0 - model.dropout_rate
            mask = jax.random.bernoulli(jax.random.fold_in(key, j), keep, x.shape)
            x = jnp.where(mask, x / keep, 0.0).astype(x.dtype)
        kernel, bias = (
            a.astype(model.dtype) for a in (params[name]["kernel"], params[name]["bias"])
        )
        x = x @ kernel + bias
        if j < len(names) - 1:
            x = jax.nn.relu(x)
    return x.astype(jnp.float32)


def tower_apply(model: models.AlexNet, mesh: jax.sharding.Mesh) -> Callable:
    """`model.apply`'s signature, computed as the paper's two towers on `mesh` (Sec. 3.2).

    apply({"params": params}, images [B, H, W, C], train=..., rngs={"dropout": key}) returns
    [B, classes] logits sharded over "batch" and replicated over "tower": the classifier's
    two halves are gathered once more for the softmax, which needs all classes.
    """
    towers = mesh.shape["tower"]
    _check_towers(model, towers)

    def apply(variables, images, *, train: bool, rngs=None):
        params = variables["params"]
        key = rngs["dropout"] if train else jax.random.key(0)
        specs = jax.tree_util.tree_map_with_path(lambda p, x: param_spec(p, x, True), params)

        def body(params, images, key):
            key = jax.random.fold_in(key, jax.lax.axis_index("batch"))  # masks differ per shard
            return _tower_forward(model, towers, params, images, train, key)

        logits = jax.shard_map(
            body,
            mesh=mesh,
            in_specs=(specs, P("batch"), P()),
            out_specs=P("batch", "tower"),
        )(params, images, key)
        return jax.lax.with_sharding_constraint(logits, NamedSharding(mesh, P("batch")))

    return apply


@dataclasses.dataclass(frozen=True)
class Plan:
    """How a run is laid out: the mesh and the forward that runs on it."""

    mesh: jax.sharding.Mesh
    apply_fn: Callable  # model.apply ("data") or tower_apply(model, mesh)

    def place(self, state):
        """The state on the mesh: params and momentum sharded per `param_spec`, the rest copied.

        Every process must pass the same host values (a checkpoint, or the seed's init).
        """
        state = jax.device_get(state.replace(apply_fn=self.apply_fn))  # no alias to donate
        return jax.device_put(state, shardings(state, self.mesh))

    def batch(self, batch: dict) -> dict[str, jax.Array]:
        """The global host batch ([D_local, B/D_local, ...] or [B, ...]) -> arrays on the mesh.

        Every process computes the same global batch (its order is a function of the seed and
        the step) and uploads only the rows its own devices hold in the "batch" split: with P
        processes each owning whole model replicas, rows [p*B/P, (p+1)*B/P).
        """
        sharding = NamedSharding(self.mesh, P("batch"))
        out = {}
        for key, value in batch.items():
            v = np.asarray(value)
            if v.ndim == (0 if key in ("label", "mask") else 3) + 2:  # [D_local, B/D, ...]
                v = v.reshape(-1, *v.shape[2:])
            rows = [
                i[0].indices(len(v))
                for i in sharding.addressable_devices_indices_map(v.shape).values()
            ]
            lo, hi = min(r[0] for r in rows), max(r[1] for r in rows)
            out[key] = jax.make_array_from_process_local_data(sharding, v[lo:hi], v.shape)
        return out

    def jit(self, step_fn: Callable, *, donate: bool):
        """`step_fn(state, batch) -> out` jitted on the mesh, for placed batches (`batch`).

        A returned state keeps `place`'s shardings; `donate` donates the input state.
        """

        def constrained(state, batch):
            out = step_fn(state, batch)
            if isinstance(out, tuple):  # (new state, metrics)
                new = jax.lax.with_sharding_constraint(out[0], shardings(out[0], self.mesh))
                out = (new, *out[1:])
            return out

        return jax.jit(constrained, donate_argnums=(0,) if donate else ())

    def step(self, step_fn: Callable, *, donate: bool) -> Callable:
        """`jit(step_fn)` taking host batches: `step(state, host_batch) -> out`."""
        jitted = self.jit(step_fn, donate=donate)
        return lambda state, batch: jitted(state, self.batch(batch))


def prefetch(batches: Iterator[dict], put: Callable, size: int) -> Iterator[dict]:
    """Host-to-device prefetch: `size` batches already sent (`put`, e.g. `Plan.batch`) ahead of
    the one the step consumes, so the copy overlaps the previous step. The order is unchanged."""
    queue = collections.deque()
    for batch in batches:
        queue.append(put(batch))
        if len(queue) > size:
            yield queue.popleft()
    yield from queue


def create(config, model: models.AlexNet) -> Plan:
    """`config.parallelism` -> the mesh over all devices and the forward to run on it.

    Raises one-line ValueErrors for a parallelism the devices or the config cannot give.
    """
    mesh = make_mesh(config.parallelism, config.model.towers)
    for field in ("global_batch_size", "eval_batch_size"):
        size = config.input[field]
        if size % mesh.shape["batch"]:
            raise InputError(
                f"config.input.{field}={size} is not divisible by the {mesh.shape['batch']} "
                f"model replicas of parallelism={config.parallelism!r}; use a multiple of "
                f"{mesh.shape['batch']}"
            )
    apply_fn = model.apply if mesh.shape["tower"] == 1 else tower_apply(model, mesh)
    return Plan(mesh, apply_fn)
