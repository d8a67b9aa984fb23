"""``precision_recall``: improved precision and recall (Kynkäänniemi et al. 2019, k = 3).

    precision = fraction of samples inside the real manifold ∪_r Ball(r, NN_k(r)),
    recall    = fraction of real points inside the samples' manifold,

with real points from the eval stream ``REAL_SEED`` (as many as samples). Distances
are Euclidean in raw coordinates for the 2-D mixtures, and for digit images in the
digit classifier's features of the channels placed side by side, (N, C·128)
(:func:`bridge_jax.evaluation.classifier.image_features`), so a Stacked-MNIST sample
is close to a real one only when all three digits are. The k-NN costs O(N²): about
3 s for N = 5,000 on two CPU cores.
"""

from __future__ import annotations

import numpy as np

from bridge_jax.evaluation.classifier import image_features
from bridge_jax.evaluation.precision_recall import DEFAULT_K, precision_recall
from bridge_jax.evaluators.base import (
    EvalContext,
    Metrics,
    RealFeatureEvaluator,
    check_digit_images,
)

DEFAULT_NUM_SAMPLES = 5000


class PrecisionRecallEvaluator(RealFeatureEvaluator):
    """``precision`` and ``recall`` of the samples against real data."""

    name = "precision_recall"
    default_num_samples = DEFAULT_NUM_SAMPLES

    def __init__(self, context: EvalContext):
        super().__init__(context)
        self._images = bool(context.dataset.is_image)
        if self._images:
            check_digit_images(self.name, context.dataset.example_shape)

    def features(self, x) -> np.ndarray:
        """Where distances are measured: x itself (2-D data) or its digit features."""
        if self._images:
            return image_features(self.context.digit_classifier()[0], x)
        x = np.asarray(x, np.float64)
        return x.reshape(x.shape[0], -1)

    def compare(self, real_features, features) -> Metrics:
        m = precision_recall(real_features, features, k=DEFAULT_K)
        return {"precision": m["precision"], "recall": m["recall"]}
