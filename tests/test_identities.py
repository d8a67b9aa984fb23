"""METHOD.md §6: the identities of the α-Bridge on the linear-Gaussian model.

Model P_θ: z ~ N(0,1), x|z ~ N(az+b, s²); data Q_φ: x ~ N(m, v), z|x ~ N(cx+e, t²)
(see ``tests/linear_gaussian.py``). Both joints are Gaussian, so D_α(Q‖P), its
gradient in θ = (a, b, log s) and φ = (c, e, log t), and the exact log ratio
d* = log Q/P are known in closed form (float64).

Monte-Carlo tolerances: every stochastic comparison allows 5 standard errors
computed from the same samples (per-sample terms or per-sample gradients), plus
a negligible absolute slack. Samples come from fixed seeds, so the tests are
deterministic; the chosen parameters (D_α ≈ 0.45–0.66, importance weights with
finite fourth moments on both sides) keep these standard errors small next to
the quantities tested: each test also asserts its tolerance is a small fraction
of the value, so a wrong factor α, a wrong sign, or a swapped limit fails.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bridge_jax import divergences, losses
from tests import linear_gaussian as lg

N_BOUND = 400_000  # samples per side for the value identities
N_GRAD = 300_000  # (data, model) sample pairs for the gradient identities
N_SE = 5.0  # tolerance in standard errors


@pytest.fixture(autouse=True)
def x64():
    """Every test in this module runs in float64; the flag is restored afterwards."""
    with jax.enable_x64(True):
        yield


@functools.cache
def _noise(n: int, seed: int):
    return lg.sample_noise(n, seed)


def _params():
    return jnp.asarray(lg.THETA, jnp.float64), jnp.asarray(lg.PHI, jnp.float64)


def _critic_samples(n=N_BOUND, seed=0):
    """Exact d* on data-side pairs (x, z~q_φ(z|x)) and model-side pairs (x~p_θ(x|z), z)."""
    theta, phi = _params()
    x, eps, z, eps_m = (jnp.asarray(u) for u in _noise(n, seed))
    z_q = lg.encode(x, eps, phi)
    x_p = lg.generate(z, eps_m, theta)
    return (
        lg.log_ratio(x, z_q, theta, phi),
        lg.log_ratio(x_p, z, theta, phi),
        (x, z_q),
        (x_p, z),
    )


def _bound_and_se(d_data, d_model, alpha):
    """B_α(d) from ``divergences.alpha_bound`` and its Monte-Carlo standard error."""
    tau = divergences.data_term(d_data, alpha)
    sigma = divergences.model_term(d_model, alpha)
    bound = divergences.alpha_bound(d_data, d_model, alpha)
    se = jnp.sqrt(jnp.var(tau) / tau.size + jnp.var(sigma) / sigma.size)
    return float(bound), float(se)


# ---------------------------------------------------------------------------
# The closed form itself.


def _grid_integral(values, h):
    return float(np.sum(values) * h * h)


def test_closed_form_matches_quadrature():
    """∫ Q^α P^(1−α) and both KLs agree with 2-D quadrature on a fine grid."""
    theta, phi = _params()
    h = 0.025
    grid = np.arange(-11.0, 11.0 + h / 2, h)
    xx, zz = np.meshgrid(grid, grid, indexing="ij")
    log_q = np.asarray(lg.log_q_joint(jnp.asarray(xx), jnp.asarray(zz), phi))
    log_p = np.asarray(lg.log_p_joint(jnp.asarray(xx), jnp.asarray(zz), theta))
    # Sanity: both densities are normalised on the grid.
    assert _grid_integral(np.exp(log_q), h) == pytest.approx(1.0, abs=1e-9)
    assert _grid_integral(np.exp(log_p), h) == pytest.approx(1.0, abs=1e-9)
    for alpha in (0.2, 0.5, 0.8):
        quad = _grid_integral(np.exp(alpha * log_q + (1 - alpha) * log_p), h)
        closed = float(jnp.exp(lg.log_affinity(theta, phi, alpha)))
        assert closed == pytest.approx(quad, abs=1e-9), alpha
        d_quad = (1.0 - quad) / (alpha * (1.0 - alpha))
        assert float(lg.alpha_divergence(theta, phi, alpha)) == pytest.approx(d_quad, abs=1e-7)
    kl_qp = _grid_integral(np.exp(log_q) * (log_q - log_p), h)
    kl_pq = _grid_integral(np.exp(log_p) * (log_p - log_q), h)
    assert float(lg.kl_qp(theta, phi)) == pytest.approx(kl_qp, abs=1e-8)
    assert float(lg.kl_pq(theta, phi)) == pytest.approx(kl_pq, abs=1e-8)
    # The two directions differ clearly at these parameters.
    assert abs(kl_qp - kl_pq) > 0.15


def test_closed_form_limits_are_the_kls():
    """D_α → KL(P‖Q) as α → 0 and → KL(Q‖P) as α → 1 (limit, not the special case)."""
    theta, phi = _params()
    kl_pq = float(lg.kl_pq(theta, phi))
    kl_qp = float(lg.kl_qp(theta, phi))
    near0 = float(lg.alpha_divergence(theta, phi, 1e-6))
    near1 = float(lg.alpha_divergence(theta, phi, 1 - 1e-6))
    assert near0 == pytest.approx(kl_pq, rel=1e-5)
    assert near1 == pytest.approx(kl_qp, rel=1e-5)
    assert abs(near0 - kl_qp) > 0.1 and abs(near1 - kl_pq) > 0.1


def test_exact_log_ratio_is_log_q_over_p():
    """d* = log Q − log P, and d* = log q(x) + ℓ(x, z) (METHOD §3)."""
    theta, phi = _params()
    x = jnp.asarray([-1.3, 0.2, 2.5])
    z = jnp.asarray([0.4, -0.7, 1.1])
    m, v = lg.DATA
    a, b, log_s = (float(u) for u in theta)
    c, e, log_t = (float(u) for u in phi)
    xn, zn = np.asarray(x), np.asarray(z)

    def npdf(u, mean, var):
        return -0.5 * (np.log(2 * np.pi * var) + (u - mean) ** 2 / var)

    want = (
        npdf(xn, m, v) + npdf(zn, c * xn + e, np.exp(2 * log_t))
        - npdf(zn, 0.0, 1.0) - npdf(xn, a * zn + b, np.exp(2 * log_s))
    )
    np.testing.assert_allclose(np.asarray(lg.log_ratio(x, z, theta, phi)), want, rtol=1e-13)
    np.testing.assert_allclose(
        np.asarray(lg.log_normal(x, m, v) + lg.nll(x, z, theta, phi)), want, rtol=1e-13
    )


# ---------------------------------------------------------------------------
# §6.1–§6.3: the bound.


@pytest.mark.parametrize("alpha", [0.0, 0.2, 0.5, 0.8, 1.0])
def test_bound_at_exact_ratio_equals_divergence(alpha):
    """§6.1: B_α(d*) = D_α(Q‖P) within 5 standard errors."""
    theta, phi = _params()
    d_data, d_model, _, _ = _critic_samples()
    bound, se = _bound_and_se(d_data, d_model, alpha)
    exact = float(lg.alpha_divergence(theta, phi, alpha))
    assert N_SE * se < 0.05 * exact  # the test has power: 5 SE is under 5% of D_α
    assert abs(bound - exact) < N_SE * se + 1e-9, (bound, exact, se)


@pytest.mark.parametrize("alpha", [0.0, 0.2, 0.5, 0.8, 1.0])
@pytest.mark.parametrize("perturbation", ["shift", "scale", "latent"])
def test_bound_is_strictly_lower_away_from_exact_ratio(alpha, perturbation):
    """§6.2: B_α(d) < D_α by more than 5 standard errors for d ≠ d*."""
    theta, phi = _params()
    d_data, d_model, (_, z_q), (_, z_p) = _critic_samples()
    if perturbation == "shift":
        d_data, d_model = d_data + 0.5, d_model + 0.5
    elif perturbation == "scale":
        d_data, d_model = 0.7 * d_data, 0.7 * d_model
    else:
        d_data, d_model = d_data + 0.3 * z_q, d_model + 0.3 * z_p
    bound, se = _bound_and_se(d_data, d_model, alpha)
    exact = float(lg.alpha_divergence(theta, phi, alpha))
    assert exact - bound > N_SE * se, (bound, exact, se)


def test_bound_limits_are_the_two_kls():
    """§6.3: alpha_bound(d*) at α = 0 is KL(P‖Q), at α = 1 is KL(Q‖P) — not the other."""
    theta, phi = _params()
    d_data, d_model, _, _ = _critic_samples()
    kl_pq = float(lg.kl_pq(theta, phi))
    kl_qp = float(lg.kl_qp(theta, phi))
    b0, se0 = _bound_and_se(d_data, d_model, 0.0)
    b1, se1 = _bound_and_se(d_data, d_model, 1.0)
    assert abs(b0 - kl_pq) < N_SE * se0
    assert abs(b1 - kl_qp) < N_SE * se1
    assert abs(b0 - kl_qp) > 3 * N_SE * se0
    assert abs(b1 - kl_pq) > 3 * N_SE * se1
    # The estimator is continuous at the ends (same samples, α → 0 and α → 1).
    b_near0 = float(divergences.alpha_bound(d_data, d_model, 1e-7))
    b_near1 = float(divergences.alpha_bound(d_data, d_model, 1 - 1e-7))
    assert b_near0 == pytest.approx(b0, abs=1e-5)
    assert b_near1 == pytest.approx(b1, abs=1e-5)


# ---------------------------------------------------------------------------
# §6.4: the two gradient forms of ∇D_α and the bridge loss built from them.
# Parameters are packed as p = (a, b, log s, c, e, log t). Each per-pair loss is
# evaluated on one data-side pair and one model-side pair; the estimators are the
# means of the per-pair gradients, their standard errors the per-pair spreads.


def _split(p):
    return p[:3], p[3:]


def _pair_ml_loss(p, alpha, x, eps, z, eps_m):
    """(1/α)·sg(w)·ℓ with w = e^(−(1−α)d*) from ``losses.bridge_weights`` (its stop-gradient)."""
    del z, eps_m
    theta, phi = _split(p)
    z_q = lg.encode(x, eps, phi)
    w = losses.bridge_weights(lg.log_ratio(x, z_q, theta, phi), alpha)
    return w * lg.nll(x, z_q, theta, phi) / alpha


def _frozen_critic_logits(p, x, eps, z, eps_m):
    """d* at the current parameters held constant, on reparameterised samples."""
    theta, phi = _split(p)
    frozen_theta, frozen_phi = _split(jax.lax.stop_gradient(p))
    z_q = lg.encode(x, eps, phi)
    x_p = lg.generate(z, eps_m, theta)
    return (
        z_q,
        lg.log_ratio(x, z_q, frozen_theta, frozen_phi),
        lg.log_ratio(x_p, z, frozen_theta, frozen_phi),
    )


def _pair_adversarial_loss(p, alpha, x, eps, z, eps_m):
    """B_α(d*_frozen) through the samples only (Danskin)."""
    _, d_data, d_model = _frozen_critic_logits(p, x, eps, z, eps_m)
    return divergences.alpha_bound(d_data, d_model, alpha)


def _make_pair_bridge_loss(mix):
    def pair_loss(p, alpha, x, eps, z, eps_m):
        theta, phi = _split(p)
        z_q, d_data, d_model = _frozen_critic_logits(p, x, eps, z, eps_m)
        nll = lg.nll(x, z_q, theta, phi)
        return losses.bridge_loss(nll[None], d_data[None], d_model[None], alpha, mix=mix)

    return pair_loss


_ESTIMATORS = {
    "ml": _pair_ml_loss,
    "adversarial": _pair_adversarial_loss,
    "bridge_quadratic": _make_pair_bridge_loss("quadratic"),
    "bridge_smoothstep": _make_pair_bridge_loss("smoothstep"),
}


@functools.cache
def _per_pair_grad_fn(name):
    grad = jax.grad(_ESTIMATORS[name])
    return jax.jit(jax.vmap(grad, in_axes=(None, None, 0, 0, 0, 0)))


def _estimate(name, alpha, n=N_GRAD, seed=1):
    theta, phi = _params()
    p = jnp.concatenate([theta, phi])
    noise = [jnp.asarray(u) for u in _noise(n, seed)]
    grads = np.asarray(_per_pair_grad_fn(name)(p, jnp.float64(alpha), *noise))
    assert grads.shape == (n, 6) and np.all(np.isfinite(grads))
    return grads.mean(0), grads.std(0, ddof=1) / np.sqrt(n)


def _exact_grad(alpha):
    theta, phi = _params()
    p = jnp.concatenate([theta, phi])
    return np.asarray(jax.grad(lambda q: lg.alpha_divergence(q[:3], q[3:], alpha))(p))


@pytest.mark.parametrize("alpha", [0.2, 0.5, 0.8, 1.0])
@pytest.mark.parametrize("name", list(_ESTIMATORS))
def test_gradient_estimators_match_exact_gradient(name, alpha):
    """§6.4: ML form, adversarial form and the bridge loss all estimate ∇_{θ,φ} D_α."""
    exact = _exact_grad(alpha)
    assert np.linalg.norm(exact) > 1.0  # clearly non-zero at these parameters
    estimate, se = _estimate(name, alpha)
    tol = N_SE * se + 1e-6
    assert np.max(tol) < 0.06 * np.linalg.norm(exact)  # power: a factor α would fail
    np.testing.assert_array_less(np.abs(estimate - exact), tol)


@pytest.mark.parametrize("name", ["adversarial", "bridge_quadratic"])
def test_adversarial_gradient_at_alpha_zero(name):
    """At α = 0 the adversarial form (and the bridge loss, which is it) estimates ∇KL(P‖Q)."""
    exact = _exact_grad(0.0)
    estimate, se = _estimate(name, 0.0)
    tol = N_SE * se + 1e-6
    assert np.max(tol) < 0.06 * np.linalg.norm(exact)
    np.testing.assert_array_less(np.abs(estimate - exact), tol)


def test_bridge_gradient_is_the_convex_mix_of_the_two_forms():
    """For one batch: ∇L = (λ/α)·∇mean(sg(w)ℓ) + (1−λ)·∇B_α, exactly (both mixes)."""
    theta, phi = _params()
    p = jnp.concatenate([theta, phi])
    noise = [jnp.asarray(u) for u in _noise(2000, 7)]
    alpha = 0.35
    g_ml = jax.jit(jax.grad(lambda q: jnp.mean(_pair_ml_loss(q, alpha, *noise))))(p) * alpha
    g_adv = jax.jit(jax.grad(lambda q: _pair_adversarial_loss(q, alpha, *noise)))(p)
    for mix, lam in (("quadratic", alpha**2), ("smoothstep", 3 * alpha**2 - 2 * alpha**3)):

        def batch_loss(q, mix=mix):
            theta_q, phi_q = _split(q)
            z_q, d_data, d_model = _frozen_critic_logits(q, *noise)
            return losses.bridge_loss(
                lg.nll(noise[0], z_q, theta_q, phi_q), d_data, d_model, alpha, mix=mix
            )

        got = jax.jit(jax.grad(batch_loss))(p)
        np.testing.assert_allclose(got, lam / alpha * g_ml + (1 - lam) * g_adv, rtol=1e-10)


# ---------------------------------------------------------------------------
# §6.5–§6.6: the ends of the bridge are exact for any critic.


def _arbitrary_critic(x, z):
    """A large, wrong critic: nothing like log Q/P, and beyond the clip for many samples."""
    return 37.0 * x - 23.0 * z + 5.0 + 20.0 * jnp.sin(3.0 * x * z)


def _end_losses(p, alpha, noise, mix):
    theta, phi = _split(p)
    x, eps, z, eps_m = noise
    z_q = lg.encode(x, eps, phi)
    x_p = lg.generate(z, eps_m, theta)
    nll = lg.nll(x, z_q, theta, phi)
    d_data = _arbitrary_critic(x, z_q)
    d_model = _arbitrary_critic(x_p, z)
    bridge = losses.bridge_loss(nll, d_data, d_model, alpha, mix=mix)
    return bridge, losses.negative_elbo(nll), divergences.alpha_bound(d_data, d_model, alpha)


def _end_gradients(dtype, alpha, mix):
    p = jnp.asarray(np.concatenate([lg.THETA, lg.PHI]), dtype)
    noise = tuple(jnp.asarray(u, dtype) for u in _noise(4096, 3))
    d_data = _arbitrary_critic(noise[0], lg.encode(noise[0], noise[1], p[3:]))
    assert float(jnp.mean(jnp.abs(d_data) > divergences.LOGIT_CLIP)) > 0.1  # clip is hit

    @jax.jit
    def values_and_jacobian(q):
        stacked = lambda r: jnp.stack(_end_losses(r, alpha, noise, mix))  # noqa: E731
        return stacked(q), jax.jacrev(stacked)(q)

    values, jacobian = values_and_jacobian(p)
    assert values.dtype == dtype and jacobian.dtype == dtype
    assert np.all(np.isfinite(np.asarray(jacobian)))
    return tuple(values), tuple(jacobian)


@pytest.mark.parametrize("mix", ["quadratic", "smoothstep"])
def test_alpha_one_is_exactly_the_vae(mix):
    """§6.5: at α = 1, value and gradient of bridge_loss are the negative ELBO's."""
    (bridge, elbo, bound), (g_bridge, g_elbo, g_bound) = _end_gradients(jnp.float64, 1.0, mix)
    assert float(bridge) == pytest.approx(float(elbo), rel=1e-12)
    np.testing.assert_allclose(g_bridge, g_elbo, rtol=1e-9, atol=1e-12)
    assert np.max(np.abs(np.asarray(g_bound))) > 1.0  # the critic term is really non-trivial
    with jax.enable_x64(False):
        (bridge, elbo, _), (g_bridge, g_elbo, _) = _end_gradients(jnp.float32, 1.0, mix)
        assert float(bridge) == pytest.approx(float(elbo), rel=1e-6)
        np.testing.assert_allclose(g_bridge, g_elbo, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mix", ["quadratic", "smoothstep"])
def test_alpha_zero_is_exactly_the_adversarial_bound(mix):
    """§6.6: at α = 0, value and gradient of bridge_loss are alpha_bound's alone."""
    (bridge, elbo, bound), (g_bridge, g_elbo, g_bound) = _end_gradients(jnp.float64, 0.0, mix)
    assert float(bridge) == pytest.approx(float(bound), rel=1e-12)
    np.testing.assert_allclose(g_bridge, g_bound, rtol=1e-9, atol=1e-12)
    assert np.max(np.abs(np.asarray(g_elbo))) > 1.0
    with jax.enable_x64(False):
        (bridge, _, bound), (g_bridge, _, g_bound) = _end_gradients(jnp.float32, 0.0, mix)
        assert float(bridge) == pytest.approx(float(bound), rel=1e-6)
        np.testing.assert_allclose(g_bridge, g_bound, rtol=1e-5, atol=1e-6)
