"""prepare.py and the "prepared" pipeline on a tiny fake ILSVRC (tests/fake_ilsvrc.py), no TF.

Images are 36x36 here (image_size), crops 32: the formulas are the paper's 256 and 227.
"""

import errno
import filecmp
import json
import os
import re
import shutil
import tarfile

import jax
import numpy as np
import pytest

from alexnet_jax import files, idx, input_pipeline, prepare, prepared, stats
from alexnet_jax.errors import InputError
from benchmarks.bench_input import tar_bytes
from tests import fake_ilsvrc
from tests.conftest import load_config

pytestmark = pytest.mark.xdist_group("prepare")  # module-scoped fixtures: one worker

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
S = 36  # config.input.image_size
JPEG_TOLERANCE = 3.0  # mean |stored - PIL reference| in levels at quality 90, 36x36 images


def _config(root, **overrides):
    config = load_config("paper")
    config.model.input_size = 32
    config.input.update(
        manual_dir=str(root / "manual"),
        prepared_dir=str(root / "prepared"),
        image_size=S,
        shard_size=3,  # 7 training images: shards of 3, 3, 1
        global_batch_size=2,
        eval_batch_size=2,
        prepare_workers=1,
        decode_threads=2,
    )
    config.input.update(**overrides)
    return config


@pytest.fixture(scope="module")
def ilsvrc(tmp_path_factory):
    root = tmp_path_factory.mktemp("ilsvrc")
    pictures, decoded = fake_ilsvrc.write(root / "manual")
    return root, pictures, decoded


@pytest.fixture(scope="module", params=["raw", "jpeg"])
def made(request, ilsvrc, tmp_path_factory):
    root, pictures, decoded = ilsvrc
    out = tmp_path_factory.mktemp(request.param)
    config = _config(root, prepared_dir=str(out), storage=request.param)
    prepare.prepare(config.input, command="test")
    return config, pictures, decoded


def _all(config, split):
    m = prepared.manifest(config.input)
    shards = prepared.Shards(config.input.prepared_dir, m["splits"][split], m["storage"], 2)
    return shards.images(np.arange(len(shards.labels))), shards.labels


def test_prepared_images_are_the_pil_reference_and_labels_right(made):
    config, pictures, decoded = made
    images, labels = _all(config, "train")
    names = sorted(pictures)  # the prepared order: by class tar, then file name
    assert images.shape == (7, S, S, 3) and images.dtype == np.uint8
    assert labels.tolist() == [fake_ilsvrc.WNIDS.index(pictures[n][0]) for n in names]
    for image, name in zip(images, names, strict=True):
        want = fake_ilsvrc.reference_fixed_size(decoded[name], S)
        diff = np.abs(image - want)
        if config.input.storage == "raw":  # PIL's own bilinear: the same bytes
            assert diff.max() == 0, name
        else:
            assert diff.mean() < JPEG_TOLERANCE, (name, diff.mean())
    _, val_labels = _all(config, "validation")
    vw = fake_ilsvrc.VAL_WNIDS
    assert val_labels.tolist() == [fake_ilsvrc.WNIDS.index(vw[i - 1]) for i in (1, 2, 3)]


def test_grey_tfds_arrays_are_prepared_as_rgb():
    """A TFDS dataset's [H, W, 1] images (MNIST-like) become [S, S, 3], as grey JPEGs do."""
    grey = np.random.default_rng(0).integers(0, 256, (40, 30, 1), dtype=np.uint8)
    want = fake_ilsvrc.reference_fixed_size(grey[..., 0], S)  # PIL, on the 2-D image
    got = prepare.fixed_size(grey, S)
    assert got.shape == (S, S, 3) and got.dtype == np.uint8
    for ch in range(3):
        np.testing.assert_array_equal(got[..., ch], want)
    np.testing.assert_array_equal(prepare.fixed_size(np.repeat(grey, 3, -1), S), got)


