"""AlexNet (Sec. 3, Fig. 2) as a Flax Linen module, and `create_model(config)`.

Every choice that the paper, Caffe or torchvision make differently is a field of `config.model`
(configs/paper.py documents each one); this module holds no hyper-parameter of its own.
"""

import dataclasses
import functools
import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from alexnet_jax import conv, lrn, pool
from alexnet_jax.errors import InputError

INIT_SCHEMES: tuple[str, ...] = ("gaussian", "pytorch")
DTYPES: dict[str, jnp.dtype] = {
    "float32": jnp.float32,
    "bfloat16": jnp.bfloat16,
    "float64": jnp.float64,
}


@dataclasses.dataclass(frozen=True)
class LRNSpec:
    """Constants of Sec. 3.3's normalization; see `lrn.local_response_norm`."""

    convention: lrn.Convention
    size: int
    k: float
    alpha: float
    beta: float
    groups: int  # 2 = each tower normalizes only its own maps, as on the paper's two GPUs


def _init_pair(scheme: str, std: float, bias: float, fan_in: int) -> tuple:
    """(kernel_init, bias_init) of one layer (Sec. 5; Caffe; PyTorch's default)."""
    if scheme == "gaussian":  # Sec. 5: N(0, std) weights, constant biases
        return nn.initializers.normal(stddev=std), nn.initializers.constant(bias)
    # "pytorch": torch.nn.Conv2d/Linear reset_parameters (kaiming_uniform(a=sqrt(5))), which
    # torchvision's alexnet keeps: weights and biases ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    bound = 1.0 / math.sqrt(fan_in)
    uniform = lambda key, shape, dtype: jax.random.uniform(key, shape, dtype, -bound, bound)  # noqa: E731
    return uniform, uniform


class AlexNet(nn.Module):
    """conv1..conv5 (ReLU, LRN, max-pool where configured), fc6..fc8, logits (Fig. 2).

    Layer i of `conv_*` is `conv{i+1}`; fully connected layers continue the numbering
    (`fc6`, `fc7`, then the classifier `fc8` for five conv layers). `lrn_after` and
    `pool_after` hold 1-based conv indices. Intermediate activations are sown into the
    "intermediates" collection as one dict under "activations", keyed by the paper's names
    (conv1, norm1, pool1, ..., fc7; conv and fc entries are after the ReLU): see `activations`.
    """

    num_classes: int
    conv_features: Sequence[int]
    conv_kernel_size: Sequence[int]
    conv_stride: Sequence[int]
    conv_padding: Sequence[int]
    conv_groups: Sequence[int]
    conv_lowering: str  # "auto" | "native" | "split" | "im2col" | "hybrid" (conv.resolve_lowering)
    fc_features: Sequence[int]
    lrn_spec: LRNSpec | None
    lrn_after: Sequence[int]
    norm_before_pool: bool  # paper: conv, ReLU, norm, pool; CaffeNet: conv, ReLU, pool, norm
    pool_after: Sequence[int]
    pool_window: int
    pool_stride: int
    pool_lowering: str  # "auto" | "reduce_window" | "shifts" (pool.resolve_lowering)
    dropout_rate: float
    dropout_inputs_of: Sequence[str]  # paper: ("fc7", "fc8"), i.e. the outputs of fc6 and fc7
    init_scheme: str
    init_weight_std: Sequence[float]  # one per learned layer, conv1 first
    init_bias: Sequence[float]
    dtype: jnp.dtype = jnp.float32

    def _init(self, i: int, fan_in: int) -> tuple:
        return _init_pair(self.init_scheme, self.init_weight_std[i], self.init_bias[i], fan_in)

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        """[B, H, W, C] images -> [B, num_classes] float32 logits (`train` enables dropout).

        With dtype float64 (numerical checks only, under `jax.enable_x64`) the logits are float64.
        """
        x = x.astype(self.dtype)
        acts = {}  # the paper's names -> activations, sown once at the end
        for i, features in enumerate(self.conv_features):
            n, ksize = i + 1, self.conv_kernel_size[i]
            kernel_init, bias_init = self._init(
                i, ksize * ksize * x.shape[-1] // self.conv_groups[i]
            )
            x = conv.GroupedConv(
                features=features,
                kernel_size=ksize,
                stride=self.conv_stride[i],
                padding=self.conv_padding[i],
                groups=self.conv_groups[i],
                lowering=self.conv_lowering,
                kernel_init=kernel_init,
                bias_init=bias_init,
                dtype=self.dtype,
                name=f"conv{n}",
            )(x)
            x = nn.relu(x)
            acts[f"conv{n}"] = x
            stages = [("norm", self._norm, n in self.lrn_after and self.lrn_spec is not None)]
            stages.append(("pool", self._pool, n in self.pool_after))
            if not self.norm_before_pool:
                stages.reverse()
            for kind, fn, active in stages:
                if active:
                    x = fn(x)
                    acts[f"{kind}{n}"] = x
        x = x.reshape(x.shape[0], -1)  # [B, H*W*C]: fc6's rows are in NHWC order
        first_fc = len(self.conv_features) + 1
        widths = [*self.fc_features, self.num_classes]
        for j, features in enumerate(widths):
            name = f"fc{first_fc + j}"
            if name in self.dropout_inputs_of:
                # Inverted dropout (Sec. 4.2): kept units are scaled by 1/(1-p) in training,
                # which is the paper's "multiply the outputs by 0.5 at test time" moved to train.
                drop = nn.Dropout(
                    self.dropout_rate, deterministic=not train, name=f"dropout_{name}"
                )
                x = drop(x)
            kernel_init, bias_init = self._init(len(self.conv_features) + j, x.shape[-1])
            x = nn.Dense(
                features,
                kernel_init=kernel_init,
                bias_init=bias_init,
                dtype=self.dtype,
                param_dtype=jnp.float32,
                name=name,
            )(x)
            if j < len(self.fc_features):
                x = nn.relu(x)
                acts[name] = x
        self.sow("intermediates", "activations", acts)
        return x.astype(jnp.promote_types(self.dtype, jnp.float32))

    def _norm(self, x: jax.Array) -> jax.Array:
        s = self.lrn_spec
        return lrn.local_response_norm(
            x,
            size=s.size,
            k=s.k,
            alpha=s.alpha,
            beta=s.beta,
            convention=s.convention,
            groups=s.groups,
        )

    def _pool(self, x: jax.Array) -> jax.Array:
        lowering = pool.resolve_lowering(self.pool_lowering)
        return pool.max_pool(x, self.pool_window, self.pool_stride, lowering)


