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
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

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
]

SCHEDULES = ("constant", "linear", "cosine", "step", "exponential")

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
    """Builds the schedule named ``kind`` (one of :data:`SCHEDULES`).

    ``constant`` uses ``alpha_start`` and ignores the other arguments.
    """
    if kind == "constant":
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
    raise ScheduleError(f"unknown alpha schedule {kind!r}; expected one of {SCHEDULES}")
