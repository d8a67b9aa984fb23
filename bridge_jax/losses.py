"""Training objectives of the α-Bridge (METHOD.md §2, §4, §5, §7).

Every loss is a pure function of per-example arrays and α, returning a scalar
to *minimise*; the caller's model produces the arrays:

  nll_data  ℓ_i = log q_φ(z_i|x_i) − log p(z_i) − log p_θ(x_i|z_i), the
            per-example negative ELBO integrand on data-side pairs
            (x_i ~ q, z_i ~ q_φ(z|x_i) reparameterised);
  d_data    critic logits d_ψ(x_i, z_i) on those data-side pairs;
  d_model   critic logits d_ψ(x̃_j, z̃_j) on model-side pairs
            (z̃_j ~ p(z), x̃_j = G_θ(z̃_j) + σ_θ ε_j reparameterised).

The critic estimates d ≈ log Q/P. The encoder/decoder loss is

    L(θ, φ) = (λ(α)/α) · mean_i[sg(w_i) · ℓ_i] + (1 − λ(α)) · B_α(d_data, d_model),
    w_i = e^(−(1−α) d_i),

whose gradient (critic frozen) is λ·(ML-form ∇D_α) + (1−λ)·(adversarial-form
∇D_α): a convex mix of two unbiased estimators of ∇D_α. The default
λ(α) = α² gives coefficients α and 1 − α²: α = 1 is exactly the VAE (negative
ELBO), α = 0 exactly the adversarial bound.

Only jax, chex and our ``divergences`` are imported.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from bridge_jax import divergences

__all__ = [
    "MIXES",
    "critic_loss",
    "bridge_weights",
    "bridge_coefficients",
    "effective_sample_size",
    "log_bridge_weights",
    "shifted_weight_moments",
    "ess_from_moments",
    "bridge_loss",
    "bridge_terms",
    "negative_elbo",
    "nonsaturating_generator_loss",
    "hybrid_loss",
    "gradient_penalty",
]

ArrayLike = jax.typing.ArrayLike

MIXES = ("quadratic", "smoothstep")
"""Mixing functions λ(α) for :func:`bridge_loss`.

quadratic   λ = α²          → ML coefficient λ/α = α, bound coefficient 1 − α².
smoothstep  λ = 3α² − 2α³   → λ/α = 3α − 2α²; λ'(1) = λ'(0) = 0, so the run
            leaves the pure-VAE objective more gently as α falls from 1, and
            keeps more weight on the (lower-variance, mode-covering)
            weighted ELBO through the middle of the path.
