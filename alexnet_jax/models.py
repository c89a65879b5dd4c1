"""AlexNet (Sec. 3, Fig. 2) as a Flax Linen module, and `create_model(config)`.

Every choice that the paper, Caffe or torchvision make differently is a field of `config.model`
(configs/paper.py documents each one); this module holds no hyper-parameter of its own. The
stages' order and shapes, and the checks of config.model, are arithmetic: architecture.py.
"""

import dataclasses
import functools
import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from alexnet_jax import architecture, conv, lrn, pool


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
    """(kernel_init, bias_init) of one layer (Sec. 5; Caffe; PyTorch's default; He et al.)."""
    if scheme == "gaussian":  # Sec. 5: N(0, std) weights, constant biases
        return nn.initializers.normal(stddev=std), nn.initializers.constant(bias)
    if scheme == "he":  # He et al. 2015: N(0, 2 / fan_in) weights, zero biases (kaiming_normal_)
        return nn.initializers.normal(stddev=math.sqrt(2.0 / fan_in)), nn.initializers.zeros
    # "pytorch": torch.nn.Conv2d/Linear reset_parameters (kaiming_uniform(a=sqrt(5))), which
    # torchvision's alexnet keeps: weights and biases ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    bound = 1.0 / math.sqrt(fan_in)
    uniform = lambda key, shape, dtype: jax.random.uniform(key, shape, dtype, -bound, bound)  # noqa: E731
    return uniform, uniform


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _gather_for_softmax(x: jax.Array, axis: str) -> jax.Array:
    """All towers' logits on every tower. Everything after it is computed identically on each
    tower, so the gradient is this tower's slice of the (identical) cotangents, not their sum."""
    return jax.lax.all_gather(x, axis, axis=x.ndim - 1, tiled=True)


def _gather_fwd(x, axis):
    return _gather_for_softmax(x, axis), None


def _gather_bwd(axis, _, dy):
    width = dy.shape[-1] // jax.lax.axis_size(axis)
    start = jax.lax.axis_index(axis) * width
    return (jax.lax.dynamic_slice_in_dim(dy, start, width, axis=dy.ndim - 1),)


_gather_for_softmax.defvjp(_gather_fwd, _gather_bwd)


