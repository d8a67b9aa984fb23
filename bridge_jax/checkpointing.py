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
A step without a digest (its metadata lost or truncated) counts as unreadable
unless the caller allows unverified steps (``allow_unverified=True``; the CLI's
``--allow_unverified_checkpoints``).

:func:`check_writable` refuses a checkpoint directory that is a file or cannot be
written before anything compiles; a save that fails later raises
:class:`CheckpointSaveError`, whose message names the newest complete step.
Paths are ``etils.epath`` paths: local folders and ``gs://`` buckets alike.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
import time
import traceback
import warnings
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath
from flax import serialization

log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """No checkpoint in the directory could be restored, or the directory is unusable."""


class CheckpointSaveError(CheckpointError):
    """Writing a checkpoint failed (disk full, permissions, the directory replaced...)."""


def local_or_uri(directory: str | os.PathLike) -> str:
    """An absolute local path, or a URI (``gs://...``) unchanged."""
    directory = os.fspath(directory)
    return directory if "://" in directory else os.path.abspath(directory)


def unreadable_directory(directory: str | os.PathLike) -> epath.Path:
    """Where unreadable steps are moved: ``<directory>_unreadable``."""
    return epath.Path(local_or_uri(directory) + "_unreadable")


def check_writable(directory: str | os.PathLike) -> None:
    """Raises CheckpointError unless ``directory`` is, or can be made, a directory this
    process can write in (and ``<directory>_unreadable`` is not a file)."""
    path = epath.Path(local_or_uri(directory))
    for candidate in (path, unreadable_directory(directory)):
        if candidate.exists() and not candidate.is_dir():
            raise CheckpointError(f"{candidate} exists and is not a directory; move it away "
                                  "or use another workdir")
    probe = path / f".write_probe_{os.getpid()}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise CheckpointError(f"cannot write checkpoints in {path}: {_describe(err)}") from err


class Checkpointer:
    """Saves and restores train states under ``<workdir>/checkpoints``."""

    def __init__(self, directory: str | os.PathLike, max_to_keep: int = 3, *,
                 allow_unverified: bool = False):
        self.directory = local_or_uri(directory)
        self.allow_unverified = allow_unverified
        # One item with an explicit handler: without it a fresh manager switches into
        # multi-item mode on its first restore of an empty or junk step directory, and
        # then no step (however intact) can be restored.
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
            item_handlers=ocp.StandardCheckpointHandler(),
        )
        _quiet_orbax_tracebacks()
        _silence_closed_loop_errors()  # a failed save leaves the same in-flight writes

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
        try:
            self.manager.save(int(step), args=ocp.args.StandardSave(state_dict), force=True,
                              custom_metadata={DIGEST_KEY: state_digest(state_dict)})
        except Exception as err:  # orbax and tensorstore raise many types
            raise self._save_error(step, err) from err

    def wait(self) -> None:
        """Blocks until pending saves are on disk; CheckpointSaveError if one failed."""
        try:
            self.manager.wait_until_finished()
        except Exception as err:
            raise self._save_error(None, err) from err

    def _save_error(self, step: int | None, err: Exception) -> CheckpointSaveError:
        try:
            self.manager.reload()
            complete = self.all_steps()
        except Exception:  # the directory itself may be gone
            complete = []
        # Saves are asynchronous: a failure surfaces at the next save or wait, so the
        # step that failed may be an earlier one than ``step``.
        which = (f"checkpoints (step {step}, or the one saved before it)" if step is not None
                 else "a checkpoint")
        safe = (f"the newest complete checkpoint is step {complete[-1]}, which a rerun "
                "resumes from" if complete else "no complete checkpoint exists")
        return CheckpointSaveError(f"saving {which} to {self.directory} failed "
                                   f"({_describe(err)}); {safe}")

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
                reason = _describe(err)
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
        if expected is None:  # metadata lost or truncated, or written without a digest
            if not self.allow_unverified:
                raise CheckpointError(f"step {step} has no content digest (its "
                                      "_CHECKPOINT_METADATA is missing or damaged), so its "
                                      "content cannot be verified")
            log.warning("checkpoint step %d has no content digest; restored unverified, as "
                        "allowed", step)
            return
        if state_digest(restored) != expected:
            raise CheckpointError(f"the content of step {step} does not match its "
                                  "SHA-256 digest (corrupted array files)")

    def _set_aside(self, steps: list[int]) -> None:
        """Moves unreadable steps to ``<directory>_unreadable/`` so they can be rewritten."""
        if jax.process_index() == 0:
            aside = unreadable_directory(self.directory)
            for step in steps:
                target = aside / f"{step}.{time.strftime('%Y%m%d-%H%M%S')}"
                try:
                    aside.mkdir(parents=True, exist_ok=True)
                    epath.Path(self.directory, str(step)).rename(target)
                except OSError as err:
                    raise CheckpointError(
                        f"cannot move unreadable checkpoint step {step} out of "
                        f"{self.directory} ({_describe(err)}); move it away by hand and "
                        "rerun") from err
                log.warning("moved unreadable checkpoint step %d to %s", step, target)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices("bridge_jax_checkpoint_set_aside")
        self.manager.reload()

    def close(self) -> None:
        self.manager.close()


