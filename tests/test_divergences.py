"""``bridge_jax.divergences``: τ_α, σ_α, B_α and the discrete D_α (METHOD.md §1–§2).

Reference values are float64 numpy evaluations of the hand formulas. Tolerances:
float64 results rtol 1e-12 (only rounding differs). float32 results rtol 1e-5:
e^(βd) has condition number |βd| ≤ 50, so the float32 rounding of the product βd
(≤ 2e-6 absolute at |d| = 50) and of β = 1 − α itself (1 − 1e-7 is not a float32)
move the exact result by up to ~3e-6 relative; away from |d| ≈ 50 the error is a
few ulp. bfloat16 inputs are computed in float32, so they are compared, at the same
float32 tolerance, with float64 evaluated at the bfloat16-rounded inputs.
"""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bridge_jax import divergences
from bridge_jax.divergences import LOGIT_CLIP

F32_RTOL = 1e-5
ALPHAS = (0.0, 1e-7, 0.2, 0.5, 0.8, 1 - 1e-7, 1.0)
ROBUST_ALPHAS = (0.0, 1e-7, 0.5, 1 - 1e-7, 1.0)
D_INSIDE = (-50.0, -20.0, -3.0, -1.0, -1e-8, 0.0, 1e-8, 1.0, 3.0, 20.0, 50.0)
D_EXTREME = (-math.inf, -1e30, -100.0, -50.0, -1.0, -1e-8, 1e-8, 1.0, 50.0, 100.0, 1e30, math.inf)


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def _f32(alpha):
    """α as the float32 the computation uses (α is cast to the compute dtype)."""
    return float(np.float32(alpha))


def tau_ref(d, alpha):
    """τ_α(d) = (1 − e^(−(1−α)d))/(1−α) in float64 with the ±50 clip; τ_1(d) = d."""
    d = np.clip(np.asarray(d, np.float64), -LOGIT_CLIP, LOGIT_CLIP)
    b = 1.0 - alpha
    return d if b == 0 else -np.expm1(-b * d) / b


def sigma_ref(d, alpha):
    """σ_α(d) = (e^(αd) − 1)/α in float64 with the ±50 clip; σ_0(d) = d."""
    d = np.clip(np.asarray(d, np.float64), -LOGIT_CLIP, LOGIT_CLIP)
    return d if alpha == 0 else np.expm1(alpha * d) / alpha


def dtau_ref(d, alpha):
    """dτ/dd = e^(−(1−α)d) inside the clip, 0 beyond it."""
    d = np.asarray(d, np.float64)
    inside = np.abs(d) < LOGIT_CLIP
    return np.where(inside, np.exp(-(1.0 - alpha) * np.where(inside, d, 0.0)), 0.0)


def dsigma_ref(d, alpha):
    """dσ/dd = e^(αd) inside the clip, 0 beyond it."""
    d = np.asarray(d, np.float64)
    inside = np.abs(d) < LOGIT_CLIP
    return np.where(inside, np.exp(alpha * np.where(inside, d, 0.0)), 0.0)


# ---------------------------------------------------------------------------
# Values.


@pytest.mark.parametrize("alpha", ALPHAS)
def test_terms_match_hand_formulas_float64(x64, alpha):
    d = np.array(D_INSIDE + (-100.0, 100.0))
    tau = divergences.data_term(jnp.asarray(d), alpha)
    sigma = divergences.model_term(jnp.asarray(d), alpha)
    assert tau.dtype == jnp.float64 and sigma.dtype == jnp.float64
    np.testing.assert_allclose(tau, tau_ref(d, alpha), rtol=1e-12, atol=0)
    np.testing.assert_allclose(sigma, sigma_ref(d, alpha), rtol=1e-12, atol=0)


@pytest.mark.parametrize("alpha", ALPHAS)
def test_terms_match_hand_formulas_float32(alpha):
    d = np.array(D_INSIDE, np.float32)
    tau = divergences.data_term(d, alpha)
    sigma = divergences.model_term(d, alpha)
    assert tau.dtype == jnp.float32 and sigma.dtype == jnp.float32
    np.testing.assert_allclose(tau, tau_ref(d, _f32(alpha)), rtol=F32_RTOL, atol=0)
    np.testing.assert_allclose(sigma, sigma_ref(d, _f32(alpha)), rtol=F32_RTOL, atol=0)


