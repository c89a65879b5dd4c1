"""The programs' command line: absl flags, an ml_collections `--config`, one-line errors.

Every program (alexnet_jax.main, evaluate, prepare, stats, features, weights; experiments.sweep,
tables, figures) has `define_flags(fv)` and `main(fv)` and ends with `cli.run(define_flags, main)`.
Bad input prints `error: <one line>` on stderr and exits 2:
  - a missing config file, or one with a syntax error (the file and line named), or whose
    get_config() rejects its argument (`file.py:arg`);
  - a misspelt `--config.a.b` field (the section and its closest fields named, difflib);
  - a value of the wrong type, an unknown or missing flag, a stray argument;
  - any `errors.InputError` the program raises (config, data, weights, checkpoints, workdirs).
A run that diverges (FloatingPointError: a non-finite loss, train.py) prints one line and
exits 1. Every other exception is a bug and keeps its traceback.
"""

import difflib
import os
import re
import shlex
import sys
from collections.abc import Callable
from typing import NoReturn

import ml_collections
from absl import flags, logging
from ml_collections import config_flags

from alexnet_jax.errors import InputError

EXIT_INPUT = 2  # bad input (EXIT_DIVERGED = 1: a non-finite loss)


def command(program: str, args) -> str:
    """`program ARGS` as a shell reruns it (provenance, suggested fixes): each argument quoted
    where it must be, e.g. '--config.model.fc_features=(32,32)'."""
    return " ".join([program, *map(shlex.quote, args)])


def one_line(message) -> str:
    return " ".join(str(message).split())


def fail(message, code: int = EXIT_INPUT) -> NoReturn:
    print(f"error: {one_line(message)}", file=sys.stderr, flush=True)
    sys.exit(code)


def define_config(fv: flags.FlagValues, argv: list[str], help: str | None = None) -> None:
    """`--config=FILE[:ARG]`: a locked ConfigDict, any field overridable as --config.a.b=V."""
    config_flags.DEFINE_config_file(
        "config",
        None,
        help or "Config file (configs/*.py, optionally file.py:arg).",
        flag_values=fv,
        lock_config=True,
        sys_argv=argv,
    )


def load_config(value: str) -> ml_collections.ConfigDict:
    """`--config`'s value -> its ConfigDict, as config_flags loads it, with one-line errors."""
    path = value.split(":", 1)[0]
    if not os.path.isfile(path):
        raise InputError(
            f"--config={path} does not exist; give a config file, e.g. configs/fashion_mnist.py"
        )
    with open(path, encoding="utf-8") as f:
        source = f.read()
    try:
        compile(source, path, "exec")
    except SyntaxError as e:
        raise InputError(
            f"config file {path} has a syntax error at line {e.lineno}: {e.msg}; fix that line"
        ) from None
    argv = ["cli", f"--config={value}"]  # the file alone, loaded as config_flags loads it
    fv = flags.FlagValues()
    define_config(fv, argv)
    try:
        fv(argv)
    except flags.IllegalFlagValueError as e:  # get_config(arg) raised; e holds its traceback
        last = str(e).strip().splitlines()[-1]  # "pkg.Error: ..."
        if not re.match(r"(alexnet_jax\.errors\.)?(InputError|MissingFileError): ", last):
            raise RuntimeError(f"--config={value}: get_config raised\n{e}") from None  # a bug
        raise InputError(f"--config={value}: {last.split(': ', 1)[1]}") from None
    return fv.config


def check_overrides(config: ml_collections.ConfigDict, argv: list[str]) -> None:
    """Each --config.a.b=V names an existing field; else the section and its closest fields."""
    for arg in argv[1:]:
        if arg == "--":
            break
        if not arg.startswith("--config."):
            continue
        name = arg[len("--config.") :].split("=", 1)[0]
        node, where = config, "config"
        for part in name.split("."):
            if not isinstance(node, ml_collections.ConfigDict):
                raise InputError(
                    f"--config.{name}: {where} is a value ({node!r}), not a section; "
                    f"set it as --config.{where[len('config.') :]}=VALUE"
                )
            if part not in node:
                keys = sorted(node.keys())
                close = difflib.get_close_matches(part, keys, n=3, cutoff=0.5)
                hint = (
                    f"did you mean {' or '.join(f'{where}.{k}' for k in close)}?"
                    if close
                    else f"its fields are {', '.join(keys)}"
                )
                raise InputError(f"--config.{name}: {where} has no field {part!r}; {hint}")
            node, where = node[part], f"{where}.{part}"


def _flag_value(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv[1:], start=1):
        if arg == "--":
            break
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
        if arg == f"--{name}" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def _flag_error(fv: flags.FlagValues, e: flags.Error, config) -> str:
    """absl's flag errors, one line each, with the fix."""
    if isinstance(e, flags.UnrecognizedFlagError):
        known = [n for n in fv if not n.startswith("config.")]
        close = difflib.get_close_matches(e.flagname, known, n=3, cutoff=0.5)
        hint = f"did you mean --{' or --'.join(close)}?" if close else "see --help"
        return f"unknown flag --{e.flagname}; {hint}"
    message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if "must have a value other than None" in message:
        name = message.split("Flag --", 1)[1].split(" ", 1)[0]
        return f"--{name} is required: {fv[name].help}"
    message = message.removeprefix("flag ")
    if message.startswith("--config.") and config is not None:  # a value of the wrong type
        value = config
        for part in message[len("--config.") :].split("=", 1)[0].split("."):
            value = value[part]
        message += f"; config.{message[len('--config.') :].split('=', 1)[0]} must be a "
        message += f"{type(value).__name__} (now {value!r})"
    return message


def parse(define: Callable[[flags.FlagValues, list[str]], None], argv: list[str]):
    """Fresh flags from `define(fv, argv)`, parsed from argv; bad input -> InputError."""
    fv, config = flags.FlagValues(), None
    define(fv, argv)
    if "config" in fv:
        value = _flag_value(argv, "config")
        if value is not None:
            config = load_config(value)
            check_overrides(config, argv)
    if any(a in ("--help", "-h", "--helpfull") for a in argv[1:]):
        print(fv.get_help(), flush=True)
        sys.exit(0)
    try:
        rest = fv(argv)
    except flags.Error as e:
        raise InputError(_flag_error(fv, e, config)) from None
    if len(rest) > 1:
        raise InputError(f"unexpected arguments {rest[1:]}; flags take the form --name=value")
    return fv


def run(
    define: Callable[[flags.FlagValues, list[str]], None],
    main: Callable[[flags.FlagValues], object],
    argv: list[str] | None = None,
):
    """Parses the flags `define` declares and runs `main(fv)`; bad input is one line, exit 2."""
    argv = list(sys.argv if argv is None else argv)
    logging.use_absl_handler()
    flags.FLAGS.mark_as_parsed()  # absl logging's own flags keep their defaults
    try:
        return main(parse(define, argv))
    except InputError as e:
        fail(e)
    except FloatingPointError as e:  # a diverged run (train.py names the step and checkpoint)
        fail(e, code=1)
