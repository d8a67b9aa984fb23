"""Where a run's files live: a local folder or a ``gs://`` bucket, through ``etils.epath``.

Every file the trainer writes or reads in a workdir (config, members, metrics,
samples, summary, sweep record, lock) goes through these helpers, so a URI never
becomes a local folder named ``gs:``. Object stores differ from disks in three ways
that the helpers hide:

* **no directories**: :func:`make_dirs` creates local folders only; on a bucket an
  object's name implies its "folders";
* **no append**: ``open('a')`` through gcsfs silently overwrites, so
  :func:`append_text` reads the object and writes it back whole (callers that append
  often, like metrics.jsonl, keep their lines and rewrite them in one upload instead:
  :class:`bridge_jax.reporting.MetricWriter`);
* **no cheap rename**: a rename is a copy and a delete, so :func:`replace_text` uploads
  the new content in one write (atomic on GCS: readers see the old or the new object),
  and keeps the write-then-rename of local disks.

Supported: local paths and ``gs://`` (gcsfs, with orbax writing checkpoints through
tensorstore). :func:`workdir_problem` refuses anything else, or a bucket this process
cannot write, in one line before anything compiles.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import tempfile
from typing import Any

from etils import epath

SCHEMES = {"gs": "gcsfs"}  # URI scheme -> the fsspec package that implements it


def is_uri(location: str | os.PathLike) -> bool:
    """Whether ``location`` names an object store (``scheme://...``)."""
    return "://" in os.fspath(location)


def path(location: str | os.PathLike) -> epath.Path:
    """``location`` as an epath Path: a URI unchanged, a local path made absolute."""
    location = os.fspath(location)
    return epath.Path(location if is_uri(location) else os.path.abspath(location))


def join(base: str | os.PathLike, *parts: str) -> str:
    """``base/part/...`` as a string; a URI stays one (``gs://b/run/x``)."""
    return os.path.join(os.fspath(base), *parts)


def make_dirs(location: str | os.PathLike) -> None:
    """Creates a local folder and its parents; nothing for a URI (no directories)."""
    if not is_uri(location):
        os.makedirs(os.fspath(location), exist_ok=True)


def exists(location: str | os.PathLike) -> bool:
    return path(location).exists()


def read_text(location: str | os.PathLike, errors: str = "strict") -> str:
    """The file as UTF-8 text (``errors="replace"``: undecodable bytes as U+FFFD)."""
    return path(location).read_bytes().decode("utf-8", errors=errors)


def write_text(location: str | os.PathLike, text: str) -> None:
    path(location).write_text(text)


def write_json(location: str | os.PathLike, value: Any) -> None:
    write_text(location, json.dumps(value, indent=1))


def read_json(location: str | os.PathLike, default: Any = None) -> Any:
    """The JSON value in ``location``, or ``default`` if it is missing or not JSON."""
    try:
        return json.loads(read_text(location))
    except (OSError, ValueError):
        return default


def replace_text(location: str | os.PathLike, text: str) -> None:
    """Replaces the file's content all at once: write and rename on a disk, one upload on
    an object store (never a half-written file)."""
    if is_uri(location):
        write_text(location, text)
        return
    location = os.fspath(location)
    tmp = f"{location}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, location)


def append_text(location: str | os.PathLike, text: str) -> None:
    """Appends ``text``: in place on a disk; read and rewritten whole on an object store
    (which has no append). For rarely appended files (resumes.jsonl)."""
    if not is_uri(location):
        with open(os.fspath(location), "a") as f:
            f.write(text)
        return
    p = path(location)
    write_text(location, (p.read_text() if p.exists() else "") + text)


def describe(err: BaseException) -> str:
    """``Type: message`` on one line, at most ~300 characters."""
    text = " ".join(str(err).split())
    if len(text) > 300:
        text = text[:140] + " … " + text[-140:]
    return f"{type(err).__name__}: {text}"


def uri_problem(location: str, what: str) -> str | None:
    """Why the URI ``location`` cannot be used, or None: an unsupported scheme, or the
    fsspec package of its scheme missing."""
    scheme = location.split("://", 1)[0]
    if scheme not in SCHEMES:
        return (f"{what}={location!r}: {scheme}:// is not supported; use a local path or a "
                f"gs:// bucket")
    try:
        import fsspec

        fsspec.get_filesystem_class(scheme)
    except (ImportError, ValueError) as err:
        return (f"{what}={location!r} needs the {SCHEMES[scheme]} package ({describe(err)}); "
                f"pip install 'bridge_jax[gcs]' (or {SCHEMES[scheme]})")
    return None


def workdir_problem(workdir: Any) -> str | None:
    """Why ``workdir`` cannot hold a run, or None. A local workdir: this process must be
    able to create a directory where it is or will be (a probe directory, created and
    removed, in its nearest existing parent: os.access says yes to root even where
    nobody can write, e.g. /proc). A ``gs://`` workdir: a probe object is written and
    deleted (the bucket exists and this process may write there)."""
    if not (isinstance(workdir, str) and workdir.strip()):
        return (f"workdir={workdir!r} is empty: name the directory for checkpoints, metrics "
                "and samples (--workdir=DIR; '.' for the current directory)")
    if is_uri(workdir):
        return uri_problem(workdir, "workdir") or _object_store_probe(workdir)
    parent = workdir
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent.rstrip("/"))
    parent = parent or "."
    if not os.path.isdir(parent):
        return f"workdir={workdir!r} is not writable: {parent!r} is not a directory"
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".bridge_jax_write_probe_", dir=parent))
    except OSError as err:
        return (f"workdir={workdir!r} is not writable: creating a directory in {parent!r} "
                f"failed ({err.strerror or err})")
    return None


def _object_store_probe(workdir: str) -> str | None:
    probe = path(workdir) / f".write_probe_{socket.gethostname()}_{secrets.token_hex(4)}"
    try:
        probe.write_text("")
        probe.unlink()
    except Exception as err:  # gcsfs and google-auth raise many types
        return f"workdir={workdir!r} is not writable: {describe(err)}"
    return None


def data_dir_problem(data_dir: str) -> str | None:
    """Why the tfds ``data_dir`` cannot be read, or None (a folder, or a gs:// prefix)."""
    if is_uri(data_dir):
        problem = uri_problem(data_dir, "data.data_dir")
        if problem:
            return problem
    try:
        if path(data_dir).is_dir():
            return None
    except Exception as err:  # the store's client: credentials, network, ...
        return f"data.data_dir={data_dir!r} cannot be read: {describe(err)}"
    return f"data.data_dir={data_dir!r} does not exist or is not a directory"
