"""``diagnostics``: the bridge loss's terms on a fixed batch (no model samples needed).

Every evaluation runs :func:`bridge_jax.evaluation.bridge_terms.term_diagnostics`
(compiled once per evaluator) on the same ``config.batch_size`` real examples (eval
stream ``BATCH_SEED``) with the same noise, drawn as the train step draws it from
``PRNGKey(NOISE_SEED)``, at α = ``context.alpha_at(step)`` of the member scored
(the config's schedule when the context gives none). Changes between evaluations are
then the parameters' alone: the critic's logits on both sides, the ELBO weights
w = e^(−(1−α)d) (mean, ESS) and the gradient norms of the loss's two terms and of
the negative ELBO. Methods: bridge, vae, adversarial.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from bridge_jax import configuration
from bridge_jax.evaluation import bridge_terms
from bridge_jax.evaluators.base import EvalContext, Evaluator, Metrics

BATCH_SEED = 3
NOISE_SEED = 0


class DiagnosticsEvaluator(Evaluator):
    """alpha, d_data/d_model mean and std, weight_mean, weight_ess, grad_norm_elbo_term,
    grad_norm_bound_term, grad_norm_negative_elbo."""

    name = "diagnostics"
    default_num_samples = 0

    def __init__(self, context: EvalContext):
        super().__init__(context)
        config, model = context.config, context.step_model
        bridge_terms.check_has_terms(model)
        x = np.asarray(context.dataset.eval_arrays(int(config.batch_size), seed=BATCH_SEED)[0])
        self._x = jnp.asarray(x)
        self._noise = bridge_terms.step_noise(jax.random.PRNGKey(NOISE_SEED), x.shape[0],
                                              model.latent_dim, x.shape[1:])
        self._diagnostics = jax.jit(functools.partial(
            bridge_terms.term_diagnostics, model, mix=config.alpha.mix,
            self_normalize=bool(config.alpha.self_normalize)))

    def alpha(self, step: int) -> float:
        """α of the scored member at ``step`` (context.alpha_at, else the config's schedule)."""
        if self.context.alpha_at is not None:
            return float(self.context.alpha_at(step))
        return float(configuration.effective_alpha_schedule(self.context.config)(step))

    def evaluate(self, samples, params, *, step: int) -> Metrics:
        out = self._diagnostics(params, self._x, self._noise,
                                jnp.asarray(self.alpha(step), jnp.float32))
        return {k: float(v) for k, v in jax.device_get(out).items()}
