"""The linear-Gaussian model of METHOD.md §6, in closed form (a test helper).

Model P_θ(x, z):  z ~ N(0, 1),  x | z ~ N(a z + b, s²),      θ = (a, b, log s)
Data  Q_φ(x, z):  x ~ N(m, v),  z | x ~ N(c x + e, t²),      φ = (c, e, log t)

Both joints are bivariate Gaussians over (x, z). For N(μ1, Σ1) = Q (power α) and
N(μ2, Σ2) = P (power 1 − α):

    log ∫ Q^α P^(1−α) = −½ α(1−α) Δμᵀ Σ_α⁻¹ Δμ − ½ log|Σ_α|
                        + ½ (1−α) log|Σ1| + ½ α log|Σ2|,
    Σ_α = (1−α) Σ1 + α Σ2,   Δμ = μ1 − μ2,

and D_α(Q‖P) = −expm1(log ∫ Q^α P^(1−α)) / (α(1−α)) for α in (0, 1), with the
Gaussian KL(Q‖P) at α = 1 and KL(P‖Q) at α = 0. The closed form is checked
against 2-D quadrature in ``test_identities.py``.

All functions are jax-traceable (for autodiff of D_α with respect to θ, φ);
call them inside ``jax.enable_x64(True)`` with float64 arrays for exact checks.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

LOG_2PI = float(np.log(2.0 * np.pi))

# Default parameters: D_α(Q‖P) is O(0.1–1) over α in [0, 1], the importance
# weights (P/Q)^(1−α) and (Q/P)^α have finite variance on both sides (including
# α = 0 and α = 1), and every component of ∇D_α is clearly non-zero.
THETA = (0.8, 0.1, float(np.log(0.5)))  # a, b, log s
PHI = (0.8, -0.5, float(np.log(0.6)))  # c, e, log t
DATA = (0.7, 1.1)  # m, v of q(x) = N(m, v); fixed, not learned


def log_normal(x, mean, var):
    """log N(x; mean, var) for scalar variance (elementwise)."""
    return -0.5 * (LOG_2PI + jnp.log(var) + (x - mean) ** 2 / var)


def joint_q(phi, data=DATA):
    """(μ, Σ) of Q_φ(x, z) = q(x) q_φ(z|x), in (x, z) order."""
    c, e, log_t = phi
    m, v = data
    t2 = jnp.exp(2.0 * log_t)
    mu = jnp.stack([jnp.asarray(m, jnp.result_type(c)), c * m + e])
    cov = jnp.array([[v, c * v], [c * v, c * c * v + t2]])
    return mu, cov


def joint_p(theta):
    """(μ, Σ) of P_θ(x, z) = p(z) p_θ(x|z), in (x, z) order."""
    a, b, log_s = theta
    s2 = jnp.exp(2.0 * log_s)
    mu = jnp.stack([b, jnp.zeros_like(b)])
    cov = jnp.array([[a * a + s2, a], [a, jnp.ones_like(a)]])
    return mu, cov


def _logdet2(cov):
    return jnp.log(cov[0, 0] * cov[1, 1] - cov[0, 1] * cov[1, 0])


def _quad2(cov, vec):
    """vecᵀ cov⁻¹ vec for a 2×2 covariance."""
    det = cov[0, 0] * cov[1, 1] - cov[0, 1] * cov[1, 0]
    inv = jnp.array([[cov[1, 1], -cov[0, 1]], [-cov[1, 0], cov[0, 0]]]) / det
    return vec @ inv @ vec


def gauss_kl(mu1, cov1, mu2, cov2):
    """KL(N(μ1, Σ1) ‖ N(μ2, Σ2)) for 2-D Gaussians."""
    det2 = cov2[0, 0] * cov2[1, 1] - cov2[0, 1] * cov2[1, 0]
    inv2 = jnp.array([[cov2[1, 1], -cov2[0, 1]], [-cov2[1, 0], cov2[0, 0]]]) / det2
    diff = mu1 - mu2
    return 0.5 * (
        jnp.trace(inv2 @ cov1) + diff @ inv2 @ diff - 2.0 + _logdet2(cov2) - _logdet2(cov1)
    )


def log_affinity(theta, phi, alpha, data=DATA):
    """log ∫ Q^α P^(1−α) over (x, z), α in [0, 1]."""
    mu1, cov1 = joint_q(phi, data)
    mu2, cov2 = joint_p(theta)
    cov_a = (1.0 - alpha) * cov1 + alpha * cov2
    diff = mu1 - mu2
    return (
        -0.5 * alpha * (1.0 - alpha) * _quad2(cov_a, diff)
        - 0.5 * _logdet2(cov_a)
        + 0.5 * (1.0 - alpha) * _logdet2(cov1)
        + 0.5 * alpha * _logdet2(cov2)
    )


def kl_qp(theta, phi, data=DATA):
    """KL(Q‖P): the α → 1 limit of D_α(Q‖P)."""
    return gauss_kl(*joint_q(phi, data), *joint_p(theta))


def kl_pq(theta, phi, data=DATA):
    """KL(P‖Q): the α → 0 limit of D_α(Q‖P)."""
    return gauss_kl(*joint_p(theta), *joint_q(phi, data))


def alpha_divergence(theta, phi, alpha: float, data=DATA):
    """Exact D_α(Q_φ‖P_θ); α is a Python float in [0, 1] (the ends are the KLs)."""
    if alpha == 0.0:
        return kl_pq(theta, phi, data)
    if alpha == 1.0:
        return kl_qp(theta, phi, data)
    return -jnp.expm1(log_affinity(theta, phi, alpha, data)) / (alpha * (1.0 - alpha))


def log_q_joint(x, z, phi, data=DATA):
    c, e, log_t = phi
    m, v = data
    return log_normal(x, m, v) + log_normal(z, c * x + e, jnp.exp(2.0 * log_t))


def log_p_joint(x, z, theta):
    a, b, log_s = theta
    return log_normal(z, 0.0, 1.0) + log_normal(x, a * z + b, jnp.exp(2.0 * log_s))


def log_ratio(x, z, theta, phi, data=DATA):
    """The exact critic d*(x, z) = log Q(x, z) − log P(x, z)."""
    return log_q_joint(x, z, phi, data) - log_p_joint(x, z, theta)


def nll(x, z, theta, phi):
    """ℓ(x, z) = log q_φ(z|x) − log p(z) − log p_θ(x|z) (negative ELBO integrand)."""
    c, e, log_t = phi
    a, b, log_s = theta
    return (
        log_normal(z, c * x + e, jnp.exp(2.0 * log_t))
        - log_normal(z, 0.0, 1.0)
        - log_normal(x, a * z + b, jnp.exp(2.0 * log_s))
    )


def encode(x, eps, phi):
    """Reparameterised data-side latent z = c x + e + t ε."""
    c, e, log_t = phi
    return c * x + e + jnp.exp(log_t) * eps


def generate(z, eps, theta):
    """Reparameterised model-side sample x = a z + b + s ε."""
    a, b, log_s = theta
    return a * z + b + jnp.exp(log_s) * eps


def sample_noise(n: int, seed: int):
    """Fixed float64 numpy noise: data x ~ q, ε (encoder), z ~ p(z), ε' (decoder)."""
    rng = np.random.default_rng(seed)
    m, v = DATA
    x = m + np.sqrt(v) * rng.standard_normal(n)
    return x, rng.standard_normal(n), rng.standard_normal(n), rng.standard_normal(n)