def layer_shapes(m: ml_collections.ConfigDict) -> list[tuple[str, tuple[int, int, int]]]:
    """(name, (H, W, C)) of every stage of `config.model`, computed by arithmetic alone."""
    h, shapes = m.input_size, []
    for i, c in enumerate(m.conv.features):
        n = i + 1
        h = (h + 2 * m.conv.padding[i] - m.conv.kernel_size[i]) // m.conv.stride[i] + 1
        shapes.append((f"conv{n}", (h, h, c)))
        stages = [("norm", m.lrn.enabled and n in m.lrn.after), ("pool", n in m.pool.after)]
        for kind, active in stages if m.norm_before_pool else stages[::-1]:
            if active and kind == "pool":
                h = (h - m.pool.window) // m.pool.stride + 1
            if active:
                shapes.append((f"{kind}{n}", (h, h, c)))
    return shapes


def _with_input_size(m: ml_collections.ConfigDict, size: int) -> ml_collections.ConfigDict:
    m = ml_collections.ConfigDict(m.to_dict())
    m.input_size = size
    return m


def _check(m: ml_collections.ConfigDict) -> None:
    """One-line ValueErrors naming the config.model field that is wrong, and the fix."""
    n_conv = len(m.conv.features)
    for field in ("kernel_size", "stride", "padding", "groups"):
        if len(m.conv[field]) != n_conv:
            raise InputError(
                f"config.model.conv.{field} has {len(m.conv[field])} entries but "
                f"config.model.conv.features has {n_conv}; give one per conv layer"
            )
    channels = [m.input_channels, *m.conv.features]
    for i, g in enumerate(m.conv.groups):
        if g < 1 or channels[i] % g or channels[i + 1] % g:
            raise InputError(
                f"config.model.conv.groups[{i}]={g} must divide conv{i + 1}'s input channels "
                f"({channels[i]}) and config.model.conv.features[{i}]={channels[i + 1]}"
            )
    if m.lrn.enabled and m.lrn.convention not in lrn.CONVENTIONS:
        raise InputError(
            f"config.model.lrn.convention={m.lrn.convention!r} is unknown; use one of "
            f"{lrn.CONVENTIONS}"
        )
    if m.lrn.enabled and (m.lrn.size < 1 or m.lrn.size % 2 == 0):
        raise InputError(f"config.model.lrn.size={m.lrn.size} must be a positive odd number")
    if m.lrn.enabled and m.lrn.within_towers:
        for n in m.lrn.after:
            if m.conv.features[n - 1] % m.towers:
                raise InputError(
                    f"config.model.towers={m.towers} does not divide conv{n}'s "
                    f"{m.conv.features[n - 1]} channels, needed by config.model.lrn.within_towers"
                )
    for field, after in (("lrn.after", m.lrn.after), ("pool.after", m.pool.after)):
        if any(not 1 <= n <= n_conv for n in after):
            raise InputError(
                f"config.model.{field}={tuple(after)} must hold conv indices 1..{n_conv}"
            )
    n_layers = n_conv + len(m.fc_features) + 1
    if m.init.scheme not in INIT_SCHEMES:
        raise InputError(
            f"config.model.init.scheme={m.init.scheme!r} is unknown; use one of {INIT_SCHEMES}"
        )
    for field in ("weight_std", "bias"):
        if len(m.init[field]) != n_layers:
            raise InputError(
                f"config.model.init.{field} has {len(m.init[field])} entries; give one per "
                f"learned layer ({n_layers}: conv1..conv{n_conv}, then the fc layers)"
            )
    if m.dtype not in DTYPES:
        raise InputError(f"config.model.dtype={m.dtype!r} is unknown; use one of {tuple(DTYPES)}")
    if m.dtype == "float64" and not jax.config.jax_enable_x64:
        raise InputError(
            "config.model.dtype='float64' is for numerical checks under jax.enable_x64 only; "
            "use 'float32' or 'bfloat16'"
        )
    if not 0.0 <= m.dropout.rate < 1.0:
        raise InputError(f"config.model.dropout.rate={m.dropout.rate} must be in [0, 1)")
    conv.resolve_lowering(m.conv.lowering)
    pool.resolve_lowering(m.pool.get("lowering", "auto"))  # runs saved before the field: auto
    shapes = layer_shapes(m)
    bad = next((name for name, (h, _, _) in shapes if h < 1), None)
    if bad is not None:
        fits = lambda s: min(h for _, (h, _, _) in layer_shapes(_with_input_size(m, s))) >= 1  # noqa: E731
        smallest = next(s for s in range(m.input_size + 1, 100_000) if fits(s))
        raise InputError(
            f"config.model.input_size={m.input_size} is too small: {bad} would have no output "
            f"pixels; use input_size >= {smallest}"
        )