def test_statistics_are_numpy_over_the_prepared_set(made):
    config, _, _ = made
    images, _ = _all(config, "train")
    st = stats.load(config.input.prepared_dir, config.input)
    x = images.astype(np.float64)
    np.testing.assert_allclose(st.mean_image, x.mean(0), rtol=1e-6, atol=1e-4)
    p = x.reshape(-1, 3) / 255
    np.testing.assert_allclose(st.channel_mean, p.mean(0), rtol=1e-6)
    cov = np.cov(p.T, bias=True)
    np.testing.assert_allclose(st.eigvecs @ np.diag(st.eigvals) @ st.eigvecs.T, cov, atol=1e-7)
    assert st.num_images == 7


def test_pipeline_batches_resume_exactly_and_processes_split_the_rows(made, monkeypatch):
    config, _, _ = made
    config.input.global_batch_size = 4
    data = input_pipeline.create(config)
    assert (data.num_train, data.num_eval) == (7, 3)
    first = [next(it) for it in [data.train(0)] for _ in range(4)]  # 4 epochs of 1 step
    b = first[0]
    assert b["image"].shape == (4, S, S, 3) and b["image"].dtype == np.uint8
    assert b["index"].tolist() == [0, 1, 2, 3] and first[3]["index"].tolist() == [12, 13, 14, 15]
    resumed = data.train(2)
    for want in first[2:]:
        got = next(resumed)
        for k in want:
            np.testing.assert_array_equal(got[k], want[k])
    # two processes: each reads its half of every global batch; together the one-process batch
    halves = []
    for p in range(2):
        monkeypatch.setattr(jax, "process_index", lambda p=p: p)
        monkeypatch.setattr(jax, "process_count", lambda: 2)
        it = input_pipeline.create(config).train(1)
        halves.append([next(it) for _ in range(3)])
    for step, want in enumerate(first[1:]):
        for k in want:
            union = np.concatenate([halves[0][step][k], halves[1][step][k]])
            np.testing.assert_array_equal(union, want[k])
    monkeypatch.undo()
    # train_limit=3 of the 7 (stored by class): every 7/3-th image, so all classes stay
    images, labels = _all(config, "train")
    config.input.update(train_limit=3, global_batch_size=3)
    epoch = next(input_pipeline.create(config).train(0))  # one batch: the whole subset
    pairs = lambda xs, ys: sorted((y, x.tobytes()) for x, y in zip(xs, ys, strict=True))  # noqa: E731
    assert pairs(epoch["image"], epoch["label"]) == pairs(images[[0, 2, 4]], labels[[0, 2, 4]])
    assert len(set(labels[[0, 2, 4]])) > len(set(labels[:3]))  # a prefix would lose classes
    config.input.update(train_limit=None, global_batch_size=4)
    # the on-device preprocessing gives the network's input
    x = jax.jit(data.train_preprocess)(b)["image"]
    assert x.shape == (4, 32, 32, 3) and x.dtype == np.float32
    e = list(data.eval())
    assert [v["mask"].tolist() for v in e] == [[1, 1], [1, 0]]
    ten = jax.jit(data.eval_preprocess("ten_crop"))(e[0])["image"]
    center = jax.jit(data.eval_preprocess("center"))(e[0])["image"]
    assert ten.shape == (2, 10, 32, 32, 3)
    np.testing.assert_array_equal(ten[:, 4], center)


def test_killed_prepare_resumes_to_byte_identical_shards(ilsvrc, made, tmp_path, monkeypatch):
    config, _, _ = made
    root = ilsvrc[0]
    c = _config(root, prepared_dir=str(tmp_path / "p"), storage=config.input.storage).input
    real, calls = prepare.write_shard, []

    def dies_on_the_second(job):
        calls.append(job)
        if len(calls) == 2:
            with open(job.path + ".tmp999", "wb") as f:  # a half-written shard left behind
                f.write(b"\x93NUMPY half")
            raise KeyboardInterrupt
        return real(job)

    monkeypatch.setattr(prepare, "write_shard", dies_on_the_second)
    with pytest.raises(KeyboardInterrupt):
        prepare.prepare(c, command="test")
    with pytest.raises(InputError, match=r"is half-prepared \(1 shards, no prepared.json\); run"):
        input_pipeline.create(_config(root, prepared_dir=c.prepared_dir))
    monkeypatch.setattr(prepare, "write_shard", real)
    (tmp_path / "p" / "notes.tmpl").write_text("not ours")  # only our temporary names go
    prepare.prepare(c, command="test")  # continues with the missing shards
    os.remove(tmp_path / "p" / "notes.tmpl")  # still there, or this raises
    got, want = sorted(os.listdir(c.prepared_dir)), sorted(os.listdir(config.input.prepared_dir))
    assert got == want
    for name in got:
        if name.endswith(".shard") or name.endswith(".stats") or name.endswith(".npz"):
            assert filecmp.cmp(
                os.path.join(c.prepared_dir, name),
                os.path.join(config.input.prepared_dir, name),
                shallow=False,
            ), name


