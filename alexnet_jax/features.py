r"""Features of a named layer (fc7 by default) for a folder of images, batched (Sec. 6.1, Fig. 4).

  python -m alexnet_jax.features --config=configs/bvlc_alexnet.py --checkpoint=bvlc_alexnet.npz \
      --preprocess=caffe --images=DIR --out=feats.npy [--layer=fc7] [--batch=64] [--resize=256]

Writes OUT ([N, ...] float32, one row per image; conv/pool layers keep their [H, W, C]) and
OUT's name with .files.txt (the image paths, relative to DIR, in row order). Layers are the
names of models.activations: conv1, norm1, pool1, ..., fc6, fc7 (after their ReLU, as Caffe's
in-place relu7 leaves the fc7 blob) and logits. --checkpoint is any weights.FORMATS file or a
training workdir. Images: every .jpg/.jpeg/.png/.bmp/.gif under DIR (recursively, sorted).

--preprocess:
  caffe, torchvision  the imported nets' own (weights.preprocess): the shorter side resized to
                      --resize, the central input_size square cropped (Sec. 2, and Sec. 4.1's
                      centre patch), then the convention's channel order, scale and mean.
  config              as evaluation saw its data. In-memory datasets (Fashion-MNIST): resized to
                      the training images' size, config.input.normalize with the training
                      split's statistics, resized to input_size (input_pipeline). Prepared or
                      streamed ones (ImageNet): the image as that pipeline stores it (Sec. 2's
                      rescale and central crop to config.input.image_size: prepare.py's, with
                      its JPEG round trip, or the stream's), the stored statistics, the central
                      input_size crop (augment.eval_preprocess "center").
  (default: caffe for .npy, torchvision for .pth, config otherwise)
"""

import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tensorflow as tf
from absl import flags

from alexnet_jax import (
    architecture,
    augment,
    cli,
    errors,
    files,
    input_pipeline,
    models,
    parallel,
    prepare,
    sources,
    stats,
    stream,
    weight_layouts,
    weights,
)
from alexnet_jax import preprocess as sec2  # Sec. 2's rescale and crop (a flag shares the name)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
PREPROCESS = ("caffe", "torchvision", "config")


def define_flags(fv: flags.FlagValues, argv: list[str]) -> None:
    cli.define_config(fv, argv)
    d = dict(flag_values=fv)
    flags.DEFINE_string(
        "checkpoint", None, "Weights file or training workdir (weights.FORMATS).", **d
    )
    flags.DEFINE_string("images", None, "Directory of images (searched recursively).", **d)
    flags.DEFINE_string("out", None, "Output .npy file of features, one row per image.", **d)
    flags.DEFINE_string(
        "layer", "fc7", "Layer whose output to save (models.activations names).", **d
    )
    flags.DEFINE_integer("batch", 64, "Images per forward pass.", **d)
    flags.DEFINE_integer(
        "resize", 256, "caffe/torchvision: shorter side before the central crop.", **d
    )
    flags.DEFINE_enum(
        "preprocess", None, PREPROCESS, "Input preprocessing (module docstring).", **d
    )
    flags.DEFINE_enum(
        "format", None, weights.FORMATS, "Weights format; default: from the suffix.", **d
    )
    flags.DEFINE_bool(
        "allow_pickle", False, "Allow a pickled bvlc_npy file (trusted files only).", **d
    )
    flags.DEFINE_enum("fc6_rows", "hwc", weight_layouts.FC6_ROWS, "bvlc_npy fc6 row order.", **d)
    flags.mark_flags_as_required(["config", "checkpoint", "images", "out"], **d)


def list_images(directory: str) -> list[str]:
    """Image paths under `directory`, relative to it, sorted."""
    if not os.path.isdir(directory):
        raise errors.MissingFileError(f"image directory {directory} does not exist")
    found = [
        os.path.relpath(os.path.join(root, f), directory)
        for root, _, files in os.walk(directory)
        for f in files
        if f.lower().endswith(IMAGE_SUFFIXES)
    ]
    if not found:
        raise errors.MissingFileError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {directory}")
    return sorted(found)


