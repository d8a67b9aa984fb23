"""Command-line entry point: ``python -m bridge_jax.main --config=... --workdir=...``.

    python -m bridge_jax.main --config=configs/ring.py --workdir=/tmp/ring \
        --config.alpha.schedule=linear --config.batch_size=512

Flags are parsed by absl; ``--config`` is an ml_collections config file (its
``get_config()``, optionally ``file.py:arg``) or the name of a shipped config
(``ring``, ``ring:tiny``, ``sweeps/ring``: ``bridge_jax.config_names``), whose fields
any ``--config.a.b=value`` flag overrides. Installed, the same command is
``bridge-jax-train --config=ring --workdir=...``. Multi-host runs join JAX's own
distributed runtime: ``--distributed`` auto-detects a Cloud TPU pod; the
``--coordinator_address/--num_processes/--process_id`` flags set it by hand.
Bad settings (flags, config overrides, config values, unreadable checkpoints,
a non-finite loss under nonfinite_policy='stop') exit with status 2 and one
line naming the problem. In a multi-process run, a failure of JAX's
distributed runtime (typically: a peer process died) exits with status 1 and
one line, at once, instead of waiting on the dead peer.
"""

from __future__ import annotations

import logging
import os
import sys

from absl import app, flags
from ml_collections import config_flags

from bridge_jax import config_names

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Experiment config file.", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and samples.")
flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize() (auto-detect).")
flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (multi-host).")
flags.DEFINE_integer("num_processes", None, "Number of processes (multi-host).")
flags.DEFINE_integer("process_id", None, "This process's index (multi-host).")
flags.DEFINE_integer("distributed_timeout_s", 300,
                     "Seconds to wait for peers; also bounds how long survivors wait on a "
                     "dead peer.")
flags.DEFINE_bool("allow_unverified_checkpoints", False,
                  "Restore a checkpoint step whose content digest is lost (its "
                  "_CHECKPOINT_METADATA missing or damaged) without verifying it.")
flags.mark_flags_as_required(["config", "workdir"])


def _fail(message: str, status: int = 2) -> None:
    print(f"bridge_jax: error: {' '.join(message.split())}", file=sys.stderr, flush=True)
    sys.exit(status)