def test_the_command_line_writes_the_same_shards_and_its_stats_to_stats_dir(
    ilsvrc, made, tmp_path, capsys
):
    """`python -m alexnet_jax.prepare` (run in this process): the shards prepare() wrote, the
    statistics in config.input.stats_dir where set (and read from there), bad input one line."""
    config, _, _ = made
    root = ilsvrc[0]
    out, st = tmp_path / "p", tmp_path / "stats"
    fields = dict(
        manual_dir=root / "manual",
        prepared_dir=out,
        stats_dir=st,
        image_size=S,
        shard_size=3,
        storage=config.input.storage,
        prepare_workers=1,
    )
    args = [f"--config={ROOT}/configs/paper.py"] + [
        f"--config.input.{k}={v}" for k, v in fields.items()
    ]
    path = prepare.run(args)
    assert capsys.readouterr().out.rstrip().endswith(f"wrote {path}")
    made_dir = config.input.prepared_dir
    shards = sorted(f for f in os.listdir(made_dir) if f.endswith(".shard"))
    assert shards and shards == sorted(f for f in os.listdir(out) if f.endswith(".shard"))
    for name in shards:
        assert filecmp.cmp(out / name, os.path.join(made_dir, name), shallow=False), name
    stem = stats.file_stem(str(st), S)
    assert not os.path.exists(stats.file_stem(str(out), S) + ".npz")
    with np.load(stem + ".npz") as got, np.load(stats.file_stem(made_dir, S) + ".npz") as want:
        assert sorted(got) == sorted(want)
        for k in want:
            np.testing.assert_array_equal(got[k], want[k], err_msg=k)
    c = _config(root, prepared_dir=str(out), stats_dir=str(st), storage=config.input.storage)
    assert input_pipeline.create(c).num_train == 7  # reads the statistics from stats_dir
    with pytest.raises(SystemExit) as e:
        prepare.run(args[:1])  # no prepared_dir
    assert e.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("error: config.input.prepared_dir is not set; give a directory")


