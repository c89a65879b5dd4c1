"""experiments/: the sweep runner, the tables' statistics and the figures (issue 7).

One tiny sweep (2 variants x 2 seeds of the smoke config on fake IDX files, 2 processes at a
time) is shared by the tests of the runner, the tables and the figures.
"""

import csv
import hashlib
import json
import math
import os
import shlex
import shutil
import statistics
import subprocess

import matplotlib.image
import numpy as np
import pytest

from alexnet_jax import cli, main
from alexnet_jax.errors import InputError
from experiments import figures, net_figures, summary, table2, tables, tries
from experiments import sweep as sweep_lib
from tests import tiny

pytestmark = pytest.mark.xdist_group("experiments")  # module-scoped fixtures: one worker

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _sweep_file(path, data_dir: str) -> str:
    tiny = {
        "input.data_dir": data_dir,
        "model.conv.features": (8, 16, 16, 16, 16),
        "model.fc_features": (32, 32),
    }
    path.write_text(
        "def get_sweep():\n"
        f"    tiny = {tiny!r}\n"
        "    return dict(\n"
        f"        config={os.path.join(ROOT, 'configs', 'fashion_mnist.py') + ':smoke'!r},\n"
        "        seeds=(0, 1),\n"
        "        baseline='baseline',\n"
        "        variants={\n"
        "            'baseline': dict(overrides=tiny, section='Secs. 3-4', claim=None),\n"
        "            'no_lrn': dict(overrides={**tiny, 'model.lrn.enabled': False},\n"
        "                           section='Sec. 3.3', claim=(1.4, 1.2)),\n"
        "        },\n"
        "    )\n"
    )
    return str(path)


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory) -> tuple[str, str, dict]:
    """(sweep file, workdir, outcome of the first call): 4 finished runs.

    The training processes inherit JAX_DISABLE_MOST_OPTIMIZATIONS (compile time; nothing here
    checks numerics of the net), restored afterwards.
    """
    tmp = tmp_path_factory.mktemp("sweep")
    data = tmp / "fashion"
    tiny.fake_fashion(data, n_train=64, n_test=20)
    path = _sweep_file(tmp / "tiny_sweep.py", str(data))
    workdir = str(tmp / "runs")
    before = os.environ.get("JAX_DISABLE_MOST_OPTIMIZATIONS")
    os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "true"
    try:
        outcome = sweep_lib.run_sweep(path, workdir, parallel=2)
    finally:
        if before is None:
            del os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"]
        else:
            os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = before
    return path, workdir, outcome


def _last_eval(run_dir: str) -> dict:
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [r for r in map(json.loads, f) if "eval/top1_err" in r][-1]


@pytest.mark.slow
def test_sweep_runs_every_variant_and_seed_then_skips_them(tiny_sweep):
    path, workdir, outcome = tiny_sweep
    with open(os.path.join(workdir, "sweep.json")) as f:
        manifest = json.load(f)
    dirs = [os.path.join(workdir, r["run_dir"]) for r in manifest["runs"]]
    assert sorted((r["variant"], r["seed"]) for r in manifest["runs"]) == [
        ("baseline", 0),
        ("baseline", 1),
        ("no_lrn", 0),
        ("no_lrn", 1),
    ]
    assert outcome == {d: "ok" for d in dirs}
    assert len(set(dirs)) == 4  # a config hash per run: no two configs share a directory
    for r, d in zip(manifest["runs"], dirs, strict=True):
        with open(os.path.join(d, "config.json")) as f:
            c = json.load(f)
        assert c["seed"] == r["seed"]
        assert c["model"]["lrn"]["enabled"] == (r["variant"] == "baseline")
        assert c["model"]["conv"]["features"] == [8, 16, 16, 16, 16]
        assert _last_eval(d)["step"] == 3
        # the recorded commands parse in a shell ("(8,16,...)" unquoted is a bash syntax error)
        # and rerun the run
        with open(os.path.join(d, "provenance.json")) as f:
            recorded = json.load(f)["command"]
        for command in (r["command"], recorded):
            assert subprocess.run(["bash", "-n", "-c", command]).returncode == 0, command
        argv = shlex.split(r["command"])
        assert shlex.split(recorded) == argv
        assert argv[:3] == ["python", "-m", "alexnet_jax.main"]
        rerun = cli.parse(main.define_flags, ["main", *argv[3:]]).config
        assert tuple(rerun.model.conv.features) == (8, 16, 16, 16, 16)
    launched = []
    again = sweep_lib.run_sweep(path, workdir, launch=lambda run: launched.append(run) or (1, 0.0))
    assert launched == [] and again == {d: "skipped" for d in dirs}


