"""2-D Gaussian mixtures for mode-coverage experiments (PacGAN / VEEGAN geometry).

* ``ring``: 8 modes with means ``(cos 2*pi*k/8, sin 2*pi*k/8)``, ``k = 0..7``, std 0.01.
* ``grid``: 25 modes with means ``{-4, -2, 0, 2, 4}^2``, std 0.05.

Modes are chosen uniformly. Both are infinite samplers: the global batch at a step
is drawn from a generator seeded by ``(seed, step)``, and each host keeps its rows.
"""

from __future__ import annotations

import numpy as np

from bridge_jax.data.base import EVAL_SALT, TRAIN_SALT, Dataset, check_index, step_rng

# The benchmark geometry, defined here once (bridge_jax.evaluation.mixtures re-exports it).
RING_NUM_MODES = 8
RING_RADIUS = 1.0
RING_STD = 0.01
GRID_SIDE = 5
GRID_SPACING = 2.0
GRID_STD = 0.05


def ring_centers(num_modes: int = RING_NUM_MODES, radius: float = RING_RADIUS) -> np.ndarray:
    """``(num_modes, 2)`` float32 means ``radius * (cos 2*pi*k/K, sin 2*pi*k/K)``."""
    angles = 2.0 * np.pi * np.arange(num_modes) / num_modes
    return (radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)).astype(np.float32)


def grid_centers(side: int = GRID_SIDE, spacing: float = GRID_SPACING) -> np.ndarray:
    """``(side**2, 2)`` float32 means on a centered grid; default ``{-4, -2, 0, 2, 4}^2``."""
    coords = spacing * (np.arange(side) - (side - 1) / 2.0)
    xx, yy = np.meshgrid(coords, coords, indexing="ij")
    return np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float32)


def sample_mixture(
    rng: np.random.Generator, centers: np.ndarray, std: float, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` float32 points from the uniform isotropic mixture, and their int64 mode indices."""
    modes = rng.integers(len(centers), size=n)
    noise = rng.standard_normal((n, centers.shape[1]))
    points = centers[modes].astype(np.float64) + std * noise
    return points.astype(np.float32), modes.astype(np.int64)


class GaussianMixture(Dataset):
    """An infinite source of 2-D points from a uniform mixture of isotropic Gaussians."""

    def __init__(self, name: str, *, centers: np.ndarray, std: float, **kwargs):
        super().__init__(
            name, example_shape=(centers.shape[1],), is_image=False, num_examples=None, **kwargs
        )
        self.mode_centers = np.asarray(centers, dtype=np.float32)
        self.mode_std = float(std)

    def _rows(self, step: int, start: int, stop: int) -> np.ndarray:
        rng = step_rng(TRAIN_SALT, self.seed, step)
        points, _ = sample_mixture(rng, self.mode_centers, self.mode_std, self.global_batch_size)
        return points[start:stop]

    def eval_arrays(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` fresh samples and the index of the mean that generated each."""
        rng = step_rng(EVAL_SALT, check_index(seed, "seed"))
        return sample_mixture(rng, self.mode_centers, self.mode_std, check_index(n, "n"))


def make_ring(**kwargs) -> GaussianMixture:
    """The 8-mode ring (radius 1, std 0.01)."""
    return GaussianMixture("ring", centers=ring_centers(), std=RING_STD, **kwargs)


def make_grid(**kwargs) -> GaussianMixture:
    """The 25-mode grid (spacing 2, std 0.05)."""
    return GaussianMixture("grid", centers=grid_centers(), std=GRID_STD, **kwargs)
