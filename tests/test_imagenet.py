"""A tiny fake ILSVRC-2012 (tests/fake_ilsvrc.py) through TFDS's imagenet2012 builder, stats.py
and the TFDS stream pipeline (config.input.pipeline="stream", stream.py)."""

import json
import os

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from alexnet_jax import input_pipeline, sources, stats, train
from benchmarks.bench_input import tar_bytes
from tests import fake_ilsvrc
from tests.conftest import load_config

pytestmark = pytest.mark.xdist_group("imagenet")  # module-scoped fixtures: one worker

WNIDS, VAL_WNIDS = fake_ilsvrc.WNIDS, fake_ilsvrc.VAL_WNIDS
_reference_fixed_size = fake_ilsvrc.reference_fixed_size


@pytest.fixture(scope="module")
def fake_ilsvrc_tars(tmp_path_factory):
    """manual/ with the two tars; returns (root, {file name: (wnid, PIL image)}, decoded)."""
    root = tmp_path_factory.mktemp("ilsvrc")
    pictures, decoded = fake_ilsvrc.write(root / "manual")
    return root, pictures, decoded


def _config(root, **input_overrides):
    config = load_config("paper")
    config.model.input_size = 32  # the pipeline only: small images, no 227 net
    config.input.update(
        data_dir=str(root / "tfds"),
        manual_dir=str(root / "manual"),
        image_size=36,
        global_batch_size=2,
        eval_batch_size=2,
        shuffle_buffer=4,
        pipeline="stream",
    )
    config.input.update(**input_overrides)
    return config


@pytest.fixture(scope="module")
def built(fake_ilsvrc_tars):
    root, pictures, decoded = fake_ilsvrc_tars
    config = _config(root)
    return config, sources.prepare(config.input), pictures, decoded


def test_builder_reads_the_tars_and_labels_come_out_right(built):
    config, b, pictures, decoded = built
    assert b.info.splits["train"].num_examples == 7
    assert b.info.splits["validation"].num_examples == 3
    seen = {}
    for ex in tfds.as_numpy(b.as_dataset(split="train")):
        name = ex["file_name"].decode()
        seen[name] = ex
        assert ex["label"] == WNIDS.index(pictures[name][0])  # the class is the inner tar's name
    assert sorted(seen) == sorted(pictures)
    grey = seen["n01440764_3.JPEG"]["image"]
    assert grey.shape == (27, 40, 3) and (grey[..., 0] == grey[..., 2]).all()
    for name in (
        "n01440764_1.JPEG",
        "n01440764_3.JPEG",
        "n01739381_1309.JPEG",
        "n02105855_2933.JPEG",
    ):
        # CMYK -> RGB and PNG -> JPEG by the builder: the colours PIL sees in the originals
        diff = np.abs(seen[name]["image"].astype(float) - decoded[name])
        assert diff.mean() < 3, (name, diff.mean())
    val = {
        ex["file_name"].decode(): ex["label"]
        for ex in tfds.as_numpy(b.as_dataset(split="validation"))
    }
    # the shipped label file, in the order of the sorted file names
    assert val == {f"ILSVRC2012_val_{i:08d}.JPEG": WNIDS.index(VAL_WNIDS[i - 1]) for i in (1, 2, 3)}


def _stats_stem(b) -> str:
    return os.path.join(b.data_dir, "alexnet_stats_36")


