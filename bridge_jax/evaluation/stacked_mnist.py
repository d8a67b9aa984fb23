"""Stacked-MNIST mode coverage (VEEGAN / PacGAN protocol).

Srivastava et al. 2017 (VEEGAN, Sec. 5.2) and Lin et al. 2018 (PacGAN, Sec. 5.2):
a Stacked-MNIST image is three MNIST digits placed in the R, G and B channels,
so there are 10³ = 1000 modes. Generate ``STACKED_MNIST_NUM_EVAL_SAMPLES = 26000``
samples, classify each channel with a pre-trained MNIST classifier, assign the
mode label 100·d_R + 10·d_G + d_B, and report (i) the number of modes predicted at
least once and (ii) KL(p̂ ‖ U_1000) of the generated mode histogram p̂ from the
uniform distribution over the 1000 modes.

Here the classifier is our own small CNN (``bridge_jax.evaluation.classifier``),
not the one of the papers, so its errors (a few %) add spurious modes.
"""

from __future__ import annotations

import numpy as np

from bridge_jax.evaluation.discrete import kl_divergence, kl_to_uniform

STACKED_MNIST_NUM_EVAL_SAMPLES = 26000
STACKED_MNIST_NUM_MODES = 1000


def triple_labels(digits) -> np.ndarray:
    """Mode labels 100·d_R + 10·d_G + d_B from per-channel digits (N, 3) in 0..9; (N,) int64."""
    digits = np.asarray(digits)
    if digits.ndim != 2 or digits.shape[1] != 3:
        raise ValueError(f"digits must be (N, 3), got {digits.shape}")
    if digits.size and (digits.min() < 0 or digits.max() > 9):
        raise ValueError("digits must lie in 0..9")
    digits = digits.astype(np.int64)
    return 100 * digits[:, 0] + 10 * digits[:, 1] + digits[:, 2]


def triple_histogram(labels, num_modes: int = STACKED_MNIST_NUM_MODES) -> np.ndarray:
    """Counts h_m = #{i : label_i = m} for m = 0..num_modes−1; (num_modes,) int64."""
    labels = np.asarray(labels, dtype=np.int64).ravel()
    if labels.size and (labels.min() < 0 or labels.max() >= num_modes):
        raise ValueError(f"labels must lie in 0..{num_modes - 1}")
    return np.bincount(labels, minlength=num_modes)


def mode_metrics_from_labels(labels, num_modes: int = STACKED_MNIST_NUM_MODES) -> dict:
    """Mode metrics of predicted mode labels, h = ``triple_histogram(labels)``.

    ``modes_covered`` = #{m : h_m ≥ 1}; ``kl_to_uniform`` = KL(h/Σh ‖ U_num_modes)
    = Σ_m p̂_m log(num_modes · p̂_m) (+inf for no samples); ``num_samples`` = len(labels).
    """
    hist = triple_histogram(labels, num_modes)
    return {
        "modes_covered": int(np.count_nonzero(hist)),
        "kl_to_uniform": kl_to_uniform(hist),
        "num_samples": int(hist.sum()),
    }


def kl_decomposition(digits) -> dict:
    """Splits KL(p̂ ‖ U_1000) of per-channel digits (N, 3) into class imbalance and dependence:

        KL(p̂ ‖ U_1000) = Σ_c KL(p̂_c ‖ U_10) + KL(p̂ ‖ p̂_R ⊗ p̂_G ⊗ p̂_B),

    exact for the empirical distribution since U_1000 = U_10 ⊗ U_10 ⊗ U_10; p̂_c is channel
    c's digit histogram and the last term (the multi-information of the three channels,
    ≥ 0) is what the channels' dependence adds. Tells whether a model's KL comes from
    generating some digits too rarely or from which digits it puts together.

    Returns {"kl_channel_marginals": [KL(p̂_c ‖ U_10) for c = R, G, B],
    "kl_dependence": the multi-information}.
    """
    digits = np.asarray(digits)
    labels = triple_labels(digits)
    if labels.size == 0:
        raise ValueError("digits must hold at least one sample")
    marginals = [np.bincount(digits[:, c].astype(np.int64), minlength=10) for c in range(3)]
    product = np.einsum("i,j,k->ijk", *[m / m.sum() for m in marginals]).ravel()
    return {"kl_channel_marginals": [kl_to_uniform(m) for m in marginals],
            "kl_dependence": kl_divergence(triple_histogram(labels), product)}


def predict_triples(samples, classifier_params, *, batch_size: int = 1000) -> np.ndarray:
    """Per-channel digit predictions (N, 3) for samples (N, 28, 28, 3) in [0, 1], in batches."""
    from bridge_jax.evaluation.classifier import predict_digits

    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim != 4 or samples.shape[1:] != (28, 28, 3):
        raise ValueError(f"samples must be (N, 28, 28, 3), got {samples.shape}")
    out = np.empty((samples.shape[0], 3), dtype=np.int64)
    for start in range(0, samples.shape[0], batch_size):
        chunk = samples[start : start + batch_size]
        # (B, 28, 28, 3) -> (3·B, 28, 28, 1): channel-major, so row c·B + i is channel c of i.
        channels = np.moveaxis(chunk, -1, 0).reshape(-1, 28, 28, 1)
        pred = predict_digits(classifier_params, channels, batch_size=batch_size)
        out[start : start + batch_size] = pred.reshape(3, chunk.shape[0]).T
    return out


def stacked_mnist_metrics(samples, classifier_params, *, batch_size: int = 1000) -> dict:
    """VEEGAN/PacGAN Stacked-MNIST metrics of samples (N, 28, 28, 3) in [0, 1].

    Each channel is classified separately; mode label = 100·d_R + 10·d_G + d_B.
    Returns dict(modes_covered: # of the 1000 triples predicted at least once,
    kl_to_uniform: KL(p̂ ‖ U_1000) of the predicted-mode histogram, num_samples, and
    its split into kl_channel_marginals and kl_dependence, see :func:`kl_decomposition`).
    """
    digits = predict_triples(samples, classifier_params, batch_size=batch_size)
    return mode_metrics_from_labels(triple_labels(digits)) | kl_decomposition(digits)
