"""Tiny TFDS datasets built offline as ArrayRecord, for data-pipeline tests.

* ``tiny_images``: example ``i`` has image ``(3 * i + 8 * r + c) mod 256`` at pixel
  ``(r, c)`` (uint8, 8x8x1, a ``tfds.features.Tensor``) and label ``i % 7``; the id is
  recoverable as ``image[0, 0, 0] // 3``. 40 train and 12 test examples.
* ``tiny_png``: 6 examples with a ``tfds.features.Image`` of shape (12, 10, 3) and no
  label, like celeb_a; image ``i`` is ``(20 * i + 10 * r + c + 50 * ch) mod 256``.

Building needs no TensorFlow: Tensor features need no encoding, and the Image feature is
given PNG bytes encoded with PIL (TFDS would need TensorFlow to encode numpy arrays).
The builder classes skip TFDS's global name registry, so importing this module twice is
safe, and reading goes through ``tfds.builder``'s read-from-files path, as it does for
real datasets.
"""

from __future__ import annotations

import io
import os

import numpy as np
import tensorflow_datasets as tfds

NAME = "tiny_images"
SPLIT_IDS = {"train": range(40), "test": range(40, 52)}


def tiny_image(i: int) -> np.ndarray:
    """The uint8 (8, 8, 1) image of example ``i``."""
    r, c = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
    return ((3 * i + 8 * r + c) % 256).astype(np.uint8)[..., None]


def tiny_label(i: int) -> int:
    """The label of example ``i``."""
    return i % 7


class TinyImages(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """``tiny_images``: 40 train and 12 test examples generated in memory."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Tensor(shape=(8, 8, 1), dtype=np.uint8),
                    "label": tfds.features.Tensor(shape=(), dtype=np.int64),
                }
            ),
        )

    def _split_generators(self, dl_manager):
        return {split: self._generate_examples(ids) for split, ids in SPLIT_IDS.items()}

    def _generate_examples(self, ids):
        for i in ids:
            yield i, {"image": tiny_image(i), "label": tiny_label(i)}


def prepare_tiny_images(data_dir: str | os.PathLike) -> str:
    """Builds ``tiny_images`` as ArrayRecord under ``data_dir``; returns ``data_dir``."""
    builder = TinyImages(data_dir=os.fspath(data_dir), file_format="array_record")
    builder.download_and_prepare()
    return os.fspath(data_dir)


def tiny_png_image(i: int) -> np.ndarray:
    """The uint8 (12, 10, 3) image of ``tiny_png`` example ``i``."""
    r, c, ch = np.meshgrid(np.arange(12), np.arange(10), np.arange(3), indexing="ij")
    return ((20 * i + 10 * r + c + 50 * ch) % 256).astype(np.uint8)


def _png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


class TinyPng(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """``tiny_png``: 6 non-square RGB PNG images without labels."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict({"image": tfds.features.Image(shape=(12, 10, 3))}),
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for i in range(6):
            yield i, {"image": _png_bytes(tiny_png_image(i))}


def prepare_tiny_png(data_dir: str | os.PathLike) -> str:
    """Builds ``tiny_png`` as ArrayRecord under ``data_dir``; returns ``data_dir``."""
    TinyPng(data_dir=os.fspath(data_dir), file_format="array_record").download_and_prepare()
    return os.fspath(data_dir)
