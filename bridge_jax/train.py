"""The training loop: data → compiled step → metrics, samples, checkpoints.

``train_and_evaluate(config, workdir)`` is importable (the CLI is a thin shell
around it). It validates the config before anything compiles, resumes from
the newest readable checkpoint in ``workdir``, and writes:

  workdir/config.json           the resolved config
  workdir/metrics.jsonl         scalars every ``log_every`` steps (+ tensorboard/)
  workdir/samples/step_N.png    samples every ``sample_every`` steps
  workdir/checkpoints/N/        orbax checkpoints every ``checkpoint_every`` steps
  workdir/samples.npy           ``num_final_samples`` samples at the end
  workdir/samples.png           a picture of them

A SIGTERM (the preemption signal) makes the loop save a checkpoint at the
current step and return early; rerunning with the same workdir resumes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import threading
import time

import jax
import ml_collections
import numpy as np

from bridge_jax import checkpointing, configuration, data, reporting, train_state, train_step
from bridge_jax import models as models_lib
from bridge_jax.parallel import DataParallel

log = logging.getLogger(__name__)


class NonFiniteError(FloatingPointError):
    """Training met a non-finite loss or gradient under nonfinite_policy='stop'."""


@dataclasses.dataclass
class TrainResult:
    state: train_state.TrainState  # replicated global arrays
    last_metrics: dict[str, float]
    steps_run: int  # steps executed by this call (0 if already complete)
    wall_time_s: float
    preempted: bool = False


class _SigtermFlag:
    """Sets a flag on SIGTERM while training (main thread only)."""

    def __init__(self):
        self.received = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame):
        log.warning("SIGTERM received: saving a checkpoint and stopping")
        self.received = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def make_dataset(config: ml_collections.ConfigDict, *, seed: int | None = None) -> data.Dataset:
    """The training data stream of ``config`` for this process."""
    d = config.data
    tfds_name = d.tfds_name or None
    image_size = d.image_size or (configuration.TFDS_DEFAULT_IMAGE_SIZE.get(tfds_name)
                                  if d.name == "tfds" else None)
    return data.make_dataset(
        d.name, seed=config.seed if seed is None else seed,
        global_batch_size=int(config.batch_size), process_index=jax.process_index(),
        process_count=jax.process_count(), tfds_name=tfds_name,
        data_dir=d.data_dir or None, split=d.split, image_size=image_size)


def build(config: ml_collections.ConfigDict, example_shape: tuple[int, ...]):
    """(models, initial state on the host) for ``config``."""
    models = models_lib.make_models(train_state.model_config(config), example_shape)
    rng = jax.random.PRNGKey(int(config.seed))
    state = train_state.create_train_state(config, models, example_shape, rng)
    return models, state


def _save_samples(config, workdir, name, samples, dataset, step):
    path = os.path.join(workdir, name)
    if dataset.is_image:
        reporting.save_image_grid(samples[:64], path)
    else:
        reporting.save_scatter(samples[:2500], path, dataset.mode_centers,
                               title=f"{config.method} step {step}")
    return path


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> TrainResult:
    """Trains ``config`` in ``workdir`` (resuming if it holds checkpoints)."""
    parallel = DataParallel(config.parallel)
    configuration.validate_config(config, num_devices=parallel.num_devices,
                                  process_count=jax.process_count(), workdir=workdir)
    is_chief = jax.process_index() == 0
    os.makedirs(os.path.join(workdir, "samples"), exist_ok=True)
    if is_chief:
        with open(os.path.join(workdir, "config.json"), "w") as f:
            f.write(config.to_json_best_effort(indent=2))

    dataset = make_dataset(config)
    models, host_state = build(config, dataset.example_shape)
    state = parallel.place_state(host_state)
    checkpointer = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"),
                                              max_to_keep=int(config.keep_checkpoints))
    restored = checkpointer.restore_latest(parallel.global_state(state))
    if restored is not None:
        global_state, restored_step = restored
        log.info("resumed from checkpoint step %d in %s", restored_step, workdir)
        if (parallel.host_scalar(global_state, "first_nonfinite_step")
                == parallel.host_scalar(global_state, "step")):
            # Saved by nonfinite_policy='stop' just before the bad update, which it flagged
            # and counted: resume from that last good state (e.g. with a lower learning
            # rate), which runs the update again, instead of staying frozen.
            log.warning("checkpoint step %d was saved before a non-finite update; resuming "
                        "from it with the non-finite flag cleared", restored_step)
            count = parallel.host_scalar(global_state, "nonfinite_count")
            global_state = global_state.replace(
                first_nonfinite_step=jax.device_put(np.int32(-1), parallel.replicated),
                first_nonfinite_what=jax.device_put(np.int32(0), parallel.replicated),
                nonfinite_count=jax.device_put(np.int32(max(count - 1, 0)), parallel.replicated))
        state = parallel.place_state(global_state) if config.parallel == "pmap" else global_state
    start_step = parallel.host_scalar(state, "step")
    if start_step > int(config.num_steps):
        raise configuration.ConfigError(
            f"num_steps={config.num_steps} is below step {start_step} of the newest checkpoint "
            f"in {workdir}; raise num_steps or use a new workdir")

    step_fn = parallel.compile_step(
        lambda axis_name: train_step.make_train_step(config, models, dataset.example_shape,
                                                     axis_name=axis_name))
    sampler = jax.jit(train_step.make_sampler(config, models, dataset.example_shape),
                      static_argnums=2, out_shardings=parallel.replicated)
    writer = reporting.MetricWriter(workdir, enabled=is_chief)
    num_steps = int(config.num_steps)
    last_metrics: dict[str, float] = {}
    preempted = False
    t0 = time.time()

    def sample_png(params, step, n, name):
        key = jax.random.fold_in(jax.random.PRNGKey(int(config.seed) + 1), step)
        samples = np.asarray(jax.device_get(sampler(params, key, n)))
        if is_chief:
            path = _save_samples(config, workdir, name, samples, dataset, step)
            writer.write_image(step, "samples", path)
        return samples

    def check_nonfinite(state):
        first_bad = parallel.host_scalar(state, "first_nonfinite_step")
        if first_bad < 0 or config.nonfinite_policy != "stop":
            return
        what = train_step.describe_nonfinite(parallel.host_scalar(state, "first_nonfinite_what"))
        checkpointer.save(first_bad, parallel.global_state(state))
        checkpointer.wait()
        raise NonFiniteError(
            f"non-finite {what} at step {first_bad}; the update was not applied and the last "
            f"good state was saved as checkpoint step {first_bad} in {workdir}. Lower the "
            "learning rates or set nonfinite_policy='skip' to skip such updates.")

    progress = None
    if config.progress_bar and is_chief:
        from tqdm.auto import tqdm

        progress = tqdm(total=num_steps, initial=start_step, desc=config.method,
                        dynamic_ncols=True)
    with _SigtermFlag() as sigterm, data.prefetch(dataset.get_batch, start_step,
                                                  num_steps - start_step) as batches:
        for step, host_batch in batches:
            state, metrics = step_fn(state, parallel.place_batch(host_batch))
            done = step + 1
            if done % config.log_every == 0 or done == num_steps:
                last_metrics = parallel.host_metrics(metrics)
                last_metrics["steps_per_s"] = (done - start_step) / (time.time() - t0)
                writer.write_scalars(done, last_metrics)
                check_nonfinite(state)
                if progress is not None:
                    progress.set_postfix(alpha=f"{last_metrics['alpha']:.3f}",
                                         gen=f"{last_metrics['generator_loss']:.3g}")
            if done % config.sample_every == 0:
                # As many as the picture shows: a 64-image grid, or a 2,500-point scatter.
                sample_png(parallel.global_state(state).params, done,
                           64 if dataset.is_image else 2500, f"samples/step_{done:07d}.png")
            if (done % config.checkpoint_every == 0 or done == num_steps
                    or sigterm.received):
                check_nonfinite(state)  # never save a frozen state under a later step
                checkpointer.save(done, parallel.global_state(state))
            if progress is not None:
                progress.update(1)
            if sigterm.received:
                preempted = done < num_steps
                break
    if progress is not None:
        progress.close()
    check_nonfinite(state)
    checkpointer.wait()
    checkpointer.close()
    wall = time.time() - t0
    final_state = parallel.global_state(state)
    if not preempted and config.num_final_samples > 0:
        samples = sample_png(final_state.params, num_steps, int(config.num_final_samples),
                             "samples.png")
        if is_chief:
            np.save(os.path.join(workdir, "samples.npy"), samples)
    steps_run = parallel.host_scalar(state, "step") - start_step
    if is_chief:
        summary = {"steps_run": steps_run, "wall_time_s": wall, "preempted": preempted,
                   "skipped_nonfinite_updates": parallel.host_scalar(state, "nonfinite_count"),
                   **last_metrics}
        with open(os.path.join(workdir, "summary.json"), "w") as f:
            json.dump(summary, f, indent=2)
    writer.close()
    return TrainResult(final_state, last_metrics, steps_run, wall, preempted)
