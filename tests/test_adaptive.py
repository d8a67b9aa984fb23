"""Adaptive α and instance noise through the trainer (issue 20, items 4 and 5).

The controller's rule and the noise's schedule are tested as pure functions in
test_schedules.py (and the ESS from moments in test_losses.py); here, on ring:tiny:
α moves by that rule inside the compiled step, a stopped and resumed run ends bitwise
where an uninterrupted one does (the controller's state is checkpointed), a rerun
with other controller settings is refused, members of one program adapt each from
its own signal (and a scheduled member beside them keeps its table), the jit-sharded
and pmap paths measure the same signal as one device, and instance noise is exactly
x + σ(step)·ε at the critic, nothing at all when σ = 0.
"""

from __future__ import annotations

import json
import subprocess

import jax
import ml_collections
import numpy as np
import pytest
from flax import serialization

from bridge_jax import (
    checkpointing,
    configuration,
    losses,
    members,
    reporting,
    resume,
    schedules,
    sweeps,
    train,
    train_step,
)
from bridge_jax.configuration import ConfigError
from bridge_jax.parallel import DataParallel
from tests import train_helpers as helpers

RATE = 0.1
# Parameter tolerance of the parallel paths, as a fraction of the learning rate (see
# test_parallel.py: reordered float32 sums differ by ~1e-7, a mistake by ~lr).
LR_FRACTION = 0.05


@pytest.fixture(scope="module", autouse=True)
def _fast(tmp_path_factory):
    with helpers.fast_compiles(helpers.cache_dir(tmp_path_factory)):
        yield


def _ring(num_steps: int = 6, **fields) -> ml_collections.ConfigDict:
    """ring:tiny with an adaptive α (r = 0.1, no smoothing) and horizons fixed at 6 steps."""
    c = helpers.load_config("ring", "tiny")
    c.num_steps = num_steps
    c.log_every = 1
    c.checkpoint_every = 3
    c.num_final_samples = 0
    c.sample_every = 10**6
    c.eval.evaluators = ""
    c.generator.lr_decay_steps = c.critic.lr_decay_steps = 6
    c.alpha.schedule = "adaptive"
    c.alpha.adaptive.rate = RATE
    c.alpha.adaptive.smoothing = 0.0
    for name, value in fields.items():
        configuration.set_field(c, name, value)
    return c


def _expected_path(alpha0: float, signals, settings: schedules.AdaptiveAlpha):
    """α_1..α_T by the rule from the logged signals s_0..s_(T−1) (no smoothing)."""
    alphas, control = [alpha0], schedules.adaptive_init(alpha0)
    for t, s in enumerate(signals[:-1]):
        control = schedules.adaptive_update(control, s, t, settings)
        alphas.append(float(control["alpha"]))
    return alphas


# ------------------------------------------------------------------ adaptive α, one run


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """6 steps in one go, with instance noise (σ₀ = 0.2 over 6 steps); the band is set
    inside the ESS's range on this run so that α falls and rises."""
    workdir = str(tmp_path_factory.mktemp("adaptive") / "straight")
    config = _ring(**{"alpha.adaptive.target_high": 0.985, "alpha.adaptive.target_low": 0.975,
                      "critic.instance_noise": 0.2, "critic.instance_noise_steps": 6})
    return config, workdir, train.train_and_evaluate(config, workdir)


def test_alpha_moves_by_the_controllers_rule_in_the_step(straight):
    config, workdir, result = straight
    records = reporting.read_metrics(workdir)
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
    alphas = [r["alpha"] for r in records]  # the α each step trained at
    signals = [r["alpha_signal"] for r in records]
    steps = np.diff(alphas)
    assert alphas[0] == 1.0 and np.any(steps < 0) and np.any(steps > 0), alphas
    assert all(0.0 < s <= 1.0 for s in signals), signals
    # The ESS signal is the ESS of the step's ELBO weights (the logged weight_ess).
    np.testing.assert_allclose(signals, [r["weight_ess"] for r in records], rtol=1e-5)
    settings = configuration.adaptive_alpha(config)
    np.testing.assert_allclose(alphas, _expected_path(1.0, signals, settings), atol=1e-6)
    # The state holds α for the next step; the program reads it for the evaluators.
    final = schedules.adaptive_update(schedules.adaptive_init(alphas[-1]), signals[-1], 5,
                                      settings)
    assert float(result.state.alpha_control["alpha"]) == pytest.approx(
        float(final["alpha"]), abs=1e-6)
    program = members.Program([config], DataParallel("jit"))
    assert program.alpha_at(0, 6, result.state) == float(result.state.alpha_control["alpha"])
    assert program.alpha_at(0, 6) == 1.0  # without a state: the schedule part, α_start
    # Instance noise: σ(t) = 0.2·(1 − t/6) at the step that trained at t = 0..5.
    np.testing.assert_allclose([r["instance_noise"] for r in records],
                               [0.2 * (1 - t / 6) for t in range(6)], rtol=1e-6)


