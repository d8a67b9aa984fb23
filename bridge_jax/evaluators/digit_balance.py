"""``digit_balance``: where a Stacked MNIST model's per-digit imbalance comes from.

Every evaluation runs :func:`bridge_jax.evaluation.stacked_mnist.digit_balance` on the
member's encoder and decoder: the relative digit shares of the samples c(G(z)), of the
real images' classes nearest each prior code (the prior's allocation), of
reconstructions c(G(E(x))) and of decoded posterior codes c(G(z ~ q(z|x))), with the
reconstruction confusion and accuracy — from ``num_samples`` prior codes (fixed,
``PRIOR_SEED``) and as many real images of the held-out eval stream ``REAL_SEED``
(what ``gradient_probe --digit-balance`` recorded before the trainer evaluated).
"""

from __future__ import annotations

import jax
import numpy as np

from bridge_jax import models as models_lib
from bridge_jax.evaluation import stacked_mnist as stacked_mnist_eval
from bridge_jax.evaluators.base import EvalContext, Evaluator, Metrics, check_digit_images

DEFAULT_NUM_SAMPLES = 5000
REAL_SEED = 2  # the eval stream of the real images (disjoint from FD's 0 and reference's 1)
PRIOR_SEED, POSTERIOR_SEED = 11, 13
CHUNK = 1000


class DigitBalanceEvaluator(Evaluator):
    """Relative digit shares (fair share 1.0) of samples, nearest codes, reconstructions
    and posterior samples; reconstruction confusion and accuracy."""

    name = "digit_balance"
    default_num_samples = DEFAULT_NUM_SAMPLES

    def __init__(self, context: EvalContext):
        super().__init__(context)
        check_digit_images(self.name, context.dataset.example_shape)
        model = context.step_model
        n = self.num_samples
        self.real_images, self.real_labels = context.dataset.eval_arrays(n, seed=REAL_SEED)
        self.prior_z = np.asarray(jax.random.normal(jax.random.PRNGKey(PRIOR_SEED),
                                                    (n, model.latent_dim)))

        def encode(enc, x, i, noise):  # noise 0: the encoder mean; 1: z ~ q(z|x)
            key = jax.random.fold_in(jax.random.PRNGKey(POSTERIOR_SEED), i)
            return model.encode(enc, x, noise * jax.random.normal(
                key, (x.shape[0], model.latent_dim)))[2]

        self._encode = jax.jit(encode)
        self._decode_mean = jax.jit(lambda dec, z: models_lib.decoder_mean(
            model.decode(dec, z), model.likelihood))

    @staticmethod
    def _chunked(fn, a) -> np.ndarray:
        return np.concatenate([np.asarray(fn(a[i:i + CHUNK], i))
                               for i in range(0, len(a), CHUNK)])

    def evaluate(self, samples, params, *, step: int) -> Metrics:
        enc, dec = params["encoder"], params["decoder"]
        classifier = self.context.digit_classifier()[0]
        out = stacked_mnist_eval.digit_balance(
            real_images=self.real_images, real_labels=self.real_labels, prior_z=self.prior_z,
            encode_mean=lambda x: self._chunked(lambda c, i: self._encode(enc, c, i, 0.0), x),
            encode_sample=lambda x: self._chunked(
                lambda c, i: self._encode(enc, c, i, 1.0), x),
            decode_mean=lambda z: self._chunked(lambda c, i: self._decode_mean(dec, c), z),
            classify=lambda x: stacked_mnist_eval.predict_triples(x, classifier))
        return {f"digit_balance_{k}": v for k, v in out.items()}