Both satisfy λ(0) = 0 and λ(1) = 1, and λ/α is a polynomial, so both ends
are exact without dividing by α.
"""


def critic_loss(
    d_data: ArrayLike,
    d_model: ArrayLike,
    alpha: ArrayLike = 1.0,
    kind: str = "logistic",
) -> jax.Array:
    """Critic objective to minimise; both kinds are optimal at d = log q/p.

    kind="logistic": binary cross-entropy with data-side samples labelled 1,
        mean softplus(−d_data) + mean softplus(d_model). Its optimum logit is
        log q/p when both sides carry equal prior mass (equal batch sizes).
        ``alpha`` is ignored.
    kind="bound": −B_α(d) = −(mean τ_α(d_data) − mean σ_α(d_model)), i.e.
        maximise the variational lower bound directly.
    """
    if kind == "logistic":
        d_data = jnp.asarray(d_data, jnp.promote_types(jnp.result_type(d_data), jnp.float32))
        d_model = jnp.asarray(d_model, jnp.promote_types(jnp.result_type(d_model), jnp.float32))
        return jnp.mean(jax.nn.softplus(-d_data)) + jnp.mean(jax.nn.softplus(d_model))
    if kind == "bound":
        return -divergences.alpha_bound(d_data, d_model, alpha)
    raise ValueError(f"unknown critic loss kind {kind!r}; expected 'logistic' or 'bound'")


def bridge_weights(
    d_data: ArrayLike, alpha: ArrayLike, self_normalize: bool = False
) -> jax.Array:
    """w_i = e^(−(1−α) d_i) = (P/Q)^(1−α), with a stop-gradient.

    The importance weights of the ML-form gradient
    ∇D_α = (1/α) E_Q[w ∇ℓ]. At α = 1, w ≡ 1 for any critic. ``d`` is clipped
    to ±LOGIT_CLIP, so w ≤ e^50 and never overflows in float32.

    self_normalize=True returns w_i / mean_j w_j, computed as
    N·softmax(−(1−α)d)_i (overflow-free). This lowers variance but is biased
    (a ratio estimator); it is exact at α = 1.
    """
    divergences.check_alpha(alpha)
    log_w = log_bridge_weights(d_data, alpha)
    if self_normalize:
        return log_w.size * jax.nn.softmax(log_w.reshape(-1)).reshape(log_w.shape)
    return jnp.exp(log_w)


def effective_sample_size(w: ArrayLike) -> jax.Array:
    """Normalised effective sample size of weights: (Σw)² / (N·Σw²), in (0, 1].

    1 when all weights are equal, 1/N when one weight carries everything.
    """
    w = jnp.asarray(w)
    return jnp.sum(w) ** 2 / (w.size * jnp.sum(w * w))


def log_bridge_weights(d_data: ArrayLike, alpha: ArrayLike) -> jax.Array:
    """log w_i = −(1−α)·clip(d_i, ±LOGIT_CLIP): the log of :func:`bridge_weights`
    (unnormalised), with a stop-gradient."""
    dtype = jnp.promote_types(jnp.result_type(d_data), jnp.float32)
    d = jnp.clip(jnp.asarray(d_data, dtype), -divergences.LOGIT_CLIP, divergences.LOGIT_CLIP)
    return jax.lax.stop_gradient(-(1.0 - jnp.asarray(alpha, dtype)) * d)


def shifted_weight_moments(log_w: ArrayLike, shift: ArrayLike) -> tuple[jax.Array, jax.Array]:
    """(mean_i e^(log w_i − m), mean_i e^(2(log w_i − m))) for a shift m (m = max log w
    keeps both in (0, 1]: no overflow where w² would, e.g. w = e^50). Means over equal
    shards average to the means over the whole batch, which is how the train step
    combines devices."""
    centred = jnp.asarray(log_w) - shift
    return jnp.mean(jnp.exp(centred)), jnp.mean(jnp.exp(2.0 * centred))


def ess_from_moments(first: ArrayLike, second: ArrayLike) -> jax.Array:
    """Normalised ESS from the weights' moments: (mean w)² / mean w² = (Σw)² / (N·Σw²),
    the same as :func:`effective_sample_size` (invariant to the shift of the moments)."""
    return jnp.square(first) / second


def bridge_coefficients(alpha: ArrayLike, mix: str = "quadratic") -> tuple[jax.Array, jax.Array]:
    """(λ(α)/α, 1 − λ(α)): the weights of the weighted-ELBO and bound terms."""
    divergences.check_alpha(alpha)
    a = jnp.asarray(alpha, jnp.promote_types(jnp.result_type(alpha), jnp.float32))
    if mix == "quadratic":
        lam_over_alpha = a
        lam = a * a
    elif mix == "smoothstep":
        lam_over_alpha = 3.0 * a - 2.0 * a * a
        lam = a * lam_over_alpha
    else:
        raise ValueError(f"unknown mix {mix!r}; expected one of {MIXES}")
    return lam_over_alpha, 1.0 - lam


def bridge_loss(
    nll_data: ArrayLike,
    d_data: ArrayLike,
    d_model: ArrayLike,
    alpha: ArrayLike,
    mix: str = "quadratic",
    self_normalize: bool = False,
) -> jax.Array:
    """The α-Bridge encoder/decoder loss (METHOD.md §5), to minimise over θ, φ.

        L = (λ(α)/α) · mean_i[sg(w_i) ℓ_i] + (1 − λ(α)) · B_α(d_data, d_model)

    with w_i = e^(−(1−α) d_data_i) (:func:`bridge_weights`, stop-gradient) and
    B_α from :func:`bridge_jax.divergences.alpha_bound`. Critic parameters
    must be frozen by the caller (only differentiate with respect to θ, φ);
    gradients reach φ through z in ``nll_data`` and ``d_data``, and θ through
    ``nll_data`` and the model-side samples in ``d_model``.

    At α = 1 the value is mean ℓ, the negative ELBO, whatever the critic says;
    at α = 0 it is B_0(d), the adversarial bound alone.

    Args:
      nll_data: (N,) per-example negative ELBO integrand ℓ on data-side pairs.
      d_data: (N,) critic logits on the same data-side pairs.
      d_model: (M,) critic logits on model-side pairs.
      alpha: α in [0, 1], float or traced scalar (e.g. from a schedule).
      mix: λ(α), one of :data:`MIXES`.
      self_normalize: use w / mean w (biased, lower variance).
    """
    elbo_term, bound_term = bridge_terms(nll_data, d_data, d_model, alpha, mix=mix,
                                         self_normalize=self_normalize)
    return elbo_term + bound_term


def bridge_terms(
    nll_data: ArrayLike,
    d_data: ArrayLike,
    d_model: ArrayLike,
    alpha: ArrayLike,
    mix: str = "quadratic",
    self_normalize: bool = False,
) -> tuple[jax.Array, jax.Array]:
    """The two summands of :func:`bridge_loss` (same arguments), separately:

        ((λ(α)/α) · mean_i[sg(w_i) ℓ_i],  (1 − λ(α)) · B_α(d_data, d_model)).
    """
    chex.assert_rank(nll_data, 1)
    chex.assert_equal_shape((nll_data, d_data))
    ml_coef, bound_coef = bridge_coefficients(alpha, mix)
    w = bridge_weights(d_data, alpha, self_normalize=self_normalize)
    nll = jnp.asarray(nll_data, w.dtype)
    weighted_elbo = jnp.mean(w * nll)
    bound = divergences.alpha_bound(d_data, d_model, alpha)
    return ml_coef.astype(w.dtype) * weighted_elbo, bound_coef.astype(w.dtype) * bound


def negative_elbo(nll_data: ArrayLike) -> jax.Array:
    """The VAE loss: mean_i ℓ_i = −mean ELBO(x_i) (single-sample estimate)."""
    return jnp.mean(jnp.asarray(nll_data, jnp.promote_types(jnp.result_type(nll_data),
                                                            jnp.float32)))


def nonsaturating_generator_loss(d_model: ArrayLike) -> jax.Array:
    """Non-saturating GAN generator loss −mean log D(x̃) = mean softplus(−d(x̃)).

    With D = sigmoid(d), the logistic critic of :func:`critic_loss`
    (Goodfellow et al. 2014, the "−log D" trick).
    """
    d = jnp.asarray(d_model, jnp.promote_types(jnp.result_type(d_model), jnp.float32))
    return jnp.mean(jax.nn.softplus(-d))


def hybrid_loss(nll_data: ArrayLike, d_model: ArrayLike, adversarial_weight: float) -> jax.Array:
    """VAE-GAN-style fixed mix: mean ℓ + β · mean softplus(−d(x̃)).

    A fixed-weight sum of the negative ELBO and the non-saturating adversarial
    loss (Larsen et al. 2016 use a similar sum); β = ``adversarial_weight``.
    Unlike :func:`bridge_loss`, it follows the gradient of no single divergence.
    """
    return negative_elbo(nll_data) + adversarial_weight * nonsaturating_generator_loss(d_model)


def gradient_penalty(critic_fn, x: ArrayLike, z: ArrayLike) -> jax.Array:
    """R1 penalty on data-side pairs: ½ · mean_i ‖∇_(x,z) d(x_i, z_i)‖².

    ``critic_fn(x, z)`` returns per-example logits (N,); an x-only critic may ignore
    ``z`` (its gradient is then zero). Added to the critic loss with a weight γ
    (Mescheder et al. 2018), it keeps the critic's logit d from growing without
    bound where data and model separate, so the α-Bridge terms e^(αd) and
    e^(−(1−α)d) do not saturate; METHOD.md names gradient penalties among the
    regularisers the bridge's generalisations explain. Differentiable in the
    critic's parameters (a second-order term).
    """
    x = jnp.asarray(x)
    z = jnp.asarray(z)
    gx, gz = jax.grad(lambda x_, z_: jnp.sum(critic_fn(x_, z_)), argnums=(0, 1))(x, z)
    squared = (jnp.sum(jnp.square(gx).reshape(x.shape[0], -1), axis=1)
               + jnp.sum(jnp.square(gz).reshape(z.shape[0], -1), axis=1))
    return 0.5 * jnp.mean(squared)
