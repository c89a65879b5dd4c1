r"""Table 2 style: one net against an ensemble, the center crop against ten crops (Sec. 4.1,
Sec. 6), from the files `python -m alexnet_jax.evaluate --out=...` wrote.

  python -m experiments.tables --eval_json=eval.json --out=experiments/results/table2
"""

import json
import math
import os

from alexnet_jax.errors import InputError, MissingFileError
from experiments.summary import fmt, mean_std, write_csv

PAPER_TABLE2 = {  # Table 2, ILSVRC-2012 validation, top-1 / top-5 error (%), ten patches each
    1: (40.7, 18.2),
    5: (38.1, 16.4),
}


def read_eval_json(path: str, source: str = "--eval_json=") -> list[dict]:
    """The rows `alexnet_jax.evaluate --out=PATH` wrote, checked; `source` names where the
    path came from in the one-line errors."""
    if not os.path.isfile(path):
        raise MissingFileError(f"{source}{path} does not exist; run alexnet_jax.evaluate")
    try:
        with open(path) as f:
            loaded = json.load(f)
    except json.JSONDecodeError as e:
        raise InputError(f"{source}{path} is not JSON ({e}); write it with evaluate") from None
    if not (isinstance(loaded, list) and all(isinstance(e, dict) for e in loaded)):
        raise InputError(f"{source}{path} is not a list of rows; write it with evaluate")
    if not loaded:
        raise InputError(f"{source}{path} holds no rows; write it with alexnet_jax.evaluate")
    for e in loaded:
        for key in ("checkpoints", "mode", "top1_err", "top5_err", "n"):
            if key not in e:
                raise InputError(
                    f"{source}{path}: entry {e} lacks {key!r}; write it with alexnet_jax.evaluate"
                )
        numbers = all(isinstance(e[k], int | float) for k in ("top1_err", "top5_err", "n"))
        if not (e["checkpoints"] and isinstance(e["checkpoints"], list) and numbers):
            raise InputError(
                f"{source}{path}: entry {e} needs a list of checkpoints and numeric errors; "
                "write it with alexnet_jax.evaluate"
            )
    return loaded


def table2_rows(entries: list[dict]) -> list[dict]:
    """evaluate's eval.json entries -> rows by ensemble size: center and ten-crop errors (%).

    Several single-net entries (one per checkpoint) are averaged: mean ± std over nets.
    """
    by = {}
    for e in entries:
        by.setdefault((len(e["checkpoints"]), e["mode"]), []).append(e)
    rows = []
    for size in sorted({k[0] for k in by}):
        row = {"nets": size}
        for mode in ("center", "ten_crop"):
            es = by.get((size, mode), [])
            if len({e["n"] for e in es}) > 1:  # e.g. one file on the test set, one held out
                raise InputError(
                    f"the {size}-net {mode} entries were evaluated on different numbers of "
                    f"images {sorted({e['n'] for e in es})}; give evaluations of one split"
                )
            for metric in ("top1", "top5"):
                xs = [100 * e[f"{metric}_err"] for e in es]
                m, s = mean_std(xs) if xs else (math.nan, math.nan)
                row[f"{mode}_{metric}"], row[f"{mode}_{metric}_std"] = m, s
            row[f"{mode}_count"] = len(es)
            row[f"{mode}_n"] = es[0]["n"] if es else 0
        row["paper_top1"], row["paper_top5"] = PAPER_TABLE2.get(size, (None, None))
        for mode in ("center", "ten_crop"):  # an ensemble against its own nets, each alone
            row[f"members_{mode}_top1"] = _members_top1(by, size, mode) if size > 1 else math.nan
        rows.append(row)
    return rows


def _members_top1(by: dict, size: int, mode: str) -> float:
    """The mean single-net top-1 error (%) of the nets of the `size`-net ensemble (NaN if any
    lacks its single-net entry): the ensemble's gain is read against these, not the mean of
    every single net (which may include nets the ensemble lacks)."""
    sets = {tuple(e["checkpoints"]) for e in by.get((size, mode), [])}
    if len(sets) > 1:
        raise InputError(
            f"{len(sets)} different {size}-net ensembles in mode {mode}: {sorted(sets)}; give "
            "one ensemble of each size"
        )
    alone = {e["checkpoints"][0]: 100 * e["top1_err"] for e in by.get((1, mode), [])}
    nets = next(iter(sets), ())
    return sum(alone[c] for c in nets) / len(nets) if nets and set(nets) <= set(alone) else math.nan


def table2_markdown(rows: list[dict]) -> str:
    lines = [
        "| nets | center top-1 (%) | center top-5 (%) | ten-crop top-1 (%) | ten-crop top-5 (%) "
        "| ten-crop gain top-1 (pp) | its nets alone: top-1 center / ten-crop (%) "
        "| paper top-1 / top-5 (ILSVRC val, ten patches) |",
        "|" + "---|" * 8,
    ]
    for r in rows:

        def cell(mode, metric, r=r):
            m, s = r[f"{mode}_{metric}"], r[f"{mode}_{metric}_std"]
            return fmt(m) if math.isnan(s) else f"{fmt(m)} ± {fmt(s)}"

        gain = r["center_top1"] - r["ten_crop_top1"]
        paper = "—" if r["paper_top1"] is None else f"{r['paper_top1']} / {r['paper_top5']}"
        name = "1 net" if r["nets"] == 1 else f"ensemble of {r['nets']}"
        if r["nets"] == 1 and r["center_count"] > 1:
            name += f" (mean of {r['center_count']})"
        members = [r[f"members_{mode}_top1"] for mode in ("center", "ten_crop")]
        alone = "—" if all(math.isnan(m) for m in members) else " / ".join(map(fmt, members))
        lines.append(
            f"| {name} | {cell('center', 'top1')} | {cell('center', 'top5')} | "
            f"{cell('ten_crop', 'top1')} | {cell('ten_crop', 'top5')} | "
            f"{fmt(gain, signed=True)} | {alone} | {paper} |"
        )
    return "\n".join(lines) + "\n"


def table2(eval_jsons: list[str], out: str, command: str, eval_command: str = "") -> list[dict]:
    """evaluate's eval.json files (alexnet_jax.evaluate; e.g. one per session of a sweep spread
    over sessions, entries concatenated) -> OUT/table2.{md,csv}; `eval_command` made them."""
    entries, seen = [], {}
    for path in eval_jsons:
        loaded = read_eval_json(path)
        for e in loaded:
            key = (tuple(e.get("checkpoints", ())), e.get("mode"))
            if key in seen:
                raise InputError(
                    f"--eval_json: {list(key[0])} in mode {key[1]} is in {seen[key]} and {path}; "
                    "give each evaluation once"
                )
            seen[key] = path
        entries += loaded
    rows = table2_rows(entries)
    os.makedirs(out, exist_ok=True)
    write_csv(os.path.join(out, "table2.csv"), rows)
    with open(os.path.join(out, "table2.md"), "w") as f:
        f.write(
            "# Table 2 style: one net vs an ensemble, center crop vs ten crops\n\n"
            f"- eval.json made by: `{eval_command or 'not given'}`\n"
            f"- table made by: `{command}`\n- source: `{', '.join(eval_jsons)}`; errors in %, "
            "± is the std over single nets\n\n" + table2_markdown(rows)
        )
    return rows
