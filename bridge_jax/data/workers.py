"""Batches computed ahead by worker processes, for readers that hold the GIL.

A TFDS image reader spends most of its time in Python: TFDS's feature decoding and PIL's
JPEG header parsing hold the GIL, so decoding threads do not scale (measured: 1, 2 and 4
threads read the same examples/s). ``prefetch_in_processes`` therefore computes whole
batches in ``num_workers`` spawned processes, each building its own readers from a
picklable :class:`BatchRecipe`, and hands them to the consumer in step order, at most
``buffer_size`` steps ahead::

    with prefetch_in_processes(recipe, start_step, num_steps, num_workers=8) as batches:
        for step, batch in batches:
            ...

Which process computes a step changes nothing: a batch stays a pure function of
(seed, step, host), so the batches equal the in-process ``recipe(step)`` bitwise and a
run resumes exactly. An exception raised while computing a step (e.g. a DataError) is
re-raised in the consumer at that step; a worker that dies raises a DataError that says
so. Workers run JAX on the CPU only (the image resize), so they never claim the
accelerator the training process holds, and ignore SIGINT and SIGTERM, which the
trainer handles (a preemption notice sent to the process group must not kill them
before the trainer has saved).
"""

from __future__ import annotations

import collections
import dataclasses
import multiprocessing
import signal
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np

from bridge_jax.data.base import DataError


@dataclasses.dataclass(frozen=True)
class BatchRecipe:
    """How to build a host's batches: ``make_dataset`` keyword arguments (one per data
    stream, ``name`` included) and, for a stacked member program, which stream each
    member reads (``member_streams``; None: one stream, batches ``(B, ...)``)."""

    streams: tuple[dict[str, Any], ...]
    member_streams: tuple[int, ...] | None = None

    def build(self) -> list:
        from bridge_jax import data

        return [data.make_dataset(**kwargs) for kwargs in self.streams]

    def batch(self, datasets: list, step: int) -> np.ndarray:
        """The batch of ``step``: ``(B, ...)``, or ``(N, B, ...)`` for N members."""
        if self.member_streams is None:
            return datasets[0].get_batch(step)
        batches = [d.get_batch(step) for d in datasets]
        return np.stack([batches[i] for i in self.member_streams])

    def __call__(self, step: int) -> np.ndarray:
        """In-process batches (builds the readers on every call: for tests and checks)."""
        return self.batch(self.build(), step)


_worker: dict[str, Any] = {}  # in a worker process: its recipe and readers


def _init_worker(recipe: BatchRecipe) -> None:
    # A preemption notice or Ctrl-C reaches the whole process group; the trainer handles
    # it (saves, then closes the pool), so its workers must live until then.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    import jax

    jax.config.update("jax_platforms", "cpu")
    _worker["recipe"] = recipe


def _worker_batch(step: int) -> np.ndarray:
    if "datasets" not in _worker:  # built at the first step, so its errors reach the consumer
        _worker["datasets"] = _worker["recipe"].build()
    return _worker["recipe"].batch(_worker["datasets"], step)


class ProcessPrefetcher:
    """An iterator over ``(step, batch)`` whose batches worker processes compute ahead."""

    def __init__(self, recipe: BatchRecipe, start_step: int, num_steps: int | None,
                 num_workers: int, buffer_size: int | None = None):
        if num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {num_workers}")
        self._next = int(start_step)
        self._stop = None if num_steps is None else self._next + int(num_steps)
        self._ahead = buffer_size or 2 * num_workers
        self._pending: collections.deque[tuple[int, Future]] = collections.deque()
        self._pool = ProcessPoolExecutor(num_workers, initializer=_init_worker,
                                         initargs=(recipe,),
                                         mp_context=multiprocessing.get_context("spawn"))
        self._fill()

    def _fill(self) -> None:
        while len(self._pending) < self._ahead and (self._stop is None
                                                    or self._next < self._stop):
            self._pending.append((self._next, self._pool.submit(_worker_batch, self._next)))
            self._next += 1

    def __iter__(self) -> ProcessPrefetcher:
        return self

    def __next__(self) -> tuple[int, np.ndarray]:
        if not self._pending:
            self.close()
            raise StopIteration
        step, future = self._pending.popleft()
        try:
            batch = future.result()
        except BrokenProcessPool as e:
            self.close()
            raise DataError(f"a data worker process died while computing the batch of step "
                            f"{step} ({e}); rerun with data.num_workers=0 to see the error "
                            "in this process") from None
        except BaseException:
            self.close()
            raise
        self._fill()
        return step, batch

    def close(self) -> None:
        """Cancels the batches not yet computed and joins the workers (idempotent)."""
        self._pending.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ProcessPrefetcher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def prefetch_in_processes(recipe: BatchRecipe, start_step: int, num_steps: int | None,
                          num_workers: int, buffer_size: int | None = None
                          ) -> ProcessPrefetcher:
    """``(step, recipe(step))`` for ``num_steps`` steps from ``start_step`` (None: without
    end), computed by ``num_workers`` worker processes at most ``buffer_size`` (default
    2 × workers) steps ahead."""
    return ProcessPrefetcher(recipe, start_step, num_steps, num_workers, buffer_size)
