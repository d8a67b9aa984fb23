"""Discrete-distribution helpers shared by the mode-coverage metrics.

Kept in plain numpy (float64) so that the evaluation code does not depend on
``bridge_jax.divergences`` and gives exact, reproducible numbers.
"""

from __future__ import annotations

import numpy as np


def kl_divergence(p, q) -> float:
    """KL(p ‖ q) = Σ_i p_i log(p_i / q_i) for discrete distributions, in nats.

    Both inputs are non-negative vectors of the same length; each is normalised
    to sum to one first (so raw counts are accepted). Terms with p_i = 0 are 0
    (the convention 0·log 0 = 0, 0·log(0/0) = 0); a term with p_i > 0 and q_i = 0
    makes the result +inf.
    """
    p = np.asarray(p, dtype=np.float64).ravel()
    q = np.asarray(q, dtype=np.float64).ravel()
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same length, got {p.shape} and {q.shape}")
    if np.any(p < 0) or np.any(q < 0):
        raise ValueError("p and q must be non-negative")
    p_sum, q_sum = p.sum(), q.sum()
    if p_sum <= 0 or q_sum <= 0:
        raise ValueError("p and q must have positive mass")
    p = p / p_sum
    q = q / q_sum
    support = p > 0
    if np.any(q[support] == 0):
        return float("inf")
    ps, qs = p[support], q[support]
    # Clamp at 0: a distribution equal to q up to rounding gives a tiny negative sum.
    return float(max(np.sum(ps * (np.log(ps) - np.log(qs))), 0.0))


def kl_to_uniform(counts) -> float:
    """KL(p ‖ U_K) = Σ_k p_k log(K · p_k), with p = counts / Σ counts and K = len(counts).

    This is the "KL of the generated mode distribution from uniform" of VEEGAN
    (Srivastava et al. 2017) and PacGAN (Lin et al. 2018). Returns +inf when all
    counts are zero (no sample was assigned to any mode).
    """
    counts = np.asarray(counts, dtype=np.float64).ravel()
    if counts.size == 0:
        raise ValueError("counts must be non-empty")
    if counts.sum() <= 0:
        return float("inf")
    return kl_divergence(counts, np.ones_like(counts))