@pytest.mark.slow
def test_a_sweep_in_parts_resumes_from_copied_run_files(tiny_sweep, tmp_path):
    """Session 1 ran seed 0 and kept only run_files/; session 2 runs seed 1 in a fresh workdir."""
    path, workdir, _ = tiny_sweep
    with open(os.path.join(workdir, "sweep.json")) as f:
        planned = json.load(f)["runs"]
    results = tmp_path / "results"  # what session 1 commits: the tables' run_files/, no checkpoints
    tables.ablation_table(workdir, str(results), "cmd")
    fresh = tmp_path / "fresh"
    for r in planned:
        if r["seed"] == 0:
            shutil.copytree(results / tables.RUN_COPIES / r["run_dir"], fresh / r["run_dir"])
    launched = []
    out = sweep_lib.run_sweep(
        path, str(fresh), launch=lambda r: launched.append(r) or (1, 0.0), command="a", seeds=[0]
    )
    assert launched == [] and set(out.values()) == {"skipped"} and len(out) == 2
    out = sweep_lib.run_sweep(
        path, str(fresh), launch=lambda r: launched.append(r) or (1, 0.0), command="b", seeds=[1]
    )
    assert sorted((r.variant, r.seed) for r in launched) == [("baseline", 1), ("no_lrn", 1)]
    seed1 = sorted(str(fresh / r["run_dir"]) for r in planned if r["seed"] == 1)
    assert out == {d: "failed (exit 1)" for d in seed1}  # the fake launcher trained nothing
    with open(fresh / "sweep.json") as f:
        manifest = json.load(f)
    assert [r["run_dir"] for r in manifest["runs"]] == [r["run_dir"] for r in planned]
    assert manifest["commands"] == ["a", "b"]  # every part's command, in order
    with pytest.raises(ValueError, match=r"--seeds=1,5: \[5\] not among the sweep's seeds"):
        sweep_lib.run_sweep(path, str(fresh), launch=lambda r: (0, 0.0), seeds=[1, 5])
    with pytest.raises(ValueError, match="--seeds= names no seed"):
        sweep_lib.run_sweep(path, str(fresh), launch=lambda r: (0, 0.0), seeds=[])


@pytest.mark.slow
def test_sweep_reruns_a_partial_run_and_refuses_a_foreign_config(tiny_sweep):
    path, workdir, _ = tiny_sweep
    with open(os.path.join(workdir, "sweep.json")) as f:
        first = os.path.join(workdir, json.load(f)["runs"][0]["run_dir"])
    prov_path, cfg_path = (os.path.join(first, n) for n in ("provenance.json", "config.json"))
    prov, cfg = (open(p).read() for p in (prov_path, cfg_path))  # noqa: SIM115
    try:
        p = json.loads(prov)
        del p["final"]  # as if killed before the end
        with open(prov_path, "w") as f:
            json.dump(p, f)
        launched = []
        out = sweep_lib.run_sweep(path, workdir, launch=lambda r: launched.append(r) or (0, 0.0))
        assert [r.run_dir for r in launched] == [first]
        assert out[first] == "stopped"  # exit 0 before its end (as after SIGTERM): resumable
        c = json.loads(cfg)
        c["model"]["lrn"]["k"] = 1.0
        with open(cfg_path, "w") as f:
            json.dump(c, f)
        with open(os.path.join(workdir, "sweep.json")) as f:
            commands = json.load(f)["commands"]
        with pytest.raises(ValueError, match="is not the config this sweep resolves"):
            sweep_lib.run_sweep(path, workdir, launch=lambda r: (0, 0.0), command="refused")
        with open(os.path.join(workdir, "sweep.json")) as f:
            assert json.load(f)["commands"] == commands  # a refused command is not recorded
    finally:
        for p, text in ((prov_path, prov), (cfg_path, cfg)):
            with open(p, "w") as f:
                f.write(text)


def test_a_stopped_run_keeps_the_sweep_from_launching_more(tmp_path, monkeypatch):
    """A run that exits 0 before its end got a signal (Ctrl-C reaches the whole process
    group): the sweep starts no further run, and names them for the rerun."""
    monkeypatch.chdir(ROOT)  # sweep files name their configs relative to the checkout
    launched = []
    out = sweep_lib.run_sweep(
        "experiments/sweeps/recipe_all60k.py",
        str(tmp_path),
        launch=lambda r: launched.append(r) or (0, 0.0),  # exit 0, nothing trained: stopped
    )
    assert len(launched) == 1 and len(out) == 3
    assert sorted(out.values()) == ["not started", "not started", "stopped"]


def test_a_field_added_later_keeps_older_run_directories_at_its_neutral_value():
    c = sweep_lib.resolve("configs/fashion_mnist.py:smoke", {})
    written = json.loads(c.to_json_best_effort())  # config.json as the trainer writes it now
    assert written["schedule"]["drop_after_epochs"] == []
    older = json.loads(json.dumps(written))
    del older["schedule"]["drop_after_epochs"]  # config.json of a run made before the field
    assert sweep_lib.comparable(written) == sweep_lib.comparable(older) == sweep_lib.config_json(c)
    blob = json.dumps(older, sort_keys=True).encode()
    assert sweep_lib.config_hash(c) == hashlib.sha256(blob).hexdigest()[:10]  # the old hash
    used = sweep_lib.resolve("configs/fashion_mnist.py:smoke", {"schedule.drop_after_epochs": (3,)})
    assert sweep_lib.config_json(used)["schedule"]["drop_after_epochs"] == [3]
    assert sweep_lib.config_hash(used) != sweep_lib.config_hash(c)


