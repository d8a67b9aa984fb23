"""Command-line entry point: ``python -m bridge_jax.main --config=... --workdir=...``.

    python -m bridge_jax.main --config=configs/ring.py --workdir=/tmp/ring \
        --config.alpha.schedule=linear --config.batch_size=512

Flags are parsed by absl; ``--config`` is an ml_collections config file (its
``get_config()``, optionally ``file.py:arg``) whose fields any
``--config.a.b=value`` flag overrides. Multi-host runs join JAX's own
distributed runtime: ``--distributed`` auto-detects a Cloud TPU pod; the
``--coordinator_address/--num_processes/--process_id`` flags set it by hand.
Bad settings exit with status 2 and one line naming the problem.
"""

from __future__ import annotations

import logging
import sys

from absl import app, flags
from ml_collections import config_flags

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
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    del argv
    # Imported here so that --help and flag errors do not pay for importing JAX.
    from absl import logging as absl_logging

    from bridge_jax import checkpointing, configuration, data, parallel, schedules, train

    # Orbax and JAX log every save at INFO; keep their warnings, and our INFO.
    absl_logging.set_verbosity(absl_logging.WARNING)
    logging.getLogger("bridge_jax").setLevel(logging.INFO)
    user_errors = (configuration.ConfigError, data.DataError, schedules.ScheduleError,
                   checkpointing.CheckpointError, train.NonFiniteError)
    try:
        parallel.initialize_distributed(
            FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id,
            auto=FLAGS.distributed, timeout_s=FLAGS.distributed_timeout_s,
            heartbeat_timeout_s=min(FLAGS.distributed_timeout_s, 100))
        result = train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
    except user_errors as err:
        print(f"bridge_jax: error: {err}", file=sys.stderr)
        sys.exit(2)
    status = "preempted, checkpoint saved" if result.preempted else "done"
    print(f"bridge_jax: {status}: {result.steps_run} steps in {result.wall_time_s:.1f} s; "
          f"outputs in {FLAGS.workdir}")


if __name__ == "__main__":
    app.run(main)
