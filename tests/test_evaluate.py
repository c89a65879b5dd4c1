"""evaluate.py: center, ten-crop and ensemble errors against numpy, the CLI's JSON (Sec. 4.1, 6)."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from alexnet_jax import checkpoint, evaluate, input_pipeline, models, optim, train
from tests import tiny
from tests.conftest import load_config

pytestmark = pytest.mark.xdist_group("evaluate")  # module-scoped fixtures: one worker

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Tiny Fashion-MNIST IDX files and two workdirs holding different random-init checkpoints."""
    root = tmp_path_factory.mktemp("eval")
    tiny.fake_fashion(root, n_train=16, n_test=13)
    config = load_config("fashion_mnist", "smoke")
    config.input.update(data_dir=str(root), train_limit=None, eval_limit=None)
    abstract = evaluate.restore_template(config)["params"]  # shapes only: fast
    states = []
    for seed in (1, 2):  # two nets with He-scaled random weights
        noise = np.random.default_rng(seed)
        params = jax.tree.map(
            lambda s, n=noise: (n.normal(size=s.shape) / np.sqrt(np.prod(s.shape[:-1]))).astype(
                np.float32
            ),
            abstract,
        )
        states.append(
            train.TrainState.create(
                apply_fn=models.create_model(config).apply,
                params=params,
                tx=optim.build(config.optim),
            )
        )
    workdirs = []
    for i, state in enumerate(states):
        workdir = root / f"run{i}"
        mngr = checkpoint.create(str(workdir), config.checkpoint)
        for step in (3, 6):
            checkpoint.save(mngr, state.replace(step=step), optim.Plateau(lr=0.01))
        mngr.close()
        # run0's best recorded error is at step 3, run1's at step 6 (written as training does)
        errs = {3: 0.5, 6: 0.7} if i == 0 else {3: 0.5, 6: 0.3}
        with open(workdir / "metrics.jsonl", "w") as f:
            for step, err in errs.items():
                f.write(json.dumps({"step": step, "train/loss": 2.0}) + "\n")
                f.write(json.dumps({"step": step, "eval/top1_err": err}) + "\n")
        workdirs.append(str(workdir))
    return config, workdirs, states


def _softmax(logits):
    z = np.exp(logits - logits.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def _reference_probs(config, state, mode):
    """numpy: mean-image normalisation, zero padding by 2, the ten 28x28 windows by slicing."""
    c = config.input
    train_images = input_pipeline.load(c, "train").images.astype(np.float64)
    test = input_pipeline.load(c, "test")
    x = (test.images.astype(np.float64) - train_images.mean(0)).astype(np.float32)
    forward = jax.jit(lambda p, v: state.apply_fn({"params": p}, v, train=False))
    apply = lambda v: np.asarray(forward(state.params, v), np.float64)  # noqa: E731
    if mode == "center":
        return _softmax(apply(x)), test.labels
    p = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))
    crops = []
    for img in (p, p[:, :, ::-1]):
        for top, left in ((0, 0), (0, 4), (4, 0), (4, 4), (2, 2)):
            crops.append(img[:, top : top + 28, left : left + 28])
    assert np.array_equal(crops[4], x)  # the center crop of the padded image is the image
    return np.mean([_softmax(apply(cr)) for cr in crops], axis=0), test.labels


def _errors(probs, labels):
    tiny.assert_ranks_apart(np.log(probs))
    order = np.argsort(-probs, axis=1)
    top1 = np.mean(order[:, 0] != labels)
    top5 = np.mean([y not in row[:5] for y, row in zip(labels, order, strict=True)])
    return top1, top5


@pytest.fixture(scope="module")
def both_modes(setup):
    config, workdirs, _ = setup
    return evaluate.run(config, workdirs, ["center", "ten_crop"])


def test_center_ten_crop_and_ensemble_match_numpy(setup, both_modes):
    config, workdirs, states = setup
    rows = both_modes
    assert [(len(r["checkpoints"]), r["mode"]) for r in rows] == [
        (1, "center"),
        (1, "center"),
        (2, "center"),
        (1, "ten_crop"),
        (1, "ten_crop"),
        (2, "ten_crop"),
    ]
    refs = {
        (m, i): _reference_probs(config, s, m)
        for m in ("center", "ten_crop")
        for i, s in enumerate(states)
    }
    for mode, (first, second, ensemble) in (("center", rows[:3]), ("ten_crop", rows[3:])):
        (p1, labels), (p2, _) = refs[mode, 0], refs[mode, 1]
        for row, probs in ((first, p1), (second, p2), (ensemble, (p1 + p2) / 2)):
            top1, top5 = _errors(probs, labels)
            assert row["n"] == 13
            assert row["top1_err"] == pytest.approx(top1, abs=1e-9), (mode, row)
            assert row["top5_err"] == pytest.approx(top5, abs=1e-9), (mode, row)
        assert first["steps"] == [6]  # latest
        assert first["split"] == config.input.eval_split  # which images (tries could not tell)
    # the modes and the nets really differ (else a wrong crop or average could pass)
    assert not np.allclose(refs["center", 0][0], refs["ten_crop", 0][0], atol=1e-3)
    assert not np.allclose(refs["center", 0][0], refs["center", 1][0], atol=1e-3)


@pytest.mark.multidevice
@pytest.mark.parametrize("parallelism", ["pmap", "model", "data+model"])
def test_every_layout_counts_the_same_errors(setup, both_modes, parallelism):
    """The errors are counted on the devices and summed over "batch": any layout (and any
    number of processes) gives the rows of the default one."""
    config, workdirs, _ = setup
    c = config.copy_and_resolve_references()
    c.parallelism = parallelism
    assert evaluate.run(c, workdirs, ["center", "ten_crop"]) == both_modes


