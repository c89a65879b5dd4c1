r"""A finished sweep -> the ablation table (markdown + CSV) beside the paper's claims; Table 2
(experiments/table2.py) from evaluate's files. The command line for both:

  python -m experiments.tables --workdir=runs/ablations --out=experiments/results/ablations
  python -m experiments.tables --eval_json=eval.json --out=experiments/results/table2
  python -m experiments.tables --eval_json=a.json,b.json ...   # a sweep evaluated in parts

Every number is read from the runs' own metrics.jsonl (the last eval row; provenance.json's
final result must agree) and each run's small files are copied under OUT/run_files/ so that
the table can be traced to them. Errors are reported in percentage points (pp). Per variant:
mean and sample standard deviation (ddof=1) over seeds; the delta against the baseline is the
difference of means with the standard error of that difference, sqrt(s_v^2/n_v + s_b^2/n_b)
(Welch). Verdicts use 2 standard errors: a delta within 2 SE of 0 is "not resolved"; the
paper's claim (variant minus baseline, as Secs. 3.2-3.4 give it) "agrees in size" when it lies
within 2 SE of our delta.
"""

import collections
import datetime
import json
import math
import os
import shutil
import sys

from absl import flags

from alexnet_jax import cli, files
from alexnet_jax.errors import InputError, MissingFileError
from experiments import sweep as sweep_lib
from experiments import table2
from experiments.summary import delta, fmt, mean_std, verdict, welch_p, write_csv

RUN_COPIES = "run_files"  # not "runs": .gitignore ignores every runs/ directory
RUN_FILES = ("config.json", "provenance.json", "metrics.jsonl", "results.md")


def _timestamp(iso: str) -> float:
    return datetime.datetime.fromisoformat(iso).timestamp()


