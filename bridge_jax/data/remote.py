"""A tfds ``data_dir`` in a ``gs://`` bucket, copied once to this host's disk.

ArrayRecord files are read by array_record's C++ reader, which opens local files only
(its pip build cannot read ``gs://``: it waits forever), so a ``data.data_dir`` that is
a URI is copied first into a local cache, ``<cache>/tfds/<bucket>/<path>`` (the cache
is ``$BRIDGE_JAX_CACHE``, else ``~/.cache/bridge_jax``), and read from there. Only the
dataset's own folder (``<data_dir>/<name>/``) is copied, through fsspec (gcsfs); a
file already there with the same size is kept, so a rerun or a resumed run copies
nothing. Every host of a pod copies to its own disk.
"""

from __future__ import annotations

import logging
import os
import time

from bridge_jax.data.base import DataError

log = logging.getLogger(__name__)


def cache_root() -> str:
    """``$BRIDGE_JAX_CACHE``, else ``~/.cache/bridge_jax``."""
    return os.environ.get("BRIDGE_JAX_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "bridge_jax")


def local_copy(data_dir: str, dataset: str) -> str:
    """The local data_dir holding a copy of ``<data_dir>/<dataset>/`` (copied if needed)."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(data_dir)
    root = root.rstrip("/")
    local_root = os.path.join(cache_root(), "tfds", data_dir.split("://", 1)[1].strip("/"))
    files = fs.find(f"{root}/{dataset}", detail=True)
    if not files:
        raise DataError(f"data_dir {data_dir!r} holds no {dataset}/ folder: prepare the "
                        "dataset locally (tfds build) and copy its folder there")
    t0, copied, size = time.time(), 0, 0
    for remote_file, info in sorted(files.items()):
        target = os.path.join(local_root, remote_file[len(root):].lstrip("/"))
        if os.path.isfile(target) and os.path.getsize(target) == info["size"]:
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        partial = f"{target}.part{os.getpid()}"
        fs.get_file(remote_file, partial)
        os.replace(partial, target)  # never a half-copied file under the real name
        copied, size = copied + 1, size + int(info["size"])
    if copied:
        log.info("copied %d file(s) (%.1f MB) of %s/%s to %s in %.1f s", copied, size / 1e6,
                 data_dir, dataset, local_root, time.time() - t0)
    return local_root
