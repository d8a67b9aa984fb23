"""k-NN precision and recall of a generated set against a real set.

Kynkäänniemi, Karras, Laine, Lehtinen, Aila 2019, "Improved Precision and Recall
Metric for Assessing Generative Models" (NeurIPS): each set's manifold is the
union of balls centred at its points, with radius the distance to the point's
k-th nearest neighbour within the same set (k = 3 in the paper). Precision is
the fraction of generated samples inside the real manifold; recall is the
fraction of real samples inside the generated manifold. Distances are Euclidean
in whatever feature space the caller provides; pairwise distances are computed
in row batches to bound memory.
"""

from __future__ import annotations

import numpy as np

DEFAULT_K = 3
_BATCH = 1024


def _sq_norms(x: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", x, x)


def _pairwise_distances(a: np.ndarray, b: np.ndarray, b_sq: np.ndarray) -> np.ndarray:
    """‖a_i − b_j‖ = sqrt(max(‖a_i‖² + ‖b_j‖² − 2 a_i·b_j, 0)), shape (len(a), len(b))."""
    d2 = _sq_norms(a)[:, None] + b_sq[None, :] - 2.0 * (a @ b.T)
    return np.sqrt(np.maximum(d2, 0.0))


def _as_features(x, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        x = x.reshape(x.shape[0], -1)
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    return x


def knn_radii(features, k: int = DEFAULT_K, batch_size: int = _BATCH) -> np.ndarray:
    """r_i = distance from f_i to its k-th nearest neighbour among the other points of the set.

    The point itself (distance 0) is excluded, so the set needs more than k points.
    """
    x = _as_features(features, "features")
    n = x.shape[0]
    if k < 1 or n <= k:
        raise ValueError(f"need 1 <= k < N, got k={k}, N={n}")
    x_sq = _sq_norms(x)
    radii = np.empty(n, dtype=np.float64)
    for start in range(0, n, batch_size):
        d = _pairwise_distances(x[start : start + batch_size], x, x_sq)
        rows = np.arange(d.shape[0])
        d[rows, start + rows] = -np.inf  # drop self, even if rounding made it > 0
        # Index 0 of the sorted row is now the self entry; index k is the k-th neighbour.
        radii[start : start + batch_size] = np.partition(d, k, axis=1)[:, k]
    return radii


def nearest_neighbors(queries, reference, batch_size: int = _BATCH) -> np.ndarray:
    """argmin_j ‖q_i − r_j‖ for every query row: (len(queries),) int64 indices into reference."""
    q = _as_features(queries, "queries")
    r = _as_features(reference, "reference")
    if q.shape[1] != r.shape[1]:
        raise ValueError(f"feature dims differ: {q.shape[1]} vs {r.shape[1]}")
    r_sq = _sq_norms(r)
    out = np.empty(q.shape[0], dtype=np.int64)
    for start in range(0, q.shape[0], batch_size):
        out[start : start + batch_size] = np.argmin(
            _pairwise_distances(q[start : start + batch_size], r, r_sq), axis=1)
    return out


def manifold_coverage(
    queries, support, support_radii, batch_size: int = _BATCH
) -> np.ndarray:
    """Boolean (len(queries),): q inside ∪_j Ball(s_j, r_j), i.e. ∃ j: ‖q − s_j‖ ≤ r_j."""
    q = _as_features(queries, "queries")
    s = _as_features(support, "support")
    r = np.asarray(support_radii, dtype=np.float64)
    s_sq = _sq_norms(s)
    inside = np.empty(q.shape[0], dtype=bool)
    for start in range(0, q.shape[0], batch_size):
        d = _pairwise_distances(q[start : start + batch_size], s, s_sq)
        inside[start : start + batch_size] = np.any(d <= r[None, :], axis=1)
    return inside


def precision_recall(
    real_features, generated_features, k: int = DEFAULT_K, batch_size: int = _BATCH
) -> dict:
    """Improved precision / recall (Kynkäänniemi et al. 2019) of generated vs real features.

    precision = (1/M) Σ_g 1[∃ r: ‖g − r‖ ≤ NN_k(r, Real)],
    recall    = (1/N) Σ_r 1[∃ g: ‖r − g‖ ≤ NN_k(g, Gen)],
    where NN_k(x, S) is the distance from x to its k-th nearest neighbour in S \\ {x}.
    Returns dict(precision, recall, k, num_real, num_generated).
    """
    real = _as_features(real_features, "real_features")
    gen = _as_features(generated_features, "generated_features")
    if real.shape[1] != gen.shape[1]:
        raise ValueError(f"feature dims differ: {real.shape[1]} vs {gen.shape[1]}")
    real_radii = knn_radii(real, k, batch_size)
    gen_radii = knn_radii(gen, k, batch_size)
    precision = manifold_coverage(gen, real, real_radii, batch_size).mean()
    recall = manifold_coverage(real, gen, gen_radii, batch_size).mean()
    return {
        "precision": float(precision),
        "recall": float(recall),
        "k": int(k),
        "num_real": int(real.shape[0]),
        "num_generated": int(gen.shape[0]),
    }