def read_image(path: str, channels: int) -> tf.Tensor:
    """[H, W, channels] float32 pixels in 0..255 (grey <-> RGB converted by TF as needed)."""
    try:
        img = tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
    except tf.errors.OpError as e:
        raise errors.InputError(
            f"cannot decode image {path}: {e.message.splitlines()[0]}"
        ) from None
    return tf.cast(img, tf.float32)


def centre_crop(img: tf.Tensor, resize: int, size: int) -> tf.Tensor:
    """Shorter side to `resize` (bilinear, antialiased), then the central size x size square:
    Sec. 2's preprocess.resize_small and central_crop."""
    if resize < size:
        raise errors.InputError(f"--resize={resize} is smaller than the model's input_size={size}")
    return sec2.central_crop(sec2.resize_small(img, resize), size)


def make_input_fn(config: ml_collections.ConfigDict, preprocess: str, resize: int):
    """path -> the network's [H, W, C] float32 input, for one of PREPROCESS."""
    m = config.model
    if preprocess in ("caffe", "torchvision"):
        if m.input_channels != 3:
            raise errors.InputError(
                f"--preprocess={preprocess} needs a 3-channel model; config.model.input_channels"
                f"={m.input_channels}: use --preprocess=config"
            )
        return lambda path: weights.preprocess(
            centre_crop(read_image(path, 3), resize, m.input_size).numpy() / 255.0, preprocess
        )
    if preprocess == "config" and input_pipeline.pipeline_of(config.input) != "memory":
        return _stored_input_fn(config)
    if preprocess == "config":
        train = input_pipeline.limit(  # the images training normalised with
            input_pipeline.load(config.input, "train"), config.input.train_limit
        )
        normalize = input_pipeline.normalizer(config.input, train)
        native = train.images.shape[1:3]

        def fn(path):
            img = tf.image.resize(read_image(path, m.input_channels), native, method="bilinear")
            img = tf.image.resize(normalize(img), (m.input_size,) * 2, method="bilinear")
            return img.numpy()  # the order of input_pipeline: normalize, then resize

        return fn
    raise errors.InputError(f"--preprocess={preprocess!r} is unknown; use one of {PREPROCESS}")


def _stored_input_fn(config: ml_collections.ConfigDict):
    """path -> the center crop evaluation reads from prepared or streamed data (ImageNet): the
    image as that pipeline stores it at config.input.image_size (Sec. 2), minus its stored
    statistics, the central input_size window."""
    c, m = config.input, config.model
    pipeline = input_pipeline.pipeline_of(c)
    if pipeline == "synthetic":
        raise errors.InputError(
            "--preprocess=config follows the training data, and config.input.pipeline="
            "'synthetic' has none; use --preprocess=caffe or torchvision"
        )
    directory = c.stats_dir or (
        c.prepared_dir if pipeline == "prepared" else sources.builder(c).data_dir
    )
    normalize = input_pipeline.stats_normalizer(c, stats.load(directory, c))
    center = augment.eval_preprocess(mode="center", size=m.input_size, normalize=normalize)

    def stored(path: str) -> np.ndarray:
        if pipeline == "stream":
            image = stream.fixed_size(read_image(path, m.input_channels), c.image_size).numpy()
        else:  # prepare.py's PIL rescale, and its JPEG round trip where it stores JPEGs
            with open(path, "rb") as f:
                data = f.read()
            try:
                image = prepare.fixed_size(data, c.image_size)
            except OSError as e:
                raise errors.InputError(f"cannot decode image {path}: {e}") from None
            if c.storage == "jpeg":
                image = prepare.decode(prepare.encode(image, c.jpeg_quality))
        return np.asarray(center({"image": image[None]})["image"][0])

    return stored


