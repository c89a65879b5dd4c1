r"""Runs a sweep: every variant of a sweep definition, each over its seeds, one run per workdir.

  python -m experiments.sweep --sweep=experiments/sweeps/ablations.py --workdir=runs/ablations
  python -m experiments.sweep --sweep=... --workdir=... --parallel=2   # 2 training processes

A sweep file (experiments/sweeps/*.py) has `get_sweep()` returning a dict: `config` (a config
file, optionally `file.py:arg`), `seeds`, `baseline` (a variant name) and `variants`, an ordered
{name: {"overrides": {"model.lrn.enabled": False, ...}, "section": ..., "claim": ...}}.

Each run is `python -m alexnet_jax.main --config=FILE --workdir=RUN --config.seed=S
--config.FIELD=VALUE ...` in its own process, RUN = WORKDIR/VARIANT/s{seed}-{hash}, where hash is
of the fully resolved config: two different configs never share a directory. A run is skipped
when its provenance.json holds the final result and its config.json equals the resolved config;
a half-done run is started again and resumes from its checkpoint; a directory whose config.json
differs is an error. WORKDIR/sweep.json lists the runs (the manifest `experiments.tables` reads).

A sweep longer than one machine's session runs in parts: `--seeds=0,1` runs only those seeds
(the manifest still lists every run), and a later session copies the results directory's
run_files/ (config, metrics, provenance; `experiments.tables --partial` writes it) and
sweep.json into a fresh WORKDIR, where those runs count as finished, and runs the rest with
`--seeds=2`. The manifest keeps every part's command.
"""

import concurrent.futures
import dataclasses
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import threading
import time

import ml_collections
from absl import flags

from alexnet_jax import cli, files
from alexnet_jax.errors import InputError, MissingFileError

MANIFEST = "sweep.json"


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One training run of a sweep: a variant at a seed, and where it lives."""

    variant: str
    seed: int
    overrides: dict  # dotted config field -> value, without the seed
    config_hash: str
    run_dir: str
    command: tuple[str, ...]


def load_sweep(path: str) -> dict:
    """The dict `get_sweep()` of a sweep file returns, checked."""
    if not os.path.isfile(path):
        raise MissingFileError(f"--sweep={path} does not exist; give a file in experiments/sweeps/")
    spec = importlib.util.spec_from_file_location("_sweep", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        raise InputError(f"sweep {path} has a syntax error at line {e.lineno}: {e.msg}") from None
    if not hasattr(module, "get_sweep"):
        raise InputError(f"sweep {path} has no get_sweep(); see experiments/sweeps/ablations.py")
    sweep = module.get_sweep()
    missing = {"config", "seeds", "baseline", "variants"} - set(sweep)
    if missing:
        raise InputError(f"sweep {path} lacks {sorted(missing)}; get_sweep() must return them")
    if sweep["baseline"] not in sweep["variants"]:
        raise InputError(f"sweep {path}: baseline {sweep['baseline']!r} is not one of its variants")
    if not sweep["seeds"]:
        raise InputError(f"sweep {path} has no seeds; give at least one")
    return sweep


def resolve(config: str, overrides: dict) -> ml_collections.ConfigDict:
    """The config a run trains with: the file's config with `overrides` applied, locked."""
    c = cli.load_config(config)  # one-line errors for a missing file, a syntax error
    c.lock()
    for field, value in overrides.items():
        node = c
        *parents, leaf = field.split(".")
        for p in parents:  # a misspelt or non-dict parent: None, then the one line below
            node = node.get(p) if isinstance(node, ml_collections.ConfigDict) else None
        if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
            raise InputError(f"override {field}={value!r}: {config} has no field {field}")
        node[leaf] = tuple(value) if isinstance(value, list) else value
    return c


# Fields added to configs/paper.py after runs were recorded, with their neutral value: at that
# value a field is left out of the hash and of the config.json comparison, so that an older run
# directory keeps its name and a half-done run still resumes.
ADDED_FIELDS = {("schedule", "drop_after_epochs"): []}


def comparable(config: dict) -> dict:
    """A parsed config.json without the ADDED_FIELDS that hold their neutral value."""
    config = json.loads(json.dumps(config))  # a deep copy
    for (*parents, name), neutral in ADDED_FIELDS.items():
        d = config
        for p in parents:
            d = d.get(p, {})
        if d.get(name, neutral) == neutral:
            d.pop(name, None)
    return config


def config_json(c: ml_collections.ConfigDict) -> dict:
    """A config as the trainer writes it to config.json, parsed (tuples become lists), less the
    ADDED_FIELDS at their neutral value."""
    return comparable(json.loads(c.to_json_best_effort()))


