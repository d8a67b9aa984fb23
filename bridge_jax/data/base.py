"""The ``Dataset`` interface shared by every data source, and the epoch-stream indexing.

Every batch is a pure function of ``(seed, step, process_index)``: there is no
iterator state, so training can resume at any step and two runs agree bitwise.
Host ``p`` of ``P`` receives rows ``[p * L, (p + 1) * L)`` of the global batch
(``L = global_batch_size // P``) that a single process would have produced.

Finite datasets read an endless stream made of epochs; epoch ``e`` is a
permutation of all examples seeded by ``(seed, e)``. The global batch at step
``s`` takes stream positions ``[s * B, (s + 1) * B)``, so batches wrap across
epoch boundaries and no example is ever dropped.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable

import numpy as np

# Salts that keep the training stream and the evaluation draws independent.
TRAIN_SALT = 0x7A1
EVAL_SALT = 0xE7A

# fetch(indices) -> (float32 examples, int64 labels or None)
FetchFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]


class DataError(ValueError):
    """A data configuration or availability problem, with a message saying how to fix it."""


def check_index(value, what: str) -> int:
    """Returns ``value`` as a non-negative Python int, or raises DataError."""
    try:
        out = operator.index(value)
    except TypeError as e:
        raise DataError(f"{what} must be an integer, got {value!r}") from e
    if out < 0:
        raise DataError(f"{what} must be >= 0, got {out}")
    return out


def step_rng(salt: int, seed: int, *counters: int) -> np.random.Generator:
    """A numpy Generator that is a pure function of ``(salt, seed, *counters)``."""
    return np.random.default_rng([salt, seed, *counters])


@functools.lru_cache(maxsize=8)
def _cached_permutation(salt: int, seed: int, epoch: int, n: int) -> np.ndarray:
    perm = step_rng(salt, seed, epoch).permutation(n)
    perm.setflags(write=False)
    return perm


def epoch_permutation(seed: int, epoch: int, n: int, salt: int = TRAIN_SALT) -> np.ndarray:
    """The order (a permutation of ``range(n)``) in which epoch ``epoch`` visits the examples."""
    return _cached_permutation(salt, seed, epoch, n)


def stream_indices(seed: int, start: int, count: int, n: int, salt: int = TRAIN_SALT) -> np.ndarray:
    """Example indices at positions ``[start, start + count)`` of the epoch stream over ``n``."""
    pos = np.arange(start, start + count, dtype=np.int64)
    epochs = pos // n
    out = np.empty(count, dtype=np.int64)
    for epoch in np.unique(epochs):
        mask = epochs == epoch
        out[mask] = epoch_permutation(seed, int(epoch), n, salt)[pos[mask] % n]
    return out


class Dataset:
    """A deterministic batch source; subclasses implement ``_rows`` and ``eval_arrays``.

    Attributes:
      name: the dataset name (for "tfds", the tfds dataset name).
      example_shape: shape of one example: ``(2,)`` for 2-D data, ``(H, W, C)`` for images.
      is_image: whether examples are images in ``[0, 1]``.
      num_examples: size of a finite dataset, ``None`` for an infinite sampler.
      seed, global_batch_size, process_index, process_count: the stream's configuration.
      local_batch_size: rows this process receives per step.
      mode_centers: ``(K, 2)`` float32 mixture means for ring/grid, otherwise ``None``.
      mode_std: the per-mode standard deviation for ring/grid, otherwise ``None``.
    """

    mode_centers: np.ndarray | None = None
    mode_std: float | None = None

    def __init__(
        self,
        name: str,
        *,
        example_shape: tuple[int, ...],
        is_image: bool,
        num_examples: int | None,
        seed: int,
        global_batch_size: int,
        process_index: int = 0,
        process_count: int = 1,
    ):
        self.name = name
        self.example_shape = tuple(int(d) for d in example_shape)
        self.is_image = bool(is_image)
        self.num_examples = num_examples
        self.seed = check_index(seed, "seed")
        self.global_batch_size = global_batch_size
        self.process_index = process_index
        self.process_count = process_count
        self.local_batch_size = local_batch_size(global_batch_size, process_index, process_count)

    def get_batch(self, step: int) -> np.ndarray:
        """This process's float32 ``(local_batch_size, *example_shape)`` slice of batch ``step``."""
        step = check_index(step, "step")
        start = self.process_index * self.local_batch_size
        out = self._rows(step, start, start + self.local_batch_size)
        return np.ascontiguousarray(out, dtype=np.float32)

    def _rows(self, step: int, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)`` of the global batch at ``step``."""
        raise NotImplementedError

    def eval_arrays(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
        """``n`` real samples (float32, scaled like batches) and their int labels (or None)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, example_shape={self.example_shape}, "
            f"num_examples={self.num_examples}, seed={self.seed}, "
            f"global_batch_size={self.global_batch_size}, "
            f"process={self.process_index}/{self.process_count})"
        )


def local_batch_size(global_batch_size: int, process_index: int, process_count: int) -> int:
    """``global_batch_size // process_count`` after validating all three numbers."""
    global_batch_size = check_index(global_batch_size, "global_batch_size")
    process_count = check_index(process_count, "process_count")
    process_index = check_index(process_index, "process_index")
    if global_batch_size == 0:
        raise DataError("global_batch_size must be positive, got 0")
    if process_count == 0:
        raise DataError("process_count must be positive, got 0")
    if process_index >= process_count:
        raise DataError(f"process_index={process_index} must be < process_count={process_count}")
    if global_batch_size % process_count:
        raise DataError(
            f"global_batch_size={global_batch_size} is not divisible by "
            f"process_count={process_count}"
        )
    return global_batch_size // process_count


class FiniteDataset(Dataset):
    """A finite dataset read in seeded epoch permutations through ``fetch(indices)``."""

    def __init__(self, name: str, *, fetch: FetchFn, num_examples: int, **kwargs):
        if num_examples <= 0:
            raise DataError(f"dataset {name!r} has no examples")
        super().__init__(name, num_examples=num_examples, **kwargs)
        self._fetch = fetch

    def indices(self, step: int) -> np.ndarray:
        """Example indices of this process's rows of the global batch at ``step``."""
        step = check_index(step, "step")
        start = step * self.global_batch_size + self.process_index * self.local_batch_size
        return stream_indices(self.seed, start, self.local_batch_size, self.num_examples)

    def _rows(self, step: int, start: int, stop: int) -> np.ndarray:
        first = step * self.global_batch_size + start
        idx = stream_indices(self.seed, first, stop - start, self.num_examples)
        return self._fetch(idx)[0]

    def eval_arrays(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
        """The first ``n`` examples of an eval stream seeded by ``seed`` (distinct while n<=N)."""
        n = check_index(n, "n")
        idx = stream_indices(check_index(seed, "seed"), 0, n, self.num_examples, EVAL_SALT)
        x, y = self._fetch(idx)
        return np.asarray(x, dtype=np.float32), y
