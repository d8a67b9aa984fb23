"""``python -m bridge_jax.main`` that also records what this process fed (for test_parallel).

    python tests/multihost_worker.py RECORD_PREFIX --config=... --workdir=... [main's flags]

Runs the CLI exactly as ``bridge_jax.main`` does (same flags, same exit codes), with
``DataParallel.place_batch`` wrapped to keep every host batch this process placed. On
exit it writes RECORD_PREFIX.<process_index>.npz with the batches (``batches``, shape
(steps, local_batch, ...)), the process index and count that the dataset used, and the
local and global device counts.
"""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # noqa: E402

from bridge_jax import main as cli  # noqa: E402
from bridge_jax import members, parallel  # noqa: E402

_fed: list[np.ndarray] = []
_datasets: list = []


def _record_batches():
    place_batch = parallel.DataParallel.place_batch
    make_dataset = members.make_dataset

    def recording_place_batch(self, local_batch):
        _fed.append(np.array(local_batch))
        return place_batch(self, local_batch)

    def recording_make_dataset(*args, **kwargs):
        dataset = make_dataset(*args, **kwargs)
        _datasets.append(dataset)
        return dataset

    parallel.DataParallel.place_batch = recording_place_batch
    members.make_dataset = recording_make_dataset


def _save(prefix: str) -> None:
    import jax

    ds = _datasets[0]
    np.savez(f"{prefix}.{jax.process_index()}.npz", batches=np.stack(_fed),
             data_process_index=ds.process_index, data_process_count=ds.process_count,
             local_device_count=jax.local_device_count(), device_count=jax.device_count())


if __name__ == "__main__":
    record_prefix = sys.argv.pop(1)
    _record_batches()
    try:
        parser = getattr(cli, "_parse_flags", None)  # main's one-line flag errors, if any
        app.run(cli.main, **({"flags_parser": parser} if parser else {}))
    finally:
        if _fed:
            _save(record_prefix)