def test_statistics_command_then_the_stream_pipeline(built):
    config, b, pictures, decoded = built
    few = config.copy_and_resolve_references()
    few.model.num_classes = 10
    with pytest.raises(ValueError, match="imagenet2012 has 1000 classes but config.model.num_cl"):
        input_pipeline.create(few)
    for suffix in (".npz", ".json"):  # made by the stream test if it ran first
        if os.path.exists(_stats_stem(b) + suffix):
            os.remove(_stats_stem(b) + suffix)
    with pytest.raises(
        FileNotFoundError, match="make them once with `python -m alexnet_jax.stats"
    ) as e:
        input_pipeline.create(config)
    command = str(e.value).split("`")[1].split()
    assert command[:4] == ["python", "-m", "alexnet_jax.stats", "--config=configs/paper.py"]
    stats.run(command[3:])  # the command, in this process
    with open(os.path.join(b.data_dir, "alexnet_stats_36.json")) as f:
        assert json.load(f)["command"] == " ".join(command)
    st = stats.load(b.data_dir, config.input)
    # the mean image: PIL-rescaled, centrally cropped training images, averaged
    train_names = [n for n in pictures]
    want_mean = np.mean([_reference_fixed_size(decoded[n], 36) for n in train_names], axis=0)
    assert st.num_images == 7
    # of the uint8 images training reads (stream.fixed_size), not of the unrounded resize
    np.testing.assert_allclose(st.mean_image * 7, np.round(st.mean_image * 7), atol=1e-3)
    assert np.abs(st.mean_image - want_mean).mean() < 1.5
    pixels = (
        np.concatenate([_reference_fixed_size(decoded[n], 36).reshape(-1, 3) for n in train_names])
        / 255
    )
    np.testing.assert_allclose(st.channel_mean, pixels.mean(0), atol=0.01)

    data = input_pipeline.create(config)
    assert (data.num_train, data.num_eval) == (7, 3)
    # evaluation, "center": Sec. 2's preprocessing minus the mean image, against PIL
    batches = list(data.eval())
    assert [b_["mask"].sum() for b_ in batches] == [2, 1]
    assert batches[0]["image"].shape == (2, 36, 36, 3) and batches[0]["image"].dtype == np.uint8
    center = jax.jit(data.eval_preprocess("center"))  # mean image and crop, on the device
    images = np.concatenate([center(b_)["image"] for b_ in batches])[:3]
    val_names = [f"ILSVRC2012_val_{i:08d}.JPEG" for i in (1, 2, 3)]
    # the stored val order is the builder's; match each image to its reference by label
    labels = np.concatenate([b_["label"] for b_ in batches])[:3]
    for image, label in zip(images, labels, strict=True):
        name = next(n for i, n in enumerate(val_names) if WNIDS.index(VAL_WNIDS[i]) == label)
        want = (_reference_fixed_size(decoded[name], 36) - st.mean_image)[2:34, 2:34]
        assert np.abs(image - want).mean() < 1.5, name
    ten = jax.jit(data.eval_preprocess("ten_crop"))(batches[0])["image"]
    assert ten.shape == (2, 10, 32, 32, 3)
    np.testing.assert_allclose(ten[:, 4], images[:2])  # crop 4 is the center crop


def test_stream_training_order_is_seeded_and_resumes_exactly(built):
    config, b, _, _ = built
    if not os.path.exists(_stats_stem(b) + ".npz"):  # the test above makes them too
        stats.run(stats.command_for(config.input).split()[3:])
    data = input_pipeline.create(config)
    it = data.train(0)
    first = [next(it) for _ in range(6)]  # two epochs of 3 steps (7 images, batch 2)
    assert first[0]["image"].shape == (2, 36, 36, 3)  # uint8; crops are made on the device
    assert [b_["index"].tolist() for b_ in first[:2]] == [[0, 1], [2, 3]]
    resumed = data.train(4)
    for want in first[4:]:
        got = next(resumed)
        np.testing.assert_array_equal(got["image"], want["image"])
        np.testing.assert_array_equal(got["label"], want["label"])
    again = next(input_pipeline.create(config).train(0))
    np.testing.assert_array_equal(again["image"], first[0]["image"])
    epoch0 = np.concatenate([x["image"].reshape(2, -1) for x in first[:3]])
    epoch1 = np.concatenate([x["image"].reshape(2, -1) for x in first[3:]])
    assert not np.array_equal(epoch0, epoch1)  # a new order and new crops each epoch


def test_mean_std_normalisation_is_torchvision_style(tmp_path):
    """config.input.normalize="mean_std": (x / 255 - mean_c) / std_c from the stored stats."""
    c = load_config("paper").input
    c.update(normalize="mean_std", image_size=8)
    rng = np.random.default_rng(0)
    st = stats.from_images(rng.integers(0, 256, (5, 8, 8, 3)))
    x = rng.uniform(0, 255, (8, 8, 3)).astype(np.float32)
    got = input_pipeline.stats_normalizer(c, st)(x)
    want = (x / 255.0 - st.channel_mean) / st.channel_std
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    c.normalize = "mean_image"
    got = input_pipeline.stats_normalizer(c, st)(x)
    np.testing.assert_allclose(got, x - st.mean_image, rtol=1e-6)
    c.update(image_size=16, stats_dir=str(tmp_path))
    stats.save(st, str(tmp_path), 16, "python -m alexnet_jax.stats --config=X")  # mislabelled
    with pytest.raises(
        ValueError, match=r"mean image in .*_16.npz is 8x8 but config.input.image_s"
    ):
        stats.load(str(tmp_path), c)
    c.normalize = "zca"
    with pytest.raises(ValueError, match="config.input.normalize='zca' is unknown"):
        input_pipeline.stats_normalizer(c, st)


