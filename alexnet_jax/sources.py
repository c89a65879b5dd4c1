"""Where the images come from: TFDS builders, ImageNet from the tars users downloaded (Sec. 2).

`imagenet2012` is built by TFDS's own builder from `config.input.manual_dir`, which must hold
`ILSVRC2012_img_train.tar` (a tar of per-class `<wnid>.tar` files) and `ILSVRC2012_img_val.tar`
(50,000 JPEGs; their labels come from the label file shipped inside tensorflow_datasets, in the
order of the sorted file names). The builder turns the 22 CMYK JPEGs and the one PNG named
.JPEG into RGB JPEGs. Other datasets (cifar10, ...) are whatever TFDS knows by that name,
prepared in `config.input.data_dir` (TFDS downloads them there if they are not, as tfds.load
does). Every bad input is one line naming the path or name and the fix.
"""

import tarfile

import ml_collections
import tensorflow as tf
import tensorflow_datasets as tfds

from alexnet_jax import prepare as prepare_lib
from alexnet_jax.errors import InputError, one_line


def builder(c: ml_collections.ConfigDict) -> tfds.core.DatasetBuilder:
    """`config.input.dataset` -> its TFDS builder in `config.input.data_dir` (None: TFDS's)."""
    try:
        return tfds.builder(c.dataset, data_dir=c.data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise InputError(
            f"TFDS does not know config.input.dataset={c.dataset!r}; use a name from "
            "`tfds.list_builders()` (e.g. 'imagenet2012', 'cifar10') or source='idx' for "
            "Fashion-MNIST's IDX files"
        ) from None


def prepare(c: ml_collections.ConfigDict) -> tfds.core.DatasetBuilder:
    """The dataset's builder, with its TFRecords written (once) if they are not there yet."""
    b = builder(c)
    if c.dataset == "imagenet2012" and not b.is_prepared():
        for split in prepare_lib.TARS:  # one line for a missing or broken tar, not TFDS's
            prepare_lib.imagenet_tar(c.manual_dir, split)
    config = tfds.download.DownloadConfig(manual_dir=c.manual_dir)
    try:
        b.download_and_prepare(download_config=config)
    except (tarfile.TarError, KeyError, ValueError, EOFError, OSError) as e:
        raise InputError(
            f"TFDS could not build {c.dataset} from {c.manual_dir or b.data_dir}: {one_line(e)}; "
            "check the files there (a per-class tar that is not a tar, a class not in ILSVRC's "
            "1000?) and rerun"
        ) from None
    return b


def check_split(b: tfds.core.DatasetBuilder, split: str, field: str) -> None:
    """A one-line error if the dataset has no split named `split` (`field` names the config).

    TFDS's slices ("train[55000:]") name their split before the bracket. No split info at all
    (tfds.testing.mock_data) passes: reading the split will tell.
    """
    name = split.split("[", 1)[0]
    if b.info.splits and name not in b.info.splits:
        have = sorted(map(str, b.info.splits))
        raise InputError(f"{field}={split!r}: {b.name} has no split {name!r}; it has {have}")


def split_spec(b: tfds.core.DatasetBuilder, split: str, limit: int | None) -> str:
    """'train' or, with a limit below the split's size, the TFDS slice 'train[:limit]'."""
    if limit is None or (split in b.info.splits and limit >= b.info.splits[split].num_examples):
        return split
    if "[" in split:
        raise InputError(
            f"a limit of {limit} images on the sliced split {split!r}: give the slice the size "
            "you want instead (e.g. 'train[55000:56000]') and leave the limit None"
        )
    return f"{split}[:{limit}]"


def num_examples(b: tfds.core.DatasetBuilder, split: str, limit: int | None) -> int:
    n = b.info.splits[split].num_examples
    return n if limit is None else min(n, limit)


def records(
    b: tfds.core.DatasetBuilder,
    split: str,
    limit: int | None,
    shuffle_seed: int | None,
    *,
    decode: bool,
) -> tf.data.Dataset:
    """{"image", "label"} examples of a split (or its first `limit`), in a deterministic order.

    decode=False leaves an encoded image feature as its bytes (JPEG, PNG), to be decoded in
    parallel by the pipeline; decode=True gives uint8 [H, W, C]. shuffle_seed=None reads the
    files in order; an int shuffles the file order with that seed (tfds.ReadConfig).
    """
    skip = not decode and isinstance(b.info.features["image"], tfds.features.Image)
    ds = b.as_dataset(
        split=split_spec(b, split, limit),
        shuffle_files=shuffle_seed is not None,
        decoders={"image": tfds.decode.SkipDecoding()} if skip else None,
        read_config=tfds.ReadConfig(shuffle_seed=shuffle_seed, add_tfds_id=False),
    )
    return ds.map(lambda ex: {"image": ex["image"], "label": ex["label"]})