def test_terms_at_a_few_hand_computed_points():
    """Spot values a reader can check with a calculator."""
    e = math.e
    assert float(divergences.data_term(1.0, 0.5)) == pytest.approx(2 * (1 - e**-0.5), rel=1e-6)
    assert float(divergences.model_term(1.0, 0.5)) == pytest.approx(2 * (e**0.5 - 1), rel=1e-6)
    assert float(divergences.data_term(2.0, 0.0)) == pytest.approx(1 - e**-2, rel=1e-6)
    assert float(divergences.model_term(2.0, 1.0)) == pytest.approx(e**2 - 1, rel=1e-6)
    assert float(divergences.data_term(-3.0, 1.0)) == -3.0  # τ_1(d) = d
    assert float(divergences.model_term(-3.0, 0.0)) == -3.0  # σ_0(d) = d
    # B_α at α = 1: mean d_data − mean(e^d_model − 1); at α = 0: 1 − mean e^−d_data − mean d_model.
    dd, dm = np.array([0.5, 1.5]), np.array([-1.0, 0.25])
    b1 = dd.mean() - np.mean(np.exp(dm) - 1)
    b0 = 1 - np.mean(np.exp(-dd)) - dm.mean()
    assert float(divergences.alpha_bound(dd, dm, 1.0)) == pytest.approx(b1, rel=1e-6)
    assert float(divergences.alpha_bound(dd, dm, 0.0)) == pytest.approx(b0, rel=1e-6)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_limits_are_exactly_d(x64, dtype):
    d = jnp.asarray(D_INSIDE, dtype)
    np.testing.assert_array_equal(divergences.data_term(d, 1.0), d)
    np.testing.assert_array_equal(divergences.model_term(d, 0.0), d)
    np.testing.assert_array_equal(divergences.data_term(d, 1), d)  # Python int α
    np.testing.assert_array_equal(divergences.model_term(d, 0), d)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_continuity_at_the_ends(x64, dtype):
    """Values at α = 1e-6 and 1 − 1e-6 are within O(ε·d²) of the values at 0 and 1."""
    d = jnp.asarray(D_INSIDE, dtype)
    for end, near in ((0.0, 1e-6), (1.0, 1 - 1e-6)):
        for fn in (divergences.data_term, divergences.model_term):
            at_end = np.asarray(fn(d, end), np.float64)
            at_near = np.asarray(fn(d, near), np.float64)
            # Mean-value bound: |f_α − f_end| ≤ ε·(d² + (|d| + 1)·|f_end|) for ε = 1e-6
            # (2ε allowed), plus a few float32 ulp of |f_end|.
            dd = np.asarray(d, np.float64)
            slack = 2e-6 * (dd**2 + (np.abs(dd) + 1) * np.abs(at_end)) + 4e-6 * np.abs(at_end)
            np.testing.assert_array_less(np.abs(at_near - at_end), slack + 1e-12)


def test_alpha_bound_is_mean_tau_minus_mean_sigma():
    rng = np.random.default_rng(0)
    dd = rng.normal(0.5, 2.0, size=(3, 40)).astype(np.float32)  # any shape
    dm = rng.normal(-0.5, 2.0, size=17).astype(np.float32)
    for alpha in ALPHAS:
        a = _f32(alpha)
        want = tau_ref(dd, a).mean() - sigma_ref(dm, a).mean()
        got = divergences.alpha_bound(dd, dm, alpha)
        assert got.shape == () and got.dtype == jnp.float32
        assert float(got) == pytest.approx(want, rel=1e-5, abs=1e-5)