def config_hash(c: ml_collections.ConfigDict) -> str:
    blob = json.dumps(config_json(c), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:10]


def _flag_value(value) -> str:
    if isinstance(value, tuple | list):
        # repr: ml_collections reads "(fc8,)" as the string "(fc8,)", "('fc8',)" as ("fc8",)
        return "(" + ",".join(repr(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return str(value)


def plan(sweep: dict, workdir: str) -> list[RunSpec]:
    """Every (variant, seed) run of `sweep` under `workdir`: seed by seed, each over the variants
    in the sweep's order, so that a sweep stopped half-way has every variant at its first seeds."""
    runs = []
    for seed in sweep["seeds"]:
        for variant, v in sweep["variants"].items():
            overrides = dict(v.get("overrides", {}))
            c = resolve(sweep["config"], {**overrides, "seed": seed})
            h = config_hash(c)
            run_dir = os.path.join(workdir, variant, f"s{seed}-{h}")
            flags_ = [f"--config.seed={seed}"]
            flags_ += [f"--config.{k}={_flag_value(x)}" for k, x in overrides.items()]
            command = (
                sys.executable,
                "-m",
                "alexnet_jax.main",
                f"--config={sweep['config']}",
                f"--workdir={run_dir}",
                *flags_,
            )
            runs.append(RunSpec(variant, seed, overrides, h, run_dir, command))
    return runs


def status(run: RunSpec, expected: dict) -> str:
    """ "new", "partial" or "done"; ValueError if the directory holds another config's run."""
    cfg_path = os.path.join(run.run_dir, "config.json")
    if not os.path.exists(cfg_path):
        return "new"
    with open(cfg_path) as f:
        if comparable(json.load(f)) != expected:
            raise InputError(
                f"{cfg_path} is not the config this sweep resolves for {run.variant} seed "
                f"{run.seed}; move that directory away or use another --workdir"
            )
    prov_path = os.path.join(run.run_dir, "provenance.json")
    if os.path.exists(prov_path):
        with open(prov_path) as f:
            if "final" in json.load(f):
                return "done"
    return "partial"


def _launch(run: RunSpec) -> tuple[int, float]:
    """Runs one training process, its output in RUN/train.log; (exit code, seconds)."""
    os.makedirs(run.run_dir, exist_ok=True)
    t0 = time.time()
    with open(os.path.join(run.run_dir, "train.log"), "a") as log:
        rc = subprocess.run(run.command, stdout=log, stderr=subprocess.STDOUT).returncode
    return rc, time.time() - t0


def _write_manifest(
    sweep_path: str, sweep: dict, workdir: str, runs: list[RunSpec], command: str
) -> None:
    path = os.path.join(workdir, MANIFEST)
    commands = []
    if os.path.isfile(path):  # an earlier part of this sweep (--seeds), or an earlier start
        with open(path) as f:
            old = json.load(f)
        commands = old.get("commands", [old["command"]] if "command" in old else [])
    manifest = {
        "command": command,
        "commands": [*commands, command] if command not in commands else commands,
        "sweep": sweep_path,
        "config": sweep["config"],
        "baseline": sweep["baseline"],
        "seeds": list(sweep["seeds"]),
        "variants": {
            k: {**v, "overrides": dict(v.get("overrides", {}))}
            for k, v in sweep["variants"].items()
        },
        "runs": [
            {
                "variant": r.variant,
                "seed": r.seed,
                "config_hash": r.config_hash,
                "run_dir": os.path.relpath(r.run_dir, workdir),
                "command": cli.command("python", r.command[1:]),
            }
            for r in runs
        ],
    }
    files.write_json(path, json.loads(json.dumps(manifest, default=list)))  # whole or not at all


def parse_seeds(flag: list[str] | None) -> list[int] | None:
    """--seeds=0,1 -> [0, 1]; unset -> None (all the sweep's); one line for a bad one."""
    try:
        seeds = None if flag is None else [int(s) for s in flag]
    except ValueError:
        raise InputError(f"--seeds={','.join(flag)}: give integers, e.g. --seeds=0,1") from None
    check_seeds(seeds)
    return seeds


def check_seeds(seeds: list[int] | None, known=None) -> None:
    """--seeds that name none, or a seed the sweep (`known`) does not have, are one line."""
    if seeds is not None and not seeds:
        raise InputError("--seeds= names no seed; give some of the sweep's, e.g. --seeds=0,1")
    unknown = [] if known is None else sorted(set(seeds or ()) - set(known))
    if unknown:
        raise InputError(
            f"--seeds={','.join(map(str, seeds))}: {unknown} not among the sweep's seeds "
            f"{list(known)}; give a subset of them"
        )


def run_sweep(
    sweep_path: str,
    workdir: str,
    parallel: int = 1,
    launch=_launch,
    command: str = "",
    seeds: list[int] | None = None,
) -> dict:
    """Runs what is not done yet of `seeds` (default: all the sweep's), `parallel` processes at
    a time; {run_dir: outcome} for those seeds' runs.

    Outcomes: "skipped" (finished before), "ok", "stopped" (exit 0 before its end: a signal; it
    resumes from its checkpoint when rerun), "not started" (after a run stopped, or Ctrl-C: no
    more are launched) or "failed (exit N)". `launch(run)` runs one run and returns (exit code,
    seconds); tests pass an in-process launcher.
    """
    if parallel < 1:
        raise InputError(f"--parallel={parallel} must be at least 1")
    sweep = load_sweep(sweep_path)
    check_seeds(seeds, sweep["seeds"])
    os.makedirs(workdir, exist_ok=True)
    runs = plan(sweep, workdir)
    command = command or f"python -m experiments.sweep --sweep={sweep_path} --workdir={workdir}"
    outcome, todo, others_done, others = {}, [], 0, 0
    for r in runs:
        expected = config_json(resolve(sweep["config"], {**r.overrides, "seed": r.seed}))
        done = status(r, expected) == "done"
        if seeds is not None and r.seed not in seeds:
            others, others_done = others + 1, others_done + done
        elif done:
            outcome[r.run_dir] = "skipped"
        else:
            todo.append((r, expected))
    _write_manifest(sweep_path, sweep, workdir, runs, command)  # after status's refusals
    n = len(outcome) + len(todo)
    print(f"{n} runs: {len(outcome)} finished before, {len(todo)} to run", flush=True)
    if others:
        print(f"of the other seeds' {others} runs, {others_done} have finished", flush=True)

    stop = threading.Event()  # a signal reached the runs (Ctrl-C, SIGTERM): launch no more

    def one(item):
        r, expected = item
        if stop.is_set():
            return r.run_dir, "not started"
        print(f"start {r.run_dir}", flush=True)
        rc, secs = launch(r)
        if rc != 0:
            word, out = "FAILED", f"failed (exit {rc})"
        elif status(r, expected) == "done":
            word, out = "done ", "ok"
        else:  # exit 0 before its end: stopped by a signal; main.py saved a checkpoint
            word, out = "STOPPED", "stopped"
            stop.set()
        print(f"{word} {r.run_dir} ({secs:.0f} s, exit {rc})", flush=True)
        return r.run_dir, out

    with concurrent.futures.ThreadPoolExecutor(max_workers=parallel) as pool:
        futures = [pool.submit(one, item) for item in todo]
        try:
            concurrent.futures.wait(futures)
        except KeyboardInterrupt:  # the runs got SIGINT too: they save, stop and exit 0
            stop.set()
    outcome.update(f.result() for f in futures)
    return outcome


def define_flags(fv: flags.FlagValues, argv: list[str]) -> None:
    """The command-line flags (defined only when run as a program, so modules import cleanly)."""
    d = dict(flag_values=fv)
    flags.DEFINE_string("sweep", None, "Sweep definition (experiments/sweeps/*.py).", **d)
    flags.DEFINE_string("workdir", None, "Directory holding one subdirectory per run.", **d)
    flags.DEFINE_integer("parallel", 1, "Training processes at a time.", **d)
    flags.DEFINE_list("seeds", None, "Run only these of the sweep's seeds (default: all).", **d)
    flags.mark_flags_as_required(["sweep", "workdir"], **d)


def main(fv: flags.FlagValues) -> None:
    t0 = time.time()
    command = cli.command("python -m experiments.sweep", sys.argv[1:])
    seeds = parse_seeds(fv.seeds)
    outcome = run_sweep(fv.sweep, fv.workdir, fv.parallel, command=command, seeds=seeds)
    failed = [d for d, o in outcome.items() if o.startswith("failed")]
    stopped = [d for d, o in outcome.items() if o in ("stopped", "not started")]
    took = time.time() - t0
    print(
        f"sweep finished in {took:.0f} s; {len(failed)} failed, {len(stopped)} stopped or not "
        "started",
        flush=True,
    )
    if failed:
        sys.exit("error: failed runs (see their train.log): " + ", ".join(failed))
    if stopped:
        sys.exit(
            "error: stopped before their end; rerun this command to resume: " + ", ".join(stopped)
        )


if __name__ == "__main__":
    cli.run(define_flags, main)
