"""α schedules: optax-compatible callables ``step -> α`` (METHOD.md §5).

Every schedule moves α from ``alpha_start`` to ``alpha_end`` over
``transition_steps`` steps beginning at ``transition_begin``; before the
transition α = alpha_start, after it α = alpha_end. With
u = clip((step − transition_begin) / transition_steps, 0, 1):

    constant     α = alpha_start
    linear       α = start + (end − start)·u                (optax.linear_schedule)
    cosine       α = end + (start − end)·½(1 + cos πu)
    step         α = start + (end − start)·⌊k·u⌋/k          (k = num_stages drops)
    exponential  α = end + (start − end)·(r^u − r)/(1 − r)   (r = decay_rate; exact
                 endpoints, a fraction r of the gap left when u → 1 is closed linearly
                 by the normalisation)

Values are clipped to [0, 1]. Each callable accepts a Python int or a traced
integer (works inside ``jax.jit``) and returns a float32 scalar. Ill-formed
arguments raise :class:`ScheduleError` (a ``ValueError``) naming the problem.

``adaptive`` (config ``alpha.schedule = "adaptive"``) is not a function of the step:
α is the state of a controller that the train step updates from a measured signal
(:func:`adaptive_update`; its state lives in the train state). Its schedule part is
the constant α_start. :func:`instance_noise` is the critic's annealed noise scale σ(step).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

__all__ = [
    "SCHEDULES",
    "ScheduleError",
    "make_alpha_schedule",
    "constant",
    "linear",
    "cosine",
    "step",
    "exponential",
    "from_table",
    "AdaptiveAlpha",
    "adaptive_init",
    "adaptive_update",
    "adaptive_settings",
    "adaptive_config_problem",
    "accuracy_signal",
    "instance_noise",
]

SCHEDULES = ("constant", "linear", "cosine", "step", "exponential")
ADAPTIVE = "adaptive"
KINDS = (*SCHEDULES, ADAPTIVE)  # what config.alpha.schedule may name
ADAPTIVE_SIGNALS = ("ess", "accuracy")

Schedule = Callable[[jax.typing.ArrayLike], jax.Array]


class ScheduleError(ValueError):
    """An α schedule was asked for with ill-formed arguments."""


def _check_alpha(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ScheduleError(f"{name} must be a number in [0, 1], got {value!r}")
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ScheduleError(f"{name} must lie in [0, 1], got {value!r}")
    return float(value)


def _check_steps(transition_steps: int, transition_begin: int) -> None:
    for name, value in (("transition_steps", transition_steps),
                        ("transition_begin", transition_begin)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ScheduleError(f"{name} must be an integer, got {value!r}")
    if transition_steps <= 0:
        raise ScheduleError(f"transition_steps must be positive, got {transition_steps}")
    if transition_begin < 0:
        raise ScheduleError(f"transition_begin must be non-negative, got {transition_begin}")


def _progress(step, transition_steps: int, transition_begin: int) -> jax.Array:
    """u = clip((step − begin)/steps, 0, 1) as float32."""
    s = jnp.asarray(step, jnp.float32)
    return jnp.clip((s - transition_begin) / transition_steps, 0.0, 1.0)


def _clipped(fn: Schedule) -> Schedule:
    def schedule(count):
        return jnp.clip(jnp.asarray(fn(count), jnp.float32), 0.0, 1.0)

    return schedule


def constant(alpha: float) -> Schedule:
    """α(step) = alpha for every step."""
    alpha = _check_alpha("alpha", alpha)
    return _clipped(optax.constant_schedule(alpha))


def linear(alpha_start: float, alpha_end: float, transition_steps: int,
           transition_begin: int = 0) -> Schedule:
    """α moves linearly from alpha_start to alpha_end."""
    start = _check_alpha("alpha_start", alpha_start)
    end = _check_alpha("alpha_end", alpha_end)
    _check_steps(transition_steps, transition_begin)
    return _clipped(optax.linear_schedule(start, end, int(transition_steps),
                                          int(transition_begin)))


def cosine(alpha_start: float, alpha_end: float, transition_steps: int,
           transition_begin: int = 0) -> Schedule:
    """α = end + (start − end)·½(1 + cos πu): slow at both ends of the path.

    Hand-written because optax's cosine schedules decay from an initial value
    to a multiple of it and cannot rise from 0.
    """
    start = _check_alpha("alpha_start", alpha_start)
    end = _check_alpha("alpha_end", alpha_end)
    _check_steps(transition_steps, transition_begin)

    def schedule(count):
        u = _progress(count, transition_steps, transition_begin)
        return end + (start - end) * 0.5 * (1.0 + jnp.cos(jnp.pi * u))

    return _clipped(schedule)


def step(alpha_start: float, alpha_end: float, transition_steps: int,
         transition_begin: int = 0, num_stages: int = 4) -> Schedule:
    """Piecewise-constant: α drops in ``num_stages`` equal steps, the last at u = 1."""
    start = _check_alpha("alpha_start", alpha_start)
    end = _check_alpha("alpha_end", alpha_end)
    _check_steps(transition_steps, transition_begin)
    if (isinstance(num_stages, bool) or not isinstance(num_stages, numbers.Integral)
            or num_stages < 1):
        raise ScheduleError(f"num_stages must be a positive integer, got {num_stages!r}")

    def schedule(count):
        u = _progress(count, transition_steps, transition_begin)
        return start + (end - start) * jnp.floor(num_stages * u) / num_stages

    return _clipped(schedule)


def exponential(alpha_start: float, alpha_end: float, transition_steps: int,
                transition_begin: int = 0, decay_rate: float = 0.01) -> Schedule:
    """α = end + (start − end)·(r^u − r)/(1 − r): fast early, slow late.

    r = ``decay_rate`` in (0, 1); r → 1 approaches the linear schedule. The
    normalisation makes α exactly alpha_end at u = 1 (alpha_end may be 0).
    """
    start = _check_alpha("alpha_start", alpha_start)
    end = _check_alpha("alpha_end", alpha_end)
    _check_steps(transition_steps, transition_begin)
    if (isinstance(decay_rate, bool) or not isinstance(decay_rate, numbers.Real)
            or not 0.0 < decay_rate < 1.0):
        raise ScheduleError(f"decay_rate must lie in (0, 1), got {decay_rate!r}")
    r = float(decay_rate)

    def schedule(count):
        u = _progress(count, transition_steps, transition_begin)
        return end + (start - end) * (jnp.power(r, u) - r) / (1.0 - r)

    return _clipped(schedule)


def from_table(table: jax.Array) -> Schedule:
    """α(step) = table[clip(step, 0, len(table) − 1)]: a precomputed (possibly traced) table.

    The method sweep passes each run's table as an argument of one compiled step, so
    runs that differ only in α share it under ``jax.vmap``.
    """
    table = jnp.asarray(table)

    def schedule(count):
        return table[jnp.clip(count, 0, table.shape[0] - 1)]

    return schedule


def make_alpha_schedule(
    kind: str,
    *,
    alpha_start: float = 1.0,
    alpha_end: float = 0.0,
    transition_steps: int = 1,
    transition_begin: int = 0,
    num_stages: int = 4,
    decay_rate: float = 0.01,
) -> Schedule:
    """Builds the schedule named ``kind`` (one of :data:`KINDS`).

    ``constant`` uses ``alpha_start`` and ignores the other arguments; so does
    ``adaptive``, whose α before its controller acts is ``alpha_start``
    (:func:`adaptive_update` moves it from there).
    """
    if kind in ("constant", ADAPTIVE):
        return constant(alpha_start)
    if kind == "linear":
        return linear(alpha_start, alpha_end, transition_steps, transition_begin)
    if kind == "cosine":
        return cosine(alpha_start, alpha_end, transition_steps, transition_begin)
    if kind == "step":
        return step(alpha_start, alpha_end, transition_steps, transition_begin, num_stages)
    if kind == "exponential":
        return exponential(alpha_start, alpha_end, transition_steps, transition_begin,
                           decay_rate)
    raise ScheduleError(f"unknown alpha schedule {kind!r}; expected one of {KINDS}")


# ---- the adaptive α controller -----------------------------------------------------------


class AdaptiveAlpha(NamedTuple):
    """The controller's settings (config ``alpha.start``/``end``/``transition_begin`` and
    ``alpha.adaptive.*``). Each field is a Python number or a (traced) scalar: a program
    of several members passes every member's settings as arrays, like its α table, and a
    member with ``enabled`` false reads α from its table instead."""

    start: Any  # α_s: the first α, and the upper clip
    end: Any  # α_e ≤ α_s: the lower clip
    begin: Any  # t₀: α is held before this step
    rate: Any  # r: the change of α per step
    low: Any  # s_lo: below it α rises
    high: Any  # s_hi: above it α falls
    smoothing: Any  # β: the signal's moving-average decay
    enabled: Any = True


def adaptive_init(alpha_start) -> dict[str, jax.Array]:
    """The controller's state before step 0: α = α_s and smoothed signal s̄ = 1 (the
    ESS at α = 1, where every ELBO weight is 1)."""
    return {"alpha": jnp.asarray(alpha_start, jnp.float32),
            "signal": jnp.ones((), jnp.float32)}


def adaptive_update(state: dict[str, jax.Array], measured, step,
                    settings: AdaptiveAlpha) -> dict[str, jax.Array]:
    """One controller step, after training step t ran at α_t and measured signal s_t:

        s̄_t     = β·s̄_(t−1) + (1 − β)·s_t
        α_(t+1) = clip(α_t − r·[s̄_t > s_hi] + r·[s̄_t < s_lo],  α_e, α_s)   if t ≥ t₀
                = α_t                                                     otherwise

    α falls by r while the smoothed signal is above the band [s_lo, s_hi] (the model
    keeps up), is held inside it (edges included) and rises by r when the signal falls
    below it; never outside [α_e, α_s]. Pure; works on traced values and under vmap.
    """
    f32 = jnp.float32
    alpha = jnp.asarray(state["alpha"], f32)
    beta = jnp.asarray(settings.smoothing, f32)
    smoothed = beta * jnp.asarray(state["signal"], f32) + (1 - beta) * jnp.asarray(measured, f32)
    rate = jnp.asarray(settings.rate, f32)
    delta = jnp.where(smoothed > settings.high, -rate,
                      jnp.where(smoothed < settings.low, rate, jnp.zeros((), f32)))
    moved = jnp.clip(alpha + delta, jnp.asarray(settings.end, f32),
                     jnp.asarray(settings.start, f32))
    active = jnp.asarray(step) >= jnp.asarray(settings.begin)
    return {"alpha": jnp.where(active, moved, alpha), "signal": smoothed}


def accuracy_signal(accuracy) -> jax.Array:
    """The critic-accuracy signal c = clip(2·(1 − accuracy), 0, 1): 1 while the critic is
    at chance, 0 once it separates data and model pairs perfectly (higher means the
    sides still overlap, as for the ESS)."""
    return jnp.clip(2.0 * (1.0 - jnp.asarray(accuracy, jnp.float32)), 0.0, 1.0)


def adaptive_settings(alpha_config, enabled: bool = True) -> AdaptiveAlpha:
    """The controller's settings from a config's ``alpha`` section."""
    ad = alpha_config.adaptive
    return AdaptiveAlpha(start=float(alpha_config.start), end=float(alpha_config.end),
                         begin=int(alpha_config.transition_begin), rate=float(ad.rate),
                         low=float(ad.target_low), high=float(ad.target_high),
                         smoothing=float(ad.smoothing), enabled=enabled)


def _is_real(value) -> bool:
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value))


def adaptive_config_problem(alpha_config) -> str | None:
    """What is wrong with ``alpha.adaptive`` (and, for ``alpha.schedule='adaptive'``, with
    α_end ≤ α_start), in one line; None if nothing. Called by config validation."""
    ad = alpha_config.adaptive
    checks = (
        (ad.signal in ADAPTIVE_SIGNALS,
         f"alpha.adaptive.signal={ad.signal!r} is not one of {ADAPTIVE_SIGNALS}"),
        (_is_real(ad.rate) and 0 < ad.rate <= 1,
         f"alpha.adaptive.rate must lie in (0, 1], got {ad.rate!r}"),
        (_is_real(ad.target_low) and _is_real(ad.target_high)
         and 0 <= ad.target_low <= ad.target_high < 1,
         "alpha.adaptive.target_low and target_high must satisfy 0 <= low <= high < 1 (the "
         f"signal is at most 1), got {ad.target_low!r} and {ad.target_high!r}"),
        (_is_real(ad.smoothing) and 0 <= ad.smoothing < 1,
         f"alpha.adaptive.smoothing must lie in [0, 1), got {ad.smoothing!r}"),
        (alpha_config.schedule != ADAPTIVE or alpha_config.end <= alpha_config.start,
         f"alpha.end={alpha_config.end!r} is above alpha.start={alpha_config.start!r}: the "
         "adaptive schedule lowers α from alpha.start towards alpha.end"),
    )
    return next((message for ok, message in checks if not ok), None)


# ---- instance noise ----------------------------------------------------------------------


def instance_noise(sigma: float, steps: int) -> Schedule:
    """σ(step) = σ₀ · (1 − clip(step/T, 0, 1)): the critic's instance-noise scale, linear
    from σ₀ at step 0 to exactly 0 at step T = ``steps`` and after."""
    if not _is_real(sigma) or sigma < 0:
        raise ScheduleError(f"instance noise must be a number >= 0, got {sigma!r}")
    _check_steps(steps, 0)
    sigma, steps = float(sigma), int(steps)

    def schedule(count):
        u = _progress(count, steps, 0)
        return sigma * (1.0 - u)

    return schedule