# ---------------------------------------------------------------------------
# Robustness: finite values and gradients, clip bound, dtypes.


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("alpha", ROBUST_ALPHAS)
def test_extreme_logits_give_finite_clipped_values(dtype, alpha):
    """±100, ±1e30 and ±inf are clipped to ±50: finite and equal to the value at ±50."""
    d = jnp.asarray(D_EXTREME, dtype)
    d_rounded = np.asarray(d.astype(jnp.float32), np.float64)  # bf16-rounded inputs
    for fn, ref in ((divergences.data_term, tau_ref), (divergences.model_term, sigma_ref)):
        out = fn(d, alpha)
        assert out.dtype == jnp.float32  # low precision is computed in float32
        assert np.all(np.isfinite(np.asarray(out)))
        np.testing.assert_allclose(out, ref(d_rounded, _f32(alpha)), rtol=F32_RTOL, atol=0)
        # Beyond the clip the value is the value at ±50 exactly.
        np.testing.assert_array_equal(out[:3], fn(jnp.full(3, -LOGIT_CLIP, dtype), alpha))
        np.testing.assert_array_equal(out[-3:], fn(jnp.full(3, LOGIT_CLIP, dtype), alpha))
    bound = divergences.alpha_bound(d, d, alpha)
    assert np.isfinite(float(bound))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("alpha", ROBUST_ALPHAS)
def test_gradients_in_d_are_finite_and_exact(dtype, alpha):
    """dτ/dd = e^(−(1−α)d), dσ/dd = e^(αd) inside the clip, 0 beyond it, never NaN."""
    d = jnp.asarray(D_EXTREME, dtype)
    d64 = np.asarray(d.astype(jnp.float32), np.float64)
    a = _f32(alpha)
    g_tau = jax.grad(lambda u: jnp.sum(divergences.data_term(u, alpha)))(d)
    g_sigma = jax.grad(lambda u: jnp.sum(divergences.model_term(u, alpha)))(d)
    assert g_tau.dtype == dtype and g_sigma.dtype == dtype  # cotangent of the input
    g_tau64 = np.asarray(g_tau.astype(jnp.float32), np.float64)
    g_sigma64 = np.asarray(g_sigma.astype(jnp.float32), np.float64)
    assert np.all(np.isfinite(g_tau64)) and np.all(np.isfinite(g_sigma64))
    inside = np.abs(d64) < LOGIT_CLIP
    outside = np.abs(d64) > LOGIT_CLIP
    rtol = F32_RTOL if dtype == jnp.float32 else 1e-2  # bf16 cotangent keeps 8 bits
    np.testing.assert_allclose(g_tau64[inside], dtau_ref(d64, a)[inside], rtol=rtol)
    np.testing.assert_allclose(g_sigma64[inside], dsigma_ref(d64, a)[inside], rtol=rtol)
    np.testing.assert_array_equal(g_tau64[outside], 0.0)
    np.testing.assert_array_equal(g_sigma64[outside], 0.0)
    # Exactly at ±50 (a tie of the clip) the gradient is finite and within [0, one-sided].
    at_clip = np.abs(d64) == LOGIT_CLIP
    assert np.all(g_tau64[at_clip] <= dtau_ref(np.sign(d64[at_clip]) * 49.999, a) * 1.01)
    assert np.all(g_tau64[at_clip] >= 0) and np.all(g_sigma64[at_clip] >= 0)
    g_bound = jax.grad(lambda u, v: divergences.alpha_bound(u, v, alpha), argnums=(0, 1))(d, d)
    for g in g_bound:
        assert np.all(np.isfinite(np.asarray(g.astype(jnp.float32))))


@pytest.mark.parametrize("alpha", ROBUST_ALPHAS)
def test_gradients_in_d_are_accurate_in_absolute_terms(alpha):
    """Over the whole clip range the float32 gradient is within 1e-5 relative + 1.2e-7 absolute.

    """
    d = jnp.linspace(-49.5, 49.5, 199, dtype=jnp.float32)
    d64 = np.asarray(d, np.float64)
    a = _f32(alpha)
    g_tau = jax.vmap(jax.grad(lambda u: divergences.data_term(u, alpha)))(d)
    g_sigma = jax.vmap(jax.grad(lambda u: divergences.model_term(u, alpha)))(d)
    np.testing.assert_allclose(g_tau, dtau_ref(d64, a), rtol=F32_RTOL, atol=1.2e-7)
    np.testing.assert_allclose(g_sigma, dsigma_ref(d64, a), rtol=F32_RTOL, atol=1.2e-7)


