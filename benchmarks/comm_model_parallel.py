r"""Bytes moved between the two towers per image, read from the compiled program (Sec. 3.2).

  python -m benchmarks.comm_model_parallel                       # paper.py, batch 128
  python -m benchmarks.comm_model_parallel --config=fashion_mnist --batch=8

Compiles (never runs) the model-parallel train step and eval step for 2 devices, lists every
collective in the compiled HLO with the bytes it moves, and checks the total against the count
derived from Fig. 2 (`fig2_values`). Exits 1 if they differ. Needs 2 devices: on a CPU-only
machine it sets XLA_FLAGS=--xla_force_host_platform_device_count=2 itself.

The count from Fig. 2 (float32, per image; "moved" counts both directions of the link):
  The towers exchange exactly the inputs of the layers whose kernels "take input from all
  kernel maps" of the layer below: conv3, fc6, fc7, fc8. Each tower holds half of those maps
  and must receive the other half, so the whole input crosses the link once:
    conv3 input  13 x 13 x 256 (pool2)  43,264 values
    fc6 input     6 x  6 x 256 (pool5)   9,216
    fc7 input    4096 (fc6's outputs)    4,096
    fc8 input    4096 (fc7's outputs)    4,096
    total                               60,672 values = 242,688 bytes
  Fig. 2 ends in one 1000-way softmax; each tower computes 500 of the logits, so they are
  gathered too: 1,000 values = 4,000 bytes (ours: the paper does not draw it).
  Backward, the gradient of each gathered input goes back the same way (each tower sums its
  own half from both towers' partial gradients: a reduce-scatter), another 60,672 values; the
  softmax's gradient needs no exchange (both towers hold all logits). No parameter or
  parameter gradient ever crosses: every kernel and bias lives on one tower only.
    eval step (forward)  61,672 values = 246,688 bytes per image
    train step          122,344 values = 489,376 bytes per image (62.6 MB per batch of 128)
"""

import argparse
import functools
import importlib
import importlib.util
import math
import os
import re
import sys

import numpy as np

from alexnet_jax import architecture, models, parallel, train

_OPS = ("all-gather", "reduce-scatter", "all-reduce", "collective-permute", "all-to-all")
_DTYPE_BYTES = {"f32": 4, "bf16": 2, "f16": 2, "s32": 4, "u32": 4, "f64": 8, "pred": 1, "u8": 1}
_LINE = re.compile(
    r"=\s*(?P<shape>\(.*?\)|\w+\[[\d,]*\])(?:\{[^}]*\})?\s+(?P<op>"
    + "|".join(_OPS)
    + r")\((?P<rest>.*)$"
)


def _bytes(shape: str) -> int:
    """'f32[8,6,6,16]' or a tuple of them -> bytes."""
    total = 0
    for dtype, dims in re.findall(r"(\w+)\[([\d,]*)\]", shape):
        total += _DTYPE_BYTES[dtype] * math.prod(int(d) for d in dims.split(",") if d)
    return total


def _group_size(rest: str) -> int:
    """Devices per replica group, from any of XLA's three spellings of replica_groups."""
    if m := re.search(r"replica_groups=\{\{([\d,]*)\}", rest):  # {{0,1},{2,3}}
        return len(m.group(1).split(","))
    if m := re.search(r"replica_groups=\[(\d+),(\d+)\]<=", rest):  # [groups,size]<=[n]
        return int(m.group(2))
    if m := re.search(r"replica_groups=mesh\[([^\]]*)\]\s*\{([^}]*)\}", rest):  # named axes
        sizes = dict(re.findall(r"'(\w+)'=(\d+)", m.group(1)))
        return math.prod(int(sizes[a]) for a in re.findall(r"'(\w+)'", m.group(2)))
    raise ValueError(f"cannot read replica_groups in: {rest[:200]}")


def collectives(hlo: str) -> list[dict]:
    """Every collective of a compiled HLO module, with the bytes it moves between devices.

    "moved" is the sum over both directions for one group of n devices, by the direct
    algorithm: an all-gather of result R moves R*(n-1); a reduce-scatter of result S moves
    S*n*(n-1); an all-reduce of A moves 2*A*(n-1) (reduce-scatter then all-gather). n=1
    (a group of one device, e.g. a mesh axis of size 1) moves nothing.
    """
    out = []
    for line in hlo.splitlines():
        m = _LINE.search(line)
        if not m:
            continue
        n, size, op = _group_size(m.group("rest")), _bytes(m.group("shape")), m.group("op")
        moved = {
            "all-gather": size * (n - 1),
            "reduce-scatter": size * n * (n - 1),
            "all-reduce": 2 * size * (n - 1),
        }.get(op, size * (n - 1))
        out.append({"op": op, "shape": m.group("shape"), "group": n, "moved": moved})
    return out


