r"""Entry point: `python -m alexnet_jax.main --config=configs/paper.py --workdir=DIR`.

Any config field can be overridden: `--config.model.lrn.enabled=False`. The config is locked,
so a misspelt field is an error. Resumes from WORKDIR's latest checkpoint if there is one.
"""

import sys

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from alexnet_jax import parallel, train

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Config file (configs/*.py).", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for this run's outputs.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    parallel.initialize_distributed(FLAGS.config.distributed)  # before JAX meets a device
    logging.info(
        "JAX process %d/%d, local devices %s",
        jax.process_index(),
        jax.process_count(),
        jax.local_devices(),
    )
    logging.set_verbosity(logging.WARNING)  # Orbax logs every file it writes at INFO
    try:
        train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
    except (ValueError, OSError, FloatingPointError, ImportError) as e:  # one line, no traceback
        sys.exit(f"error: {e}")


def parse_flags(argv: list[str]) -> list[str]:
    """absl's parser, with a bad --config override (misspelt field, wrong type) in one line."""
    try:
        return FLAGS(argv)
    except (flags.Error, AttributeError, KeyError, TypeError, ValueError) as e:
        message = " ".join(str(e).replace("\\n", " ").replace("\\'", "").split()).strip("'")
        sys.exit(f"error: bad command line: {message}")


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