def _parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with every problem reported as one line and exit status 2.

    The ``--config`` file is loaded once by :mod:`bridge_jax.config_files` first: its
    own problems (missing, a syntax error, no ``get_config``, an error inside it, not a
    ConfigDict, an unknown ``:variant``, not the experiment's fields) are one line each
    there, where config_flags would raise them as tracebacks or as unknown overrides.
    """
    from bridge_jax import config_files  # imports JAX, as every config file does

    try:
        spec = config_files.flag_value(argv, "config")
        if spec is not None:
            config_files.load_experiment(spec)
        rest = FLAGS(argv)
        FLAGS.config.keys()  # a config file that failed to load raises only when used
        return rest
    except flags.Error as err:
        message = str(err)
        if "Traceback (most recent call last)" in message:  # get_config() raised: keep its error
            lines = [line for line in message.splitlines() if line.strip()]
            message = message.split("Traceback")[0] + lines[-1].strip()
        _fail(message)
    except config_files.ConfigError as err:
        _fail(f"--config: {err}")
    except OSError as err:  # config_flags: the --config file is missing or does not load
        _fail(f"--config: {err}")
    except (AttributeError, KeyError) as err:  # config_flags: --config.<unknown field>=...
        _fail(f"a --config.* flag names a config field that does not exist: "
              f"{str(err).strip(chr(34) + chr(39) + ' ')}")
    except (TypeError, ValueError) as err:  # config_flags: a value of the wrong type
        _fail(f"a --config.* flag has a value of the wrong type: {err}")
    return []


def _fail_now(message: str, status: int = 1) -> None:
    """_fail without waiting: orbax's non-daemon threads would hold a normal exit for
    minutes after a failed save, so flush and leave at once."""
    print(f"bridge_jax: error: {' '.join(message.split())}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(status)


def _check_backend() -> None:
    """One line, not a 40-line traceback, when JAX cannot start a backend (a wrong
    JAX_PLATFORMS, a broken accelerator install)."""
    import jax

    try:
        jax.devices()
    except RuntimeError as err:
        first = (str(err).strip().splitlines() or [""])[0]
        _fail(f"JAX cannot start a backend ({first}); check JAX_PLATFORMS and the jax "
              "install")


def main(argv):
    del argv
    # Imported here so that --help and flag errors do not pay for importing JAX.
    import jax
    from absl import logging as absl_logging

    from bridge_jax import (
        checkpointing,
        configuration,
        data,
        parallel,
        schedules,
        train,
        workdir_lock,
    )

    # Orbax and JAX log every save at INFO; keep their warnings, and our INFO.
    absl_logging.set_verbosity(absl_logging.WARNING)
    logging.getLogger("bridge_jax").setLevel(logging.INFO)
    user_errors = (configuration.ConfigError, data.DataError, schedules.ScheduleError,
                   checkpointing.CheckpointError, train.NonFiniteError,
                   workdir_lock.WorkdirBusyError)
    try:
        parallel.initialize_distributed(
            FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id,
            auto=FLAGS.distributed, timeout_s=FLAGS.distributed_timeout_s,
            heartbeat_timeout_s=min(FLAGS.distributed_timeout_s, 100))
        _check_backend()
        result = train.train_and_evaluate(
            FLAGS.config, FLAGS.workdir,
            allow_unverified_checkpoints=FLAGS.allow_unverified_checkpoints)
    except checkpointing.CheckpointSaveError as err:
        _fail_now(str(err))
    except user_errors as err:
        _fail(str(err))
    except KeyboardInterrupt:
        _fail_now("interrupted (Ctrl-C); the newest complete checkpoint in "
                  f"{FLAGS.workdir} is kept and a rerun resumes from it", status=130)
    except OSError as err:  # writing the workdir failed: disk full, permissions, ...
        where = f" {err.filename}" if err.filename else ""
        _fail_now(f"writing the outputs in {FLAGS.workdir} failed ({err.strerror or err}"
                  f"{where}); the newest complete checkpoint there is kept and a rerun "
                  "resumes from it")
    except jax.errors.JaxRuntimeError as err:
        if jax.process_count() <= 1:
            raise
        first_line = (str(err).strip().splitlines() or [""])[0][:300]
        print(f"bridge_jax: error: the distributed runtime failed on process "
              f"{jax.process_index()} of {jax.process_count()} ({type(err).__name__}: "
              f"{first_line}); if a peer process died, rerun every process with the same "
              f"--workdir to resume from the newest checkpoint", file=sys.stderr, flush=True)
        sys.stdout.flush()
        # Not sys.exit: JAX's exit hooks would wait on the dead peer (or abort).
        os._exit(1)
    if FLAGS.config.sweep.runs and (result is None or not result.preempted):
        print(f"bridge_jax: done: every group of the sweep is complete; outputs in "
              f"{FLAGS.workdir}; tables: python -m bridge_jax.report {FLAGS.workdir} "
              "--out DIR")
        return
    status = ("preempted, checkpoint saved" if result.preempted else
              "done" if result.steps_run else "already complete (nothing retrained)")
    print(f"bridge_jax: {status}: {result.steps_run} steps in {result.wall_time_s:.1f} s; "
          f"outputs in {FLAGS.workdir}")
    for line in train.format_evals(result):
        print(f"bridge_jax: scores: {line}")


def _parse_flags_with_config_names(argv: list[str]) -> list[str]:
    """:func:`_parse_flags` after ``--config=NAME`` is resolved to a shipped config file."""
    try:
        argv = config_names.resolve_config_flag(argv)
    except config_names.UnknownConfigError as err:
        _fail(str(err))
    return _parse_flags(argv)


def run() -> None:
    """The ``bridge-jax-train`` console script (and ``python -m bridge_jax.main``)."""
    app.run(main, flags_parser=_parse_flags_with_config_names)


if __name__ == "__main__":
    run()