def test_bad_inputs_are_one_line(ilsvrc, made, tmp_path, monkeypatch):
    root = ilsvrc[0]
    config, _, _ = made

    def one_line(match, c):
        with pytest.raises(InputError, match=match) as e:
            prepare.prepare(c.input, command="test")
        assert "\n" not in str(e.value)

    empty = tmp_path / "empty"
    empty.mkdir()
    one_line("ILSVRC2012_img_train.tar is missing", _config(root, manual_dir=str(empty)))
    with pytest.raises(InputError, match="ILSVRC-2012 has no split 'test' in its tars; use"):
        prepare.imagenet_examples(str(root / "manual"), "test")  # eval_split="test"
    with pytest.raises(InputError, match=r"eval_split='train\[10:\]' is a slice of the train"):
        prepared.create_data(_config(root, eval_split="train[10:]"))  # would be trained on
    cut = tmp_path / "cut"
    cut.mkdir()
    train = (root / "manual" / "ILSVRC2012_img_train.tar").read_bytes()
    (cut / "ILSVRC2012_img_train.tar").write_bytes(train[: len(train) // 2])
    one_line(
        "ILSVRC2012_img_train.tar.* truncated|not a readable tar",
        _config(root, manual_dir=str(cut)),
    )
    with tarfile.open(root / "manual" / "ILSVRC2012_img_train.tar") as t:
        first = t.next()  # cut right after the first class tar: tarfile reads it as whole
    boundary = first.offset_data + -(-first.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
    (cut / "ILSVRC2012_img_train.tar").write_bytes(train[:boundary])
    one_line(  # was prepared from one class of three, silently
        "ILSVRC2012_img_train.tar is truncated or empty .it ends before the tar's end-of-arch",
        _config(root, manual_dir=str(cut)),
    )
    bad = tmp_path / "bad_jpeg"  # a tar whose image is not an image
    bad.mkdir()
    inner = tar_bytes({"n01440764_9.JPEG": b"\xff\xd8 not a JPEG"})
    (bad / "ILSVRC2012_img_train.tar").write_bytes(tar_bytes({"n01440764.tar": inner}))
    one_line(
        "n01440764.tar:n01440764_9.JPEG is not a readable image",
        _config(root, manual_dir=str(bad), prepared_dir=str(tmp_path / "bad_out")),
    )
    # a rerun into the same directory with other settings: refused (the shards are kept by name)
    for field, value in (("storage", "jpeg" if config.input.storage == "raw" else "raw"),
                         ("image_size", S + 4), ("shard_size", 2)):  # fmt: skip
        one_line(
            rf"holds data prepared with (.*, )?{field}=.*, not (.*, )?{field}={value!r}",
            _config(root, prepared_dir=config.input.prepared_dir, **{field: value}),
        )
    legacy = tmp_path / "legacy"  # prepared before prepare_settings.json: the manifest says
    legacy.mkdir()
    (legacy / prepare.MANIFEST).write_text(json.dumps({"image_size": S, "storage": "raw"}))
    (legacy / "train-00000-of-00001.shard").write_bytes(b"")
    one_line(
        "holds data prepared with image_size=36, not image_size=40",
        _config(root, prepared_dir=str(legacy), image_size=S + 4, storage="raw"),
    )
    # a second prepare into a directory another one is writing: refused, nothing touched
    busy = tmp_path / "busy"
    with files.locked(str(busy), "--workdir"):  # the first one (here: this process)
        (busy / "train-00000-of-00001.shard.tmp4242").write_bytes(b"its half-written shard")
        one_line(
            rf"config.input.prepared_dir={busy} is in use by pid {os.getpid()} on ",
            _config(root, prepared_dir=str(busy)),
        )
        assert sorted(os.listdir(busy)) == [files.LOCK_FILE, "train-00000-of-00001.shard.tmp4242"]
    # read with a config of another dataset, or with fewer classes than the labels need
    made_dir = config.input.prepared_dir
    with pytest.raises(InputError, match=r"holds 'imagenet2012' but config.input.dataset='cifar"):
        input_pipeline.create(
            _config(root, prepared_dir=made_dir, dataset="cifar10", pipeline="prepared")
        )
    few = _config(root, prepared_dir=made_dir)
    few.model.num_classes = 2
    with pytest.raises(InputError, match=r"split 'train': labels span \[\d+, \d+\] but config"):
        input_pipeline.create(few)
    # statistics of other data next to these shards
    other = tmp_path / "other"
    prepare.prepare(_config(root, prepared_dir=str(other), shard_size=2).input, command="test")
    for suffix in (".npz", ".json"):
        src = stats.file_stem(str(other), S) + suffix
        dst = stats.file_stem(config.input.prepared_dir, S) + suffix
        os.replace(dst, dst + ".keep")
        with open(src, "rb") as f, open(dst, "wb") as g:
            g.write(f.read())
    try:
        with pytest.raises(InputError, match="was computed from other data"):
            input_pipeline.create(config)
    finally:
        for suffix in (".npz", ".json"):
            dst = stats.file_stem(config.input.prepared_dir, S) + suffix
            os.replace(dst + ".keep", dst)
    # no space left: one line, and nothing half-written remains to be read
    full = _config(root, prepared_dir=str(tmp_path / "full"))

    def no_space(f, a, allow_pickle=False):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", no_space)
    one_line("no space left on the device of .*full while writing train-00000", full)
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path / "full")) == sorted([prepare.SETTINGS, files.LOCK_FILE])
    with pytest.raises(InputError, match="holds no prepared data; run"):
        input_pipeline.create(full)
    other = "jpeg" if config.input.storage == "raw" else "raw"  # no shard kept: not bound yet
    prepare.prepare(_config(root, prepared_dir=str(tmp_path / "full"), storage=other).input)
    # ... and while writing the settings (the statistics and manifest go the same way)
    monkeypatch.setattr(files.json, "dump", lambda *a, **k: no_space(None, None))
    one_line(
        f"the disk of {tmp_path / 'full2'} is full",
        _config(root, prepared_dir=str(tmp_path / "full2")),
    )
    monkeypatch.undo()


def test_a_copy_cut_short_is_one_line_and_a_shard_holds_one_file_open(made, tmp_path, monkeypatch):
    """A prepared directory copied in part (rsync copies prepared.json before the train-*
    shards): each missing or cut file is named in one line. Each shard holds one open file
    (not one per array), and the open-file limit is raised for them or refused in one line."""
    config, _, _ = made
    copy = tmp_path / "copy"
    shutil.copytree(config.input.prepared_dir, copy)
    c = config.copy_and_resolve_references()
    c.input.prepared_dir = str(copy)
    m = prepared.manifest(c.input)
    fds = len(os.listdir("/proc/self/fd"))
    shards = prepared.Shards(str(copy), m["splits"]["train"], m["storage"], 1)
    assert len(os.listdir("/proc/self/fd")) - fds == len(m["splits"]["train"]["shards"]) == 3
    del shards
    first = copy / m["splits"]["train"]["shards"][0]
    with open(first, "rb") as f:  # cut right after the labels record (its length adds up)
        np.load(f)
        labels_end = f.tell()
    os.truncate(first, labels_end)
    with pytest.raises(InputError, match=f"{first} is truncated; delete it and rerun"):
        input_pipeline.create(c)
    first.unlink()
    with pytest.raises(
        InputError, match=re.escape(f"{first} is missing (a copy cut short?); copy it again")
    ):
        input_pipeline.create(c)
    (copy / prepare.MANIFEST).write_text("")
    with pytest.raises(InputError, match=f"{copy / prepare.MANIFEST} is damaged; rerun "):
        input_pipeline.create(c)
    # the soft limit is raised to the hard one; past the hard one, one line
    monkeypatch.setattr(files.resource, "getrlimit", lambda _: (300, 4096))
    raised = []
    monkeypatch.setattr(files.resource, "setrlimit", lambda _, limits: raised.append(limits))
    files.allow_open_files(1300, "ImageNet's shards", "use larger shards")
    assert raised == [(4096, 4096)]
    with pytest.raises(InputError, match=r"ImageNet's shards: 5000 open files are needed and this"):
        files.allow_open_files(5000, "ImageNet's shards", "use larger shards")


@pytest.mark.parametrize(
    "name",
    [
        "ILSVRC2012_val_00060000.JPEG",
        "ILSVRC2012_val_00000000.JPEG",
        "ILSVRC2012_test_00000001.JPEG",
    ],
)
def test_a_val_tar_of_other_files_is_one_line(tmp_path, name):
    """Image 60000 of 50000 (was an IndexError), image 0 (was labelled as image 50000's class)
    and the test tar given as the val tar (was labelled silently)."""
    (tmp_path / "ILSVRC2012_img_val.tar").write_bytes(tar_bytes({name: b"\xff\xd8"}))
    with pytest.raises(InputError, match=f"holds '{name}', not an ILSVRC2012_val_NNNNNNNN.JPEG"):
        prepare.imagenet_examples(str(tmp_path), "validation")


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("shard_size", 0, r"shard_size=0 must be an integer >= 1"),  # was range()'s traceback
        ("image_size", 0, r"image_size=0 must be an integer >= 1"),  # was PIL's
        ("jpeg_quality", 101, r"jpeg_quality=101 must be an integer in \[1, 100\]"),
        ("prepare_workers", 0, r"prepare_workers=0 must be an integer >= 1 or None"),
    ],
)
def test_prepare_checks_its_fields_before_it_writes(tmp_path, field, value, match):
    c = _config(tmp_path, **{field: value})
    with pytest.raises(InputError, match=match):
        prepare.prepare(c.input)
    assert not os.path.exists(c.input.prepared_dir)