def test_gradients_in_d_are_relatively_accurate_for_tiny_gradients():
    d = jnp.float32(20.0)
    g_tau = float(jax.grad(lambda u: divergences.data_term(u, 0.0))(d))
    g_sigma = float(jax.grad(lambda u: divergences.model_term(u, 1.0))(-d))
    assert g_tau == pytest.approx(math.exp(-20.0), rel=1e-4)  # got 0.0
    assert g_sigma == pytest.approx(math.exp(-20.0), rel=1e-4)  # got 0.0


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("alpha", ROBUST_ALPHAS)
def test_gradients_in_alpha_are_finite(alpha, dtype):
    d = jnp.asarray(D_EXTREME, dtype)
    for fn in (divergences.data_term, divergences.model_term):
        g = jax.grad(lambda a, fn=fn: jnp.sum(fn(d, a)))(jnp.float32(alpha))
        assert np.isfinite(float(g))
    g = jax.grad(lambda a: divergences.alpha_bound(d, -d, a))(jnp.float32(alpha))
    assert np.isfinite(float(g))


@pytest.mark.parametrize("alpha", [1e-3, 0.3, 0.5, 0.7, 1 - 1e-3])
def test_gradient_in_alpha_matches_derivative(x64, alpha):
    """dσ/dα = (αd e^(αd) − (e^(αd) − 1))/α², dτ/dα = −dτ/dβ at β = 1 − α (interior α)."""
    d = np.array([-4.0, -1.0, 0.5, 2.0, 6.0])
    b = 1 - alpha
    want_sigma = (alpha * d * np.exp(alpha * d) - np.expm1(alpha * d)) / alpha**2
    want_tau = -(b * d * np.exp(-b * d) + np.expm1(-b * d)) / b**2
    jd = jnp.asarray(d)
    g_sigma = jax.vmap(jax.grad(divergences.model_term, argnums=1), (0, None))(jd, alpha)
    g_tau = jax.vmap(jax.grad(divergences.data_term, argnums=1), (0, None))(jd, alpha)
    np.testing.assert_allclose(g_sigma, want_sigma, rtol=1e-6)
    np.testing.assert_allclose(g_tau, want_tau, rtol=1e-6)


def test_float64_is_kept_and_low_precision_is_upcast(x64):
    for dtype, want in ((jnp.float64, jnp.float64), (jnp.float32, jnp.float32),
                        (jnp.bfloat16, jnp.float32), (jnp.float16, jnp.float32)):
        d = jnp.asarray([0.5, -2.0], dtype)
        assert divergences.data_term(d, 0.3).dtype == want
        assert divergences.model_term(d, 0.3).dtype == want
        assert divergences.alpha_bound(d, d, 0.3).dtype == want


def test_bfloat16_matches_float64_at_rounded_inputs():
    rng = np.random.default_rng(1)
    d = jnp.asarray(rng.uniform(-45, 45, size=64), jnp.bfloat16)
    d64 = np.asarray(d.astype(jnp.float32), np.float64)
    for alpha in ALPHAS:
        a = _f32(alpha)
        np.testing.assert_allclose(divergences.data_term(d, alpha), tau_ref(d64, a), rtol=F32_RTOL)
        np.testing.assert_allclose(
            divergences.model_term(d, alpha), sigma_ref(d64, a), rtol=F32_RTOL
        )


# ---------------------------------------------------------------------------
# jit, traced α, vmap.


class JitTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_jit_and_no_jit_agree(self):
        d = jnp.asarray(D_EXTREME + D_INSIDE, jnp.float32)
        for alpha in ALPHAS:
            a = _f32(alpha)
            tau = self.variant(lambda u, alpha=alpha: divergences.data_term(u, alpha))(d)
            sigma = self.variant(lambda u, alpha=alpha: divergences.model_term(u, alpha))(d)
            bound = self.variant(lambda u, alpha=alpha: divergences.alpha_bound(u, -u, alpha))(d)
            d64 = np.asarray(d, np.float64)
            np.testing.assert_allclose(tau, tau_ref(d64, a), rtol=F32_RTOL)
            np.testing.assert_allclose(sigma, sigma_ref(d64, a), rtol=F32_RTOL)
            want = tau_ref(d64, a).mean() - sigma_ref(-d64, a).mean()
            np.testing.assert_allclose(bound, want, rtol=1e-5)


