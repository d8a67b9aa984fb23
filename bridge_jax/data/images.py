"""Image helpers: integer-to-[0, 1] scaling, center crop and antialiased resize on the CPU."""

from __future__ import annotations

import functools

import numpy as np


def to_unit_float(images: np.ndarray) -> np.ndarray:
    """Integer images divided by their dtype's max (uint8: /255); float images cast to float32."""
    images = np.asarray(images)
    if np.issubdtype(images.dtype, np.integer):
        return images.astype(np.float32) / np.float32(np.iinfo(images.dtype).max)
    return images.astype(np.float32)


def center_crop(images: np.ndarray) -> np.ndarray:
    """The central ``min(H, W)`` square of a batch ``(N, H, W, C)``."""
    h, w = images.shape[1:3]
    m = min(h, w)
    top, left = (h - m) // 2, (w - m) // 2
    return images[:, top : top + m, left : left + m]


@functools.lru_cache(maxsize=1)
def _cpu_resize():
    import jax

    cpu = jax.devices("cpu")[0]
    fn = jax.jit(
        functools.partial(jax.image.resize, method="linear", antialias=True),
        static_argnames=("shape",),
    )
    return cpu, fn


def resize(images: np.ndarray, size: int) -> np.ndarray:
    """Antialiased bilinear resize of float ``(N, H, W, C)`` to ``(N, size, size, C)`` (CPU jax)."""
    images = np.asarray(images, dtype=np.float32)
    n, h, w, c = images.shape
    if (h, w) == (size, size):
        return images
    import jax

    cpu, fn = _cpu_resize()
    with jax.default_device(cpu):
        out = fn(jax.device_put(images, cpu), shape=(n, size, size, c))
    return np.asarray(out, dtype=np.float32)


def crop_and_resize(images: np.ndarray, size: int | None) -> np.ndarray:
    """Center-crops to a square and resizes to ``size`` x ``size``; ``None`` keeps the input."""
    images = np.asarray(images, dtype=np.float32)
    if size is None:
        return images
    return resize(center_crop(images), size)