def test_bad_sweep_and_override_are_one_line_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        sweep_lib.load_sweep(str(tmp_path / "nope.py"))
    bad = tmp_path / "bad.py"
    bad.write_text("def get_sweep():\n    return dict(config='configs/fashion_mnist.py')\n")
    with pytest.raises(ValueError, match="lacks"):
        sweep_lib.load_sweep(str(bad))
    with pytest.raises(FileNotFoundError, match="run python -m experiments.sweep"):
        tables.ablation_table(str(tmp_path), str(tmp_path / "out"), "")
    with pytest.raises(ValueError, match="has no field model.lrn.sise"):
        sweep_lib.resolve(os.path.join(ROOT, "configs/fashion_mnist.py"), {"model.lrn.sise": 3})
    for field in ("modle.lrn.enabled", "seed.x"):  # a misspelt parent, a parent that is a leaf
        with pytest.raises(ValueError, match=f"has no field {field}"):
            sweep_lib.resolve(os.path.join(ROOT, "configs/fashion_mnist.py"), {field: 1})


@pytest.mark.slow
def test_table_holds_the_numbers_of_the_runs_metrics_files(tiny_sweep, tmp_path):
    _, workdir, _ = tiny_sweep
    rows = tables.ablation_table(workdir, str(tmp_path), "python -m experiments.sweep ...")
    with open(os.path.join(workdir, "sweep.json")) as f:
        manifest = json.load(f)
    errs = {}
    for r in manifest["runs"]:
        e = _last_eval(os.path.join(workdir, r["run_dir"]))
        errs.setdefault(r["variant"], []).append(
            (100 * e["eval/top1_err"], 100 * e["eval/top5_err"])
        )
        with open(tmp_path / "run_files" / r["run_dir"] / "metrics.jsonl") as f:  # copied beside
            assert [x for x in map(json.loads, f) if "eval/top1_err" in x][-1] == e
    by = {r["variant"]: r for r in rows}
    for v, xs in errs.items():
        top1 = [x[0] for x in xs]
        assert by[v]["top1_mean"] == pytest.approx(statistics.mean(top1))
        assert by[v]["top1_std"] == pytest.approx(statistics.stdev(top1))
        assert by[v]["top5_mean"] == pytest.approx(statistics.mean(x[1] for x in xs))
    with open(tmp_path / "ablations.csv") as f:
        csv_rows = list(csv.DictReader(f))
    assert float(csv_rows[1]["d_top1"]) == pytest.approx(
        statistics.mean(x[0] for x in errs["no_lrn"])
        - statistics.mean(x[0] for x in errs["baseline"])
    )
    md = (tmp_path / "ablations.md").read_text()
    for line in (
        "- runs made by: `python -m experiments.sweep --sweep=",
        "- table made by:",
        "- git commit:",
        "- hardware:",
        "- wall time:",
        "| no_lrn | Sec. 3.3 | 2 |",
    ):
        assert line in md
    assert f"{by['no_lrn']['top1_mean']:.2f} ± {by['no_lrn']['top1_std']:.2f}" in md


def test_statistics_against_a_hand_computation():
    variant, base = [10.0, 12.0, 14.0], [9.0, 10.0, 11.0]
    assert summary.mean_std(variant) == pytest.approx((12.0, 2.0))
    d, se = summary.delta(variant, base)
    assert d == pytest.approx(2.0)
    assert se == pytest.approx(math.sqrt(4 / 3 + 1 / 3))  # sqrt(s_v^2/n_v + s_b^2/n_b) = 1.291
    assert summary.verdict(d, se, 1.4) == "not resolved (within 2 SE of 0); agrees in size"
    assert summary.verdict(-3.0, 0.5, 1.4) == "reversed; differs in size"
    assert summary.verdict(1.5, 0.5, 1.4) == "same sign; agrees in size"
    assert summary.verdict(1.5, 0.5, None) == "variant worse"
    assert math.isnan(summary.mean_std([3.0])[1])
    assert summary.verdict(*summary.delta([3.0], [2.0]), 1.4) == "no SE (one seed per variant)"


def test_welch_p_is_the_closed_form_at_two_degrees_of_freedom():
    """Two seeds a side with equal variances: Welch's df is exactly 2, where the t
    distribution's two-sided tail is 1 - |t| / sqrt(2 + t^2); here t = -sqrt(2)."""
    t = -math.sqrt(2.0)
    assert summary.welch_p([0.0, 2.0], [2.0, 4.0]) == pytest.approx(
        1 - abs(t) / math.sqrt(2 + t * t)
    )
    assert math.isnan(summary.welch_p([1.0], [2.0, 3.0]))


def test_provenance_names_every_machine_a_resumed_sweep_ran_on():
    def run(cpu, started, wall):
        hw = {"cpu": cpu, "cpu_count": 2, "devices": ["cpu:0"], "jax": "j", "python": "p"}
        return {"git_commit": "a", "hardware": hw, "wall_time_s": wall, "started": started}

    runs = {
        "b/s0": run("AMD EPYC", "2026-12-02T06:00:00+00:00", 100.0),
        "b/s1": run("AMD EPYC", "2026-12-02T06:01:00+00:00", 100.0),
        "b/s2": run("Intel Xeon", "2026-12-02T12:00:00+00:00", 50.0),
    }
    manifest = {"sweep": "s", "config": "c", "seeds": [0, 1, 2]}
    lines = tables.provenance_lines("t", manifest, runs).splitlines()
    hw = next(x for x in lines if x.startswith("- hardware:"))
    assert "AMD EPYC (2 cores)" in hw and ": 2 runs" in hw
    assert "Intel Xeon (2 cores)" in hw and ": 1 run" in hw
    assert "250 s summed over 3 runs" in next(x for x in lines if x.startswith("- wall time:"))


