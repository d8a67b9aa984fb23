"""Fréchet distance between Gaussian fits of two feature sets.

The formula is the one of FID (Heusel et al. 2017, "GANs trained by a two
time-scale update rule converge to a local Nash equilibrium"), with the numerical
handling of the reference implementations (TTUR ``fid.py`` / ``pytorch-fid``):
an ``eps``·I offset when sqrtm is singular, and dropping a negligible imaginary part.

For images we use it in the penultimate features of *our own* small MNIST
classifier (``bridge_jax.evaluation.classifier``) and call the result
"FD-MNIST-classifier" (``FD_METRIC_NAME``). It is NOT FID: no Inception
network is involved, and its values are not comparable to published FIDs.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
from scipy import linalg

FD_METRIC_NAME = "FD-MNIST-classifier"

_log = logging.getLogger(__name__)


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean μ = (1/N) Σ_i f_i and unbiased covariance C = (1/(N−1)) Σ_i (f_i−μ)(f_i−μ)ᵀ.

    ``features`` is (N, D) with N ≥ 2; returns (μ of shape (D,), C of shape (D, D)) in float64
    (``np.cov(rowvar=False)``, as in the FID reference code).
    """
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"features must be (N, D) with N >= 2, got {features.shape}")
    mu = features.mean(axis=0)
    cov = np.atleast_2d(np.cov(features, rowvar=False))
    return mu, cov


def frechet_distance(mu1, cov1, mu2, cov2, eps: float = 1e-6) -> float:
    """d² = ‖μ1 − μ2‖² + Tr(C1 + C2 − 2 (C1 C2)^{1/2}) between N(μ1, C1) and N(μ2, C2).

    (C1 C2)^{1/2} via ``scipy.linalg.sqrtm``. As in the FID reference code: if the
    result is not finite, it is recomputed for (C1 + εI)(C2 + εI); a complex result
    whose diagonal imaginary parts are below 1e-3 is replaced by its real part,
    larger imaginary parts raise ``ValueError``. The result is clamped at 0.
    """
    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    cov1 = np.atleast_2d(np.asarray(cov1, dtype=np.float64))
    cov2 = np.atleast_2d(np.asarray(cov2, dtype=np.float64))
    if mu1.shape != mu2.shape:
        raise ValueError(f"mean shapes differ: {mu1.shape} vs {mu2.shape}")
    if cov1.shape != cov2.shape or cov1.shape != (mu1.size, mu1.size):
        raise ValueError(f"covariance shapes {cov1.shape}, {cov2.shape} do not match {mu1.shape}")

    diff = mu1 - mu2
    with warnings.catch_warnings():
        # Singular products (e.g. dead ReLU features) are common and handled below,
        # like the reference code's ``sqrtm(..., disp=False)``.
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(cov1 @ cov2)
    if not np.isfinite(covmean).all():
        _log.warning("sqrtm(C1 C2) is singular; adding %g to the covariance diagonals", eps)
        offset = np.eye(cov1.shape[0]) * eps
        covmean = linalg.sqrtm((cov1 + offset) @ (cov2 + offset))
    if np.iscomplexobj(covmean):
        max_imag = np.max(np.abs(np.diagonal(covmean).imag))
        if max_imag > 1e-3:
            raise ValueError(f"sqrtm(C1 C2) has a large imaginary component {max_imag}")
        covmean = covmean.real
    value = diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * np.trace(covmean)
    return float(max(value, 0.0))


def frechet_distance_from_features(feats_a, feats_b, eps: float = 1e-6) -> float:
    """Fréchet distance between Gaussian fits (``feature_statistics``) of (N, D) and (M, D)."""
    mu_a, cov_a = feature_statistics(feats_a)
    mu_b, cov_b = feature_statistics(feats_b)
    return frechet_distance(mu_a, cov_a, mu_b, cov_b, eps=eps)


def fd_mnist_classifier(params, images_a, images_b, *, batch_size: int = 1000) -> float:
    """FD-MNIST-classifier: Fréchet distance in our digit classifier's penultimate features.

    ``images_*`` are (N, 28, 28, 1) in [0, 1]; features come from
    ``classifier.classifier_features(params, ·)``. Not FID (no Inception network).
    """
    from bridge_jax.evaluation.classifier import batched_features

    return frechet_distance_from_features(
        batched_features(params, images_a, batch_size=batch_size),
        batched_features(params, images_b, batch_size=batch_size),
    )
