r"""Entry point: `python -m alexnet_jax.main --config=configs/paper.py --workdir=DIR`.

Any config field can be overridden: `--config.model.lrn.enabled=False`. The config is locked,
so a misspelt field is an error. Resumes from WORKDIR's latest checkpoint that restores.
Bad input (config, data, workdir, checkpoints) is one line and exit 2 (cli.py); the config is
checked (validate.py) before any data loads or any step compiles.
"""

import jax
from absl import flags, logging

from alexnet_jax import cli, parallel, validate


def define_flags(fv: flags.FlagValues, argv: list[str]) -> None:
    cli.define_config(fv, argv)
    flags.DEFINE_string("workdir", None, "Directory for this run's outputs.", flag_values=fv)
    flags.mark_flags_as_required(["config", "workdir"], flag_values=fv)


def main(fv: flags.FlagValues) -> dict:
    config = fv.config
    validate.config(config)  # one line per bad field, before JAX meets a device
    parallel.initialize_distributed(config.distributed)  # before JAX meets a device
    logging.info(
        "JAX process %d/%d, local devices %s",
        jax.process_index(),
        jax.process_count(),
        jax.local_devices(),
    )
    logging.set_verbosity(logging.WARNING)  # Orbax logs every file it writes at INFO
    from alexnet_jax import train  # after the config checks: Orbax and the rest load here

    return train.train_and_evaluate(config, fv.workdir)  # holds the workdir's lock


if __name__ == "__main__":
    cli.run(define_flags, main)
