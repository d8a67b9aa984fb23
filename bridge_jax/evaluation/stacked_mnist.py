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
from bridge_jax.evaluation.precision_recall import nearest_neighbors

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


def digits_of_labels(labels) -> np.ndarray:
    """Per-channel digits (N, 3) of mode labels 100·d_R + 10·d_G + d_B; inverse of
    :func:`triple_labels`."""
    labels = np.asarray(labels, dtype=np.int64).ravel()
    if labels.size and (labels.min() < 0 or labels.max() >= STACKED_MNIST_NUM_MODES):
        raise ValueError(f"labels must lie in 0..{STACKED_MNIST_NUM_MODES - 1}")
    return np.stack([labels // 100, labels // 10 % 10, labels % 10], axis=1)


def relative_digit_shares(digits) -> np.ndarray:
    """10 · (fraction of all channels showing digit k), k = 0..9, for digits (N, 3).

    1.0 is a fair share; the channels are pooled (the Stacked MNIST imbalance is the same
    in every channel, see docs/investigation.md).
    """
    digits = np.asarray(digits, dtype=np.int64)
    triple_labels(digits)  # validates shape and range
    if digits.size == 0:
        raise ValueError("digits must hold at least one sample")
    return 10.0 * np.bincount(digits.ravel(), minlength=10) / digits.size


def confusion_matrix(true_digits, predicted_digits) -> np.ndarray:
    """C[i, j] = #{true i, predicted j} / #{true i} over all channels; a row of zeros when
    digit i never occurs. (10, 10) float64."""
    true = np.asarray(true_digits, dtype=np.int64).ravel()
    pred = np.asarray(predicted_digits, dtype=np.int64).ravel()
    if true.shape != pred.shape:
        raise ValueError(f"true and predicted digits differ in size: {true.size} vs {pred.size}")
    if true.size and (min(true.min(), pred.min()) < 0 or max(true.max(), pred.max()) > 9):
        raise ValueError("digits must lie in 0..9")
    counts = np.bincount(10 * true + pred, minlength=100).reshape(10, 10).astype(np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def digit_balance(*, real_images, real_labels, prior_z, encode_mean, decode_mean,
                  classify, encode_sample=None, num_distance_bins: int = 4) -> dict:
    """Where a generative model's per-digit imbalance on Stacked MNIST comes from.

    With E the encoder mean, G the decoder mean and c the per-channel classifier
    (callables on arrays; ``classify`` returns digits (N, 3)), real images x with true
    digits y, and z ~ p(z) (``prior_z``), the relative digit shares
    (:func:`relative_digit_shares`, fair share 1.0) of

    * ``samples``: c(G(z)), what the Stacked MNIST metrics see;
    * ``latent_nearest``: y of the real image whose code E(x) is nearest to z — how the
      prior's mass falls on the classes of the encoder's codes, independent of the
      decoder and the classifier (coarse when the codes sit well inside the prior);
    * ``reconstructions``: c(G(E(x))), which can render and read every class only if the
      decoder draws it and the classifier reads the drawing;
    * ``posterior_samples`` (when ``encode_sample`` draws z ~ q(z|x)): c(G(z)) for codes
      of the aggregate posterior instead of the prior — balanced here but not in
      ``samples`` means the prior puts its mass where the codes are not;
    * ``real``: c(x), the classifier's own bias on real images;

    plus ``reconstruction_confusion`` (true y → c(G(E(x))), :func:`confusion_matrix`),
    ``reconstruction_accuracy`` (its pooled diagonal) and ``latent_sample_agreement``,
    the fraction of channels where c(G(z)) is the digit of z's nearest code. The prior
    samples are also split into ``num_distance_bins`` equal bins by the distance from z
    to its nearest code (nearest first): ``samples_by_code_distance`` and
    ``agreement_by_code_distance`` per bin, ``code_distance_bin_edges``. Samples skewed
    where posterior samples are not: the prior puts mass where the codes are not (more
    so in the far bins); skew shared by posterior samples and reconstructions: how the
    decoder draws, and the classifier reads, each class.
    """
    true = digits_of_labels(real_labels)
    codes = np.asarray(encode_mean(real_images))
    sample_digits = np.asarray(classify(decode_mean(prior_z)))
    nearest = nearest_neighbors(prior_z, codes)
    nearest_digits = true[nearest]
    distance = np.linalg.norm(np.asarray(prior_z, np.float64) - codes[nearest], axis=1)
    bins = np.array_split(np.argsort(distance, kind="stable"), num_distance_bins)
    recon_digits = np.asarray(classify(decode_mean(codes)))
    confusion = confusion_matrix(true, recon_digits)
    extra = {}
    if encode_sample is not None:
        posterior_digits = np.asarray(classify(decode_mean(encode_sample(real_images))))
        extra["posterior_samples"] = relative_digit_shares(posterior_digits).tolist()
    return extra | {
        "samples": relative_digit_shares(sample_digits).tolist(),
        "latent_nearest": relative_digit_shares(nearest_digits).tolist(),
        "reconstructions": relative_digit_shares(recon_digits).tolist(),
        "real": relative_digit_shares(np.asarray(classify(real_images))).tolist(),
        "reconstruction_confusion": confusion.tolist(),
        "reconstruction_accuracy": float(np.mean(recon_digits == true)),
        "latent_sample_agreement": float(np.mean(sample_digits == nearest_digits)),
        "samples_by_code_distance": [relative_digit_shares(sample_digits[b]).tolist()
                                     for b in bins],
        "agreement_by_code_distance": [float(np.mean(sample_digits[b] == nearest_digits[b]))
                                       for b in bins],
        "code_distance_bin_edges": [float(distance[b].min()) for b in bins]
                                   + [float(distance.max())],
    }
