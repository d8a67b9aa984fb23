"""``bridge_jax.schedules``: α schedules step → α (METHOD.md §5).

Values are float32; hand-computed expectations are compared at abs 1e-6
(float32 rounding of u = (step − begin)/steps and of cos / r^u).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bridge_jax import schedules
from bridge_jax.schedules import ScheduleError

ATOL = 1e-6
BEGIN, STEPS = 10, 100
# Steps probed: before the start, at the start, the quarter points, between stages, the end,
# beyond.
PROBES = (-5, 0, 10, 35, 47, 60, 85, 110, 200)


def _u(step):
    return min(max((step - BEGIN) / STEPS, 0.0), 1.0)


def _expected(kind, step, start=1.0, end=0.0, num_stages=4, decay_rate=0.01):
    u = _u(step)
    if kind == "constant":
        return start
    if kind == "linear":
        return start + (end - start) * u
    if kind == "cosine":
        return end + (start - end) * 0.5 * (1 + math.cos(math.pi * u))
    if kind == "step":
        return start + (end - start) * math.floor(num_stages * u) / num_stages
    r = decay_rate
    return end + (start - end) * (r**u - r) / (1 - r)


def _make(kind, start=1.0, end=0.0, **kw):
    return schedules.make_alpha_schedule(
        kind, alpha_start=start, alpha_end=end, transition_steps=STEPS,
        transition_begin=BEGIN, **kw,
    )


@pytest.mark.parametrize("kind", schedules.SCHEDULES)
@pytest.mark.parametrize(("start", "end"), [(1.0, 0.0), (0.0, 1.0), (0.9, 0.2)])
def test_values_match_hand_formulas(kind, start, end):
    sched = _make(kind, start, end)
    for s in PROBES:
        value = sched(s)
        assert value.dtype == jnp.float32 and value.shape == ()
        assert float(value) == pytest.approx(_expected(kind, s, start, end), abs=ATOL), s


def test_hand_computed_points():
    """A few values written out, independent of the reference function above."""
    assert float(_make("linear")(60)) == pytest.approx(0.5, abs=ATOL)
    assert float(_make("cosine")(35)) == pytest.approx(0.5 * (1 + math.sqrt(0.5)), abs=ATOL)
    assert float(_make("cosine")(60)) == pytest.approx(0.5, abs=ATOL)
    assert float(_make("step")(34)) == 1.0  # u = 0.24: no drop yet
    assert float(_make("step")(35)) == pytest.approx(0.75, abs=ATOL)  # first of 4 drops
    assert float(_make("step")(109)) == pytest.approx(0.25, abs=ATOL)
    assert float(_make("step", num_stages=2)(60)) == pytest.approx(0.5, abs=ATOL)
    assert float(_make("exponential")(60)) == pytest.approx(0.09 / 0.99, abs=ATOL)
    assert float(_make("exponential", decay_rate=0.5)(60)) == pytest.approx(
        (math.sqrt(0.5) - 0.5) / 0.5, abs=ATOL
    )
    assert float(_make("constant", 0.3)(12345)) == pytest.approx(0.3, abs=ATOL)


@pytest.mark.parametrize("kind", schedules.SCHEDULES)
def test_ends_are_exact(kind):
    sched = _make(kind, 0.8, 0.1)
    start = 0.8
    end = 0.8 if kind == "constant" else 0.1
    for s in (-100, 0, BEGIN):
        assert float(sched(s)) == pytest.approx(start, abs=ATOL)
    for s in (BEGIN + STEPS, BEGIN + STEPS + 1, 10**6):
        assert float(sched(s)) == pytest.approx(end, abs=ATOL)
    down = _make(kind, 1.0, 0.0)
    assert float(down(BEGIN + STEPS)) == (1.0 if kind == "constant" else 0.0)


@pytest.mark.parametrize("kind", schedules.SCHEDULES)
def test_values_in_unit_interval_and_monotone(kind):
    steps = np.arange(-20, 150)
    for start, end in ((1.0, 0.0), (0.7, 0.0), (1.0, 0.35)):
        values = np.asarray([float(v) for v in jax.vmap(_make(kind, start, end))(steps)])
        assert np.all((values >= 0.0) & (values <= 1.0))
        assert np.all(np.diff(values) <= 0.0)  # non-increasing for start > end
    rising = np.asarray(jax.vmap(_make(kind, 0.0, 1.0))(steps))
    assert np.all(np.diff(rising) >= 0.0)
    assert np.all((rising >= 0.0) & (rising <= 1.0))


@pytest.mark.parametrize("kind", schedules.SCHEDULES)
def test_jit_with_traced_step(kind):
    sched = _make(kind, 1.0, 0.05)
    jitted = jax.jit(sched)
    for s in PROBES:
        assert float(jitted(jnp.int32(s))) == pytest.approx(float(sched(s)), abs=1e-7)
        assert float(sched(jnp.int32(s))) == pytest.approx(float(sched(s)), abs=1e-7)


@pytest.mark.parametrize("kind", schedules.SCHEDULES)
def test_works_as_an_optax_schedule(kind):
    """optax.scale_by_schedule multiplies updates by α(count), count = 0, 1, …"""
    sched = _make(kind, 1.0, 0.0)
    tx = optax.scale_by_schedule(sched)
    params = {"w": jnp.ones(3)}
    state = tx.init(params)
    update = jax.jit(tx.update)
    for k in range(0, 40):
        updates, state = update({"w": jnp.full(3, 2.0)}, state)
        np.testing.assert_allclose(updates["w"], 2.0 * _expected(kind, k), atol=2 * ATOL)


def test_make_alpha_schedule_dispatches_to_each_constructor():
    direct = {
        "constant": schedules.constant(0.6),
        "linear": schedules.linear(0.6, 0.1, 50, 5),
        "cosine": schedules.cosine(0.6, 0.1, 50, 5),
        "step": schedules.step(0.6, 0.1, 50, 5, num_stages=3),
        "exponential": schedules.exponential(0.6, 0.1, 50, 5, decay_rate=0.2),
    }
    for kind, fn in direct.items():
        made = schedules.make_alpha_schedule(
            kind, alpha_start=0.6, alpha_end=0.1, transition_steps=50, transition_begin=5,
            num_stages=3, decay_rate=0.2,
        )
        for s in (0, 5, 17, 30, 42, 55, 80):
            assert float(made(s)) == float(fn(s)), (kind, s)


# ---------------------------------------------------------------------------
# Errors.


def test_schedule_error_is_a_value_error():
    assert issubclass(ScheduleError, ValueError)


@pytest.mark.parametrize("bad", [-0.1, 1.1, float("nan"), float("inf"), "0.5", None, True])
@pytest.mark.parametrize("kind", schedules.SCHEDULES)
def test_bad_alpha_raises(kind, bad):
    with pytest.raises(ScheduleError):
        schedules.make_alpha_schedule(kind, alpha_start=bad, transition_steps=10)
    if kind != "constant":
        with pytest.raises(ScheduleError):
            schedules.make_alpha_schedule(kind, alpha_end=bad, transition_steps=10)


@pytest.mark.parametrize("kind", [k for k in schedules.SCHEDULES if k != "constant"])
def test_bad_steps_raise(kind):
    for bad_steps in (0, -5, 10.0, 2.5, True, "10"):
        with pytest.raises(ScheduleError, match="transition_steps"):
            schedules.make_alpha_schedule(kind, transition_steps=bad_steps)
    for bad_begin in (-1, 1.5, 3.0, False):
        with pytest.raises(ScheduleError, match="transition_begin"):
            schedules.make_alpha_schedule(kind, transition_steps=10, transition_begin=bad_begin)


def test_bad_stage_count_and_decay_rate_raise():
    for bad in (0, -2, 2.0, True):
        with pytest.raises(ScheduleError, match="num_stages"):
            schedules.step(1.0, 0.0, 10, num_stages=bad)
    for bad in (0.0, 1.0, 1.5, -0.1, float("nan"), True, "0.1"):
        with pytest.raises(ScheduleError, match="decay_rate"):
            schedules.exponential(1.0, 0.0, 10, decay_rate=bad)


def test_unknown_kind_names_the_valid_ones():
    with pytest.raises(ScheduleError) as info:
        schedules.make_alpha_schedule("sigmoid")
    message = str(info.value)
    assert "sigmoid" in message
    for kind in schedules.SCHEDULES:
        assert kind in message


def test_from_table_reads_the_row_and_clamps_the_ends():
    table = jnp.asarray([1.0, 0.5, 0.25], jnp.float32)
    sched = schedules.from_table(table)
    np.testing.assert_allclose([float(sched(s)) for s in (-3, 0, 1, 2, 9)],
                               [1.0, 1.0, 0.5, 0.25, 0.25])
    traced = jax.jit(lambda t, s: schedules.from_table(t)(s))  # the table may be traced
    assert float(traced(table, 1)) == 0.5


# ---------------------------------------------------------------------------
# The adaptive α controller (schedules.adaptive_update) on constructed signals.

BAND = dict(start=0.9, end=0.2, begin=3, rate=0.05, low=0.4, high=0.7, smoothing=0.0)


def _control(alpha, signal=1.0):
    return {"alpha": jnp.float32(alpha), "signal": jnp.float32(signal)}


def _next_alpha(alpha, measured, step=10, **changes):
    settings = schedules.AdaptiveAlpha(**{**BAND, **changes})
    return float(schedules.adaptive_update(_control(alpha), measured, step, settings)["alpha"])


def test_adaptive_update_lowers_holds_and_raises_by_the_rate():
    # Above the band [0.4, 0.7]: α falls by r; inside (edges included): held; below: rises.
    assert _next_alpha(0.6, 0.95) == pytest.approx(0.55, abs=1e-7)
    assert _next_alpha(0.6, 0.71) == pytest.approx(0.55, abs=1e-7)
    for inside in (0.7, 0.55, 0.4):
        assert _next_alpha(0.6, inside) == np.float32(0.6), inside
    assert _next_alpha(0.6, 0.39) == pytest.approx(0.65, abs=1e-7)
    assert _next_alpha(0.6, 0.0) == pytest.approx(0.65, abs=1e-7)


def test_adaptive_update_is_clipped_to_end_and_start():
    assert _next_alpha(0.22, 1.0) == np.float32(0.2)  # would be 0.17: clipped at α_end
    assert _next_alpha(0.2, 1.0) == np.float32(0.2)
    assert _next_alpha(0.88, 0.0) == np.float32(0.9)  # would be 0.93: clipped at α_start
    assert _next_alpha(0.9, 0.0) == np.float32(0.9)
    # A long run of "keeps up" walks α down to α_end in (0.9 − 0.2)/0.05 = 14 steps, no further.
    control, settings = _control(0.9), schedules.AdaptiveAlpha(**BAND)
    path = []
    for t in range(3, 23):
        control = schedules.adaptive_update(control, 1.0, t, settings)
        path.append(float(control["alpha"]))
    np.testing.assert_allclose(path[:14], 0.9 - 0.05 * np.arange(1, 15), atol=1e-6)
    assert path[13:] == [pytest.approx(0.2, abs=1e-7)] * 7


def test_adaptive_update_holds_before_begin_and_smooths_the_signal():
    assert _next_alpha(0.9, 1.0, step=2) == np.float32(0.9)  # t < t₀ = 3
    assert _next_alpha(0.9, 1.0, step=3) == pytest.approx(0.85, abs=1e-7)
    # s̄_t = β s̄_(t−1) + (1 − β) s_t; the band is applied to s̄, not to s_t.
    settings = schedules.AdaptiveAlpha(**{**BAND, "smoothing": 0.75})
    out = schedules.adaptive_update(_control(0.6, signal=1.0), 0.2, 10, settings)
    assert float(out["signal"]) == pytest.approx(0.75 * 1.0 + 0.25 * 0.2)  # 0.8: above
    assert float(out["alpha"]) == pytest.approx(0.55, abs=1e-7)
    out = schedules.adaptive_update(out, 0.2, 11, settings)  # 0.65: inside, held
    assert float(out["signal"]) == pytest.approx(0.65) and float(out["alpha"]) == \
        pytest.approx(0.55, abs=1e-7)
    init = schedules.adaptive_init(0.9)
    assert float(init["alpha"]) == np.float32(0.9) and float(init["signal"]) == 1.0


def test_adaptive_update_runs_jitted_and_per_member_under_vmap():
    """Members carry their own settings and state (arrays on axis 0), as in a program."""
    settings = schedules.AdaptiveAlpha(
        start=jnp.array([1.0, 0.5, 1.0]), end=jnp.array([0.0, 0.25, 0.0]),
        begin=jnp.array([0, 0, 5]), rate=jnp.array([0.1, 0.1, 0.1]),
        low=jnp.full(3, 0.4), high=jnp.full(3, 0.7), smoothing=jnp.zeros(3),
        enabled=jnp.array([True, True, True]))
    control = {"alpha": jnp.array([1.0, 0.3, 1.0]), "signal": jnp.ones(3)}
    update = jax.jit(jax.vmap(schedules.adaptive_update, in_axes=(0, 0, None, 0)))
    out = update(control, jnp.array([0.9, 0.1, 0.9]), 2, settings)
    # member 0 falls, member 1 rises (0.3 → 0.4), member 2 is held (step 2 < its begin 5)
    np.testing.assert_allclose(out["alpha"], [0.9, 0.4, 1.0], atol=1e-6)


def test_accuracy_signal_is_one_at_chance_and_zero_when_separated():
    np.testing.assert_allclose(
        [float(schedules.accuracy_signal(a)) for a in (0.5, 0.75, 1.0, 0.3)],
        [1.0, 0.5, 0.0, 1.0])


def test_instance_noise_is_linear_from_sigma_to_exactly_zero_at_its_step():
    sigma = schedules.instance_noise(0.4, 10)
    values = [float(sigma(t)) for t in (0, 5, 9, 10, 11, 1000)]
    np.testing.assert_allclose(values[:3], [0.4, 0.2, 0.04], rtol=1e-6)
    assert values[3:] == [0.0, 0.0, 0.0]
    assert float(jax.jit(sigma)(jnp.int32(10))) == 0.0
    for bad in (-0.1, math.nan, math.inf, "0.1", True):
        with pytest.raises(ScheduleError, match="instance noise"):
            schedules.instance_noise(bad, 10)
    with pytest.raises(ScheduleError, match="transition_steps"):
        schedules.instance_noise(0.1, 0)


def test_adaptive_is_a_constant_schedule_at_alpha_start_before_its_controller():
    assert schedules.ADAPTIVE in schedules.KINDS and schedules.ADAPTIVE not in schedules.SCHEDULES
    sched = schedules.make_alpha_schedule("adaptive", alpha_start=0.8, alpha_end=0.1)
    assert [float(sched(t)) for t in (0, 50, 10**6)] == [np.float32(0.8)] * 3
