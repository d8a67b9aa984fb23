"""The α-divergence and its variational lower bound (METHOD.md §1–§2).

For densities q (data side) and p (model side) and α in [0, 1],

    D_α(q‖p) = (1 − ∫ q^α p^(1−α)) / (α(1−α)),

with the limits KL(q‖p) at α → 1 (maximum likelihood) and KL(p‖q) at α → 0
(reverse KL, adversarial). For any critic d(x), an estimate of log q(x)/p(x),

    D_α(q‖p) ≥ B_α(d) = E_q[τ_α(d)] − E_p[σ_α(d)],
    τ_α(d) = (1 − e^(−(1−α)d)) / (1−α),      σ_α(d) = (e^(αd) − 1) / α,

with equality exactly at d = log q/p.

Numerics (all functions here):
  * ``alpha`` may be a Python float or a traced scalar: the limits α = 0 and
    α = 1 are selected with ``jnp.where``, never with Python branching, and
    every branch is evaluated on safe inputs so gradients are finite too.
  * Exponentials use ``expm1``, so τ and σ are accurate for small (1−α)d, αd,
    and their derivatives are written out (e^(cx)), so small gradients keep
    their relative precision.
  * A NaN logit gives a NaN result (the trainer detects and handles it); a
    concrete α outside [0, 1] raises ValueError.
  * Critic logits are clipped to [−LOGIT_CLIP, LOGIT_CLIP] = [−50, 50] before
    any exponential. Inside that range results are exact; e^50 ≈ 5.2e21, so
    values, batch sums of up to ~1e16 terms, and gradients stay finite in
    float32 and bfloat16 (same exponent range) for every finite input. Outside
    the range the terms are constant in d and their gradient is zero.
  * Inputs of lower precision (bfloat16, float16) are computed in float32;
    the result dtype is float32 (float64 if the input is float64).

Only jax is imported here, so other projects can use these functions in their
own jitted, sharded code.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "LOGIT_CLIP",
    "data_term",
    "model_term",
    "alpha_bound",
    "alpha_divergence_discrete",
    "expm1_ratio",
    "check_alpha",
]

LOGIT_CLIP = 50.0
"""Critic logits are clipped to [−LOGIT_CLIP, LOGIT_CLIP] before exponentiation."""

ArrayLike = jax.typing.ArrayLike


def _compute_dtype(*xs: ArrayLike) -> jnp.dtype:
    """float32, or float64 if any input is float64 (bfloat16/float16 are upcast)."""
    return jnp.promote_types(jnp.result_type(*xs), jnp.float32)


def _as_float(x: ArrayLike, dtype: jnp.dtype) -> jax.Array:
    return jnp.asarray(x).astype(dtype)


@jax.custom_jvp
def expm1_ratio(x: ArrayLike, c: ArrayLike) -> jax.Array:
    """(e^(c·x) − 1) / c, with its limit x at c = 0; finite value and gradients.

    The "double where" keeps the unselected branch on safe inputs. The JVP is
    written out: ∂/∂x = e^(c·x) exactly (JAX's rule for expm1, (expm1 + 1)·ẋ,
    rounds gradients below float32 eps to 0), and ∂/∂c = (x·e^(cx) − (e^(cx)−1)/c)/c,
    by its series Σ_{n≥2} (n−1)cⁿ⁻²xⁿ/n! = x²/2 + cx³/3 + c²x⁴/8 + c³x⁵/30 + …
    when |cx| < 1e-2 (and at c = 0).
    """
    x = jnp.asarray(x)
    c = jnp.asarray(c)
    at_zero = c == 0
    c_safe = jnp.where(at_zero, jnp.ones_like(c), c)
    return jnp.where(at_zero, x, jnp.expm1(c_safe * x) / c_safe)


@expm1_ratio.defjvp
def _expm1_ratio_jvp(primals, tangents):
    x, c = (jnp.asarray(v) for v in primals)
    dx, dc = tangents
    value = expm1_ratio(x, c)
    cx = c * x
    small = jnp.abs(cx) < 1e-2
    c_safe = jnp.where(small, jnp.ones_like(c), c)
    series = 0.5 * x * x * (1.0 + cx * (2.0 / 3.0 + cx * (0.25 + cx / 15.0)))
    direct = (x * jnp.exp(cx) - value) / c_safe
    d_dc = jnp.where(small, series, direct)
    tangent = jnp.exp(cx) * _zeros_if_symbolic(dx, x) + d_dc * _zeros_if_symbolic(dc, c)
    return value, tangent


def _zeros_if_symbolic(t, like):
    """custom_jvp passes symbolic zeros for inputs that carry no tangent."""
    return jnp.zeros_like(like) if type(t) is jax.custom_derivatives.SymbolicZero else t


def check_alpha(alpha: ArrayLike) -> None:
    """Rejects a concrete α (number or array) outside [0, 1] or NaN.

    A traced α (inside jit/vmap/grad) cannot be inspected; keeping it in [0, 1]
    is then the caller's contract (our schedules clip to [0, 1]).
    """
    if isinstance(alpha, jax.core.Tracer):
        return
    values = np.asarray(alpha, dtype=np.float64)
    if not np.all((values >= 0.0) & (values <= 1.0)):  # NaN fails both comparisons
        raise ValueError(f"alpha must lie in [0, 1], got {alpha!r}")


def data_term(d: ArrayLike, alpha: ArrayLike) -> jax.Array:
    """τ_α(d) = (1 − e^(−(1−α)d)) / (1−α), elementwise; τ_1(d) = d.

    The data-side term of B_α: its expectation under q, minus E_p[σ_α(d)],
    lower-bounds D_α(q‖p). ``d`` is clipped to [−LOGIT_CLIP, LOGIT_CLIP].
    """
    check_alpha(alpha)
    dtype = _compute_dtype(d)
    d = jnp.clip(_as_float(d, dtype), -LOGIT_CLIP, LOGIT_CLIP)
    one_minus_alpha = 1.0 - _as_float(alpha, dtype)
    # τ_α(d) = −(e^(−(1−α)d) − 1)/(1−α) = −expm1_ratio(−d, 1−α)
    return -expm1_ratio(-d, one_minus_alpha)


def model_term(d: ArrayLike, alpha: ArrayLike) -> jax.Array:
    """σ_α(d) = (e^(αd) − 1) / α, elementwise; σ_0(d) = d.

    The model-side term of B_α. ``d`` is clipped to [−LOGIT_CLIP, LOGIT_CLIP],
    which bounds e^(αd) by e^50 ≈ 5.2e21.
    """
    check_alpha(alpha)
    dtype = _compute_dtype(d)
    d = jnp.clip(_as_float(d, dtype), -LOGIT_CLIP, LOGIT_CLIP)
    return expm1_ratio(d, _as_float(alpha, dtype))


def alpha_bound(d_data: ArrayLike, d_model: ArrayLike, alpha: ArrayLike) -> jax.Array:
    """B_α = mean τ_α(d_data) − mean σ_α(d_model), a lower bound on D_α(q‖p).

    Args:
      d_data: critic logits d ≈ log q/p on data-side samples (any shape).
      d_model: critic logits on model-side samples (any shape).
      alpha: α in [0, 1], a Python float or a traced scalar.

    Returns:
      The scalar Monte-Carlo estimate of B_α(d). Equality B_α = D_α holds at
      d = log q/p. At α = 1: mean d_data − mean(e^d_model − 1) (bound on
      KL(q‖p)); at α = 0: 1 − mean e^(−d_data) − mean d_model (bound on KL(p‖q)).
    """
    return jnp.mean(data_term(d_data, alpha)) - jnp.mean(model_term(d_model, alpha))


def alpha_divergence_discrete(q: ArrayLike, p: ArrayLike, alpha: ArrayLike) -> jax.Array:
    """Exact D_α(q‖p) between probability vectors over the last axis.

        D_α(q‖p) = Σ_i (α q_i + (1−α) p_i − q_i^α p_i^(1−α)) / (α(1−α)),

    which equals (1 − Σ q^α p^(1−α)) / (α(1−α)) when q and p each sum to one,
    but is evaluated without cancellation: with r = log(q_i/p_i) each term is
      p_i · (expm1(r) − expm1(α r)/α) / (1−α)             for α ≤ ½,
      q_i · (expm1(−r) − expm1(−(1−α) r)/(1−α)) / α       for α > ½,
    whose α → 0 and α → 1 limits are p(e^r − 1 − r) and q(e^−r − 1 + r):
    D_0 = KL(p‖q), D_1 = KL(q‖p) (for normalised vectors).

    Zero entries: a term with q_i = 0 < p_i is p_i/α (+inf at α = 0); with
    p_i = 0 < q_i it is q_i/(1−α) (+inf at α = 1); with both zero it is 0.
    Inputs are not renormalised: pass probability vectors.
    """
    check_alpha(alpha)
    dtype = _compute_dtype(q, p)
    q = _as_float(q, dtype)
    p = _as_float(p, dtype)
    a = _as_float(alpha, dtype)

    both = (q > 0) & (p > 0)
    q_safe = jnp.where(both, q, 1.0)
    p_safe = jnp.where(both, p, 1.0)
    r = jnp.log(q_safe) - jnp.log(p_safe)

    low = a <= 0.5
    # Each form divides by a factor that is ≥ ½ on its own side of α = ½.
    denom_low = jnp.where(low, 1.0 - a, 1.0)
    denom_high = jnp.where(low, 1.0, a)
    term_low = p_safe * (jnp.expm1(r) - expm1_ratio(r, a)) / denom_low
    term_high = q_safe * (jnp.expm1(-r) - expm1_ratio(-r, 1.0 - a)) / denom_high
    term_both = jnp.where(low, term_low, term_high)

    # One side zero: q^α p^(1−α) = 0, leaving (αq + (1−α)p)/(α(1−α)).
    a_safe = jnp.where(a == 0, 1.0, a)
    b_safe = jnp.where(a == 1, 1.0, 1.0 - a)
    only_p = jnp.where(a == 0, jnp.inf, p / a_safe)
    only_q = jnp.where(a == 1, jnp.inf, q / b_safe)
    term = jnp.where(
        both,
        term_both,
        jnp.where((q == 0) & (p > 0), only_p, jnp.where((p == 0) & (q > 0), only_q, 0.0)),
    )
    return jnp.sum(term, axis=-1)
