"""What `config.model` describes, by arithmetic alone: Fig. 2's stages in order, each stage's
output shape, and the one-line checks of every config.model field (Sec. 3). No Flax here:
models.py builds the network from the same stages.
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import ml_collections

from alexnet_jax import conv, errors, lrn, pool

INIT_SCHEMES: tuple[str, ...] = ("gaussian", "pytorch", "he")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float64": jnp.float64}  # 64: checks
# config.model.precision -> the `precision` of every conv and dense (configs/paper.py)
PRECISIONS: dict[str, str | None] = {"default": None, "high": "high", "highest": "highest"}


def stages(
    n_conv: int, n_fc: int, lrn_after: Sequence[int], pool_after: Sequence[int], norm_first: bool
) -> list[tuple[str, int]]:
    """Fig. 2's stages in order as (kind, layer): ("conv", 1), ("norm", 1), ("pool", 1), ...,
    ("fc", n_conv + 1), ..., the classifier last. `__call__`, `layer_shapes` and `layer_names`
    all read this list; a stage's name is kind + layer ("pool5", "fc7")."""
    out = []
    for n in range(1, n_conv + 1):
        after = [k for k, on in (("norm", n in lrn_after), ("pool", n in pool_after)) if on]
        out += [("conv", n)] + [(k, n) for k in (after if norm_first else after[::-1])]
    return out + [("fc", n_conv + 1 + j) for j in range(n_fc)]


def layer_shapes(m: ml_collections.ConfigDict) -> list[tuple[str, tuple[int, int, int]]]:
    """(name, (H, W, C)) of every conv, norm and pool stage of `config.model`, by arithmetic."""
    lrn_after = m.lrn.after if m.lrn.enabled else ()
    n_conv, h, c, shapes = len(m.conv.features), m.input_size, 0, []
    for kind, n in stages(n_conv, 0, lrn_after, m.pool.after, m.norm_before_pool):
        if kind == "conv":
            i, c = n - 1, m.conv.features[n - 1]
            h = (h + 2 * m.conv.padding[i] - m.conv.kernel_size[i]) // m.conv.stride[i] + 1
        if kind == "pool":
            h = (h - m.pool.window) // m.pool.stride + 1
        shapes.append((f"{kind}{n}", (h, h, c)))
    return shapes


def _with_input_size(m: ml_collections.ConfigDict, size: int) -> ml_collections.ConfigDict:
    m = ml_collections.ConfigDict(m.to_dict())
    m.input_size = size
    return m


def check(m: ml_collections.ConfigDict) -> None:
    """One-line InputErrors naming the config.model field that is wrong, and the fix."""
    n_conv = len(m.conv.features)
    for field in ("kernel_size", "stride", "padding", "groups"):
        if len(m.conv[field]) != n_conv:
            raise errors.InputError(
                f"config.model.conv.{field} has {len(m.conv[field])} entries but "
                f"config.model.conv.features has {n_conv}; give one per conv layer"
            )
    for field, low in (("kernel_size", 1), ("stride", 1), ("padding", 0)):
        for i, v in enumerate(m.conv[field]):
            if v < low:
                raise errors.InputError(f"config.model.conv.{field}[{i}]={v} must be >= {low}")
    for field in ("window", "stride"):
        if m.pool[field] < 1:
            raise errors.InputError(f"config.model.pool.{field}={m.pool[field]} must be >= 1")
    if m.towers < 1:
        raise errors.InputError(f"config.model.towers={m.towers} must be >= 1 (the paper: 2)")
    for field, after in (("lrn.after", m.lrn.after), ("pool.after", m.pool.after)):
        if any(not 1 <= n <= n_conv for n in after):
            raise errors.InputError(
                f"config.model.{field}={tuple(after)} must hold conv indices 1..{n_conv}"
            )
    channels = [m.input_channels, *m.conv.features]
    for i, g in enumerate(m.conv.groups):
        if g < 1 or channels[i] % g or channels[i + 1] % g:
            raise errors.InputError(
                f"config.model.conv.groups[{i}]={g} must divide conv{i + 1}'s input channels "
                f"({channels[i]}) and config.model.conv.features[{i}]={channels[i + 1]}"
            )
    if m.lrn.enabled and m.lrn.convention not in lrn.CONVENTIONS:
        raise errors.InputError(
            f"config.model.lrn.convention={m.lrn.convention!r} is unknown; use one of "
            f"{lrn.CONVENTIONS}"
        )
    if m.lrn.enabled and (m.lrn.size < 1 or m.lrn.size % 2 == 0):
        raise errors.InputError(f"config.model.lrn.size={m.lrn.size} must be a positive odd number")
    if m.lrn.enabled and m.lrn.within_towers:
        for n in m.lrn.after:
            if m.conv.features[n - 1] % m.towers:
                raise errors.InputError(
                    f"config.model.towers={m.towers} does not divide conv{n}'s "
                    f"{m.conv.features[n - 1]} channels, needed by config.model.lrn.within_towers"
                )
    n_layers = n_conv + len(m.fc_features) + 1
    fcs = [f"fc{n}" for n in range(n_conv + 1, n_layers + 1)]
    for name in m.dropout.inputs_of:
        if name not in fcs:
            raise errors.InputError(
                f"config.model.dropout.inputs_of names {name!r}; it takes fc layers, of {fcs}"
            )
    if m.init.scheme not in INIT_SCHEMES:
        raise errors.InputError(
            f"config.model.init.scheme={m.init.scheme!r} is unknown; use one of {INIT_SCHEMES}"
        )
    for field in ("weight_std", "bias"):
        if len(m.init[field]) != n_layers:
            raise errors.InputError(
                f"config.model.init.{field} has {len(m.init[field])} entries; give one per "
                f"learned layer ({n_layers}: conv1..conv{n_conv}, then the fc layers)"
            )
    if m.get("precision", "default") not in PRECISIONS:
        raise errors.InputError(
            f"config.model.precision={m.precision!r} is unknown; use one of {tuple(PRECISIONS)}"
        )
    if m.dtype not in DTYPES or (m.dtype == "float64" and not jax.config.jax_enable_x64):
        raise errors.InputError(  # float64 is for the tests' numerical checks (enable_x64)
            f"config.model.dtype={m.dtype!r} is unknown; use 'float32' or 'bfloat16'"
        )
    if not 0.0 <= m.dropout.rate < 1.0:
        raise errors.InputError(f"config.model.dropout.rate={m.dropout.rate} must be in [0, 1)")
    # the names only: resolving "auto" asks JAX for its backend, which must wait for a
    # multi-host run's jax.distributed.initialize (main.py checks the config before it)
    lowerings = (
        ("conv.lowering", m.conv.lowering, conv.LOWERINGS),
        ("pool.lowering", m.pool.get("lowering", "auto"), pool.LOWERINGS),  # older runs: auto
    )
    for field, value, known in lowerings:
        if value not in known:
            raise errors.InputError(f"config.model.{field}={value!r} is unknown; use {known}")
    shapes = layer_shapes(m)
    bad = next((name for name, (h, _, _) in shapes if h < 1), None)
    if bad is not None:
        fits = lambda s: min(h for _, (h, _, _) in layer_shapes(_with_input_size(m, s))) >= 1  # noqa: E731
        smallest = next(s for s in range(m.input_size + 1, 100_000) if fits(s))
        raise errors.InputError(
            f"config.model.input_size={m.input_size} is too small: {bad} would have no output "
            f"pixels; use input_size >= {smallest}"
        )
