"""Orbax checkpoints of the train state, with restore that survives a bad step.

The state is saved as its Flax state dict (nested dicts of arrays; the optax
transformations are program, not data). Orbax writes each step to a temporary
directory and renames it when complete, so a step is never overwritten in
place and an interrupted save leaves the previous steps intact.

Restore tries the newest step first; if it cannot be read (truncated or
corrupted files), it says so in the log and falls back to the next older
step, and raises :class:`CheckpointError` naming every step tried when none
is readable.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import jax
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
        self.manager.save(int(step), args=ocp.args.StandardSave(serialization.to_state_dict(state)),
                          force=True)

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
        failures = []
        for step in reversed(steps):
            try:
                restored = self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
            except Exception as err:  # orbax raises many types for unreadable files
                failures.append(f"step {step}: {type(err).__name__}: {str(err)[:200]}")
                log.warning("checkpoint step %d in %s is unreadable (%s); "
                                "falling back to an older step", step, self.directory,
                                type(err).__name__)
                continue
            if failures:
                log.warning("restored checkpoint step %d after skipping %d unreadable "
                                "newer step(s)", step, len(failures))
            return serialization.from_state_dict(template, restored), step
        raise CheckpointError(f"no readable checkpoint in {self.directory}; tried "
                              + "; ".join(failures))

    def close(self) -> None:
        self.manager.close()


def _abstract(x):
    if isinstance(x, jax.ShapeDtypeStruct):
        return x
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None))
