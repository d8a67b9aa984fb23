"""``stacked_mnist``: VEEGAN/PacGAN mode coverage of Stacked MNIST (1000 modes).

Each of ``STACKED_MNIST_NUM_EVAL_SAMPLES = 26000`` samples has its three channels
classified by the run's digit classifier (``context.digit_classifier()``), giving the
mode 100·d_R + 10·d_G + d_B; see :func:`bridge_jax.evaluation.stacked_mnist.
stacked_mnist_metrics`. The classifier is the project's own, so its errors (a few %)
add spurious modes: ``reference()`` shows what real images score.
"""

from __future__ import annotations

import numpy as np

from bridge_jax.evaluation.stacked_mnist import (
    STACKED_MNIST_NUM_EVAL_SAMPLES,
    stacked_mnist_metrics,
)
from bridge_jax.evaluators.base import (
    REFERENCE_SEED,
    EvalContext,
    Evaluator,
    Metrics,
    check_digit_images,
)

METRICS = ("modes_covered", "kl_to_uniform", "kl_channel_marginals", "kl_dependence")


class StackedMnistEvaluator(Evaluator):
    """modes_covered (of 1000), kl_to_uniform = KL(p̂ ‖ U_1000) and its split
    Σ_c kl_channel_marginals[c] + kl_dependence."""

    name = "stacked_mnist"
    default_num_samples = STACKED_MNIST_NUM_EVAL_SAMPLES

    def __init__(self, context: EvalContext):
        super().__init__(context)
        shape = tuple(context.dataset.example_shape)
        check_digit_images(self.name, shape)
        if shape[-1] != 3:
            raise ValueError(f"eval.evaluators: {self.name!r} needs 3-channel images, "
                             f"got examples of shape {shape}")

    def score(self, images) -> Metrics:
        """Stacked-MNIST metrics of images (N, 28, 28, 3) in [0, 1]."""
        params, _ = self.context.digit_classifier()
        m = stacked_mnist_metrics(np.asarray(images), params)
        return {k: m[k] for k in METRICS}

    def evaluate(self, samples: np.ndarray, params, *, step: int) -> Metrics:
        return self.score(samples)

    def reference(self) -> Metrics:
        """Real Stacked-MNIST images scored like samples, plus the classifier's held-out
        ``classifier_accuracy``."""
        _, accuracy = self.context.digit_classifier()
        real = self.context.dataset.eval_arrays(self.num_samples, seed=REFERENCE_SEED)[0]
        return self.score(real) | {"classifier_accuracy": float(accuracy)}
