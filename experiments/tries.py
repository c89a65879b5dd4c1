r"""Recipe tries side by side: each seed's test error (center, ten crops, Sec. 4.1) and clean
training error, read from the results directories; a table and a picture against a target.

  python -m experiments.tries --out=experiments/results/recipe_tries \
      --results=experiments/results/recipe_fashion_cpu2,experiments/results/recipe_long_fashion_cpu2

A results directory holds `sweep.json` (which names the config) and the files that
`python -m alexnet_jax.evaluate --out=...` wrote: `*eval*.json` on the test set and
`*train_error*.json` on the training images. A row of one checkpoint is one net, its seed the
run directory's `s{seed}-` prefix; rows of several checkpoints (ensembles) are left out. A net
in two files (evaluated again beside another) must have the same error in both.
Accuracies are 100 - top-1 error, in %; mean and sample std (ddof=1) over the seeds.
"""

import glob
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from absl import flags  # noqa: E402

from alexnet_jax import cli  # noqa: E402
from alexnet_jax.errors import InputError, MissingFileError, one_line  # noqa: E402
from experiments import sweep as sweep_lib  # noqa: E402
from experiments import table2  # noqa: E402
from experiments.summary import mean_std, write_csv  # noqa: E402

MODES = ("center", "ten_crop")


def _seed(run_dir: str) -> int:
    name = os.path.basename(os.path.normpath(run_dir))
    if not (name.startswith("s") and name[1:].split("-")[0].isdigit()):
        raise InputError(f"checkpoint {run_dir} is not a sweep run directory (s<seed>-<hash>)")
    return int(name[1:].split("-")[0])


def read_try(results_dir: str) -> dict:
    """{"name", "config", "seeds": {seed: {"center", "ten_crop", "train"}}}, errors in %."""
    sweep_json = os.path.join(results_dir, sweep_lib.MANIFEST)
    if not os.path.isfile(sweep_json):
        raise MissingFileError(f"{sweep_json} does not exist; give a directory tables.py wrote")
    try:
        with open(sweep_json) as f:
            config = json.load(f)["config"]
    except (ValueError, KeyError, TypeError) as e:  # not JSON, or not the sweep's manifest
        raise InputError(f"{sweep_json} is not a sweep manifest ({one_line(e)})") from None
    seeds: dict[int, dict] = {}
    read_in: dict[tuple[int, str], str] = {}  # (seed, key) -> the file it came from
    for kind, pattern in (("test", "*eval*.json"), ("train", "*train_error*.json")):
        for path in sorted(glob.glob(os.path.join(results_dir, pattern))):
            for r in table2.read_eval_json(path, source=""):
                if len(r["checkpoints"]) > 1 or (kind == "train" and r["mode"] != "center"):
                    continue  # an ensemble; a training error other than the clean (center) one
                if kind == "test" and r.get("split", "test") != "test":  # older files lack it
                    raise InputError(
                        f"{path} evaluated {r['split']!r}, not the test set; rerun evaluate "
                        "with --config.input.eval_split=test"
                    )
                seed, key = _seed(r["checkpoints"][0]), r["mode"] if kind == "test" else "train"
                err = 100 * r["top1_err"]
                if seeds.setdefault(seed, {}).get(key, err) != err:  # one net evaluated twice
                    raise InputError(
                        f"seed {seed}'s {key} error is {seeds[seed][key]:.2f}% in "
                        f"{read_in[seed, key]} but {err:.2f}% in {path}; keep one of them"
                    )
                seeds[seed][key], read_in[seed, key] = err, path
    if not any("center" in s for s in seeds.values()):
        raise InputError(f"{results_dir} has no test evaluation (*eval*.json) of a single net")
    return {
        "name": os.path.basename(os.path.normpath(results_dir)),
        "config": config,
        "seeds": seeds,
    }


