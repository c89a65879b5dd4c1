r"""Entry point: `python -m alexnet_jax.main --config=configs/paper.py --workdir=DIR`.

Any config field can be overridden: `--config.model.lrn.enabled=False`. The config is locked,
so a misspelt field is an error. Until the training loop lands (issue 4) this runs the
forward/backward smoke run of `smoke.py`.
"""

from absl import app, flags, logging
from ml_collections import config_flags

from alexnet_jax import smoke

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Config file (configs/*.py).", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for this run's outputs.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    import jax

    logging.info("JAX process %d/%d, local devices %s", jax.process_index(), jax.process_count(),
                 jax.local_devices())  # fmt: skip
    smoke.run(FLAGS.config, FLAGS.workdir)


if __name__ == "__main__":
    app.run(main)
