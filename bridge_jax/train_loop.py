"""The body of the training loop: steps, logs, non-finite policy, samples, evaluations,
checkpoints and preemption, for one run of N ≥ 1 members (:class:`Loop`)."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any

import jax
import numpy as np

from bridge_jax import reporting, storage, train_step
from bridge_jax.eval_runner import scalars

log = logging.getLogger(__name__)


class NonFiniteError(FloatingPointError):
    """Training met a non-finite loss or gradient under nonfinite_policy='stop'."""


class StopSignals:
    """Turns SIGTERM (preemption) and a first SIGINT (Ctrl-C) into a stop: the loop saves
    a checkpoint at the step :meth:`should_stop` names and returns (main thread only).

    One process: the step at which the signal is seen. Several processes (a pod):
    every process must save the same step, or the hosts wait on each other's
    collectives. There SIGTERM is left to JAX's preemption service, whose notifier
    ``jax.distributed.initialize`` installs: a notice on any host reaches all of them,
    and ``multihost_utils.reached_preemption_sync_point`` (asked once per step, a local
    check until a notice arrives) turns true at the same step everywhere. A first
    Ctrl-C on any host becomes such a notice (a SIGTERM to itself).

    Once stopping, further SIGTERMs are ignored, so a second preemption signal cannot
    kill the process in the middle of its save; a second SIGINT means "exit now" and
    raises KeyboardInterrupt (the newest complete checkpoint is kept)."""

    def __init__(self):
        self.received = False
        self.synced = preemption_service_running()
        self._interrupts = 0
        self._previous: dict[int, Any] = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            # With the preemption service, SIGTERM stays with its notifier.
            signals = (signal.SIGINT,) if self.synced else (signal.SIGTERM, signal.SIGINT)
            for signum in signals:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def should_stop(self, step: int) -> bool:
        """Whether the loop saves at ``step`` and stops; called once per step, in order."""
        if not self.synced:
            return self.received
        from jax.experimental import multihost_utils

        if not multihost_utils.reached_preemption_sync_point(step):
            return False
        log.warning("preemption notice: every process saves a checkpoint at step %d and "
                    "stops", step)
        self.received = True
        return True

    def _handle(self, signum, frame):
        name = signal.Signals(signum).name
        if signum == signal.SIGINT:
            self._interrupts += 1
            if self._interrupts > 1:
                raise KeyboardInterrupt
        if self.received:
            log.warning("%s received again: ignored while the checkpoint is saved", name)
            return
        log.warning("%s received: saving a checkpoint and stopping%s", name,
                    " (Ctrl-C again to exit at once)" if signum == signal.SIGINT else "")
        self.received = True
        if self.synced:  # tell every host, through JAX's preemption notifier
            os.kill(os.getpid(), signal.SIGTERM)

    def __exit__(self, *exc):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()


def preemption_service_running() -> bool:
    """Whether this is a multi-process run with JAX's preemption service (started by
    ``jax.distributed.initialize`` unless ``jax_enable_preemption_service`` is off)."""
    return jax.process_count() > 1 and bool(
        jax.config.values.get("jax_enable_preemption_service", False))


def clear_stop_flag(global_state, parallel, restored_step: int):
    """A single run's checkpoint saved by nonfinite_policy='stop' just before the bad
    update (flagged and counted) resumes from that last good state with the flag cleared,
    which runs the update again (e.g. with a lower learning rate), instead of staying
    frozen."""
    if (parallel.host_scalar(global_state, "first_nonfinite_step")
            != parallel.host_scalar(global_state, "step")):
        return global_state
    log.warning("checkpoint step %d was saved before a non-finite update; resuming from it "
                "with the non-finite flag cleared", restored_step)
    count = parallel.host_scalar(global_state, "nonfinite_count")
    rep = parallel.replicated
    return global_state.replace(
        first_nonfinite_step=jax.device_put(np.int32(-1), rep),
        first_nonfinite_what=jax.device_put(np.int32(0), rep),
        nonfinite_count=jax.device_put(np.int32(max(count - 1, 0)), rep))


class Loop:
    """One run's loop state: what it has logged, who has stopped, whether preempted."""

    def __init__(self, program, group, workdir: str, checkpointer, runner, writer, *,
                 raise_on_stop: bool, is_chief: bool):
        self.program, self.group, self.workdir = program, group, workdir
        self.config = program.config
        self.checkpointer, self.runner, self.writer = checkpointer, runner, writer
        self.raise_on_stop, self.is_chief = raise_on_stop, is_chief
        self.stop_policy = self.config.nonfinite_policy == "stop"
        self.last_metrics: dict[str, float] = {}
        self.preempted = False
        self.reported_stops: set[int] = set()
        self.reference: dict[str, Any] = {}
        self.pictures = reporting.BackgroundWriter()
        self._sampler = jax.jit(
            train_step.make_sampler(self.config, program.models, program.example_shape),
            static_argnums=2, out_shardings=program.parallel.replicated)

    # ---- non-finite policy ---------------------------------------------------------------
    def check_nonfinite(self, state) -> bool:
        """Applies the policy after a logged step; True when every member has stopped."""
        if not self.stop_policy:
            return False
        statuses = self.program.statuses(state)
        stopped = [m for m, s in enumerate(statuses) if s.first_step is not None]
        if self.raise_on_stop and stopped:
            s = statuses[0]
            self.save_checkpoint(s.first_step, state)
            self.checkpointer.wait()
            raise NonFiniteError(
                f"non-finite {s.what} at step {s.first_step}; the update was not applied and "
                f"the last good state was saved as checkpoint step {s.first_step} in "
                f"{self.workdir}. Lower the learning rates or set nonfinite_policy='skip' "
                "to skip such updates.")
        for m in stopped:
            if m not in self.reported_stops:
                self.reported_stops.add(m)
                member, s = self.group[m], statuses[m]
                log.warning("member %d (%s, seed %d) stopped: non-finite %s at step %d; its "
                            "state is kept from before that update, the other members go on",
                            m, member.run, member.seed, s.what, s.first_step)
        return bool(stopped) and len(stopped) == self.program.n

    # ---- samples and evaluations ---------------------------------------------------------
    def save_samples(self, state, step: int, n: int, name: str) -> list[np.ndarray]:
        """n samples per member (key fold_in(PRNGKey(seed + 1), step)) and their pictures
        (``name``.png, or ``name``_mM.png per member)."""
        out = []
        for m, member in enumerate(self.group):
            key = jax.random.fold_in(jax.random.PRNGKey(int(member.seed) + 1), step)
            samples = np.asarray(jax.device_get(
                self._sampler(self.program.member_params(state, m), key, n)))
            out.append(samples)
            if self.is_chief:  # drawn on the picture thread while training goes on
                suffix = "" if self.program.n == 1 else f"_m{m:03d}"
                path = storage.join(self.workdir, f"{name}{suffix}.png")
                self.pictures.submit(self._picture, samples, path, step, member.label, m == 0)
        return out

    def _picture(self, samples, path, step, label, to_tensorboard: bool):
        self._draw(samples, path, step, label)
        if to_tensorboard:
            self.writer.write_image(step, "samples", path)

    def _draw(self, samples, path, step, label):
        dataset = self.program.dataset
        if dataset.is_image:
            reporting.save_image_grid(samples[:64], path)
        else:
            reporting.save_scatter(samples[:2500], path, dataset.mode_centers,
                                   title=f"{label} step {step}")

    def evaluate(self, state, step: int) -> list[dict[str, Any]]:
        """Every member's evaluation at ``step``, written to metrics.jsonl / TensorBoard."""
        t = time.time()
        evals = self.runner.evaluate(state, step)
        for m, metrics in enumerate(evals):
            tag = "" if self.program.n == 1 else f"{self.group[m].run}/s{self.group[m].seed}/"
            self.writer.write_eval(step, m, scalars(metrics), tag)
        log.info("evaluated %d member(s) at step %d in %.1f s", len(evals), step,
                 time.time() - t)
        return evals

    # ---- the loop ------------------------------------------------------------------------
    def save_checkpoint(self, step: int, state) -> None:
        """Saves ``state`` as checkpoint ``step``, after making the metrics written so far
        durable (a run resumed from this step then finds every line up to it)."""
        self.writer.flush()
        self.checkpointer.save(step, self.program.global_state(state))

    def train(self, state, batches, start_step: int, stop, t0: float):
        """Runs the prefetched ``batches``; returns the last state. ``stop`` (a
        :class:`StopSignals`) names the step at which to save and return early."""
        c, program = self.config, self.program
        num_steps, eval_every = int(c.num_steps), int(c.eval.every)
        step_fn = program.compile_step()
        progress = self._progress_bar(start_step)
        for step, host_batch in batches:
            state, metrics = step_fn(state, host_batch)
            done = step + 1
            all_stopped = False
            if done % c.log_every == 0 or done == num_steps:
                self.last_metrics = program.host_metrics(metrics)
                self.last_metrics["steps_per_s"] = (done - start_step) / (time.time() - t0)
                self.writer.write_scalars(done, self.last_metrics)
                all_stopped = self.check_nonfinite(state)
                if progress is not None:
                    progress.set_postfix(alpha=f"{self.last_metrics['alpha']:.3f}",
                                         gen=f"{self.last_metrics['generator_loss']:.3g}")
                elif self.is_chief:  # no bar (pods, logs): one line every log_every steps
                    log.info("step %d/%d: alpha=%.3f generator_loss=%.4g (%.1f steps/s)",
                             done, num_steps, self.last_metrics["alpha"],
                             self.last_metrics["generator_loss"],
                             self.last_metrics["steps_per_s"])
            if done % c.sample_every == 0:
                self.save_samples(state, done, 64 if program.dataset.is_image else 2500,
                                  f"samples/step_{done:07d}")
            if (eval_every and done % eval_every == 0 and done < num_steps
                    and self.runner.enabled):
                self.evaluate(state, done)
            stopping = stop.should_stop(done)
            if (done % c.checkpoint_every == 0 or done == num_steps or stopping
                    or all_stopped):
                self.check_nonfinite(state)  # never save a frozen state under a later step
                self.save_checkpoint(done, state)
            if progress is not None:
                progress.update(1)
            if stopping:
                self.preempted = done < num_steps
                break
            if all_stopped:
                log.warning("every member has stopped on a non-finite update at step %d", done)
                break
        if progress is not None:
            progress.close()
        return state

    def _progress_bar(self, start_step: int):
        if not (self.config.progress_bar and self.is_chief):
            return None
        from tqdm.auto import tqdm

        return tqdm(total=int(self.config.num_steps), initial=start_step,
                    desc=self.group[0].run, dynamic_ncols=True)

    def finish_checkpoints(self, state) -> None:
        self.pictures.wait()
        self.check_nonfinite(state)
        self.checkpointer.wait()
        self.checkpointer.close()

    def final(self, state) -> list[dict[str, Any]]:
        """The end of a finished run: final samples and the final evaluation."""
        c, program = self.config, self.program
        step = program.progress(state)
        if c.num_final_samples > 0:
            samples = self.save_samples(state, step, int(c.num_final_samples), "samples")
            if self.is_chief:
                with storage.path(storage.join(self.workdir, "samples.npy")).open("wb") as f:
                    np.save(f, samples[0] if program.n == 1 else np.stack(samples))
        if not self.runner.enabled:
            return []
        self.reference = self.runner.reference()
        return self.evaluate(state, step)