def test_bad_inputs_are_one_line(fake_ilsvrc_tars, tmp_path):
    root = fake_ilsvrc_tars[0]
    fresh = dict(data_dir=str(tmp_path / "tfds"))
    cases = [
        (dict(manual_dir=None), ValueError, "config.input.manual_dir is not set"),
        (dict(manual_dir=str(tmp_path)), FileNotFoundError, "ILSVRC2012_img_train.tar is missing"),
        (dict(dataset="imagenet_2012"), ValueError, "TFDS does not know config.input.dataset="),
    ]  # fmt: skip
    for overrides, error, message in cases:
        with pytest.raises(error, match=message) as e:
            input_pipeline.create(_config(root, **{**fresh, **overrides}))
        assert "\n" not in str(e.value)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "ILSVRC2012_img_train.tar").write_text("<html>404 Not Found</html>")
    (bad / "ILSVRC2012_img_val.tar").write_bytes(
        (root / "manual/ILSVRC2012_img_val.tar").read_bytes()
    )
    with pytest.raises(ValueError, match="bad/ILSVRC2012_img_train.tar is not a tar archive"):
        input_pipeline.create(_config(root, manual_dir=str(bad), **fresh))
    # a per-class tar inside the train tar that is not a tar (a truncated download)
    (bad / "ILSVRC2012_img_train.tar").write_bytes(
        tar_bytes({"n01440764.tar": b"\x00garbage" * 99})
    )
    with pytest.raises(ValueError, match="TFDS could not build imagenet2012 from .*bad: ") as e:
        input_pipeline.create(_config(root, manual_dir=str(bad), **fresh))
    assert "\n" not in str(e.value)
    with pytest.raises(
        ValueError,
        match=r"eval_split='val': imagenet2012 has no split 'val'; it has \['train', 'validation'",
    ):
        input_pipeline.create(_config(root, eval_split="val"))  # fmt: skip
    with pytest.raises(ValueError, match=r"eval_split='train\[4:\]' is held out of the training"):
        input_pipeline.create(_config(root, eval_split="train[4:]", train_limit=4))  # stats


@pytest.fixture
def fast_compile():
    """Smoke test only (flax's train_test.py does the same): XLA skips most optimizations."""
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", False)


def test_cifar10_through_one_training_step(tmp_path, fast_compile):
    config = load_config("cifar10", "smoke")
    config.model.conv.features = (16, 32, 32, 32, 32)  # narrower: one step is what is tested
    config.model.fc_features = (64, 64)
    config.input.update(train_limit=None, eval_limit=None)
    config.max_steps = 1
    with tfds.testing.mock_data(num_examples=16):
        summary = train.train_and_evaluate(config, str(tmp_path))
    assert summary["step"] == config.max_steps == 1
    assert 0.0 <= summary["eval/top1_err"] <= 1.0 and np.isfinite(summary["eval/loss"])
    with open(tmp_path / "metrics.jsonl") as f:
        rows = [json.loads(line) for line in f]
    assert np.isfinite(rows[0]["train/loss"]) and rows[0]["step"] == 1


def test_other_tfds_datasets_are_prepared_the_same_way(tmp_path):
    """config.input.dataset="cifar10" through prepare.py (read via TFDS), then the reader."""
    from alexnet_jax import prepare, prepared

    config = load_config("cifar10")
    c = config.input
    c.update(prepared_dir=str(tmp_path), image_size=32, shard_size=4, prepare_workers=1)
    c.storage = "raw"  # the mock images are noise, which JPEG cannot keep
    with tfds.testing.mock_data(num_examples=6):
        prepare.prepare(c, command="test")
        want = input_pipeline.load(c, "train")
    m = prepared.manifest(c)
    assert m["splits"]["train"]["num_examples"] == 6 and m["dataset"] == "cifar10"
    shards = prepared.Shards(str(tmp_path), m["splits"]["train"], m["storage"], 1)
    got = shards.images(np.arange(6))
    np.testing.assert_array_equal(shards.labels, want.labels)
    np.testing.assert_array_equal(got, want.images)  # 32x32 at image_size 32: unchanged