def test_a_run_resumed_across_sessions_dates_from_its_first_start(tmp_path):
    """A run's start is its first session's, its end its last session's (not the last start)."""
    for name, earlier, started in (
        ("v/s0", [{"started": "2026-12-03T05:00:00+00:00", "wall_time_s": 600.0}],
         "2026-12-03T07:00:00+00:00"),
        ("v/s1", [{"note": "provenance.json of an earlier start was unreadable"}],
         "2026-12-03T06:00:00+00:00"),
    ):  # fmt: skip
        d = tmp_path / name
        d.mkdir(parents=True)
        (d / "config.json").write_text('{"input": {"eval_split": "test"}}')
        (d / "metrics.jsonl").write_text('{"step": 2, "eval/top1_err": 0.1, "eval/top5_err": 0}\n')
        final = {"eval/top1_err": 0.1, "eval/top5_err": 0}
        prov = dict(started=started, wall_time_s=300.0, earlier=earlier, final=final,
                    command="c", git_commit="a", hardware={})  # fmt: skip
        (d / "provenance.json").write_text(json.dumps(prov))
    runs = {n: tables.read_run(str(tmp_path / n)) for n in ("v/s0", "v/s1")}
    assert runs["v/s0"]["started"] == "2026-12-03T05:00:00+00:00"
    assert runs["v/s0"]["wall_time_s"] == 900.0
    assert runs["v/s1"]["started"] == "2026-12-03T06:00:00+00:00"  # its earlier start: unknown
    for r in runs.values():
        r["hardware"] = {"cpu": "x", "cpu_count": 2, "devices": [], "jax": "j", "python": "p"}
    lines = tables.provenance_lines("t", {"sweep": "s", "config": "c", "seeds": [0, 1]}, runs)
    assert (
        "first run started 2026-12-03T05:00:00+00:00, last run ended 2026-12-03T07:05:00" in lines
    )
    assert "7500 s from the first run's start to the last run's end" in lines


def test_table2_from_an_eval_json(tmp_path):
    entries = [
        {"checkpoints": ["a"], "mode": "center", "top1_err": 0.20, "top5_err": 0.02, "n": 100},
        {"checkpoints": ["b"], "mode": "center", "top1_err": 0.22, "top5_err": 0.04, "n": 100},
        {"checkpoints": ["a"], "mode": "ten_crop", "top1_err": 0.18, "top5_err": 0.01, "n": 100},
        {"checkpoints": ["b"], "mode": "ten_crop", "top1_err": 0.20, "top5_err": 0.03, "n": 100},
        {"checkpoints": ["a", "b"], "mode": "center", "top1_err": 0.17, "top5_err": 0.01, "n": 100},
        {
            "checkpoints": ["a", "b"],
            "mode": "ten_crop",
            "top1_err": 0.15,
            "top5_err": 0.0,
            "n": 100,
        },
    ]
    (tmp_path / "eval.json").write_text(json.dumps(entries))
    rows = table2.table2([str(tmp_path / "eval.json")], str(tmp_path), "python -m ...")
    one, two = rows
    assert one["nets"] == 1 and two["nets"] == 2
    assert one["center_top1"] == pytest.approx(21.0)
    assert one["center_top1_std"] == pytest.approx(statistics.stdev([20.0, 22.0]))
    assert one["ten_crop_top5"] == pytest.approx(2.0)
    assert two["ten_crop_top1"] == pytest.approx(15.0)
    md = (tmp_path / "table2.md").read_text()
    assert "| 1 net (mean of 2) | 21.00 ± 1.41 |" in md
    assert "| ensemble of 2 | 17.00 | 1.00 | 15.00 | 0.00 | +2.00 | 21.00 / 19.00 |" in md
    # an ensemble is set beside its own nets, not every single net (was: only the latter)
    third = [{**e, "checkpoints": ["c"], "top1_err": 0.5} for e in entries[:1] + entries[2:3]]
    (tmp_path / "three.json").write_text(json.dumps(entries + third))
    one, two = table2.table2([str(tmp_path / "three.json")], str(tmp_path / "3"), "")
    assert one["center_top1"] == pytest.approx(92 / 3) and two["members_center_top1"] == 21.0
    # the same entries in two files (a sweep evaluated in two sessions) give the same table
    (tmp_path / "part1.json").write_text(json.dumps(entries[:1] + entries[2:3]))
    (tmp_path / "part2.json").write_text(json.dumps(entries[1:2] + entries[3:]))
    parts = [str(tmp_path / f"part{i}.json") for i in (1, 2)]
    rows_parts = table2.table2(parts, str(tmp_path / "p"), "")
    assert [{k: v for k, v in r.items() if v == v} for r in rows_parts] == [
        {k: v for k, v in r.items() if v == v}
        for r in rows  # NaN cells (no std of 1) aside
    ]
    assert "part1.json, " in (tmp_path / "p" / "table2.md").read_text()
    held = [{**e, "checkpoints": ["c"], "n": 50} for e in entries[:1]]  # another split
    (tmp_path / "held.json").write_text(json.dumps(held))
    with pytest.raises(ValueError, match=r"1-net center entries .* numbers of images \[50, 100\]"):
        table2.table2([str(tmp_path / "eval.json"), str(tmp_path / "held.json")], str(tmp_path), "")
    with pytest.raises(ValueError, match=r"\['a'\] in mode center is in .*part1.json and"):
        table2.table2([*parts, parts[0]], str(tmp_path / "p"), "")  # one evaluation twice
    (tmp_path / "bad.json").write_text(json.dumps([{"mode": "center"}]))
    with pytest.raises(ValueError, match=r"--eval_json=.*bad.json: entry .* lacks 'checkpoints'"):
        table2.table2([str(tmp_path / "bad.json")], str(tmp_path), "")
    with pytest.raises(FileNotFoundError, match="--eval_json=.*nope.json does not exist"):
        table2.table2([str(tmp_path / "nope.json")], str(tmp_path), "")


