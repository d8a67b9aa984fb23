"""Any prepared TFDS image dataset, read by random access without TensorFlow.

The dataset must already be prepared in ``data_dir`` in a random-access file
format (ArrayRecord). Reading goes through ``tfds.builder(...).as_data_source``
(what ``tfds.data_source(..., download=False)`` does), which decodes examples with
numpy/PIL; only *building* datasets with ``Image`` features needs TensorFlow::

    pip install tensorflow   # the optional extra, only for `tfds build`
    tfds build celeb_a --data_dir=DIR --file_format=array_record

Examples take the ``image`` feature (uint8 ``HxWxC`` -> float32 / 255), center-cropped
to a square and resized to ``image_size`` when given (defaults: celeb_a 64, mnist 28,
cifar10 32), and the ``label`` feature when the dataset has one.
"""

from __future__ import annotations

import os

import numpy as np

from bridge_jax.data import images as images_lib
from bridge_jax.data.base import DataError, FiniteDataset

DEFAULT_IMAGE_SIZES = {"celeb_a": 64, "mnist": 28, "cifar10": 32}
KNOWN_DATASETS = tuple(DEFAULT_IMAGE_SIZES)


def base_name(tfds_name: str) -> str:
    """``'celeb_a/config:2.1.0'`` -> ``'celeb_a'``."""
    return tfds_name.split("/")[0].split(":")[0].strip()


def prepare_hint(tfds_name: str, data_dir: str | os.PathLike | None) -> str:
    """The commands that prepare ``tfds_name`` in ``data_dir`` for random access."""
    where = data_dir if data_dir is not None else "DATA_DIR"
    return (
        f"Prepare it with `pip install tensorflow` (needed by `tfds build` to encode Image "
        f"features) and then `tfds build {base_name(tfds_name)} --data_dir={where} "
        f"--file_format=array_record` (some datasets, e.g. celeb_a, may need manual "
        f"downloads; see their TFDS catalog page). Known image datasets: "
        f"{', '.join(KNOWN_DATASETS)}."
    )


def open_source(tfds_name: str, data_dir: str | os.PathLike | None, split: str):
    """The random-access data source of ``tfds_name``/``split``; DataError if not prepared."""
    if not tfds_name:
        raise DataError("dataset 'tfds' needs tfds_name (e.g. 'celeb_a', 'mnist', 'cifar10').")
    if data_dir is None:
        raise DataError(
            f"tfds dataset {tfds_name!r} needs data_dir, the directory where it was "
            f"prepared (nothing is downloaded). {prepare_hint(tfds_name, None)}"
        )
    data_dir = os.fspath(data_dir)
    if "://" in data_dir:  # a bucket: read from a local copy (bridge_jax.data.remote)
        from bridge_jax.data import remote

        data_dir = remote.local_copy(data_dir, base_name(tfds_name))
    if not os.path.isdir(data_dir):
        raise DataError(
            f"data_dir {data_dir!r} for tfds dataset {tfds_name!r} does not exist. "
            f"{prepare_hint(tfds_name, data_dir)}"
        )

    import tensorflow_datasets as tfds

    not_prepared = (
        f"tfds dataset {tfds_name!r} is not prepared in data_dir {data_dir!r}. "
        f"{prepare_hint(tfds_name, data_dir)}"
    )
    try:
        builder = tfds.builder(tfds_name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError as e:
        raise DataError(not_prepared) from e
    if not builder.is_prepared():
        raise DataError(not_prepared)
    splits = sorted(builder.info.splits.keys())
    try:
        return builder.as_data_source(split=split)
    except (NotImplementedError, RuntimeError) as e:
        raise DataError(
            f"tfds dataset {tfds_name!r} in {data_dir!r} is stored as "
            f"{builder.info.file_format}, which has no random access. Rebuild it with "
            f"--file_format=array_record. {prepare_hint(tfds_name, data_dir)}"
        ) from e
    except (ValueError, KeyError) as e:
        raise DataError(
            f"tfds dataset {tfds_name!r} cannot open split {split!r} (available splits: "
            f"{splits}): {e}"
        ) from e


def _image_spec(source, tfds_name: str) -> tuple[tuple, bool]:
    """The ``image`` feature's shape and whether a ``label`` feature exists."""
    features = source.dataset_info.features
    keys = list(features.keys())
    if "image" not in keys:
        raise DataError(f"tfds dataset {tfds_name!r} has no 'image' feature (features: {keys}).")
    shape = tuple(features["image"].shape)
    if len(shape) != 3 or shape[-1] is None:
        raise DataError(
            f"tfds dataset {tfds_name!r}: 'image' must be HxWxC with known C, got {shape}."
        )
    return shape, "label" in keys


def make_tfds(
    *,
    tfds_name: str | None,
    data_dir: str | os.PathLike | None,
    split: str = "train",
    image_size: int | None = None,
    **kwargs,
) -> FiniteDataset:
    """A FiniteDataset over a prepared TFDS image dataset (see the module docstring)."""
    source = open_source(tfds_name, data_dir, split)
    shape, has_label = _image_spec(source, tfds_name)
    if image_size is None:
        image_size = DEFAULT_IMAGE_SIZES.get(base_name(tfds_name))
    if image_size is None and None in shape[:2]:
        raise DataError(
            f"tfds dataset {tfds_name!r} has variable image size {shape}; pass image_size."
        )
    if image_size is not None and image_size <= 0:
        raise DataError(f"image_size must be positive, got {image_size}")
    if image_size is None:
        example_shape = tuple(shape)
    else:
        example_shape = (image_size, image_size, shape[-1])

    def fetch(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        records = source.__getitems__([int(i) for i in idx])
        if not records:
            return np.zeros((0, *example_shape), np.float32), (
                np.zeros((0,), np.int64) if has_label else None
            )
        imgs = [images_lib.to_unit_float(r["image"]) for r in records]
        if len({im.shape for im in imgs}) == 1:
            x = images_lib.crop_and_resize(np.stack(imgs), image_size)
        else:
            x = np.concatenate([images_lib.crop_and_resize(im[None], image_size) for im in imgs])
        x = x.reshape(len(records), *example_shape)
        y = np.array([r["label"] for r in records], dtype=np.int64) if has_label else None
        return x, y

    return FiniteDataset(
        tfds_name,
        fetch=fetch,
        num_examples=len(source),
        example_shape=example_shape,
        is_image=True,
        **kwargs,
    )
