"""One run per workdir: a lock taken before anything is written, released at exit.

Two runs writing one workdir would interleave metrics.jsonl and save each other's
checkpoints, config and summary, both reporting success. :class:`WorkdirLock` refuses
the second run with one line naming the first (host, pid, start time).

* **Local and network file systems**: ``fcntl.flock`` on the workdir directory itself
  (``<workdir>/.lock`` only names the owner: deleting it does not unlock). The kernel
  releases the lock when the process ends in any way (exit, crash, SIGKILL), so a
  killed run never leaves a lock that blocks its resume.
* **Object stores** (``gs://``, any path with a scheme; also file systems without
  ``flock`` support, e.g. some FUSE mounts): a lease file ``<workdir>/.lock`` holding
  the owner's host, pid, a random token and a heartbeat time, renewed every
  ``LEASE_RENEW_S`` by a daemon thread. A lease whose heartbeat is older than
  ``LEASE_EXPIRY_S``, or held by a dead process on this host, is stale and taken
  over. Object stores have no atomic create through ``etils.epath``, so two runs
  started within the same second can both take a lease; the later writer wins, and the
  earlier sees its token replaced at its next renewal and logs an error naming the
  other run (it does not stop itself: that race is not closed on object stores).

In a multi-process (multi-host) run, process 0 takes the lock for all of them; the
other processes learn the outcome from it, so a refused run fails everywhere at once.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import secrets
import socket
import threading
import time

from bridge_jax import storage

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"
LEASE_RENEW_S = 20.0
LEASE_EXPIRY_S = 90.0


class WorkdirBusyError(RuntimeError):
    """Another live run holds the workdir."""


def _owner_record(token: str) -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "token": token,
            "started": time.strftime("%Y-%m-%d %H:%M:%S"), "heartbeat": time.time()}


def _busy(workdir: str, owner: dict) -> WorkdirBusyError:
    return WorkdirBusyError(
        f"workdir {workdir} is in use by another run (pid {owner.get('pid', '?')} on host "
        f"{owner.get('host', '?')}, started {owner.get('started', '?')}); wait for it to "
        "end, stop it, or use another --workdir")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class WorkdirLock:
    """Context manager holding ``workdir`` for this process (see the module docstring)."""

    def __init__(self, workdir: str | os.PathLike):
        self.workdir = os.fspath(workdir)
        self.path = storage.path(self.workdir) / LOCK_NAME
        self._fd: int | None = None
        self._token = secrets.token_hex(8)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False  # a lease overwritten by another run (object stores only)

    def __enter__(self) -> WorkdirLock:
        storage.make_dirs(self.workdir)  # a bucket has no directories
        if storage.is_uri(self.workdir) or not self._take_flock():
            self._take_lease()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    # ---- flock -------------------------------------------------------------------------
    def _take_flock(self) -> bool:
        """True when the flock is held; False when the file system does not support it.

        The lock is on the workdir itself (its directory descriptor), not on the .lock
        file, so deleting or replacing .lock cannot let a second run in; .lock only
        names the owner, and is written without following a symlink planted there."""
        fd = os.open(self.workdir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise _busy(self.workdir, self._read_owner(self._read_lock_file())) from None
            log.warning("flock is not supported under %s (%s); using a lease file",
                        self.workdir, err)
            return False
        self._fd = fd
        try:
            info = os.open(os.fspath(self.path),
                           os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
            with os.fdopen(info, "w") as f:
                f.write(json.dumps(_owner_record(self._token)))
        except OSError as err:  # a symlink or a folder named .lock: the lock still holds
            log.warning("cannot record the owner in %s (%s); the workdir is locked anyway",
                        self.path, err)
        return True

    def _read_lock_file(self) -> str:
        try:
            fd = os.open(os.fspath(self.path), os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd) as f:
                return f.read(4096)
        except OSError:
            return ""

    @staticmethod
    def _read_owner(text: str) -> dict:
        try:
            owner = json.loads(text)
            return owner if isinstance(owner, dict) else {}
        except ValueError:
            return {}

    # ---- lease (object stores) ---------------------------------------------------------
    def _take_lease(self) -> None:
        if self.path.exists():
            owner = self._read_owner(self.path.read_text())
            if not self._stale(owner):
                raise _busy(self.workdir, owner)
            log.warning("taking over the stale lock of %s (pid %s on %s)", self.workdir,
                        owner.get("pid"), owner.get("host"))
        self.path.write_text(json.dumps(_owner_record(self._token)))
        self._thread = threading.Thread(target=self._renew, daemon=True,
                                        name="bridge_jax_workdir_lease")
        self._thread.start()

    @staticmethod
    def _stale(owner: dict) -> bool:
        if time.time() - float(owner.get("heartbeat", 0.0)) > LEASE_EXPIRY_S:
            return True
        pid = owner.get("pid")
        return (owner.get("host") == socket.gethostname() and isinstance(pid, int)
                and not _pid_alive(pid))

    def _renew(self) -> None:
        while not self._stop.wait(LEASE_RENEW_S):
            try:
                owner = self._read_owner(self.path.read_text())
                if owner.get("token") != self._token:
                    self.lost = True
                    log.error("the lock of %s was taken by another run (pid %s on %s)",
                              self.workdir, owner.get("pid"), owner.get("host"))
                    return
                self.path.write_text(json.dumps({**owner, "heartbeat": time.time()}))
            except OSError as err:  # a transient store error: try again at the next renewal
                log.warning("could not renew the lock of %s: %s", self.workdir, err)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # the flock goes with the descriptor; the file stays
            self._fd = None
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=5)
            self._thread = None
            try:
                if self._read_owner(self.path.read_text()).get("token") == self._token:
                    self.path.unlink()
            except OSError:
                pass


@contextlib.contextmanager
def hold(workdir: str | os.PathLike):
    """Holds ``workdir`` for the duration: process 0 takes the lock and every process of
    a multi-process run learns whether it got it (all raise WorkdirBusyError if not)."""
    import jax

    lock, error = None, None
    if jax.process_index() == 0:
        try:
            lock = WorkdirLock(workdir).__enter__()
        except WorkdirBusyError as err:
            error = err
    if jax.process_count() > 1:
        import numpy as np
        from jax.experimental import multihost_utils

        granted = multihost_utils.broadcast_one_to_all(np.int32(error is None))
        if not int(granted) and error is None:
            error = WorkdirBusyError(f"workdir {os.fspath(workdir)} is in use by another "
                                     "run (process 0 could not lock it)")
    if error is not None:
        raise error
    try:
        yield lock
    finally:
        if lock is not None:
            lock.release()
