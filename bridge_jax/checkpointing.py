"""Orbax checkpoints of the train state, with restore that survives a bad step.

The state is saved as its Flax state dict (nested dicts of arrays; the optax
transformations are program, not data). Orbax writes each step to a temporary
directory and renames it when complete, so a step is never overwritten in
place and an interrupted save leaves the previous steps intact.

Each step also records a SHA-256 digest of every array (names, dtypes,
shapes, bytes) in its orbax step metadata, written with the step. Orbax alone
does not notice every corruption: flipped bytes inside an array file can
restore as different numbers without any error, so restore recomputes the
digest and rejects a step whose content does not match.

Restore tries the newest step first; if it cannot be read (truncated, deleted
or corrupted files, or a digest mismatch), it says so in the log and falls
back to the next older step. The unreadable newer steps are then moved aside
to ``<directory>_unreadable/`` (kept for inspection, never deleted) so that the
resumed run can write those step numbers again. When no step is readable it
raises :class:`CheckpointError` naming the directory and every step tried.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import time
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import serialization

log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """No checkpoint in the directory could be restored."""


class Checkpointer:
    """Saves and restores train states under ``<workdir>/checkpoints``."""

    def __init__(self, directory: str, max_to_keep: int = 3):
        self.directory = os.path.abspath(directory)
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
        )

    def all_steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state) -> None:
        """Saves ``state`` as step ``step`` (asynchronously; see :meth:`wait`).

        A step that is already saved is left as it is (never overwritten).
        """
        if int(step) in self.manager.all_steps():
            return
        state_dict = serialization.to_state_dict(state)
        self.manager.save(int(step), args=ocp.args.StandardSave(state_dict), force=True,
                          custom_metadata={DIGEST_KEY: state_digest(state_dict)})

    def wait(self) -> None:
        """Blocks until pending saves are on disk."""
        self.manager.wait_until_finished()

    def restore_latest(self, template) -> tuple[Any, int] | None:
        """(state, step) from the newest readable step, or None if there are none.

        ``template`` is a state (or ``jax.eval_shape`` of one, with shardings)
        that fixes the structure, shapes, dtypes and placement of the result.
        """
        steps = self.all_steps()
        if not steps:
            return None
        abstract = jax.tree.map(_abstract, serialization.to_state_dict(template))
        _silence_closed_loop_errors()
        failures = []
        for step in reversed(steps):
            try:
                restored = self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
                self._verify_digest(step, restored)
            except Exception as err:  # orbax raises many types for unreadable files
                reason = f"{type(err).__name__}: {' '.join(str(err).split())[:200]}"
                failures.append(f"step {step}: {reason}")
                log.warning("checkpoint step %d in %s is unreadable (%s); "
                                "falling back to an older step", step, self.directory, reason)
                continue
            if failures:
                log.warning("restored checkpoint step %d after skipping %d unreadable "
                                "newer step(s)", step, len(failures))
                self._set_aside([s for s in steps if s > step])
            return serialization.from_state_dict(template, restored), step
        raise CheckpointError(f"no readable checkpoint in {self.directory} (corrupted, or "
                              "written by a different model config); tried "
                              + "; ".join(failures))

    def _verify_digest(self, step: int, restored) -> None:
        """Raises CheckpointError if ``restored`` does not match the digest saved with it."""
        expected = (self.manager.metadata(step).custom_metadata or {}).get(DIGEST_KEY)
        if expected is None:  # written before digests were recorded
            log.info("checkpoint step %d has no content digest; not verified", step)
            return
        if state_digest(restored) != expected:
            raise CheckpointError(f"the content of step {step} does not match its "
                                  "SHA-256 digest (corrupted array files)")

    def _set_aside(self, steps: list[int]) -> None:
        """Moves unreadable steps to ``<directory>_unreadable/`` so they can be rewritten."""
        if jax.process_index() == 0:
            aside = self.directory + "_unreadable"
            os.makedirs(aside, exist_ok=True)
            for step in steps:
                target = os.path.join(aside, f"{step}.{time.strftime('%Y%m%d-%H%M%S')}")
                try:
                    os.rename(os.path.join(self.directory, str(step)), target)
                except OSError as err:
                    raise CheckpointError(
                        f"cannot move unreadable checkpoint step {step} out of "
                        f"{self.directory} ({err}); move it away by hand and rerun") from err
                log.warning("moved unreadable checkpoint step %d to %s", step, target)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices("bridge_jax_checkpoint_set_aside")
        self.manager.reload()

    def close(self) -> None:
        self.manager.close()


DIGEST_KEY = "bridge_jax_sha256"


def _silence_closed_loop_errors() -> None:
    """Drops the traceback noise of a failed orbax read, keeps other errors.

    When orbax gives up on an unreadable step, tensorstore reads still in flight
    complete into the closed event loop, and each prints a traceback through
    ``sys.unraisablehook``; the failure itself is reported by restore_latest.
    """
    previous = sys.unraisablehook
    if getattr(previous, "_bridge_jax_filter", False):
        return

    def hook(unraisable):
        exc = unraisable.exc_value
        if isinstance(exc, RuntimeError) and str(exc) == "Event loop is closed":
            return
        previous(unraisable)

    hook._bridge_jax_filter = True
    sys.unraisablehook = hook
    # The same in-flight reads, when their task is garbage-collected first, are logged
    # by asyncio as "Task exception was never retrieved" with a traceback instead.
    logging.getLogger("asyncio").addFilter(_drop_unretrieved_orbax_reads)


def _drop_unretrieved_orbax_reads(record: logging.LogRecord) -> bool:
    """False (drop) for asyncio's report of an unretrieved failed orbax deserialize task."""
    message = record.getMessage()
    return not (message.startswith("Task exception was never retrieved")
                and "async_deserialize" in message)


def _host_array(x) -> np.ndarray:
    """A leaf as a host array; a replicated global array is read from its local copy."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        x = x.addressable_data(0)
    return np.asarray(jax.device_get(x))


def state_digest(state_dict) -> str:
    """SHA-256 over every leaf's path, dtype, shape and bytes, in tree order."""
    h = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_flatten_with_path(state_dict)[0]:
        arr = np.ascontiguousarray(_host_array(leaf))
        h.update(f"{jax.tree_util.keystr(path)}|{arr.dtype.str}|{arr.shape}|".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def _abstract(x):
    if isinstance(x, jax.ShapeDtypeStruct):
        return x
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None))