def _iso(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(round(timestamp), datetime.UTC).isoformat()


def read_run(run_dir: str) -> dict:
    """Final top-1/top-5 error, last training loss/error and provenance of one finished run."""
    rows = files.read_rows(os.path.join(run_dir, "metrics.jsonl"))
    evals = [r for r in rows if "eval/top1_err" in r]
    trains = [r for r in rows if "train/loss" in r]
    if not evals:
        raise InputError(f"{run_dir}/metrics.jsonl has no eval row; the run did not finish")
    with open(os.path.join(run_dir, "provenance.json")) as f:
        prov = json.load(f)
    with open(os.path.join(run_dir, "config.json")) as f:
        eval_split = json.load(f)["input"]["eval_split"]  # "test", or a held-out validation split
    last, earlier = evals[-1], prov.get("earlier", [])
    segments = [p for p in [*earlier, prov] if "started" in p]  # an unreadable one: a note only
    final = prov.get("final", {})
    for key in ("eval/top1_err", "eval/top5_err"):
        if final.get(key) != last[key]:
            raise InputError(
                f"{run_dir}: provenance.json final {key}={final.get(key)} differs from "
                f"metrics.jsonl's last eval row ({last[key]}); rerun the run"
            )
    return {
        "eval_split": eval_split,
        "top1": 100 * last["eval/top1_err"],
        "top5": 100 * last["eval/top5_err"],
        "train_loss": trains[-1]["train/loss"] if trains else math.nan,
        "train_top1": 100 * trains[-1]["train/top1_err"] if trains else math.nan,
        "step": last["step"],
        "epochs": final.get("epoch", math.nan),
        "final_lr": trains[-1]["lr"] if trains else math.nan,  # 1e-5: Sec. 5's schedule ended
        # a run resumed across sessions: every start's wall time and commit (metrics.Run)
        "wall_time_s": sum(p.get("wall_time_s", math.nan) for p in [*earlier, prov]),
        "git_commit": ",".join(dict.fromkeys(p.get("git_commit", "?") for p in [*earlier, prov])),
        "started": min((p["started"] for p in segments), key=_timestamp),  # its first start
        "ended": _iso(max(_timestamp(p["started"]) + p.get("wall_time_s", 0) for p in segments)),
        "command": prov["command"],
        "hardware": prov["hardware"],
    }


def ablation_rows(manifest: dict, runs: dict[str, dict]) -> list[dict]:
    """One row per variant: mean/std over seeds, delta vs the baseline, the paper's claim. A
    variant is compared on the seeds the baseline has too, against the baseline's runs of those
    seeds, so that a partial sweep's baseline seed that the variant lacks changes no delta."""
    by_variant: dict[str, dict[int, dict]] = {}
    for r in manifest["runs"]:
        by_variant.setdefault(r["variant"], {})[r["seed"]] = runs[r["run_dir"]]
    base = by_variant[manifest["baseline"]]
    rows = []
    for name, by_seed in by_variant.items():
        seeds = sorted(set(by_seed) & set(base))
        if not seeds:
            continue  # finished only where the baseline has not (a partial sweep)
        rs, bs = [by_seed[s] for s in seeds], [base[s] for s in seeds]
        v = manifest["variants"][name]
        claim = v.get("claim")
        row = {"variant": name, "section": v.get("section", ""), "what": v.get("what", "")}
        row["n"] = len(rs)
        for k, metric in ((0, "top1"), (1, "top5")):
            xs = [r[metric] for r in rs]
            row[f"{metric}_mean"], row[f"{metric}_std"] = mean_std(xs)
            row[f"d_{metric}"], row[f"d_{metric}_se"] = delta(xs, [r[metric] for r in bs])
            row[f"paper_d_{metric}"] = None if claim is None else claim[k]
            row[f"verdict_{metric}"] = (
                "baseline"
                if name == manifest["baseline"]
                else verdict(row[f"d_{metric}"], row[f"d_{metric}_se"], row[f"paper_d_{metric}"])
            )
        row["p_top1"] = (
            math.nan
            if name == manifest["baseline"]
            else welch_p([r["top1"] for r in rs], [r["top1"] for r in bs])
        )
        row["train_top1_mean"] = mean_std([r["train_top1"] for r in rs])[0]
        row["epochs_mean"] = mean_std([r["epochs"] for r in rs])[0]
        row["seeds"] = " ".join(map(str, seeds))
        rows.append(row)
    return rows


def ablation_markdown(rows: list[dict], baseline: str) -> str:
    head = (
        "| variant | paper | n | top-1 err (%) | top-5 err (%) | Δtop-1 vs base (pp) | "
        "paper Δtop-1 | Δtop-5 vs base (pp) | paper Δtop-5 | top-1 verdict | top-5 verdict | "
        "top-1 p (Welch) | train top-1 err (%) | epochs |"
    )
    lines = [head, "|" + "---|" * 14]
    for r in rows:
        is_base = r["variant"] == baseline

        def d(m, r=r, is_base=is_base):
            return "—" if is_base else f"{fmt(r[f'd_{m}'], signed=True)} ± {fmt(r[f'd_{m}_se'])}"

        def p(m, r=r):
            return "—" if r[f"paper_d_{m}"] is None else f"{r[f'paper_d_{m}']:+.1f}"

        lines.append(
            f"| {r['variant']} | {r['section']} | {r['n']} | "
            f"{fmt(r['top1_mean'])} ± {fmt(r['top1_std'])} | "
            f"{fmt(r['top5_mean'])} ± {fmt(r['top5_std'])} | {d('top1')} | {p('top1')} | "
            f"{d('top5')} | {p('top5')} | {r['verdict_top1']} | {r['verdict_top5']} | "
            f"{'—' if is_base else fmt(r['p_top1'], 3)} | "
            f"{fmt(r['train_top1_mean'])} | {fmt(r['epochs_mean'], 1)} |"
        )
    return "\n".join(lines) + "\n"


def _splits(runs: list[dict]) -> str:
    return " and ".join(repr(x) for x in sorted({r.get("eval_split", "?") for r in runs}))


def provenance_lines(table_command: str, manifest: dict, runs: dict[str, dict]) -> str:
    """Command, config, git commit(s), hardware, summed wall time and dates of the runs."""
    rs = list(runs.values())
    commits = sorted({c for r in rs for c in r["git_commit"].split(",")})
    machines = collections.Counter(  # a sweep resumed on another machine lists both
        f"{hw['cpu']} ({hw['cpu_count']} cores), devices {hw['devices']}, "
        f"jax {hw['jax']}, python {hw['python']}"
        for hw in (r["hardware"] for r in rs)
    )
    wall = sum(r["wall_time_s"] for r in rs)
    first = min((r["started"] for r in rs), key=_timestamp)
    end = max(
        _timestamp(r["ended"]) if "ended" in r else _timestamp(r["started"]) + r["wall_time_s"]
        for r in rs
    )
    span, last = end - _timestamp(first), _iso(end)
    return "\n".join(
        [
            "- runs made by: "
            + ", then ".join(
                f"`{c}`"
                for c in manifest.get("commands", []) or [manifest.get("command", "unknown")]
            ),
            f"- table made by: `{table_command}`",
            f"- sweep: `{manifest['sweep']}`; config: `{manifest['config']}`; seeds: "
            f"{manifest['seeds']}; each run's command is in `run_files/*/*/provenance.json`",
            f"- git commit: {', '.join(commits)}",
            "- hardware: " + "; ".join(f"{k}: {n} run{'s' * (n > 1)}" for k, n in machines.items()),
            f"- wall time: {wall:.0f} s summed over {len(rs)} runs (each run's own wall_time_s); "
            f"{span:.0f} s from the first run's start to the last run's end",
            f"- dates: first run started {first}, last run ended {last}",
            "- numbers: the last eval row of each run's `metrics.jsonl` (copied under "
            f"`run_files/`), on config.input.eval_split={_splits(rs)}; errors in %, deltas in "
            "percentage points (pp), variant minus baseline",
        ]
    )


def _has_finished(run_dir: str) -> bool:
    path = os.path.join(run_dir, "provenance.json")
    if not os.path.isfile(path):
        return False
    with open(path) as f:
        return "final" in json.load(f)


def finished(workdir: str, manifest: dict, partial: bool, seeds: list[int] | None = None) -> dict:
    """The manifest's runs of `seeds` (default: all the sweep's), or with `partial` only their
    finished runs and `unfinished` listing the rest; without `partial` an unfinished run is an
    error naming it."""
    sweep_lib.check_seeds(seeds, manifest["seeds"])
    done, missing = [], []
    for r in manifest["runs"]:
        if seeds is None or r["seed"] in seeds:
            (done if _has_finished(os.path.join(workdir, r["run_dir"])) else missing).append(r)
    if missing and not partial:
        raise InputError(
            f"{len(missing)} of the sweep's runs have not finished (first: "
            f"{missing[0]['run_dir']}); rerun the sweep, pass --seeds= the finished seeds, or "
            "--partial to table the others"
        )
    if not any(r["variant"] == manifest["baseline"] for r in done):
        raise InputError(f"no run of the baseline {manifest['baseline']!r} has finished yet")
    tabled = sorted({r["seed"] for r in done})
    return {
        **manifest,
        "seeds": tabled,
        "runs": done,
        "unfinished": [r["run_dir"] for r in missing],
    }


def ablation_table(
    workdir: str, out: str, table_command: str, partial: bool = False, seeds=None
) -> list[dict]:
    """WORKDIR/sweep.json's runs -> OUT/ablations.{md,csv}, OUT/runs.csv, OUT/run_files/."""
    path = os.path.join(workdir, sweep_lib.MANIFEST)
    if not os.path.isfile(path):
        raise MissingFileError(
            f"{path} does not exist; run python -m experiments.sweep --workdir={workdir} first"
        )
    with open(path) as f:
        manifest = finished(workdir, json.load(f), partial, seeds)
    runs = {r["run_dir"]: read_run(os.path.join(workdir, r["run_dir"])) for r in manifest["runs"]}
    rows = ablation_rows(manifest, runs)
    os.makedirs(out, exist_ok=True)
    for r in manifest["runs"]:
        dst = os.path.join(out, RUN_COPIES, r["run_dir"])
        os.makedirs(dst, exist_ok=True)
        for name in RUN_FILES:
            shutil.copy(os.path.join(workdir, r["run_dir"], name), dst)
    shutil.copy(os.path.join(workdir, sweep_lib.MANIFEST), out)
    per_run = [
        {"variant": r["variant"], "seed": r["seed"], "run_dir": f"{RUN_COPIES}/{r['run_dir']}"}
        | {k: v for k, v in runs[r["run_dir"]].items() if k != "hardware"}
        for r in manifest["runs"]
    ]
    write_csv(os.path.join(out, "runs.csv"), per_run)
    write_csv(os.path.join(out, "ablations.csv"), rows)
    text = "\n\n".join(
        [
            f"# Ablations: error on {_splits([*runs.values()])} per variant, mean ± std over seeds",
            provenance_lines(table_command, manifest, runs),
            *(
                [
                    f"**Partial:** {len(manifest['unfinished'])} runs had not finished and are "
                    f"left out: {', '.join(manifest['unfinished'])}."
                ]
                if manifest["unfinished"]
                else []
            ),
            ablation_markdown(rows, manifest["baseline"]),
        ]
    )
    with open(os.path.join(out, "ablations.md"), "w") as f:
        f.write(text)
    return rows


def define_flags(fv: flags.FlagValues, argv: list[str]) -> None:
    """The command-line flags (defined only when run as a program, so modules import cleanly)."""
    d = dict(flag_values=fv)
    flags.DEFINE_string("workdir", None, "A sweep's workdir (holds sweep.json).", **d)
    flags.DEFINE_list("eval_json", None, "alexnet_jax.evaluate's outputs, for Table 2.", **d)
    flags.DEFINE_string("eval_command", "", "The alexnet_jax.evaluate command (provenance).", **d)
    flags.DEFINE_string("out", None, "Directory for the tables (experiments/results/NAME).", **d)
    flags.DEFINE_bool("partial", False, "Table the finished runs of an unfinished sweep.", **d)
    flags.DEFINE_list("seeds", None, "Table only these of the sweep's seeds (default: all).", **d)
    flags.mark_flags_as_required(["out"], **d)


def main(fv: flags.FlagValues) -> None:
    if fv.eval_json == []:
        raise InputError("--eval_json= names no file; give evaluate's eval.json (a,b for several)")
    if not (fv.workdir or fv.eval_json):
        raise InputError("give --workdir (ablations) and/or --eval_json (Table 2)")
    command = cli.command("python -m experiments.tables", sys.argv[1:])
    if fv.workdir:
        ablation_table(fv.workdir, fv.out, command, fv.partial, sweep_lib.parse_seeds(fv.seeds))
        with open(os.path.join(fv.out, "ablations.md")) as f:
            print(f.read())
    if fv.eval_json:
        table2.table2(fv.eval_json, fv.out, command, fv.eval_command)
        with open(os.path.join(fv.out, "table2.md")) as f:
            print(f.read())


if __name__ == "__main__":
    cli.run(define_flags, main)