def test_fig3_tower_split_and_colour_specificity(tmp_path):
    rng = np.random.default_rng(0)
    kernels = rng.normal(size=(11, 11, 3, 96)).astype(np.float32)
    kernels[..., 0] = kernels[..., :1, 0]  # same on R, G, B: colour-blind
    kernels[..., 1] = 0
    kernels[:, :, 0, 1], kernels[:, :, 1, 1] = 1.0, -1.0  # no grey component at all
    spec = net_figures.colour_specificity(kernels)
    assert spec[0] == pytest.approx(0.0, abs=1e-12) and spec[1] == pytest.approx(1.0)
    for i in (5, 60):  # against the definition, written out
        w = kernels[..., i].astype(np.float64)
        grey = np.stack([w.mean(2)] * 3, axis=2)
        assert spec[i] == pytest.approx(np.sum((w - grey) ** 2) / np.sum(w**2))
    mosaic = net_figures.kernel_mosaic(kernels, towers=2, cols=16, gap=1)
    assert mosaic.shape == (7 * 12, 16 * 12, 3)  # 3 rows per tower, a blank row between
    for i in (0, 17, 47, 48, 95):
        tower, j = divmod(i, 48)
        r, q = divmod(j, 16)
        top = tower * 4 * 12 + r * 12
        tile = mosaic[top : top + 11, q * 12 : q * 12 + 11]
        w = kernels[..., i]
        np.testing.assert_allclose(tile, (w - w.min()) / (w.max() - w.min()), atol=1e-6)
    assert np.all(mosaic[3 * 12 : 4 * 12] == 1.0)  # the gap between the towers
    out = tmp_path / "fig3.png"
    spec_towers = net_figures.plot_fig3(kernels, 2, str(out))
    assert spec_towers == pytest.approx([spec[:48].mean(), spec[48:].mean()])
    assert out.read_bytes()[:8] == PNG_MAGIC
    grey = net_figures.plot_fig3(kernels[:, :, :1], 2, str(tmp_path / "grey.png"))
    assert all(math.isnan(s) for s in grey)
    with pytest.raises(ValueError, match="not divisible"):
        net_figures.tower_split(kernels[..., :95], 2)


def test_nearest_neighbours_against_brute_force():
    rng = np.random.default_rng(1)
    train, queries = rng.normal(size=(200, 16)), rng.normal(size=(5, 16))
    idx = net_figures.nearest(train, queries, 4)
    for q in range(5):
        dists = [np.linalg.norm(queries[q] - t) for t in train]
        assert list(idx[q]) == sorted(range(200), key=dists.__getitem__)[:4]


@pytest.mark.slow
def test_figures_from_a_tiny_run(tiny_sweep, tmp_path):
    _, workdir, _ = tiny_sweep
    with open(os.path.join(workdir, "sweep.json")) as f:
        manifest = json.load(f)
    run = os.path.join(workdir, manifest["runs"][0]["run_dir"])
    measured = figures.figures_for_run(run, str(tmp_path), "r", queries=3, k=2)
    figures.plot_sweep(workdir, str(tmp_path / "sweep.png"))
    sizes = {"r_curves.png": (400, 1000), "sweep.png": (400, 1000), "r_fig4_fc7_nn.png": (360, 360)}
    for name, (h, w) in sizes.items():
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC
        assert matplotlib.image.imread(str(tmp_path / name)).shape[:2] == (h, w)
    assert (tmp_path / "r_fig3_conv1.png").read_bytes()[:8] == PNG_MAGIC
    with open(os.path.join(run, "config.json")) as f:  # the curves name the split they read
        assert figures.eval_label(run) == f"error on {json.load(f)['input']['eval_split']!r}"
    assert all(math.isnan(s) for s in measured["colour_specificity"])  # 1-channel input
    assert 0.0 <= measured["fig4_neighbour_label_agreement"] <= 1.0


