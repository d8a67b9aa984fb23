"""``bridge_jax.losses``: critic losses, bridge weights and the α-Bridge loss (METHOD §2, §5, §7).

Reference values are float64 numpy hand formulas; results are float32, compared
at rtol 1e-6 (a few float32 ulp of the means) unless stated.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy.stats import norm

from bridge_jax import divergences, losses

RTOL = 1e-6


def _softplus(x):
    return np.logaddexp(0.0, x)


def _logits(seed, n, scale=3.0, shift=0.0):
    rng = np.random.default_rng(seed)
    return (shift + scale * rng.standard_normal(n)).astype(np.float32)


# ---------------------------------------------------------------------------
# Critic losses.


def test_logistic_critic_loss_is_binary_cross_entropy():
    dd, dm = _logits(0, 64, shift=1.0), _logits(1, 48, shift=-1.0)
    d64, m64 = dd.astype(np.float64), dm.astype(np.float64)
    sig = lambda u: 1.0 / (1.0 + np.exp(-u))  # noqa: E731
    bce = -np.mean(np.log(sig(d64))) - np.mean(np.log(1.0 - sig(m64)))
    got = losses.critic_loss(dd, dm)  # default kind="logistic", α ignored
    assert got.dtype == jnp.float32
    assert float(got) == pytest.approx(bce, rel=RTOL)
    assert float(losses.critic_loss(dd, dm, 0.3, "logistic")) == float(got)
    # Saturated logits stay finite and exact: softplus(100) = 100.
    big = losses.critic_loss(np.float32([-100.0]), np.float32([100.0]))
    assert float(big) == pytest.approx(200.0, rel=RTOL)
    bf16 = losses.critic_loss(jnp.asarray(dd, jnp.bfloat16), jnp.asarray(dm, jnp.bfloat16))
    assert bf16.dtype == jnp.float32


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.5, 1.0])
def test_bound_critic_loss_is_minus_alpha_bound(alpha):
    dd, dm = _logits(2, 64, shift=0.5), _logits(3, 32, shift=-0.5)
    got = float(losses.critic_loss(dd, dm, alpha, "bound"))
    assert got == -float(divergences.alpha_bound(dd, dm, alpha))
    # …and the hand formula.
    d64, m64 = dd.astype(np.float64), dm.astype(np.float64)
    tau = d64 if alpha == 1 else -np.expm1(-(1 - alpha) * d64) / (1 - alpha)
    sigma = m64 if alpha == 0 else np.expm1(alpha * m64) / alpha
    assert got == pytest.approx(-(tau.mean() - sigma.mean()), rel=1e-5)


def test_unknown_critic_kind_raises():
    with pytest.raises(ValueError, match="logistic"):
        losses.critic_loss(np.zeros(2), np.zeros(2), kind="hinge")


def _fit_linear_critic(kind, alpha, steps=400, lr=0.05):
    """Minimise critic_loss over d(x) = w·x + c on q = N(0,1), p = N(1,1) samples.

    Stratified quantile samples make the empirical optimum the population one
    (log q/p = ½ − x, i.e. w = −1, c = ½) up to ~3e-3.
    """
    n = 4096
    x_q = jnp.asarray(norm.ppf((np.arange(n) + 0.5) / n), jnp.float32)
    x_p = x_q + 1.0
    opt = optax.adam(lr)

    def loss(wc):
        return losses.critic_loss(wc[0] * x_q + wc[1], wc[0] * x_p + wc[1], alpha, kind)

    @jax.jit
    def run(wc):
        def body(carry, _):
            wc, state = carry
            updates, state = opt.update(jax.grad(loss)(wc), state)
            return (optax.apply_updates(wc, updates), state), None

        (wc, _), _ = jax.lax.scan(body, (wc, opt.init(wc)), None, length=steps)
        return wc

    return np.asarray(run(jnp.zeros(2, jnp.float32)))


@pytest.mark.parametrize(
    ("kind", "alpha"), [("logistic", 1.0), ("bound", 0.0), ("bound", 0.5), ("bound", 1.0)]
)
def test_critic_optimum_is_the_log_ratio(kind, alpha):
    """Both critic objectives are minimised by d = log q/p = ½ − x."""
    w, c = _fit_linear_critic(kind, alpha)
    assert w == pytest.approx(-1.0, abs=0.01)
    assert c == pytest.approx(0.5, abs=0.01)


# ---------------------------------------------------------------------------
# Bridge weights and coefficients.


@pytest.mark.parametrize("alpha", [0.0, 0.25, 0.5, 0.9, 1.0])
def test_bridge_weights_values(alpha):
    d = np.float32([-100.0, -50.0, -3.0, -0.5, 0.0, 0.7, 4.0, 50.0, 100.0])
    w = losses.bridge_weights(d, alpha)
    assert w.dtype == jnp.float32 and w.shape == d.shape
    want = np.exp(-(1 - np.float64(np.float32(alpha))) * np.clip(d, -50, 50).astype(np.float64))
    np.testing.assert_allclose(w, want, rtol=1e-5)  # e^(βd) with |βd| ≤ 50: see divergences
    assert np.all(np.isfinite(np.asarray(w)))
    if alpha == 1.0:
        np.testing.assert_array_equal(w, np.ones_like(d))  # w ≡ 1 at α = 1, any critic


def test_bridge_weights_stop_gradient():
    d = jnp.asarray(_logits(4, 16))
    for alpha in (0.0, 0.5, 1.0):
        for sn in (False, True):
            g = jax.grad(lambda u, a=alpha, sn=sn: jnp.sum(losses.bridge_weights(u, a, sn) * u))(d)
            # Only the explicit factor u carries gradient: d/du Σ sg(w)·u = w.
            np.testing.assert_allclose(g, losses.bridge_weights(d, alpha, sn), rtol=RTOL)
            g_alpha = jax.grad(lambda a, sn=sn: jnp.sum(losses.bridge_weights(d, a, sn)))(
                jnp.float32(alpha)
            )
            assert float(g_alpha) == 0.0


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.7, 1.0])
def test_bridge_weights_self_normalized(alpha):
    d = _logits(5, 40, scale=2.0)
    w = np.asarray(losses.bridge_weights(d, alpha), np.float64)
    w_sn = np.asarray(losses.bridge_weights(d, alpha, self_normalize=True), np.float64)
    assert np.mean(w_sn) == pytest.approx(1.0, rel=1e-6)
    np.testing.assert_allclose(w_sn, w / w.mean(), rtol=1e-5)
    # Extreme logits: finite, still mean 1; shape is preserved for any rank.
    d_ext = np.float32([[-100.0, 0.0], [100.0, 1e30]])
    w_ext = np.asarray(losses.bridge_weights(d_ext, alpha, self_normalize=True), np.float64)
    assert w_ext.shape == (2, 2) and np.all(np.isfinite(w_ext))
    assert np.mean(w_ext) == pytest.approx(1.0, rel=1e-6)
    w_raw = np.asarray(losses.bridge_weights(d_ext, alpha), np.float64)
    np.testing.assert_allclose(w_ext, w_raw / w_raw.mean(), rtol=1e-5, atol=1e-30)  # underflow


@pytest.mark.parametrize(
    ("mix", "alpha", "ml", "bound"),
    [
        ("quadratic", 0.0, 0.0, 1.0),
        ("quadratic", 0.5, 0.5, 0.75),
        ("quadratic", 1.0, 1.0, 0.0),
        ("quadratic", 0.2, 0.2, 0.96),
        ("smoothstep", 0.0, 0.0, 1.0),
        ("smoothstep", 0.5, 1.0, 0.5),
        ("smoothstep", 1.0, 1.0, 0.0),
        ("smoothstep", 0.2, 0.52, 1.0 - 0.104),
    ],
)
def test_bridge_coefficients(mix, alpha, ml, bound):
    got_ml, got_bound = losses.bridge_coefficients(alpha, mix)
    assert float(got_ml) == pytest.approx(ml, rel=1e-6, abs=1e-7)
    assert float(got_bound) == pytest.approx(bound, rel=1e-6, abs=1e-7)


def test_default_mix_is_quadratic_and_unknown_mix_raises():
    dd, dm, nll = _logits(6, 8), _logits(7, 8), _logits(8, 8)
    assert float(losses.bridge_loss(nll, dd, dm, 0.4)) == float(
        losses.bridge_loss(nll, dd, dm, 0.4, mix="quadratic")
    )
    with pytest.raises(ValueError, match="quadratic"):
        losses.bridge_coefficients(0.5, "cubic")
    with pytest.raises(ValueError):
        losses.bridge_loss(nll, dd, dm, 0.4, mix="cubic")


# ---------------------------------------------------------------------------
# The bridge loss value.


@pytest.mark.parametrize("mix", ["quadratic", "smoothstep"])
@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.8, 1.0])
@pytest.mark.parametrize("self_normalize", [False, True])
def test_bridge_loss_value_matches_hand_formula(mix, alpha, self_normalize):
    nll = _logits(9, 32, shift=5.0)
    dd, dm = _logits(10, 32, scale=1.5), _logits(11, 20, scale=1.5)
    d64, m64, l64 = (u.astype(np.float64) for u in (dd, dm, nll))
    lam = alpha**2 if mix == "quadratic" else 3 * alpha**2 - 2 * alpha**3
    ml_coef = alpha if mix == "quadratic" else 3 * alpha - 2 * alpha**2  # λ/α
    w = np.exp(-(1 - alpha) * d64)
    if self_normalize:
        w = w / w.mean()
    tau = d64 if alpha == 1 else -np.expm1(-(1 - alpha) * d64) / (1 - alpha)
    sigma = m64 if alpha == 0 else np.expm1(alpha * m64) / alpha
    want_elbo, want_bound = ml_coef * np.mean(w * l64), (1 - lam) * (tau.mean() - sigma.mean())
    want = want_elbo + want_bound
    got = losses.bridge_loss(nll, dd, dm, alpha, mix=mix, self_normalize=self_normalize)
    assert got.shape == () and got.dtype == jnp.float32
    assert float(got) == pytest.approx(want, rel=1e-5)
    elbo_term, bound_term = losses.bridge_terms(nll, dd, dm, alpha, mix=mix,
                                                self_normalize=self_normalize)
    assert float(elbo_term) == pytest.approx(want_elbo, rel=1e-5, abs=1e-6)
    assert float(bound_term) == pytest.approx(want_bound, rel=1e-5, abs=1e-6)
    if alpha == 1.0:
        assert float(got) == pytest.approx(float(losses.negative_elbo(nll)), rel=RTOL)
    if alpha == 0.0:
        assert float(got) == pytest.approx(float(divergences.alpha_bound(dd, dm, 0.0)), rel=RTOL)


def test_bridge_loss_traced_alpha_and_jit():
    nll, dd, dm = _logits(12, 16, shift=3.0), _logits(13, 16), _logits(14, 10)
    jitted = jax.jit(losses.bridge_loss, static_argnames=("mix", "self_normalize"))
    for alpha in (0.0, 0.45, 1.0):
        want = float(losses.bridge_loss(nll, dd, dm, alpha))
        assert float(jitted(nll, dd, dm, jnp.float32(alpha))) == pytest.approx(want, rel=RTOL)


def test_bridge_loss_shape_errors():
    nll, dd, dm = np.zeros(5, np.float32), np.zeros(4, np.float32), np.zeros(7, np.float32)
    with pytest.raises(AssertionError):
        losses.bridge_loss(nll, dd, dm, 0.5)  # nll and d_data disagree
    with pytest.raises(AssertionError):
        losses.bridge_loss(np.zeros((5, 1)), np.zeros((5, 1)), dm, 0.5)  # rank 2
    # The model side may have its own batch size.
    assert np.isfinite(float(losses.bridge_loss(nll, np.zeros(5, np.float32), dm, 0.5)))


# ---------------------------------------------------------------------------
# Baseline losses.


def test_negative_elbo_is_the_mean():
    nll = _logits(15, 30, shift=10.0)
    got = losses.negative_elbo(nll)
    assert got.dtype == jnp.float32
    assert float(got) == pytest.approx(np.mean(nll.astype(np.float64)), rel=RTOL)


def test_nonsaturating_generator_loss():
    dm = _logits(16, 30)
    want = np.mean(-np.log(1.0 / (1.0 + np.exp(-dm.astype(np.float64)))))
    assert float(losses.nonsaturating_generator_loss(dm)) == pytest.approx(want, rel=RTOL)
    assert float(losses.nonsaturating_generator_loss(np.float32([-100.0, 100.0]))) == (
        pytest.approx(50.0, rel=RTOL)
    )


@pytest.mark.parametrize("beta", [0.0, 0.1, 2.5])
def test_hybrid_loss(beta):
    nll, dm = _logits(17, 25, shift=4.0), _logits(18, 12)
    want = np.mean(nll.astype(np.float64)) + beta * np.mean(_softplus(-dm.astype(np.float64)))
    assert float(losses.hybrid_loss(nll, dm, beta)) == pytest.approx(want, rel=RTOL)


def test_gradient_penalty_closed_forms():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(5, 3, 2)), jnp.float32)
    z = jnp.asarray(rng.normal(size=(5, 4)), jnp.float32)
    a = jnp.asarray(rng.normal(size=(3, 2)), jnp.float32)
    b = jnp.asarray(rng.normal(size=(4,)), jnp.float32)

    # Linear joint critic d = <a, x> + <b, z> + 7: the gradient is (a, b) for every pair.
    linear = lambda x_, z_: jnp.sum(x_ * a, axis=(1, 2)) + z_ @ b + 7.0
    np.testing.assert_allclose(losses.gradient_penalty(linear, x, z),
                               0.5 * (jnp.sum(a * a) + jnp.sum(b * b)), rtol=1e-6)
    # d = ½‖x‖² ignores z: ∇ = (x, 0), so the penalty is ½ mean ‖x_i‖².
    quadratic = lambda x_, z_: 0.5 * jnp.sum(x_ ** 2, axis=(1, 2))
    np.testing.assert_allclose(losses.gradient_penalty(quadratic, x, z),
                               0.5 * jnp.mean(jnp.sum(x ** 2, axis=(1, 2))), rtol=1e-6)
    # It is differentiable in the critic's parameters: d = s·<a, x> → penalty s²·½‖a‖².
    grad_s = jax.grad(lambda s: losses.gradient_penalty(
        lambda x_, z_: s * jnp.sum(x_ * a, axis=(1, 2)), x, z))(3.0)
    np.testing.assert_allclose(grad_s, 3.0 * jnp.sum(a * a), rtol=1e-5)


def test_effective_sample_size():
    assert float(losses.effective_sample_size(jnp.full(8, 3.0))) == pytest.approx(1.0)
    assert float(losses.effective_sample_size(jnp.eye(8)[0])) == pytest.approx(1 / 8)
    # Two of four equal, two zero: (2w)² / (4·2w²) = 1/2.
    assert float(losses.effective_sample_size(jnp.array([0.0, 5.0, 0.0, 5.0]))) == \
        pytest.approx(0.5)


def test_ess_from_shifted_moments_matches_the_weights_ess_and_never_overflows():
    """The adaptive α's signal: (mean e^(lw−m))² / mean e^(2(lw−m)) = ESS of w = e^lw."""
    d = _logits(0, 64)
    for alpha in (0.0, 0.3, 1.0):
        log_w = losses.log_bridge_weights(d, alpha)
        np.testing.assert_allclose(log_w, -(1 - alpha) * d, rtol=RTOL)
        w = losses.bridge_weights(d, alpha)
        for shift in (jnp.max(log_w), 0.0, 2.0):  # any shift: the ratio is invariant
            ess = losses.ess_from_moments(*losses.shifted_weight_moments(log_w, shift))
            np.testing.assert_allclose(ess, losses.effective_sample_size(w), rtol=1e-5)
    assert float(losses.ess_from_moments(*losses.shifted_weight_moments(
        losses.log_bridge_weights(d, 1.0), 0.0))) == 1.0  # α = 1: w ≡ 1
    # Saturated logits: w reaches e^50, w² overflows float32; the shifted moments do not.
    saturated = jnp.array([-80.0, -50.0, 0.0, 10.0])
    log_w = losses.log_bridge_weights(saturated, 0.0)  # clipped to ±50: [50, 50, 0, −10]
    assert not np.isfinite(float(losses.effective_sample_size(jnp.exp(log_w))))
    ess = losses.ess_from_moments(*losses.shifted_weight_moments(log_w, jnp.max(log_w)))
    assert float(ess) == pytest.approx(0.5, rel=1e-6)  # two equal weights carry everything
    # Means over two equal halves average to the whole batch's means (the device combine).
    halves = [losses.shifted_weight_moments(h, 1.0) for h in jnp.split(-d, 2)]
    whole = losses.shifted_weight_moments(-d, 1.0)
    np.testing.assert_allclose(np.mean(halves, axis=0), whole, rtol=1e-6)