def summary(t: dict) -> dict:
    """One table row: per mode the seeds' accuracies, their mean and std; mean training error."""
    row = {"try": t["name"], "config": os.path.basename(t["config"])}
    for key in (*MODES, "train"):
        xs = [s[key] for _, s in sorted(t["seeds"].items()) if key in s]
        if key != "train":
            xs = [100 - x for x in xs]
        m, sd = mean_std(xs) if xs else (float("nan"), float("nan"))
        row.update({f"{key}_n": len(xs), f"{key}_mean": m, f"{key}_std": sd, f"{key}_each": xs})
    return row


def markdown(rows: list[dict], target: float) -> str:
    def cell(r, key):
        if not r[f"{key}_n"]:
            return "—"
        each = ", ".join(f"{x:.2f}" for x in r[f"{key}_each"])
        sd = f" ± {r[f'{key}_std']:.2f}" if r[f"{key}_n"] > 1 else ""
        return f"{r[f'{key}_mean']:.2f}{sd} ({each})"

    lines = [
        f"| try | config | seeds | test accuracy, center (%) | ten crops (%) | clean training "
        f"error (%) | >= {target}% (center mean) |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(rows, 1):
        met = "yes" if r["center_n"] >= 3 and r["center_mean"] >= target else "no"
        lines.append(
            f"| {i}: {r['try']} | `{r['config']}` | {r['center_n']} | {cell(r, 'center')} | "
            f"{cell(r, 'ten_crop')} | {cell(r, 'train')} | {met} |"
        )
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], target: float, out_png: str) -> None:
    fig, ax = plt.subplots(figsize=(1.1 * len(rows) + 3, 4))
    for i, r in enumerate(rows):
        for key, dx, style, color, name in (
            ("center", -0.12, "o", "C0", "center crop"),
            ("ten_crop", 0.12, "^", "C1", "ten crops"),
        ):
            xs = r[f"{key}_each"]
            label = name if i == 0 else None
            ax.plot([i + dx] * len(xs), xs, style, mfc="none", color=color, label=label)
            if xs:
                ax.plot([i + dx - 0.08, i + dx + 0.08], [r[f"{key}_mean"]] * 2, "-", color="k")
    ax.axhline(target, ls="--", color="C3", label=f"target {target}% (mean of 3, center)")
    ax.set_ylim(top=max(ax.get_ylim()[1], target) + 0.2)  # the target line off the frame
    names = [r["config"].removeprefix("fashion_mnist_").removesuffix(".py") for r in rows]
    ax.set_xticks(range(len(rows)), [f"{i + 1}\n{n}" for i, n in enumerate(names)], fontsize=8)
    ax.set_xlabel("try (rows of tries.md, by config); bars: mean over seeds")
    ax.set_ylabel("test accuracy (%)")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    plt.close(fig)


def define_flags(fv: flags.FlagValues, argv: list[str]) -> None:
    d = dict(flag_values=fv)
    flags.DEFINE_list("results", None, "Results directories, one per try, in order.", **d)
    flags.DEFINE_string("out", None, "Directory for tries.md, tries.csv and tries.png.", **d)
    flags.DEFINE_float("target", 93.5, "Target mean test accuracy (%), center crop.", **d)
    flags.mark_flags_as_required(["results", "out"], flag_values=fv)


def main(fv: flags.FlagValues) -> list[dict]:
    rows = [summary(read_try(d)) for d in fv.results]
    os.makedirs(fv.out, exist_ok=True)
    command = (
        f"python -m experiments.tries --out={fv.out} --target={fv.target} "
        f"--results={','.join(fv.results)}"
    )
    with open(os.path.join(fv.out, "tries.md"), "w") as f:
        f.write(f"# Recipe tries against {fv.target}%\n\n- made by: `{command}`\n")
        f.write("- from each try's `sweep.json` and `evaluate` files, per seed in brackets\n\n")
        f.write(markdown(rows, fv.target))
    flat = [{k: v for k, v in r.items() if not k.endswith("_each")} for r in rows]
    write_csv(os.path.join(fv.out, "tries.csv"), flat)
    plot(rows, fv.target, os.path.join(fv.out, "tries.png"))
    print(markdown(rows, fv.target), end="")
    return rows


if __name__ == "__main__":
    cli.run(define_flags, main)