@pytest.mark.parametrize("alpha", ALPHAS)
def test_traced_alpha_equals_python_alpha(alpha):
    d = jnp.asarray(D_EXTREME + D_INSIDE, jnp.float32)

    @jax.jit
    def terms(u, a):
        return (divergences.data_term(u, a), divergences.model_term(u, a),
                divergences.alpha_bound(u, -u, a))

    traced = terms(d, jnp.float32(alpha))
    eager = (divergences.data_term(d, alpha), divergences.model_term(d, alpha),
             divergences.alpha_bound(d, -d, alpha))
    for t, e in zip(traced, eager, strict=True):
        np.testing.assert_allclose(t, e, rtol=1e-6)


def test_vmap_over_alpha_equals_loop():
    rng = np.random.default_rng(2)
    dd = jnp.asarray(rng.normal(0, 3, 50), jnp.float32)
    dm = jnp.asarray(rng.normal(0, 3, 30), jnp.float32)
    alphas = jnp.asarray(ALPHAS, jnp.float32)
    batched = jax.vmap(lambda a: divergences.alpha_bound(dd, dm, a))(alphas)
    batched_tau = jax.vmap(lambda a: divergences.data_term(dd, a))(alphas)
    for i, alpha in enumerate(ALPHAS):
        np.testing.assert_allclose(batched[i], divergences.alpha_bound(dd, dm, alpha), rtol=1e-6)
        np.testing.assert_allclose(batched_tau[i], divergences.data_term(dd, alpha), rtol=1e-6)


def test_expm1_ratio():
    x = jnp.asarray([-3.0, -1e-4, 0.0, 2.0])
    np.testing.assert_allclose(divergences.expm1_ratio(x, 0.5), np.expm1(0.5 * x) / 0.5,
                               rtol=1e-6)
    np.testing.assert_array_equal(divergences.expm1_ratio(x, 0.0), x)
    g = jax.grad(lambda c: jnp.sum(divergences.expm1_ratio(x, c)))(0.0)
    assert np.isfinite(float(g))
    gx = jax.grad(lambda u: jnp.sum(divergences.expm1_ratio(u, 0.0)))(x)
    np.testing.assert_array_equal(gx, np.ones(4))


# ---------------------------------------------------------------------------
# Invalid α.


@pytest.mark.parametrize("alpha", [-0.1, 1.1, 2, -1, float("nan"), np.float64(1.5)])
def test_concrete_alpha_outside_unit_interval_raises(alpha):
    d = jnp.zeros(3)
    p = jnp.full(3, 1 / 3)
    for call in (
        lambda: divergences.data_term(d, alpha),
        lambda: divergences.model_term(d, alpha),
        lambda: divergences.alpha_bound(d, d, alpha),
        lambda: divergences.alpha_divergence_discrete(p, p, alpha),
    ):
        with pytest.raises(ValueError, match="alpha"):
            call()


# ---------------------------------------------------------------------------
# alpha_divergence_discrete.


def _random_simplex(rng, shape):
    return rng.dirichlet(np.ones(shape[-1]), size=shape[:-1])


def _naive(q, p, alpha):
    return (1 - np.sum(q**alpha * p ** (1 - alpha), axis=-1)) / (alpha * (1 - alpha))


def _kl(q, p):
    mask = q > 0
    return float(np.sum(q[mask] * np.log(q[mask] / p[mask])))


@pytest.mark.parametrize("alpha", [0.1, 0.3, 0.5, 0.7, 0.9])
def test_discrete_matches_naive_formula(x64, alpha):
    rng = np.random.default_rng(3)
    q, p = _random_simplex(rng, (7,)), _random_simplex(rng, (7,))
    got = float(divergences.alpha_divergence_discrete(q, p, alpha))
    assert got == pytest.approx(_naive(q, p, alpha), rel=1e-10)


def test_discrete_limits_are_kls(x64):
    rng = np.random.default_rng(4)
    q, p = _random_simplex(rng, (6,)), _random_simplex(rng, (6,))
    kl_qp, kl_pq = _kl(q, p), _kl(p, q)
    assert abs(kl_qp - kl_pq) > 0.05  # the two directions are distinguishable
    assert float(divergences.alpha_divergence_discrete(q, p, 1.0)) == pytest.approx(kl_qp,
                                                                                    rel=1e-12)
    assert float(divergences.alpha_divergence_discrete(q, p, 0.0)) == pytest.approx(kl_pq,
                                                                                    rel=1e-12)
    # Continuity: α → 1 and α → 0 approach them (error O(ε)).
    near1 = float(divergences.alpha_divergence_discrete(q, p, 1 - 1e-7))
    near0 = float(divergences.alpha_divergence_discrete(q, p, 1e-7))
    assert near1 == pytest.approx(kl_qp, rel=1e-5)
    assert near0 == pytest.approx(kl_pq, rel=1e-5)