def test_an_empty_shard_is_one_line(tmp_path):
    """What a power cut can leave of a freshly renamed file on a filesystem that did not sync."""
    path = tmp_path / "train-00000-of-00001.shard"
    path.write_bytes(b"")
    with pytest.raises(InputError, match="train-00000-of-00001.shard is empty; delete it and"):
        files.npy_arrays(str(path))


def test_in_memory_data_is_validated_in_one_line(tmp_path):
    from tests import tiny

    tiny.fake_fashion(tmp_path, n_train=6, n_test=4)
    split = input_pipeline.Split(*idx.load_fashion_mnist(str(tmp_path), "train"))
    ok = dict(name="the training split", num_classes=10, channels=1)
    input_pipeline.check_split(split, **ok)
    cases = [
        (input_pipeline.Split(split.images, split.labels + 10), ok, r"labels span \[1\d, 1\d\]"),
        (input_pipeline.Split(split.images[:5], split.labels), ok, "5 images but 6 labels"),
        (split, {**ok, "channels": 3}, "images have 1 channels but config.model.input_channels=3"),
        (input_pipeline.Split(split.images[..., 0], split.labels), ok, r"must be \[N, H, W, C\]"),
    ]
    for s, kw, match in cases:
        with pytest.raises(InputError, match=match) as e:
            input_pipeline.check_split(s, **kw)
        assert "\n" not in str(e.value)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-20])  # a truncated download
    with pytest.raises(InputError, match="is a damaged gzip file"):
        idx.read_idx(str(path))


