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
    REAL_SEED,
    REFERENCE_SEED,
    EvalContext,
    Evaluator,
    Metrics,
    check_digit_images,
)

DEFAULT_NUM_SAMPLES = 10_000
MAX_REAL_IMAGES = 10_000


class FrechetEvaluator(Evaluator):
    """``fd``: FD-MNIST-classifier of the samples' channels against real channels."""

    name = "fd"
    default_num_samples = DEFAULT_NUM_SAMPLES

    def __init__(self, context: EvalContext):
        super().__init__(context)
        check_digit_images(self.name, context.dataset.example_shape)
        self._real_features: np.ndarray | None = None

    def real_features(self) -> np.ndarray:
        """Channel features of min(num_samples, MAX_REAL_IMAGES) real images (cached)."""
        if self._real_features is None:
            n = min(self.num_samples, MAX_REAL_IMAGES)
            real = self.context.dataset.eval_arrays(n, seed=REAL_SEED)[0]
            self._real_features = channel_features(self.context.digit_classifier()[0], real)
        return self._real_features

    def score(self, images) -> Metrics:
        """{"fd": Fréchet distance of the images' channel features to the real ones}."""
        feats = channel_features(self.context.digit_classifier()[0], images)
        return {"fd": frechet_distance_from_features(feats, self.real_features())}

    def evaluate(self, samples: np.ndarray, params, *, step: int) -> Metrics:
        return self.score(samples)

    def reference(self) -> Metrics:
        """The FD of num_samples other real images (eval stream REFERENCE_SEED)."""
        return self.score(self.context.dataset.eval_arrays(self.num_samples,
                                                           seed=REFERENCE_SEED)[0])