def load_params(config: ml_collections.ConfigDict, path: str, **read_kw) -> dict:
    """The model's params from any weights file or workdir, checked against the config."""
    model = models.create_model(config)
    template = jax.eval_shape(lambda: models.init_params(model, config, jax.random.key(0)))
    tree = weights.read(path, **read_kw)
    params, _ = weights.adapt(tree, template, what=path, grey=config.init_from.grey)
    return jax.tree.map(jnp.asarray, params)


def extract(
    config: ml_collections.ConfigDict,
    params: dict,
    images_dir: str,
    out: str,
    *,
    layer: str = "fc7",
    batch: int = 64,
    preprocess: str = "config",
    resize: int = 256,
) -> np.ndarray:
    """Writes `layer`'s outputs for every image under `images_dir` to `out`; returns them."""
    model = models.create_model(config)
    one = jnp.zeros(models.input_shape(config, 1), jnp.float32)
    shapes = jax.eval_shape(lambda p: models.activations(model, p, one), params)
    if layer not in shapes:
        order = [n for n, _ in architecture.layer_shapes(config.model)]  # the network's order
        known = order + sorted(set(shapes) - set(order), key=lambda n: (n == "logits", n))
        raise errors.InputError(f"--layer={layer!r} is unknown; use one of {known}")
    if batch < 1:
        raise errors.InputError(f"--batch={batch} must be positive")
    plan = parallel.create(config, model)  # config.parallelism, as in training
    padded = -(-batch // plan.mesh.shape["batch"]) * plan.mesh.shape["batch"]  # whole replicas
    names = list_images(images_dir)
    input_fn = make_input_fn(config, preprocess, resize)
    forward = plan.map(lambda p, b: models.activations(plan.model, p, b["image"])[layer])
    params = plan.place(params)
    t0 = time.time()
    listing = os.path.splitext(out)[0] + ".files.txt"
    # a bad image or Ctrl-C midway: an earlier `out` and its listing stay, both whole
    with files.replaced(out) as tmp, files.replaced(listing) as tmp_listing:
        with open(tmp_listing, "w") as f:
            f.writelines(n + "\n" for n in names)
        feats = np.lib.format.open_memmap(
            tmp, mode="w+", dtype=np.float32, shape=(len(names), *shapes[layer].shape[1:])
        )
        for start in range(0, len(names), batch):
            chunk = names[start : start + batch]
            x = np.stack([input_fn(os.path.join(images_dir, n)) for n in chunk])
            pad = np.zeros((padded - len(chunk), *x.shape[1:]), x.dtype)
            rows = plan.fetch(forward(params, plan.batch({"image": np.concatenate([x, pad])})))
            feats[start : start + len(chunk)] = rows[: len(chunk)]
            done, dt = start + len(chunk), time.time() - t0
            print(
                f"features {layer}: {done}/{len(names)} images  {done / dt:.1f} images/s  "
                f"ETA {(len(names) - done) * dt / done:.0f}s",
                flush=True,
            )
        feats.flush()
    return np.asarray(feats)


def main(fv: flags.FlagValues) -> np.ndarray:
    if not os.path.exists(fv.checkpoint):
        raise errors.MissingFileError(
            f"--checkpoint={fv.checkpoint} does not exist; give a workdir or a weights file"
        )
    fmt = fv.format or weights.infer_format(fv.checkpoint)
    default = {"bvlc_npy": "caffe", "torchvision": "torchvision"}.get(fmt, "config")
    params = load_params(
        fv.config, fv.checkpoint, format=fmt, allow_pickle=fv.allow_pickle, fc6_rows=fv.fc6_rows
    )
    feats = extract(
        fv.config,
        params,
        fv.images,
        fv.out,
        layer=fv.layer,
        batch=fv.batch,
        preprocess=fv.preprocess or default,
        resize=fv.resize,
    )
    print(f"wrote {fv.out}: {feats.shape} float32", flush=True)
    return feats


if __name__ == "__main__":
    cli.run(define_flags, main)