def test_stopped_and_resumed_run_is_bitwise_identical(straight, tmp_path):
    config, straight_dir, result = straight
    workdir = str(tmp_path / "resumed")
    first = config.copy_and_resolve_references()
    first.num_steps = 3
    assert train.train_and_evaluate(first, workdir).steps_run == 3
    # Other controller settings (or noise) on the resume are refused before any step.
    for name, value in (("alpha.adaptive.rate", 0.2), ("alpha.adaptive.target_low", 0.9),
                        ("alpha.adaptive.signal", "accuracy"), ("critic.instance_noise", 0.5)):
        changed = config.copy_and_resolve_references()
        configuration.set_field(changed, name, value)
        with pytest.raises(ConfigError, match=f"{name} .* may not change on a resume"):
            train.train_and_evaluate(changed, workdir)
    second = train.train_and_evaluate(config.copy_and_resolve_references(), workdir)
    assert second.steps_run == 3

    a, b = helpers.flat_state(result.state), helpers.flat_state(second.state)
    assert a.keys() == b.keys() and "['alpha_control']['alpha']" in a
    for k in a:  # params, optimizer states, rng, counters, the controller's α and signal
        assert np.array_equal(a[k], b[k]), k
    assert ([r["alpha"] for r in reporting.read_metrics(workdir)]
            == [r["alpha"] for r in reporting.read_metrics(straight_dir)])
    # The checkpoint holds the controller's state.
    ckpt = checkpointing.Checkpointer(f"{workdir}/checkpoints")
    try:
        restored, step = ckpt.restore_latest(result.state)
    finally:
        ckpt.close()
    assert step == 6
    assert float(restored.alpha_control["alpha"]) == float(result.state.alpha_control["alpha"])


def test_a_scheduled_runs_checkpoint_keeps_its_layout():
    """No alpha_control entry unless α is adaptive: older checkpoints restore as before."""
    config = _ring(**{"alpha.schedule": "cosine"})
    dataset = train.make_dataset(config)
    _, state = train.build(config, dataset.example_shape)
    assert state.alpha_control is None
    assert "alpha_control" not in serialization.to_state_dict(state)
    restored = serialization.from_state_dict(state, serialization.to_state_dict(state))
    assert restored.alpha_control is None
    _, adaptive = train.build(_ring(), dataset.example_shape)
    assert set(serialization.to_state_dict(adaptive)["alpha_control"]) == {"alpha", "signal"}
    with pytest.raises(ValueError, match=r"missing field\(s\) \['alpha_control'\]"):
        serialization.from_state_dict(adaptive, serialization.to_state_dict(state))


# ------------------------------------------------------------------------------ members


def test_members_adapt_independently_beside_a_scheduled_member(tmp_path):
    c = _ring(num_steps=4)
    c.sweep.runs = (
        {"name": "adaptive", "set": {}},
        {"name": "adaptive_mid", "set": {"alpha.start": 0.6, "alpha.end": 0.35}},
        {"name": "cosine", "set": {"alpha.schedule": "cosine", "alpha.transition_steps": 4}},
        {"name": "adaptive_slow", "set": {"alpha.adaptive.rate": RATE / 2,
                                          "alpha.adaptive.target_low": 0.4}},
    )
    group, = sweeps.group_members(sweeps.expand(c))  # one program for all four
    together = helpers.flat_state(train.train_group(group, str(tmp_path / "together")).state)
    for m in group:
        alone = helpers.flat_state(train.train_group([m], str(tmp_path / f"alone{m.index}")).state)
        for name, value in alone.items():
            # vmap rounds the members' matmuls differently in the last float32 bit
            # (test_members.py); a mistake (another member's α or signal) is far larger.
            np.testing.assert_allclose(together[name][m.index], value, rtol=1e-5, atol=1e-6,
                                       err_msg=f"member {m.index} {name}")
    alphas = together["['alpha_control']['alpha']"]
    signals = together["['alpha_control']['signal']"]
    # Each adaptive member moved within its own [end, start] at r per step, 1 → 0.6 and
    # 0.6 → 0.35 (clipped there), and keeps its own signal (its ESS, matched above).
    # The fourth member's own rate (r/2) and band are traced settings of the same program.
    np.testing.assert_allclose(alphas[[0, 1, 3]], [1.0 - 4 * RATE, 0.35, 1.0 - 2 * RATE],
                               atol=1e-6)
    assert signals[0] != signals[1] and np.all((signals[:2] > 0) & (signals[:2] <= 1))
    # The cosine member read its table (its params match its run alone, above); its
    # controller state was carried but never moved.
    assert (alphas[2], signals[2]) == (1.0, 1.0)


