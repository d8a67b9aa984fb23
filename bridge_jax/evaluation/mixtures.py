"""Mode-coverage metrics for the 2-D Gaussian-mixture benchmarks (PacGAN protocol).

Protocol of Lin et al. 2018, "PacGAN: The power of two samples in generative
adversarial networks" (Sec. 5.1, following VEEGAN, Srivastava et al. 2017):
draw ``PACGAN_NUM_EVAL_SAMPLES = 2500`` samples from the generator, call a sample
*high quality* (HQ) when it lies within three standard deviations of the nearest
mode centre, count a mode as recovered when it is the nearest centre of at least
one HQ sample, and report the KL divergence of the generated mode histogram (HQ
samples only) from the uniform distribution over modes.

Benchmarks: ``ring_centers()`` (8 modes on the unit circle, std 0.01) and
``grid_centers()`` (25 modes on {-4,-2,0,2,4}², std 0.05), defined with the data
sources in :mod:`bridge_jax.data.mixtures` and re-exported here (float32 centres).
"""

from __future__ import annotations

import numpy as np

from bridge_jax.data.mixtures import (  # noqa: F401  (re-exported: the benchmark geometry)
    GRID_SIDE,
    GRID_SPACING,
    GRID_STD,
    RING_NUM_MODES,
    RING_RADIUS,
    RING_STD,
    grid_centers,
    ring_centers,
)
from bridge_jax.evaluation.discrete import kl_to_uniform

PACGAN_NUM_EVAL_SAMPLES = 2500
HQ_NUM_STDS = 3.0
STRICT_COVERAGE_FRACTION = 0.1

_CHUNK = 65536


def nearest_centers(samples, centers) -> tuple[np.ndarray, np.ndarray]:
    """For each sample x_i: (argmin_k ‖x_i − c_k‖, min_k ‖x_i − c_k‖), in chunks of samples."""
    samples = np.asarray(samples, dtype=np.float64)
    centers = np.asarray(centers, dtype=np.float64)
    if samples.ndim != 2 or centers.ndim != 2 or samples.shape[1] != centers.shape[1]:
        raise ValueError(
            f"samples (N, D) and centers (K, D) expected, got {samples.shape}, {centers.shape}"
        )
    idx = np.empty(samples.shape[0], dtype=np.int64)
    dist = np.empty(samples.shape[0], dtype=np.float64)
    for start in range(0, samples.shape[0], _CHUNK):
        chunk = samples[start : start + _CHUNK]
        d = np.linalg.norm(chunk[:, None, :] - centers[None, :, :], axis=-1)
        idx[start : start + _CHUNK] = np.argmin(d, axis=1)
        dist[start : start + _CHUNK] = d[np.arange(chunk.shape[0]), idx[start : start + _CHUNK]]
    return idx, dist


def mixture_metrics(samples, centers, std: float) -> dict:
    """PacGAN/VEEGAN mode metrics of 2-D ``samples`` (N, 2) against mixture ``centers`` (K, 2).

    With n_k = #{HQ samples whose nearest centre is k}, an HQ sample being one with
    min_k ‖x − c_k‖ < 3·std (Lin et al. 2018, Sec. 5.1):

    - ``hq_fraction`` = Σ_k n_k / N;
    - ``modes_covered`` = #{k : n_k ≥ 1};
    - ``modes_covered_strict`` = #{k : n_k ≥ 0.1 · N / K}: only HQ samples count
      (n_k as above), against 10% of the fair share N/K of *all* N samples;
    - ``reverse_kl`` = KL(p̂ ‖ U_K) = Σ_k p̂_k log(K p̂_k) with p̂_k = n_k / Σ_j n_j,
      i.e. KL *from* the generated mode distribution *to* the uniform one (the
      direction PacGAN reports); +inf when there is no HQ sample;
    - ``num_samples`` = N, ``num_modes`` = K;
    - ``mode_counts`` = (n_0, ..., n_{K-1}) as a list of ints.
    """
    samples = np.asarray(samples, dtype=np.float64)
    centers = np.asarray(centers, dtype=np.float64)
    if std <= 0:
        raise ValueError(f"std must be positive, got {std}")
    n, k = samples.shape[0], centers.shape[0]
    if n == 0:
        raise ValueError("need at least one sample")
    idx, dist = nearest_centers(samples, centers)
    hq = dist < HQ_NUM_STDS * std
    counts = np.bincount(idx[hq], minlength=k)
    return {
        "hq_fraction": float(hq.mean()),
        "modes_covered": int(np.count_nonzero(counts >= 1)),
        "modes_covered_strict": int(np.count_nonzero(counts >= STRICT_COVERAGE_FRACTION * n / k)),
        "reverse_kl": kl_to_uniform(counts),
        "num_samples": int(n),
        "num_modes": int(k),
        "mode_counts": [int(c) for c in counts],
    }