def create_model(config: ml_collections.ConfigDict) -> AlexNet:
    """The Linen module that `config.model` describes; bad fields fail here, in one line."""
    m = config.model
    _check(m)
    spec = None
    if m.lrn.enabled:
        spec = LRNSpec(
            convention=m.lrn.convention,
            size=m.lrn.size,
            k=m.lrn.k,
            alpha=m.lrn.alpha,
            beta=m.lrn.beta,
            groups=m.towers if m.lrn.within_towers else 1,
        )
    return AlexNet(
        num_classes=m.num_classes,
        conv_features=tuple(m.conv.features),
        conv_kernel_size=tuple(m.conv.kernel_size),
        conv_stride=tuple(m.conv.stride),
        conv_padding=tuple(m.conv.padding),
        conv_groups=tuple(m.conv.groups),
        conv_lowering=m.conv.lowering,
        fc_features=tuple(m.fc_features),
        lrn_spec=spec,
        lrn_after=tuple(m.lrn.after),
        norm_before_pool=m.norm_before_pool,
        pool_after=tuple(m.pool.after),
        pool_window=m.pool.window,
        pool_stride=m.pool.stride,
        pool_lowering=m.pool.get("lowering", "auto"),
        dropout_rate=m.dropout.rate,
        dropout_inputs_of=tuple(m.dropout.inputs_of),
        init_scheme=m.init.scheme,
        init_weight_std=tuple(m.init.weight_std),
        init_bias=tuple(m.init.bias),
        dtype=DTYPES[m.dtype],
    )


def input_shape(config: ml_collections.ConfigDict, batch: int) -> tuple[int, int, int, int]:
    """[B, H, W, C] of the images `create_model(config)` expects."""
    m = config.model
    return (batch, m.input_size, m.input_size, m.input_channels)


@functools.partial(jax.jit, static_argnums=0)
def _init(model: AlexNet, key: jax.Array, images: jax.Array) -> dict:
    # One compiled init per model and input shape in a process (compiling it costs seconds).
    return model.init(key, images, train=False)["params"]


def init_params(model: AlexNet, config: ml_collections.ConfigDict, key: jax.Array) -> dict:
    """The parameter tree {conv1..conv5, fc6..fc8: {kernel, bias}}, float32."""
    return _init(model, key, jnp.zeros(input_shape(config, 1), jnp.float32))


def count_params(params: dict) -> int:
    """Number of learned scalars (weights + biases)."""
    return sum(p.size for p in jax.tree_util.tree_leaves(params))


def activations(model: AlexNet, params: dict, images: jax.Array) -> dict[str, jax.Array]:
    """Every stage's output at eval (conv1, norm1, pool1, ..., fc7, and "logits")."""
    logits, state = model.apply({"params": params}, images, train=False, mutable=["intermediates"])
    return {**state["intermediates"]["activations"][0], "logits": logits}