# ------------------------------------------------------------------- parallel paths

PARALLEL_SCRIPT = """
import json, sys
import jax, numpy as np
sys.path.insert(0, {root!r})
from bridge_jax import configuration, train
from tests import parallel_worker as worker
from tests import train_helpers as helpers

config = helpers.load_config("ring", "tiny")
config.alpha.schedule = "adaptive"
config.alpha.adaptive.rate = 0.1
config.alpha.adaptive.smoothing = 0.5
config.critic.instance_noise = 0.3
worker.METRICS = ("alpha", "alpha_signal", "alpha_signal_smoothed", "critic_loss",
                  "generator_loss", "weight_ess")
dataset = train.make_dataset(config)
batches = [dataset.get_batch(s) for s in range(worker.NUM_STEPS)]
models, host_state = train.build(config, dataset.example_shape)
host_state = jax.device_get(host_state)
out = {{}}
devices = jax.devices()
for mode, devs in (("jit", devices[:1]), ("jit", devices), ("pmap", devices)):
    worker.run(config, mode, devs, host_state, models, dataset.example_shape, batches, out,
               "ring")
np.savez({out!r}, **out)
"""


def test_jit_sharded_and_pmap_measure_the_signal_of_the_whole_batch(tmp_path,
                                                                      tmp_path_factory):
    out = tmp_path / "adaptive.npz"
    env = helpers.subprocess_env(helpers.cache_dir(tmp_path_factory),
                                 XLA_FLAGS="--xla_force_host_platform_device_count=8")
    proc = subprocess.run(
        [helpers.PYTHON, "-c", PARALLEL_SCRIPT.format(root=str(helpers.ROOT), out=str(out))],
        env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    npz = np.load(out)
    lr = float(helpers.load_config("ring", "tiny").generator.learning_rate)
    for mode in ("jit8", "pmap8"):
        for metric in ("alpha", "alpha_signal", "alpha_signal_smoothed", "critic_loss"):
            a, b = npz[f"ring|jit1|metrics|{metric}"], npz[f"ring|{mode}|metrics|{metric}"]
            np.testing.assert_allclose(b, a, rtol=1e-5, err_msg=f"{mode} {metric}")
        params = [k for k in npz.files if k.startswith(f"ring|{mode}|params|")]
        assert params
        for k in params:
            one = npz[k.replace(f"|{mode}|", "|jit1|")]
            assert np.max(np.abs(npz[k] - one)) <= LR_FRACTION * lr, k
    alphas = npz["ring|jit1|metrics|alpha"]
    assert alphas[0] == 1.0 and alphas[-1] < 1.0  # α moved
    # The signal is the whole batch's ESS (as one device logs it), not a mean of the
    # devices' own ESS values, which is what pmap's weight_ess metric averages.
    np.testing.assert_allclose(npz["ring|jit1|metrics|alpha_signal"],
                               npz["ring|jit1|metrics|weight_ess"], rtol=1e-5)


# ------------------------------------------------------------------------ instance noise


def _one_step(config, start_step: int):
    """(lowered text, new state, metrics) of one jit step at ``start_step``."""
    text, _, new_state, metrics = helpers.one_jit_step(config, start_step)
    return text, new_state, metrics


def _noisy(sigma: float, steps: int):
    c = helpers.load_config("ring", "tiny")
    c.critic.instance_noise, c.critic.instance_noise_steps = sigma, steps
    return c


def test_no_instance_noise_is_bitwise_the_default_step():
    text0, state0, metrics0 = _one_step(helpers.load_config("ring", "tiny"), 2)
    text_zero, _, _ = _one_step(_noisy(0.0, 3), 2)
    assert text_zero == text0  # σ₀ = 0: the same program, nothing drawn or added
    # σ₀ > 0 annealed to 0 at step 2: at step 2 the critic sees x + 0·ε = x exactly.
    text, state, metrics = _one_step(_noisy(0.3, 2), 2)
    assert text != text0 and metrics.pop("instance_noise") == 0.0
    assert metrics == metrics0
    a, b = helpers.flat_state(state0), helpers.flat_state(state)
    for k in a:
        assert np.array_equal(a[k], b[k]), k


def test_the_critic_sees_data_plus_sigma_times_noise():
    config = _noisy(0.5, 4)  # σ(1) = 0.375
    config.critic.gradient_penalty = 0.0  # the ring's γ = 1e-3: the loss alone below
    _, _, metrics = _one_step(config, 1)
    assert metrics["instance_noise"] == pytest.approx(0.375)
    # The step's (only) critic update, recomputed at the initial critic: its noise is
    # drawn from fold_in(fold_in(rng, step) → critic key, 0), instance noise included.
    dataset = train.make_dataset(config)
    models, state = train.build(config, dataset.example_shape)
    step = train_step._TrainStep.from_config(config, models, dataset.example_shape, None, None)
    x = dataset.get_batch(1)
    critic_key, _ = jax.random.split(jax.random.fold_in(state.rng, 1))
    noise = step.draw_noise(jax.random.fold_in(critic_key, 0), x.shape[0])
    sides = step.model.forward(state.generator_params, x, noise, with_nll=False)
    params = state.params["critic"]

    def critic_loss(x_data, x_model):
        return float(losses.critic_loss(step.model.critic(params, x_data, sides["z_data"]),
                                        step.model.critic(params, x_model, sides["z_model"])))

    noisy = critic_loss(x + 0.375 * noise["inst_data"], sides["x_model"] + 0.375 * noise[
        "inst_model"])
    assert metrics["critic_loss"] == pytest.approx(noisy, rel=1e-5)
    assert abs(noisy - critic_loss(x, sides["x_model"])) > 1e-3  # the noise mattered
    # On constructed inputs: zeros and ones in, exactly σ·ε and 1 + σ·ε out; the step's
    # other noise is the same as without instance noise.
    x_data, x_model = step.critic_inputs(np.zeros((16, 2), np.float32),
                                         np.ones((16, 2), np.float32), noise, 0.375)
    np.testing.assert_array_equal(x_data, 0.375 * noise["inst_data"])
    np.testing.assert_array_equal(x_model, 1.0 + 0.375 * noise["inst_model"])
    plain = train_step._TrainStep.from_config(helpers.load_config("ring", "tiny"), models,
                                              dataset.example_shape, None, None)
    assert plain.noise_scale is None
    base = plain.draw_noise(jax.random.fold_in(critic_key, 0), x.shape[0])
    assert set(noise) - set(base) == {"inst_data", "inst_model"}
    for k in base:
        np.testing.assert_array_equal(noise[k], base[k], err_msg=k)


def test_instance_noise_anneals_to_zero_at_its_step_or_the_last():
    config = _noisy(0.3, -1)
    config.num_steps = 10
    sigma = train_step.instance_noise_schedule(config)
    assert [float(sigma(t)) for t in (0, 5, 10, 11)] == pytest.approx([0.3, 0.15, 0.0, 0.0])
    config.critic.instance_noise_steps = 4
    assert float(train_step.instance_noise_schedule(config)(4)) == 0.0
    assert train_step.instance_noise_schedule(_noisy(0.0, 4)) is None


# ------------------------------------------------------------------- config and resume

BAD = [
    ({"alpha.adaptive.signal": "gap"}, "alpha.adaptive.signal='gap' is not one of"),
    ({"alpha.adaptive.rate": 0.0}, "alpha.adaptive.rate must lie in (0, 1]"),
    ({"alpha.adaptive.rate": float("nan")}, "alpha.adaptive.rate must lie in (0, 1]"),
    ({"alpha.adaptive.target_low": 0.9}, "alpha.adaptive.target_low and target_high"),
    ({"alpha.adaptive.target_high": 1.0}, "alpha.adaptive.target_low and target_high"),
    ({"alpha.adaptive.target_low": -0.1}, "alpha.adaptive.target_low and target_high"),
    ({"alpha.adaptive.smoothing": 1.0}, "alpha.adaptive.smoothing must lie in [0, 1)"),
    ({"alpha.schedule": "adaptive", "alpha.start": 0.2, "alpha.end": 0.5},
     "alpha.end=0.5 is above alpha.start=0.2"),
    ({"alpha.schedule": "sigmoid"}, "alpha.schedule='sigmoid' is not one of"),
    ({"critic.instance_noise": -0.1}, "critic.instance_noise must be a number >= 0"),
    ({"critic.instance_noise": float("inf")}, "critic.instance_noise must be a number >= 0"),
    ({"critic.instance_noise": "0.1"}, "critic.instance_noise must be a number >= 0"),
    ({"critic.instance_noise_steps": 0}, "critic.instance_noise_steps must be positive"),
    ({"critic.instance_noise_steps": 2.5}, "critic.instance_noise_steps must be positive"),
    ({"critic.instance_noise_steps": 2**31}, "critic.instance_noise_steps must be positive"),
]


@pytest.mark.parametrize(("fields", "message"), BAD, ids=[m[:40] for _, m in BAD])
def test_bad_settings_are_one_line_config_errors(fields, message):
    config = ml_collections.ConfigDict(helpers.load_config("ring", "tiny").to_dict(),
                                       type_safe=False)
    for name, value in fields.items():
        *parents, leaf = name.split(".")
        node = config
        for p in parents:
            node = node[p]
        node[leaf] = value
    with pytest.raises(ConfigError) as err:
        configuration.validate_config(config)
    assert str(err.value).startswith(message) and "\n" not in str(err.value), str(err.value)


def test_adaptive_is_off_where_the_method_fixes_or_ignores_alpha():
    config = _ring()
    assert configuration.adaptive_alpha(config) == schedules.AdaptiveAlpha(
        start=1.0, end=0.0, begin=0, rate=RATE, low=0.5, high=0.8, smoothing=0.0)
    for method, on in (("fgan", True), ("vae", False), ("adversarial", False),
                       ("nsgan", False), ("hybrid", False)):
        config.method = method
        assert (configuration.adaptive_alpha(config) is not None) == on, method
        configuration.validate_config(config)


def _record(config) -> list[dict]:
    return [{"run": "ring", "seed": 0, "config": json.loads(config.to_json_best_effort())}]


def test_resume_refuses_new_controller_or_noise_settings_and_pins_the_noise_horizon():
    stored = _ring(num_steps=4)
    for name, value in (("alpha.adaptive.smoothing", 0.5), ("alpha.adaptive.target_high", 0.9),
                        ("critic.instance_noise", 0.1), ("alpha.schedule", "cosine")):
        new = stored.copy_and_resolve_references()
        configuration.set_field(new, name, value)
        with pytest.raises(ConfigError, match=f"{name} .* may not change on a resume"):
            resume.check_members(_record(stored), _record(new), "w")
    longer = stored.copy_and_resolve_references()
    longer.num_steps, longer.critic.instance_noise_steps = 8, 6  # an explicit horizon: fine
    assert resume.check_members(_record(stored), _record(longer), "w") == {
        "critic.instance_noise_steps": (-1, 6), "num_steps": (4, 8)}
    longer.critic.instance_noise_steps = -1  # -1 keeps what it meant: the first 4 steps
    assert resume.pin_horizons(longer, _record(stored)[0]["config"]) \
        .critic.instance_noise_steps == 4
    # A record older than these fields resumes (they are at their defaults) and pins.
    old = _record(helpers.load_config("ring", "tiny"))
    del old[0]["config"]["alpha"]["adaptive"]
    del old[0]["config"]["critic"]["instance_noise"]
    del old[0]["config"]["critic"]["instance_noise_steps"]
    assert resume.check_members(old, _record(helpers.load_config("ring", "tiny")), "w") == {}
    newer = helpers.load_config("ring", "tiny")
    newer.num_steps = 8
    assert resume.pin_horizons(newer, old[0]["config"]).critic.instance_noise_steps == 4
