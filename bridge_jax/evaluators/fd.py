"""``fd``: FD-MNIST-classifier, the Fréchet distance of samples to real images in the
penultimate features of the project's digit classifier (NOT FID; no Inception network).

    fd = ‖μ_s − μ_r‖² + Tr(C_s + C_r − 2 (C_s C_r)^{1/2})

over the features of every channel of every image, each channel read as one 28×28
digit (:func:`bridge_jax.evaluation.classifier.channel_features`); the real statistics
come from min(num_samples, 10,000) images of the eval stream ``REAL_SEED``, computed
once per evaluator.
"""

from __future__ import annotations

import numpy as np

from bridge_jax.evaluation.classifier import channel_features
from bridge_jax.evaluation.frechet import frechet_distance_from_features
from bridge_jax.evaluators.base import (
    EvalContext,
    Metrics,
    RealFeatureEvaluator,
    check_digit_images,
)

DEFAULT_NUM_SAMPLES = 10_000
MAX_REAL_IMAGES = 10_000


class FrechetEvaluator(RealFeatureEvaluator):
    """``fd``: FD-MNIST-classifier of the samples' channels against real channels."""

    name = "fd"
    default_num_samples = DEFAULT_NUM_SAMPLES

    def __init__(self, context: EvalContext):
        super().__init__(context)
        check_digit_images(self.name, context.dataset.example_shape)

    @property
    def num_real(self) -> int:
        return min(self.num_samples, MAX_REAL_IMAGES)

    def features(self, images) -> np.ndarray:
        """The classifier's penultimate features of every channel, (C·N, 128)."""
        return channel_features(self.context.digit_classifier()[0], images)

    def compare(self, real_features, features) -> Metrics:
        """{"fd": Fréchet distance of the features to the real ones}."""
        return {"fd": frechet_distance_from_features(features, real_features)}