@pytest.fixture
def fast_compile():
    """XLA skips most optimizations (flax's train_test.py does the same): compiling dominates."""
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", False)


@pytest.mark.slow  # ~60 s on 2 shared cores: three short runs and evaluate.py compile a net each
@pytest.mark.parametrize("made", ["jpeg"], indirect=True)  # raw reads the same batches (above)
def test_train_resume_and_evaluate_from_prepared_data(ilsvrc, made, tmp_path, fast_compile):
    """Prepared fake ILSVRC -> training with crops, flips and lighting on the device -> resume
    bit-exact -> evaluate.py's ten-crop row (training evaluates the center crop)."""
    from alexnet_jax import checkpoint, evaluate, optim, train

    config, _, _ = made
    c = load_config("cifar10", "smoke")  # Fashion-MNIST's small two-tower net, 3 x 32 x 32
    c.model.update(num_classes=1000, conv=dict(features=(8, 16, 16, 16, 16)), fc_features=(16, 16))
    c.input = config.input
    c.input.update(pipeline="prepared", train_limit=None, eval_limit=None, global_batch_size=2)
    c.input.augment.update(random_crop=True, flip=True, pca_lighting=True)
    c.update(max_steps=2, log_every_steps=1)
    c.checkpoint.every_steps = 1

    def params(workdir):
        mngr = checkpoint.create(workdir, c.checkpoint)
        state = train.create_state(c, jax.random.key(0))
        state, _ = checkpoint.restore(mngr, state, optim.Plateau(lr=0.0))
        mngr.close()
        return int(state.step), jax.device_get(state.params)

    train.train_and_evaluate(c, str(tmp_path / "a"))
    c.max_steps = 1
    train.train_and_evaluate(c, str(tmp_path / "b"))
    c.max_steps = 2
    train.train_and_evaluate(c, str(tmp_path / "b"))  # resumes at step 1
    (step_a, a), (step_b, b) = params(str(tmp_path / "a")), params(str(tmp_path / "b"))
    assert step_a == step_b == 2
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)
    (row,) = evaluate.run(c, [str(tmp_path / "a")], ["ten_crop"])
    assert row["n"] == 3 and 0 <= row["top1_err"] <= 1


def test_synthetic_pipeline_is_one_uint8_batch_and_the_real_preprocessing():
    config = load_config("paper")
    config.input.update(pipeline="synthetic", global_batch_size=4, eval_batch_size=4)
    data = input_pipeline.create(config)
    it = data.train(0)
    a, b = next(it), next(it)
    assert a is b and a["image"].shape == (4, 256, 256, 3) and a["image"].dtype == np.uint8
    assert a["label"].max() < 1000
    x = jax.jit(data.train_preprocess)(a)["image"]
    assert x.shape == (4, 227, 227, 3) and x.dtype == np.float32
    (e,) = list(data.eval())
    assert e["mask"].sum() == data.num_eval == 4
