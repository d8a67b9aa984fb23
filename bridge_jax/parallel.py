"""Data parallelism: ``jax.jit`` over a device mesh, or ``jax.pmap``, over all hosts.

Both modes replicate the train state and split the global batch over every
device of every host; each host feeds only its own contiguous slice of the
global batch (rows [p·B/P, (p+1)·B/P) for process p of P).

  jit   A 1-D mesh over ``jax.devices()`` with axis ``data``; the batch is a
        global array sharded as ``P('data')``, the state replicated as ``P()``.
        XLA inserts the gradient all-reduce. The state is donated.
  pmap  The step is mapped over local devices with ``axis_name='data'`` and
        averages gradients with ``lax.pmean``; the state carries a leading
        device axis. Kept because users asked for it; jit is the default.

Multi-host: :func:`initialize_distributed` calls ``jax.distributed.initialize``
(JAX's own runtime), either with explicit coordinator arguments (local tests,
GPU clusters) or with none, which auto-detects Cloud TPU pod workers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"

log = logging.getLogger(__name__)


def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    auto: bool = False,
    timeout_s: int | None = None,
    heartbeat_timeout_s: int | None = None,
) -> None:
    """Joins JAX's distributed runtime when asked; a no-op for one process.

    ``auto=True`` with no address lets JAX detect the cluster (Cloud TPU pods,
    SLURM). ``timeout_s`` bounds how long a process waits for its peers to
    join; ``heartbeat_timeout_s`` how long the survivors take to notice that a
    peer died (then JAX's runtime ends them with an error instead of a hang).
    """
    if not coordinator_address and not auto:
        return
    kwargs: dict[str, Any] = {}
    if coordinator_address:
        kwargs.update(coordinator_address=coordinator_address, num_processes=num_processes,
                      process_id=process_id)
    if timeout_s is not None:
        kwargs["initialization_timeout"] = int(timeout_s)
    if heartbeat_timeout_s is not None:
        kwargs["heartbeat_timeout_seconds"] = int(heartbeat_timeout_s)
    jax.distributed.initialize(**kwargs)
    log.info("jax.distributed: process %d of %d, %d local / %d global devices",
                 jax.process_index(), jax.process_count(), jax.local_device_count(),
                 jax.device_count())


class DataParallel:
    """Places states and batches and compiles steps for one parallel mode."""

    def __init__(self, mode: str = "jit", devices: list[jax.Device] | None = None):
        if mode not in ("jit", "pmap"):
            raise ValueError(f"parallel mode {mode!r} is not 'jit' or 'pmap'")
        self.mode = mode
        self.devices = list(devices) if devices is not None else jax.devices()
        self.mesh = Mesh(np.array(self.devices), (DATA_AXIS,))
        self.replicated = NamedSharding(self.mesh, P())
        self.batch_sharding = NamedSharding(self.mesh, P(DATA_AXIS))
        self.local_devices = [d for d in self.devices
                              if d.process_index == jax.process_index()]
        # pmap places a leading-axis array one slice per local device. Same axis name as
        # the step's: the placed state then has the sharding of the step's outputs, so the
        # pmapped step compiles once (with the default name it compiled again at step 2).
        self._to_local_devices = jax.pmap(lambda x: x, axis_name=DATA_AXIS,
                                          devices=self.local_devices)

    @property
    def num_devices(self) -> int:
        return len(self.devices)

    # ---- state -------------------------------------------------------------------------
    def place_state(self, state):
        """Replicates a (host or single-device) state over every device."""
        replicated = jax.device_put(state, self.replicated)
        if self.mode == "jit":
            return replicated
        n = len(self.local_devices)
        stacked = jax.tree.map(lambda x: np.broadcast_to(np.asarray(x), (n, *np.shape(x))),
                               jax.device_get(replicated))
        return self._to_local_devices(stacked)

    def global_state(self, state):
        """The state as replicated global arrays (for checkpoints and sampling)."""
        if self.mode == "jit":
            return state
        return jax.device_put(jax.tree.map(lambda x: np.asarray(x[0]), state), self.replicated)

    # ---- batches -----------------------------------------------------------------------
    def place_batch(self, local_batch: np.ndarray):
        """This host's slice of the global batch, as the step expects it."""
        if self.mode == "jit":
            return jax.make_array_from_process_local_data(self.batch_sharding, local_batch)
        n = len(self.local_devices)
        return np.reshape(local_batch, (n, local_batch.shape[0] // n, *local_batch.shape[1:]))

    # ---- steps -------------------------------------------------------------------------
    def compile_step(self, make_step: Callable[[str | None], Callable]) -> Callable:
        """Compiles ``make_step(axis_name)`` with the state donated.

        jit: state replicated, batch sharded on ``data``, metrics replicated.
        pmap: mapped over local devices, metrics returned for device 0.
        """
        if self.mode == "jit":
            return jax.jit(make_step(None),
                           in_shardings=(self.replicated, self.batch_sharding),
                           out_shardings=(self.replicated, self.replicated),
                           donate_argnums=0)
        return jax.pmap(make_step(DATA_AXIS), axis_name=DATA_AXIS, donate_argnums=0,
                        devices=self.local_devices)

    def host_metrics(self, metrics) -> dict[str, float]:
        """Device metrics → Python floats (identical on every device after pmean)."""
        metrics = jax.device_get(metrics)
        if self.mode == "pmap":
            metrics = jax.tree.map(lambda x: x[0], metrics)
        return {k: float(v) for k, v in metrics.items()}

    def host_scalar(self, state, name: str) -> int:
        """An integer field of the (possibly device-stacked) state, on the host."""
        value = np.asarray(jax.device_get(getattr(state, name)))
        return int(value.reshape(-1)[0])
