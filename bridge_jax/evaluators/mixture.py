"""``mixture``: PacGAN/VEEGAN mode coverage on the 2-D Gaussian mixtures (ring, grid).

Scores ``PACGAN_NUM_EVAL_SAMPLES = 2500`` model samples with
:func:`bridge_jax.evaluation.mixtures.mixture_metrics` against the dataset's own mode
centres and std (HQ: within 3σ of the nearest centre).
"""

from __future__ import annotations

import numpy as np

from bridge_jax.evaluation.mixtures import PACGAN_NUM_EVAL_SAMPLES, mixture_metrics
from bridge_jax.evaluators.base import REFERENCE_SEED, EvalContext, Evaluator, Metrics

METRICS = ("modes_covered", "modes_covered_strict", "hq_fraction", "reverse_kl", "num_modes",
           "mode_counts")


class MixtureEvaluator(Evaluator):
    """modes_covered(_strict), hq_fraction, reverse_kl = KL(p̂ ‖ U_K), num_modes, mode_counts."""

    name = "mixture"
    default_num_samples = PACGAN_NUM_EVAL_SAMPLES

    def __init__(self, context: EvalContext):
        super().__init__(context)
        if getattr(context.dataset, "mode_centers", None) is None:
            raise ValueError(f"eval.evaluators: {self.name!r} needs a Gaussian-mixture "
                             f"dataset with mode centres, got {context.dataset!r}")

    def score(self, points) -> Metrics:
        """The mixture metrics of 2-D points (N, 2) against the dataset's modes."""
        dataset = self.context.dataset
        m = mixture_metrics(np.asarray(points), dataset.mode_centers, dataset.mode_std)
        return {k: m[k] for k in METRICS}

    def evaluate(self, samples: np.ndarray, params, *, step: int) -> Metrics:
        return self.score(samples)

    def reference(self) -> Metrics:
        """Real mixture samples (HQ fraction 1 − e^(−9/2) ≈ 0.989 in expectation)."""
        return self.score(self.context.dataset.eval_arrays(self.num_samples,
                                                           seed=REFERENCE_SEED)[0])