def test_figures_of_a_sweep_without_checkpoints(tiny_sweep, tmp_path, capsys):
    """Committed run_files/ hold no checkpoints: --nonet_figures draws what metrics.jsonl gives,
    and without it the missing checkpoint is one line naming the flag."""
    _, workdir, _ = tiny_sweep
    copy = tmp_path / "runs"
    shutil.copytree(workdir, copy, ignore=shutil.ignore_patterns("checkpoints"))
    out = tmp_path / "figs"
    argv = ["figures", f"--workdir={copy}", f"--out={out}"]
    cli.run(figures.define_flags, figures.main, [*argv, "--nonet_figures"])
    for name in ("sweep_curves.png", "deltas.png", "baseline_curves.png", "no_lrn_curves.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
    assert not (out / "baseline_fig3_conv1.png").exists()
    with pytest.raises(SystemExit) as e:
        cli.run(figures.define_flags, figures.main, argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0] and "--nonet_figures" in err[0], err


def test_lr_drops_are_found_at_the_evaluation_before_the_lower_rate():
    rows = [
        {"step": 10, "lr": 0.01, "train/loss": 2.0},
        {"step": 20, "eval/top1_err": 0.5},
        {"step": 30, "lr": 0.01, "train/loss": 1.0},
        {"step": 40, "eval/top1_err": 0.5},
        {"step": 50, "lr": 0.001, "train/loss": 0.9},
        {"step": 60, "eval/top1_err": 0.4},
        {"step": 70, "lr": 0.0001, "train/loss": 0.8},
    ]
    assert figures.lr_drops(rows) == [40, 60]


def _fake_run(run_dir, train_errs: list[list[float]], test_errs: list[float], final=True):
    """A run directory with metrics.jsonl: per epoch of 10 steps, train rows at the given
    errors (one per logged step) then one eval row; config.json and provenance.json."""
    os.makedirs(run_dir)
    rows, step = [], 0
    for epoch, (trs, te) in enumerate(zip(train_errs, test_errs, strict=True)):
        for i, e in enumerate(trs):
            rows.append(
                {"step": 10 * epoch + i + 1, "lr": 0.01, "train/loss": 1.0, "train/top1_err": e}
            )
        step = 10 * (epoch + 1)
        rows.append({"step": step, "eval/top1_err": te, "eval/top5_err": te / 10})
    with open(os.path.join(run_dir, "metrics.jsonl"), "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    with open(os.path.join(run_dir, "config.json"), "w") as f:
        json.dump({"model": {"num_classes": 10}, "input": {"eval_split": "train[55000:]"}}, f)
    with open(os.path.join(run_dir, "results.md"), "w") as f:
        f.write("| step |\n")
    prov = {
        "git_commit": "x",
        "started": "2026-12-02T00:00:00+00:00",
        "command": "c",
        "hardware": {"cpu": "c", "cpu_count": 2, "devices": [], "jax": "j", "python": "p"},
        "wall_time_s": 1.0,
    }
    if final:
        prov["final"] = {
            "step": step,
            "epoch": len(test_errs),
            "eval/top1_err": test_errs[-1],
            "eval/top5_err": test_errs[-1] / 10,
        }
    with open(os.path.join(run_dir, "provenance.json"), "w") as f:
        json.dump(prov, f)


def _fake_sweep(workdir, runs: dict) -> dict:
    """runs: {(variant, seed): (train_errs, test_errs, final)} -> the manifest, written."""
    manifest = {
        "baseline": "baseline",
        "variants": {},
        "runs": [],
        "sweep": "s",
        "config": "c",
        "seeds": [0, 1],
    }
    for (variant, seed), (trs, tes, final) in runs.items():
        manifest["variants"][variant] = {"section": "Sec. 4.2", "claim": None}
        run_dir = f"{variant}/s{seed}"
        _fake_run(os.path.join(workdir, run_dir), trs, tes, final)
        manifest["runs"].append({"variant": variant, "seed": seed, "run_dir": run_dir})
    with open(os.path.join(workdir, "sweep.json"), "w") as f:
        json.dump(manifest, f)
    return manifest


def test_overfitting_gap_is_each_runs_own_last_epoch(tmp_path):
    """A plateau schedule ends seeds at different epochs: the gap is read at each run's end, not
    at the shortest run's last epoch."""
    manifest = _fake_sweep(
        tmp_path,
        {
            ("baseline", 0): ([[0.3], [0.2]], [0.30, 0.25], True),
            ("baseline", 1): ([[0.3], [0.2], [0.1]], [0.30, 0.20, 0.20], True),
        },
    )
    gaps = figures.plot_overfitting(str(tmp_path), ("baseline",), str(tmp_path / "o.png"), manifest)
    assert gaps == pytest.approx({"baseline": (5.0 + 10.0) / 2})  # not (5 + 0) / 2 at epoch 2


def test_overfitting_gap_and_a_partial_sweep(tmp_path, monkeypatch):
    manifest = _fake_sweep(
        tmp_path,
        {
            ("baseline", 0): ([[0.5, 0.3], [0.2, 0.2]], [0.30, 0.25], True),
            ("baseline", 1): ([[0.4, 0.4], [0.1, 0.3]], [0.20, 0.15], True),
            ("no_dropout", 0): ([[0.3, 0.1], [0.0, 0.0]], [0.30, 0.32], True),
            ("no_dropout", 1): ([[0.3, 0.1]], [0.30], False),  # stopped after one epoch
        },
    )
    with pytest.raises(tables.InputError, match="no_dropout/s1.*--partial"):
        tables.finished(str(tmp_path), manifest, partial=False)
    done = tables.finished(str(tmp_path), manifest, partial=True)
    assert done["unfinished"] == ["no_dropout/s1"] and len(done["runs"]) == 3
    saved = []
    monkeypatch.setattr(figures.plt.Figure, "savefig", lambda fig, path: saved.append(fig))
    gaps = figures.plot_overfitting(
        str(tmp_path), ("baseline", "no_dropout"), str(tmp_path / "o.png"), done
    )
    legend = [t.get_text() for t in saved[0].axes[0].get_legend().get_texts()]
    assert "baseline: train[55000:]" in legend and not any(x.endswith("test") for x in legend)
    monkeypatch.undo()
    figures.plot_overfitting(str(tmp_path), ("baseline",), str(tmp_path / "o.png"), done)
    # last epoch: baseline test mean 20, train means (20, 20) -> 20; no_dropout 32 - 0
    assert gaps == pytest.approx({"baseline": 0.0, "no_dropout": 32.0})
    [base0] = [r["run_dir"] for r in done["runs"] if r["run_dir"].startswith("baseline/s0")]
    with open(tmp_path / base0 / "metrics.jsonl") as f:
        lines = f.readlines()
    # killed after epoch 1's eval row, before its checkpoint; resumed from step 0 (before
    # train.py dropped the rows of a killed start, they stayed): epoch 1's rows twice
    first = next(i for i, line in enumerate(lines) if "eval/top1_err" in line) + 1
    (tmp_path / base0 / "metrics.jsonl").write_text("".join(lines[:first] + lines))
    again = figures.plot_overfitting(
        str(tmp_path), ("baseline", "no_dropout"), str(tmp_path / "o.png"), done
    )
    assert again == pytest.approx(gaps)
    assert (tmp_path / "o.png").read_bytes()[:8] == PNG_MAGIC
    runs = {r["run_dir"]: tables.read_run(str(tmp_path / r["run_dir"])) for r in done["runs"]}
    rows = tables.ablation_rows(done, runs)
    assert [(r["n"], r["seeds"]) for r in rows] == [(2, "0 1"), (1, "0")]
    # no_dropout against the baseline's seed 0 (25%), not its seeds 0 and 1 (20%)
    assert rows[1]["d_top1"] == pytest.approx(32.0 - 25.0)
    assert rows[0]["top1_mean"] == pytest.approx(20.0)
    # --seeds=0: the finished seed alone, without --partial; a seed the sweep lacks: one line
    only0 = tables.finished(str(tmp_path), manifest, partial=False, seeds=[0])
    assert only0["seeds"] == [0] and only0["unfinished"] == [] and len(only0["runs"]) == 2
    with pytest.raises(tables.InputError, match=r"--seeds=0,7: \[7\] not among the sweep's"):
        tables.finished(str(tmp_path), manifest, partial=False, seeds=[0, 7])
    figures.plot_deltas(rows, "baseline", str(tmp_path / "d.png"))
    assert matplotlib.image.imread(str(tmp_path / "d.png")).shape[:2] == (170, 1100)
    md = tables.ablation_table(str(tmp_path), str(tmp_path / "t"), "cmd", partial=True)
    assert len(md) == 2
    text = (tmp_path / "t" / "ablations.md").read_text()
    assert "**Partial:** 1 runs had not finished" in text
    assert text.startswith("# Ablations: error on 'train[55000:]' per variant")  # not "test"
    assert "on config.input.eval_split='train[55000:]';" in text


def test_a_sweep_runs_seed_by_seed(tmp_path):
    path = _sweep_file(tmp_path / "s.py", str(tmp_path))
    runs = sweep_lib.plan(sweep_lib.load_sweep(path), str(tmp_path / "w"))
    assert [(r.seed, r.variant) for r in runs] == [
        (0, "baseline"),
        (0, "no_lrn"),
        (1, "baseline"),
        (1, "no_lrn"),
    ]


@pytest.mark.parametrize(
    "path",
    sorted(f for f in os.listdir(os.path.join(ROOT, "experiments", "sweeps")) if f[0] != "_"),
)
def test_every_committed_sweep_plans_runs_of_its_config(path, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # sweep files name their configs relative to the checkout
    sweep = sweep_lib.load_sweep(os.path.join("experiments", "sweeps", path))
    runs = sweep_lib.plan(sweep, str(tmp_path))
    assert len(runs) == len(sweep["seeds"]) * len(sweep["variants"])
    assert len({r.run_dir for r in runs}) == len(runs)  # every variant resolves to its own config
    for r in runs:  # the trainer's command line gives the config the run was planned for
        assert sweep_lib.config_hash(_trainer_config(r)) == r.config_hash, r.variant


def _trainer_config(run):
    """The config alexnet_jax.main parses from a planned run's command."""
    assert run.command[1:3] == ("-m", "alexnet_jax.main")
    return cli.parse(main.define_flags, ["main", *run.command[3:]]).config


def test_sweep_commands_carry_tuples_of_strings_and_numbers(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    fields = {
        "model.dropout.inputs_of": ("fc8",),
        "input.eval_modes": ("center", "ten_crop"),
        "model.conv.features": (8, 16, 16, 16, 8),
    }
    variants = {"v": {"overrides": fields}}
    sweep = {"config": "configs/fashion_mnist.py", "seeds": [0], "variants": variants}
    [run] = sweep_lib.plan(sweep, str(tmp_path))
    c = _trainer_config(run)
    for name, value in fields.items():
        node = c
        for part in name.split("."):
            node = node[part]
        assert tuple(node) == value, name
    assert sweep_lib.config_hash(c) == run.config_hash


def _evaluate_file(path, rows) -> None:
    """An `alexnet_jax.evaluate --out` file: rows of (run dir(s), mode, top-1 error, n)."""
    path.write_text(
        json.dumps(
            [
                {"checkpoints": runs, "mode": mode, "top1_err": err, "top5_err": 0.0, "n": n}
                for runs, mode, err, n in rows
            ]
        )
    )


def test_tries_table_holds_each_seeds_numbers_and_leaves_ensembles_out(tmp_path):
    a, b = tmp_path / "try_a", tmp_path / "try_b"
    for d, config in ((a, "configs/fashion_mnist_recipe.py"), (b, "configs/x_2x.py")):
        d.mkdir()
        (d / "sweep.json").write_text(json.dumps({"config": config}))
    s = [f"/w/recipe/s{i}-abc" for i in range(3)]
    _evaluate_file(  # try a: 3 seeds and their ensemble, in one file; training error apart
        a / "eval_ten_crop.json",
        [([s[0]], "center", 0.07, 10000), ([s[1]], "center", 0.08, 10000)]
        + [([s[2]], "center", 0.06, 10000), (s, "center", 0.01, 10000)]
        + [([s[0]], "ten_crop", 0.065, 10000)],
    )
    _evaluate_file(  # the clean training error is the center crop's; ten crops left out
        a / "s2_train_error.json",
        [([s[2]], "center", 0.05, 50000), ([s[2]], "ten_crop", 0.04, 50000)],
    )
    _evaluate_file(b / "s1_eval_ten_crop.json", [([s[1]], "center", 0.064, 10000)])
    rows = cli.run(
        tries.define_flags,
        tries.main,
        ["tries", f"--results={a},{b}", f"--out={tmp_path / 'out'}", "--target=93.0"],
    )
    m, sd = statistics.mean([93.0, 92.0, 94.0]), statistics.stdev([93.0, 92.0, 94.0])
    assert rows[0]["center_each"] == pytest.approx([93.0, 92.0, 94.0])  # seeds in order
    assert (rows[0]["center_mean"], rows[0]["center_std"]) == pytest.approx((m, sd))
    assert rows[0]["ten_crop_each"] == pytest.approx([93.5])
    assert rows[0]["train_each"] == pytest.approx([5.0])  # an error, not an accuracy
    assert rows[1]["center_n"] == 1 and rows[1]["center_mean"] == pytest.approx(93.6)
    text = (tmp_path / "out" / "tries.md").read_text()
    assert (
        "| 1: try_a | `fashion_mnist_recipe.py` | 3 | 93.00 ± 1.00 (93.00, 92.00, 94.00) |" in text
    )
    assert text.rstrip().endswith("| no |")  # one seed above the target is not a met target
    assert "| yes |" in text  # 3 seeds, mean 93.0 >= 93.0
    assert (tmp_path / "out" / "tries.png").read_bytes()[:8] == PNG_MAGIC
    _evaluate_file(b / "s1s2_eval.json", [([s[1]], "center", 0.064, 10000)])  # s1 again: same
    assert tries.read_try(str(b))["seeds"] == {1: {"center": pytest.approx(6.4)}}
    _evaluate_file(b / "s1s2_eval.json", [([s[1]], "center", 0.07, 10000)])  # s1 again: not
    with pytest.raises(ValueError, match=r"seed 1's center error is 6.40% in .*s1_eval_ten_crop"):
        tries.read_try(str(b))
    (b / "s1_eval_ten_crop.json").write_text("{")
    with pytest.raises(SystemExit) as e:
        cli.run(tries.define_flags, tries.main, ["tries", f"--results={b}", f"--out={tmp_path}"])
    assert e.value.code == 2
    for text, match in (  # were JSONDecodeError, KeyError, IndexError and TypeError tracebacks
        ('[{"checkpoints": [], "mode": "center", "top1_err": 0.1, "top5_err": 0, "n": 1}]',
         "needs a list of checkpoints and numeric errors"),
        ('[{"checkpoints": ["s0-a"], "mode": "center", "top1_err": null, "top5_err": 0, "n": 1}]',
         "needs a list of checkpoints and numeric errors"),
        ("[]", "holds no rows"),
        ('[{"checkpoints": ["s0-a"], "mode": "center", "top1_err": 0.1, "top5_err": 0, "n": 1, '
         '"split": "train[50000:]"}]', "evaluated 'train.50000:.', not the test set"),
    ):  # fmt: skip
        (b / "s1_eval_ten_crop.json").write_text(text)
        with pytest.raises(InputError, match=match):
            tries.read_try(str(b))
    for text in ("", '{"command": "x"}'):
        (b / "sweep.json").write_text(text)
        with pytest.raises(InputError, match=r"sweep.json is not a sweep manifest"):
            tries.read_try(str(b))
