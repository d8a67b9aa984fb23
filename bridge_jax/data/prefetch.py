"""Background prefetching of ``fn(step)`` for consecutive steps.

``prefetch`` runs ``fn(start_step), fn(start_step + 1), ...`` on one worker thread,
at most ``buffer_size`` results ahead of the consumer, and yields ``(step, value)``
in order. An exception raised by ``fn`` is re-raised in the consumer at the step
where it happened. ``close()`` (or leaving the ``with`` block, or exhausting the
iterator) stops the worker and joins it, so no thread outlives the loop::

    with prefetch(dataset.get_batch, start_step, num_steps) as batches:
        for step, batch in batches:
            ...
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

_POLL_S = 0.05


def _put(q: queue.Queue, stop: threading.Event, item) -> bool:
    """Puts ``item`` on ``q`` unless ``stop`` is set first; returns whether it was put."""
    while not stop.is_set():
        try:
            q.put(item, timeout=_POLL_S)
            return True
        except queue.Full:
            continue
    return False


def _work(fn, step: int, stop_step: int | None, q: queue.Queue, stop: threading.Event) -> None:
    """The worker loop. It holds no reference to the Prefetcher, so dropping one closes it."""
    while not stop.is_set() and (stop_step is None or step < stop_step):
        try:
            value = fn(step)
        except BaseException as e:  # handed to the consumer
            _put(q, stop, ("error", step, e))
            return
        if not _put(q, stop, ("value", step, value)):
            return
        step += 1
    _put(q, stop, ("done", step, None))


class Prefetcher(Generic[T]):
    """An iterator over ``(step, fn(step))`` computed ahead on a background thread."""

    def __init__(
        self,
        fn: Callable[[int], T],
        start_step: int,
        num_steps: int | None,
        buffer_size: int = 2,
    ):
        if buffer_size < 1:
            raise ValueError(f"buffer_size must be >= 1, got {buffer_size}")
        if num_steps is not None and num_steps < 0:
            raise ValueError(f"num_steps must be >= 0 or None, got {num_steps}")
        start = int(start_step)
        stop_step = None if num_steps is None else start + int(num_steps)
        self._queue: queue.Queue = queue.Queue(maxsize=buffer_size)
        self._stop = threading.Event()
        self._closed = False
        self._thread = threading.Thread(
            target=_work,
            args=(fn, start, stop_step, self._queue, self._stop),
            name="bridge_jax-prefetch",
            daemon=True,
        )
        self._thread.start()

    def __iter__(self) -> Iterator[tuple[int, T]]:
        return self

    def __next__(self) -> tuple[int, T]:
        if self._closed:
            raise StopIteration
        kind, step, value = self._queue.get()
        if kind == "value":
            return step, value
        self.close()
        if kind == "error":
            raise value
        raise StopIteration

    def close(self) -> None:
        """Stops the worker, drops buffered results and joins the thread (idempotent)."""
        self._closed = True
        self._stop.set()
        while self._thread.is_alive():
            try:  # unblock a worker waiting on a full queue
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
            self._thread.join(timeout=_POLL_S)

    @property
    def alive(self) -> bool:
        """Whether the worker thread is still running."""
        return self._thread.is_alive()

    def __enter__(self) -> Prefetcher[T]:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # best effort at garbage collection
            pass


def prefetch(
    fn: Callable[[int], T],
    start_step: int,
    num_steps: int | None,
    buffer_size: int = 2,
) -> Prefetcher[T]:
    """Iterates ``(step, fn(step))`` for ``num_steps`` steps (forever if None), ``buffer_size``
    results ahead on a background thread; use as a context manager or call ``close()``."""
    return Prefetcher(fn, start_step, num_steps, buffer_size)