class AlexNet(nn.Module):
    """conv1..conv5 (ReLU, LRN, max-pool where configured), fc6..fc8, logits (Fig. 2).

    Written per device, as the paper's GPUs ran it (Sec. 3.2). Outside any mapping, or with
    `tower_axis=None`, one device runs both towers. Under `jax.shard_map` with `tower_axis`
    naming a mesh axis of size T, each device holds 1/T of every layer's kernels (the output
    channels of its tower, `parallel.param_spec`) and runs only its tower's share; the towers
    exchange activations only at Fig. 2's arrows: the inputs of conv3 (a conv with groups=1
    after a split layer) and of fc6, fc7, fc8 (all-gather over `tower_axis`), and the logits
    for the softmax. `batch_axis` names the mesh or pmap axis that splits the batch: dropout
    masks depend on (key, global example index, unit) alone, so every layout draws the same.

    Layer i of `conv_*` is `conv{i+1}`; fully connected layers continue the numbering. Stage
    outputs (conv and fc after the ReLU; all channels, gathered across towers) are sown into
    "intermediates" as one dict under "activations" (see `activations`), and in training the
    dropout masks as one dict under "dropout_masks", keyed by the layer whose input they drop.
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
    precision: str | None = None  # None (JAX's default), "high" or "highest": PRECISIONS
    tower_axis: str | None = None  # the mesh axis splitting the towers (parallel.py)
    batch_axis: str | None = None  # the mesh/pmap axis splitting the batch (parallel.py)

    def stages(self) -> list[tuple[str, int]]:
        lrn_after = self.lrn_after if self.lrn_spec is not None else ()
        n_fc = len(self.fc_features) + 1
        args = (n_fc, lrn_after, self.pool_after, self.norm_before_pool)
        return architecture.stages(len(self.conv_features), *args)

    def _init(self, i: int, fan_in: int) -> tuple:
        return _init_pair(self.init_scheme, self.init_weight_std[i], self.init_bias[i], fan_in)

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        """[b, H, W, C] images -> [b, num_classes] float32 (float64) logits; `train`: dropout."""
        towers = jax.lax.axis_size(self.tower_axis) if self.tower_axis else 1
        x, split = x.astype(self.dtype), False  # split: x holds only this tower's channels
        acts, masks = {}, {}
        for kind, n in self.stages():
            if kind == "conv":
                x, split = self._conv(x, n - 1, split, towers)
            elif kind == "norm":
                x = self._norm(x, towers)
            elif kind == "pool":
                x = self._pool(x)
            else:
                x, split = self._fc(x, n, split, towers, train, masks), towers > 1
            last = kind == "fc" and n == len(self.conv_features) + len(self.fc_features) + 1
            if not last and self.is_mutable_collection("intermediates"):
                acts[f"{kind}{n}"] = self._gather(x, towers) if split else x
        self.sow("intermediates", "activations", acts)
        if masks:
            self.sow("intermediates", "dropout_masks", masks)
        if towers > 1:
            x = _gather_for_softmax(x, self.tower_axis)
        return x.astype(jnp.promote_types(self.dtype, jnp.float32))

    def _gather(self, x: jax.Array, towers: int) -> jax.Array:
        """Both towers' channels, tower 0's first: an arrow that crosses between GPUs in Fig. 2."""
        if towers == 1:
            return x
        return jax.lax.all_gather(x, self.tower_axis, axis=x.ndim - 1, tiled=True)

    def _conv(self, x: jax.Array, i: int, split: bool, towers: int) -> tuple[jax.Array, bool]:
        g = self.conv_groups[i]
        if split and g == 1:  # conv3: "the kernels of layer 3 take input from all kernel maps"
            x, split = self._gather(x, towers), False
        if not split and g > 1 and towers > 1:  # a grouped conv on whole maps: its tower's part
            width = x.shape[-1] // towers
            start = jax.lax.axis_index(self.tower_axis) * width
            x, split = jax.lax.dynamic_slice_in_dim(x, start, width, axis=x.ndim - 1), True
        groups = g // towers if split else g
        ksize = self.conv_kernel_size[i]
        kernel_init, bias_init = self._init(i, ksize * ksize * x.shape[-1] // groups)
        x = conv.GroupedConv(
            features=self.conv_features[i] // towers,
            kernel_size=ksize,
            stride=self.conv_stride[i],
            padding=self.conv_padding[i],
            groups=groups,
            lowering=self.conv_lowering,
            kernel_init=kernel_init,
            bias_init=bias_init,
            dtype=self.dtype,
            precision=self.precision,
            name=f"conv{i + 1}",
        )(x)
        return nn.relu(x), towers > 1

    def _fc(self, x, n: int, split: bool, towers: int, train: bool, masks: dict) -> jax.Array:
        """fc6, fc7 (ReLU) or the classifier: every unit of the layer below in (Fig. 2)."""
        if split:
            x = self._gather(x, towers)
        x = x.reshape(x.shape[0], -1)  # [b, H*W*C]: fc6's rows are in NHWC order
        name = f"fc{n}"
        if train and name in self.dropout_inputs_of and self.dropout_rate > 0:
            x, masks[name] = self._dropout(x)
        j = n - len(self.conv_features) - 1
        widths = [*self.fc_features, self.num_classes]
        kernel_init, bias_init = self._init(n - 1, x.shape[-1])
        x = nn.Dense(
            widths[j] // towers,
            kernel_init=kernel_init,
            bias_init=bias_init,
            dtype=self.dtype,
            param_dtype=jnp.float32,
            precision=self.precision,
            name=name,
        )(x)
        return nn.relu(x) if j < len(self.fc_features) else x

    def _dropout(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Inverted dropout (Sec. 4.2): kept units scaled by 1/(1-p) in training, the paper's
        "multiply the outputs by 0.5 at test time" moved to training. Example r of the global
        batch keeps unit u by the bit (fold_in(key, r), u), whichever device holds it."""
        key, b = self.make_rng("dropout"), x.shape[0]
        first = jax.lax.axis_index(self.batch_axis) * b if self.batch_axis else 0
        keep = 1.0 - self.dropout_rate
        draw = lambda r: jax.random.bernoulli(jax.random.fold_in(key, r), keep, x.shape[1:])  # noqa: E731
        mask = jax.vmap(draw)(first + jnp.arange(b))
        return jnp.where(mask, x / keep, 0.0).astype(x.dtype), mask

    def _norm(self, x: jax.Array, towers: int) -> jax.Array:
        s = self.lrn_spec
        return lrn.local_response_norm(
            x,
            size=s.size,
            k=s.k,
            alpha=s.alpha,
            beta=s.beta,
            convention=s.convention,
            groups=s.groups // towers,
        )

    def _pool(self, x: jax.Array) -> jax.Array:
        lowering = pool.resolve_lowering(self.pool_lowering)
        return pool.max_pool(x, self.pool_window, self.pool_stride, lowering)


def layer_names(model: AlexNet) -> list[str]:
    """The learned layers, conv1..convN then the fc layers, the classifier last (param keys)."""
    return [f"{kind}{n}" for kind, n in model.stages() if kind in ("conv", "fc")]


def create_model(config: ml_collections.ConfigDict) -> AlexNet:
    """The Linen module that `config.model` describes; bad fields fail here, in one line."""
    m = config.model
    architecture.check(m)
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
        dtype=architecture.DTYPES[m.dtype],
        precision=architecture.PRECISIONS[
            m.get("precision", "default")
        ],  # runs saved before the field
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