def test_discrete_half_is_hellinger(x64):
    rng = np.random.default_rng(5)
    q, p = _random_simplex(rng, (9,)), _random_simplex(rng, (9,))
    want = 4 * (1 - np.sum(np.sqrt(q * p)))
    assert float(divergences.alpha_divergence_discrete(q, p, 0.5)) == pytest.approx(want,
                                                                                   rel=1e-10)


def test_discrete_zero_entries(x64):
    q = np.array([0.0, 0.5, 0.5, 0.0])
    p = np.array([0.2, 0.3, 0.5, 0.0])  # last entry zero on both sides
    f = divergences.alpha_divergence_discrete
    # q = 0 < p: infinite at α = 0 (KL(p‖q)), finite at α = 1 and in between.
    assert float(f(q, p, 0.0)) == math.inf
    assert float(f(q, p, 1.0)) == pytest.approx(_kl(q, p), rel=1e-12)
    for alpha in (1e-3, 0.3, 0.5, 0.8):
        assert float(f(q, p, alpha)) == pytest.approx(_naive(q, p, alpha), rel=1e-10)
    # p = 0 < q: infinite at α = 1 (KL(q‖p)), finite at α = 0 and in between.
    assert float(f(p, q, 1.0)) == math.inf
    assert float(f(p, q, 0.0)) == pytest.approx(_kl(q, p), rel=1e-12)
    for alpha in (0.2, 0.5, 0.7, 1 - 1e-3):
        assert float(f(p, q, alpha)) == pytest.approx(_naive(p, q, alpha), rel=1e-10)
    # The both-zero entry contributes nothing.
    assert float(f(q, p, 0.4)) == pytest.approx(float(f(q[:3], p[:3], 0.4)), rel=1e-14)


def test_discrete_self_divergence_is_zero_and_values_nonnegative(x64):
    rng = np.random.default_rng(6)
    for alpha in (0.0, 1e-7, 0.25, 0.5, 0.75, 1 - 1e-7, 1.0):
        q = _random_simplex(rng, (5,))
        assert float(divergences.alpha_divergence_discrete(q, q, alpha)) == 0.0
        qs, ps = _random_simplex(rng, (50, 8)), _random_simplex(rng, (50, 8))
        values = np.asarray(divergences.alpha_divergence_discrete(qs, ps, alpha))
        assert values.shape == (50,)
        assert np.all(values >= 0.0)


def test_discrete_batched_over_leading_axes(x64):
    rng = np.random.default_rng(7)
    qs, ps = _random_simplex(rng, (2, 3, 5)), _random_simplex(rng, (2, 3, 5))
    for alpha in (0.0, 0.4, 1.0):
        got = np.asarray(divergences.alpha_divergence_discrete(qs, ps, alpha))
        assert got.shape == (2, 3)
        for i in range(2):
            for j in range(3):
                one = float(divergences.alpha_divergence_discrete(qs[i, j], ps[i, j], alpha))
                assert got[i, j] == pytest.approx(one, rel=1e-12)


def test_discrete_float32_and_traced_alpha():
    rng = np.random.default_rng(8)
    q = _random_simplex(rng, (6,)).astype(np.float32)
    p = _random_simplex(rng, (6,)).astype(np.float32)
    q64, p64 = q.astype(np.float64), p.astype(np.float64)
    jitted = jax.jit(divergences.alpha_divergence_discrete)
    for alpha in (0.0, 0.3, 0.5, 0.6, 1.0):
        if alpha == 0.0:
            want = _kl(p64, q64)
        elif alpha == 1.0:
            want = _kl(q64, p64)
        else:
            want = _naive(q64, p64, alpha)
        got = divergences.alpha_divergence_discrete(q, p, alpha)
        assert got.dtype == jnp.float32
        assert float(got) == pytest.approx(want, rel=1e-5)
        assert float(jitted(q, p, jnp.float32(alpha))) == pytest.approx(want, rel=1e-5)