def test_ensemble_of_two_identical_checkpoints_equals_one(setup):
    config, workdirs, _ = setup
    rows = evaluate.run(config, [workdirs[0], workdirs[0]], ["center"])
    assert rows[2]["checkpoints"] == [workdirs[0]] * 2
    assert (rows[2]["top1_err"], rows[2]["top5_err"]) == (rows[0]["top1_err"], rows[0]["top5_err"])


def test_which_best_picks_the_lowest_recorded_error(setup):
    config, workdirs, _ = setup
    best, latest = (evaluate.restore_params(workdirs[0], config, w)[1] for w in ("best", "latest"))
    assert (best, latest) == (3, 6)
    with open(os.path.join(workdirs[1], "metrics.jsonl"), "a") as f:
        f.write('{"step": 7, "eval/top1_')  # a line cut short by a kill: left out
    assert evaluate.restore_params(workdirs[1], config, "best")[1] == 6
    os.remove(os.path.join(workdirs[1], "metrics.jsonl"))
    with pytest.raises(FileNotFoundError, match="metrics.jsonl is missing, so there is no best"):
        evaluate.restore_params(workdirs[1], config, "best")


def test_bad_inputs_are_one_line(setup, tmp_path):
    config, workdirs, _ = setup
    with pytest.raises(FileNotFoundError, match="nowhere/checkpoints does not exist"):
        evaluate.run(config, [str(tmp_path / "nowhere")])
    with pytest.raises(ValueError, match="'five_crop' is unknown"):
        evaluate.run(config, workdirs, ["five_crop"])
    wrong = config.copy_and_resolve_references()
    wrong.model.fc_features = (256, 256)
    with pytest.raises(ValueError, match="does not fit --config"):
        evaluate.run(wrong, workdirs[:1], ["center"])


def test_command_line_prints_the_table_and_writes_json(setup, both_modes, tmp_path):
    config, workdirs, _ = setup
    out = tmp_path / "eval.json"
    cmd = [
        sys.executable, "-m", "alexnet_jax.evaluate", "--config=configs/fashion_mnist.py:smoke",
        f"--config.input.data_dir={config.input.data_dir}",
        f"--checkpoints={workdirs[0]},{workdirs[1]}",
        "--modes=center", f"--out={out}",
    ]  # fmt: skip
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "ensemble of 2" in r.stdout
    rows = json.loads(out.read_text())
    want = [r for r in both_modes if r["mode"] == "center"]
    assert [
        {k: r[k] for k in ("checkpoints", "mode", "top1_err", "top5_err", "n")} for r in rows
    ] == [{k: r[k] for k in ("checkpoints", "mode", "top1_err", "top5_err", "n")} for r in want]


def test_a_fine_tuned_run_evaluates_without_its_pretrained_file(tmp_path):
    """The checkpoint holds every weight: config.init_from's file, moved away, is not read."""
    config = load_config("fashion_mnist", "smoke")
    want = evaluate.restore_template(config)
    config.init_from.path = str(tmp_path / "moved_away.npz")
    got = evaluate.restore_template(config)
    assert jax.tree.map(np.shape, got) == jax.tree.map(np.shape, want)


def _counts(crops: np.ndarray, labels: list[int], nets: int = 1) -> list[float]:
    """wrong_counts' [top-1, top-5] errors of `nets` copies of a stub net whose logits are the
    crops themselves ([b, crops, classes]; a [b, classes] array is the center crop)."""
    images = crops[:, :, None, None, :] if crops.ndim == 3 else crops[:, None, None, :]

    def apply_fn(variables, x, train):
        return x.reshape(x.shape[0], -1) * variables["params"]

    batch = {
        "image": images.astype(np.float32),
        "label": np.array(labels, np.int32),
        "mask": np.ones(len(labels), np.float32),
    }
    count = jax.vmap(
        lambda b: evaluate.wrong_counts(apply_fn, lambda b: b, [1.0] * nets, b),
        axis_name="batch",
    )(jax.tree.map(lambda x: x[None], batch))
    return [float(x[0]) for x in count[-2]]


def test_crops_and_nets_average_softmax_in_logs():
    """Sec. 4.1/6 average the softmax, not the logits: one confident crop (20 for class 0)
    against two mild ones (2 for class 1) is class 1 by the mean softmax (0.405 vs 0.525,
    float64 numpy below) and class 0 by the mean logit (6.7 vs 1.3). And a class whose
    probability underflows to 0 (logit gap > 104) keeps its rank: with the float32 softmax
    averaged, ten tied zeros would put class 1 (the lowest logit) in the top 5."""
    crops = np.array([[[20.0, 0, 0], [0, 2, 0], [0, 2, 0]]])
    p = np.exp(crops[0]) / np.exp(crops[0]).sum(-1, keepdims=True)
    assert p.mean(0).argmax() == 1 and crops[0].mean(0).argmax() == 0
    assert _counts(crops, [1]) == [0.0, 0.0]
    assert _counts(crops, [0]) == [1.0, 0.0]
    assert _counts(crops, [1], nets=2)[0] == 0.0  # and the ensemble of two such nets
    logits = np.array([[300.0, -100, 0, -1, -2, -3, -4, -5, -6, -7]])
    assert (np.float32(np.exp(logits - 300)) == 0).sum() == 9  # float32 softmax: ties
    for x in (logits, logits[:, None, :].repeat(10, 1)):  # center crop, ten crops
        assert _counts(x, [1]) == [1.0, 1.0]
        assert _counts(x, [3]) == [1.0, 0.0]