DIGEST_KEY = "bridge_jax_sha256"


def _describe(err: BaseException) -> str:
    """``Type: message`` on one line; a long message keeps its start and its end (where
    tensorstore puts the cause), and an OS error code inside it is spelled out."""
    text = " ".join(str(err).split())
    if len(text) > 300:
        text = text[:140] + " … " + text[-140:]
    code = re.search(r"os_error_code='(\d+)'", str(err))
    cause = f"{os.strerror(int(code.group(1)))}; " if code else ""
    return f"{cause}{type(err).__name__}: {text}"


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
        code = getattr(unraisable.object, "cr_code", None)  # an orbax read's coroutine
        if code is not None and f"{os.sep}orbax{os.sep}" in code.co_filename:
            return
        previous(unraisable)

    hook._bridge_jax_filter = True
    sys.unraisablehook = hook
    # The same in-flight reads, when their task is garbage-collected first, are logged
    # by asyncio as "Task exception was never retrieved" with a traceback instead.
    logging.getLogger("asyncio").addFilter(_drop_unretrieved_orbax_reads)
    # And a read coroutine that never got to start is garbage-collected with a
    # RuntimeWarning "coroutine '…' was never awaited"; only these read coroutines of JAX's
    # array serialization and orbax are silenced, by their exact names.
    warnings.filterwarnings("ignore", message=UNAWAITED_READS, category=RuntimeWarning)


def _quiet_orbax_tracebacks() -> None:
    """Orbax logs a failed background save at ERROR with a traceback per thread (3–10 of
    them for one full disk); keep its one-line messages and drop the tracebacks, since
    the failure itself reaches the caller as one CheckpointSaveError."""
    absl_logger = logging.getLogger("absl")
    if not any(isinstance(f, _OrbaxTracebackFilter) for f in absl_logger.filters):
        absl_logger.addFilter(_OrbaxTracebackFilter())


class _OrbaxTracebackFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if f"{os.sep}orbax{os.sep}" in (record.pathname or ""):
            record.exc_info, record.exc_text = None, None
        return True


# The checkpoint-read coroutines (qualified names, maybe nested) of
# jax.experimental.array_serialization and orbax that a failed restore leaves unstarted.
_READ_COROUTINES = ("async_deserialize", "cb", "_create_async_array_from_callback",
                    "wait_for_bytes", "release_bytes", "_run_deserializer",
                    "_read_and_create_array", "_read_array_index_and_device_put",
                    "_read_shard", "_read_chunk", "_async_deserialize",
                    "_background_deserialize", "_deserialize_arrays", "_maybe_deserialize")
UNAWAITED_READS = (r"coroutine '(?:[\w<>]+\.)*(?:" + "|".join(_READ_COROUTINES)
                   + r")' was never awaited")
_READ_PATH_MARKERS = (f"{os.sep}orbax{os.sep}", f"{os.sep}array_serialization{os.sep}",
                      f"{os.sep}tensorstore{os.sep}", "async_deserialize")


def _drop_unretrieved_orbax_reads(record: logging.LogRecord) -> bool:
    """False (drop) for asyncio's report of an unretrieved failed checkpoint-read task:
    its task's coroutine (named in the message) or its traceback runs through orbax, JAX's
    array serialization or tensorstore. Other unretrieved task errors are kept."""
    message = record.getMessage()
    if not message.startswith("Task exception was never retrieved"):
        return True
    where = [message]
    if record.exc_info and record.exc_info[2] is not None:
        where += [frame.filename for frame in traceback.extract_tb(record.exc_info[2])]
    return not any(marker in text for text in where for marker in _READ_PATH_MARKERS)


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