def fig2_values(m) -> dict[str, int]:
    """Values per image the towers exchange in the forward pass, from Fig. 2's wiring.

    `m` is config.model. A layer takes input from both towers when it is a conv with groups=1
    after the first (conv3) or a fully connected layer; its whole input crosses once. The
    logits are gathered for the softmax.
    """
    shapes = dict(architecture.layer_shapes(m))
    last_stage = {}
    for name, shape in shapes.items():  # the last stage (conv, norm or pool) of each conv layer
        last_stage[int(re.sub(r"\D", "", name))] = shape
    values = {}
    for i, g in enumerate(m.conv.groups):
        if i > 0 and g == 1:
            values[f"conv{i + 1}"] = math.prod(last_stage[i])
    n_conv = len(m.conv.features)
    inputs = [math.prod(last_stage[n_conv]), *m.fc_features]
    for j, size in enumerate(inputs):
        values[f"fc{n_conv + 1 + j}"] = size
    values["logits"] = m.num_classes
    return values


def expected_bytes(m) -> dict[str, int]:
    """Fig. 2's count in bytes per image: the eval step (forward) and the train step."""
    values = fig2_values(m)
    acts = sum(v for k, v in values.items() if k != "logits")
    itemsize = 2 if m.dtype == "bfloat16" else 4
    logits = 4 * values["logits"]  # logits are float32 whatever the compute dtype
    return {"eval": itemsize * acts + logits, "train": 2 * itemsize * acts + logits}


def measure(config, batch: int) -> dict:
    """Compiles the model-parallel train and eval steps; bytes moved per image in each."""
    import jax

    config.parallelism = "model"
    model = models.create_model(config)
    plan = parallel.create(config, model)
    state = jax.eval_shape(lambda: train.create_state(config, jax.random.key(0), model=model))
    state = state.replace(apply_fn=plan.model.apply)
    shape = models.input_shape(config, batch)
    images = jax.ShapeDtypeStruct(shape, np.float32)
    labels = jax.ShapeDtypeStruct((batch,), np.int32)
    batches = {
        "train": {"image": images, "label": labels},
        "eval": {"image": images, "label": labels, "mask": labels.update(dtype=np.float32)},
    }
    state, batches = jax.tree.map(
        lambda x, s: x.update(sharding=s),
        (state, batches),
        parallel.shardings((state, batches), plan.mesh),
    )
    steps = {
        "train": functools.partial(train.train_step, dropout_key=jax.random.key(0)),
        "eval": train.eval_step,
    }
    out = {}
    for name, fn in steps.items():
        hlo = plan.map(fn).lower(state, batches[name]).compile().as_text()
        found = collectives(hlo)
        out[name] = {"collectives": found, "per_image": sum(c["moved"] for c in found) / batch}
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="paper")
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args(argv)
    if importlib.util.find_spec(f"configs.{args.config}") is None:
        parser.error(f"--config={args.config}: there is no configs/{args.config}.py")
    if "--xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        flags = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
        os.environ["XLA_FLAGS"] = flags.strip()
    config = importlib.import_module(f"configs.{args.config}").get_config()
    want = expected_bytes(config.model)
    got = measure(config, args.batch)
    print(f"configs/{args.config}.py, batch {args.batch}, parallelism='model' on 2 devices")
    print("Fig. 2 values per image exchanged forward:", fig2_values(config.model))
    ok = True
    for name in ("eval", "train"):
        print(f"\n{name} step: collectives in the compiled HLO (bytes moved per image)")
        for c in got[name]["collectives"]:
            shape = c["shape"] if len(c["shape"]) < 40 else f"({c['shape'].count('[')} arrays)"
            per_image = c["moved"] / args.batch
            print(f"  {c['op']:<15} {shape:<28} group {c['group']}  {per_image:>10,.0f}")
        match = got[name]["per_image"] == want[name]
        ok &= match
        print(
            f"  total {got[name]['per_image']:,.0f} bytes/image; Fig. 2 says {want[name]:,} "
            f"-> {'OK' if match else 'MISMATCH'}; {got[name]['per_image'] * args.batch / 1e6:.1f} "
            f"MB per batch of {args.batch}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
