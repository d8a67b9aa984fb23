"""Where the α-Bridge's encoder/decoder gradient comes from: the loss's terms, one batch.

For a batch x with fixed noise and the current parameters (encoder φ, decoder θ and
critic ψ, the critic frozen), :func:`term_diagnostics` reports

* the critic's logits d on both sides, d_data = d(x, z ~ q(z|x)) and
  d_model = d(G(z) + σε, z ~ p(z)) (mean, std): how far it separates data and model;
* the ELBO weights w_i = e^(−(1−α) d_data_i) (mean; 1 at α = 1 whatever the critic)
  and their normalised effective sample size ESS = (Σw)² / (N Σw²) ∈ (0, 1];
* the norms ‖∇_(φ,θ)·‖ of the bridge loss's two terms, (λ(α)/α)·mean(w·ℓ) and
  (1 − λ(α))·B_α (:func:`bridge_jax.losses.bridge_terms`), and of the plain negative
  ELBO mean(ℓ) for scale.

Only methods with an encoder and a joint critic d(x, z) (bridge, vae, adversarial)
have these terms.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from bridge_jax import losses, train_step
from bridge_jax.train_state import GENERATOR_KEYS


def step_noise(key: jax.Array, n: int, latent_dim: int,
               example_shape: tuple[int, ...]) -> dict[str, jax.Array]:
    """Noise for n examples drawn as the train step draws it on one device.

    (k_enc, k_prior, k_dec) = split(key, 3); row i of each from fold_in(k, i)
    (:func:`bridge_jax.train_step.per_example_normal`): eps_enc (n, latent_dim),
    z_prior (n, latent_dim), eps_dec (n, *example_shape), all standard normal.
    """
    k_enc, k_prior, k_dec = jax.random.split(key, 3)
    idx = jnp.arange(n)
    return {"eps_enc": train_step.per_example_normal(k_enc, idx, (latent_dim,)),
            "z_prior": train_step.per_example_normal(k_prior, idx, (latent_dim,)),
            "eps_dec": train_step.per_example_normal(k_dec, idx, tuple(example_shape))}


def check_has_terms(model: train_step.StepModel) -> None:
    """Raises ValueError unless the model has an encoder and a joint critic d(x, z)."""
    if not (model.uses_encoder and model.joint):
        raise ValueError("the bridge-term diagnostics need a method with an encoder and a "
                         "joint critic d(x, z) (bridge, vae or adversarial)")


def term_diagnostics(model: train_step.StepModel, params, x: jax.Array, noise: dict,
                     alpha: jax.Array, *, mix: str = "quadratic",
                     self_normalize: bool = False) -> dict[str, jax.Array]:
    """Critic logits, ELBO weights and per-term gradient norms of the bridge loss.

    ``model`` needs an encoder and a joint critic; ``noise`` as :func:`step_noise`
    draws it; ``params`` holds encoder, decoder and critic. Gradients are taken with
    respect to (encoder, decoder) only. Returns scalars: alpha, d_data_mean/std,
    d_model_mean/std, weight_mean = mean w (unnormalised, so it shows the scale),
    weight_ess, grad_norm_elbo_term, grad_norm_bound_term, grad_norm_negative_elbo.
    """
    check_has_terms(model)
    gen_params = {k: params[k] for k in GENERATOR_KEYS}
    critic_params = params["critic"]

    def terms(gp):
        sides = model.forward(gp, x, noise)
        d_data = model.critic(critic_params, x, sides["z_data"])
        d_model = model.critic(critic_params, sides["x_model"], sides["z_model"])
        ml, bound = losses.bridge_terms(sides["nll"], d_data, d_model, alpha, mix=mix,
                                        self_normalize=self_normalize)
        return (ml, bound, losses.negative_elbo(sides["nll"])), (d_data, d_model)

    _, (d_data, d_model) = terms(gen_params)
    grads = [jax.grad(lambda gp, i=i: terms(gp)[0][i])(gen_params) for i in range(3)]
    w = losses.bridge_weights(d_data, alpha)
    return {"alpha": jnp.asarray(alpha, jnp.float32),
            "d_data_mean": jnp.mean(d_data), "d_data_std": jnp.std(d_data),
            "d_model_mean": jnp.mean(d_model), "d_model_std": jnp.std(d_model),
            "weight_mean": jnp.mean(w),
            "weight_ess": losses.effective_sample_size(w),
            "grad_norm_elbo_term": optax.tree.norm(grads[0]),
            "grad_norm_bound_term": optax.tree.norm(grads[1]),
            "grad_norm_negative_elbo": optax.tree.norm(grads[2])}
