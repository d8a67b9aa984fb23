"""The training system end to end at tiny sizes: configs, methods, resume, CLI, bfloat16.

Every config in ``configs/`` trains its ``tiny`` variant through
``train.train_and_evaluate`` (cifar10 and celeba from a tiny PNG dataset prepared
offline with tfds, at their real image sizes, so the DCGAN at 32 and 64 pixels is
exercised); every method takes one step on the ring; a run stopped and resumed in
the same process ends bitwise where an uninterrupted one does; the CLI applies
``--config.*`` overrides and rejects bad ones with one line and no traceback.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import time

import jax
import numpy as np
import pytest

from bridge_jax import (
    checkpointing,
    configuration,
    losses,
    methods,
    reporting,
    train,
    train_step,
)
from tests import train_helpers as helpers

tfds_fixture = helpers.load_tests_module("tfds_fixture")

EXAMPLE_SHAPES = {"ring": (2,), "grid": (2,), "mnist": (28, 28, 1),
                  "stacked_mnist": (28, 28, 3), "cifar10": (32, 32, 3),
                  "celeba": (64, 64, 3)}
TFDS_IMAGE_SIZE = {"cifar10": 32, "celeba": 64}


@pytest.fixture(scope="module", autouse=True)
def _fast(tmp_path_factory):
    with helpers.fast_compiles(helpers.cache_dir(tmp_path_factory)):
        yield


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    """``tiny_png`` (6 RGB PNGs of 12x10 pixels) prepared offline as ArrayRecord."""
    return tfds_fixture.prepare_tiny_png(tmp_path_factory.mktemp("tfds"))


def _config(name: str, arg: str | None, data_dir: str):
    config = helpers.load_config(name, arg)
    if config.data.name == "tfds":
        config.data.data_dir = data_dir
        if arg == "tiny":  # the tiny PNG dataset, center-cropped and resized to full size
            config.data.tfds_name = "tiny_png"
            config.data.image_size = TFDS_IMAGE_SIZE[name]
    return config


def _flat(tree) -> dict[str, np.ndarray]:
    return {jax.tree_util.keystr(k): np.asarray(v)
            for k, v in jax.tree_util.tree_leaves_with_path(jax.device_get(tree))}


# ------------------------------------------------------------------------------ configs


def test_every_config_loads_and_validates(tfds_dir):
    for name in helpers.CONFIG_NAMES:
        full = helpers.load_config(name)
        tiny = helpers.load_config(name, "tiny")
        if full.data.name == "tfds":  # read offline: a missing data_dir is named
            missing = full.copy_and_resolve_references()
            missing.data.data_dir = "/nonexistent/tensorflow_datasets"
            with pytest.raises(configuration.ConfigError, match="data.data_dir"):
                configuration.validate_config(missing)
        for config in (_config(name, None, tfds_dir), _config(name, "tiny", tfds_dir)):
            configuration.validate_config(config, num_devices=1)
        assert tiny.num_steps == 4 and tiny.batch_size == 16 and not tiny.progress_bar
        assert full.num_steps >= 1000 and full.batch_size >= 64, name
        assert (full.model.arch == "mlp") == (name in ("ring", "grid")), name
        assert full.to_dict().keys() == configuration.base_config().to_dict().keys(), name


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tfds_dir):
    """name -> (workdir, train_and_evaluate of its tiny config), each run once per module."""
    root = tmp_path_factory.mktemp("tiny_runs")
    runs: dict[str, tuple[str, train.TrainResult]] = {}

    def run(name):
        if name not in runs:
            workdir = str(root / name)
            runs[name] = workdir, train.train_and_evaluate(_config(name, "tiny", tfds_dir),
                                                           workdir)
        return runs[name]

    return run


@pytest.mark.parametrize("name", helpers.CONFIG_NAMES)
def test_tiny_config_trains(trained, tfds_dir, name):
    workdir, result = trained(name)
    config = _config(name, "tiny", tfds_dir)
    shape = EXAMPLE_SHAPES[name]
    assert train.make_dataset(config).example_shape == shape
    assert result.steps_run == 4 and not result.preempted
    assert int(result.state.step) == 4

    lines = reporting.read_metrics(workdir, "all")
    records = reporting.read_metrics(workdir)
    assert [r["step"] for r in records] == [2, 4]  # log_every=2
    for r in records:
        for key in ("alpha", "generator_loss", "critic_loss", "param_norm", "negative_elbo"):
            assert math.isfinite(r[key]), (key, r)
        assert r["update_applied"] == 1.0
    # α at steps 1 and 3: the cosine schedule from 1 to α_end = 0 over 4 steps; on the grid
    # and Stacked MNIST the shipped adaptive controller, which lowers α by its rate every
    # step while the ELBO weights' smoothed ESS (1 at α = 1) stays above its band.
    end = 0.0
    assert (config.alpha.start, config.alpha.end) == (1.0, end)
    if config.alpha.schedule == "adaptive":
        assert name in ("grid", "stacked_mnist")
        expected = [1.0 - s * config.alpha.adaptive.rate for s in (1, 3)]
    else:
        assert config.alpha.schedule == "cosine"
        expected = [end + (1 - end) * 0.5 * (1 + math.cos(math.pi * s / 4)) for s in (1, 3)]
    np.testing.assert_allclose([r["alpha"] for r in records], expected, rtol=1e-6)

    samples = np.load(os.path.join(workdir, "samples.npy"))
    assert samples.shape == (config.num_final_samples, *shape) and samples.dtype == np.float32
    assert np.all(np.isfinite(samples)) and np.std(samples) > 0
    assert os.path.getsize(os.path.join(workdir, "samples.png")) > 0
    assert os.path.exists(os.path.join(workdir, "samples", "step_0000004.png"))

    with open(os.path.join(workdir, "summary.json")) as f:
        summary = json.load(f)
    assert summary["steps_run"] == config.num_steps == 4
    assert summary["skipped_nonfinite_updates"] == 0 and not summary["preempted"]
    _assert_evaluated(name, config, lines, summary, result)
    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f)["data"]["name"] == config.data.name

    # The final checkpoint holds exactly the returned state.
    ckpt = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"))
    try:
        assert ckpt.all_steps() == [2, 4]
        restored, step = ckpt.restore_latest(result.state)
    finally:
        ckpt.close()
    assert step == 4
    for k, v in _flat(result.state).items():
        np.testing.assert_array_equal(_flat(restored)[k], v, err_msg=k)


EVAL_KEYS = {  # what each shipped config's evaluators report
    "ring": {"modes_covered", "modes_covered_strict", "hq_fraction", "reverse_kl"},
    "grid": {"modes_covered", "modes_covered_strict", "hq_fraction", "reverse_kl"},
    "mnist": {"fd", "precision", "recall"},
    "stacked_mnist": {"modes_covered", "kl_to_uniform", "kl_dependence", "fd"},
    "cifar10": {"weight_ess", "weight_mean", "grad_norm_elbo_term", "grad_norm_bound_term"},
    "celeba": {"weight_ess", "weight_mean", "grad_norm_elbo_term", "grad_norm_bound_term"},
}


def _assert_evaluated(name, config, lines, summary, result):
    """Every shipped config evaluates: every eval.every steps and after the last one, into
    metrics.jsonl (one line per member), summary.json and the returned result."""
    evals = [r for r in lines if "member" in r]
    assert [(r["step"], r["member"]) for r in evals] == [(2, 0), (4, 0)]  # eval.every=2
    assert summary["evals_step"] == 4
    assert [reporting.jsonable(e) for e in result.evals] == [summary["evals"]]
    assert EVAL_KEYS[name] <= set(summary["evals"]), summary["evals"]
    assert {f"eval/{k}" for k in EVAL_KEYS[name]} <= set(evals[-1])
    for k in EVAL_KEYS[name]:
        assert evals[-1][f"eval/{k}"] == summary["evals"][k], k
    ev, ref = summary["evals"], summary["evals_reference"]
    if name in ("ring", "grid"):  # real data: every mode, ~98.9% HQ; the model: some
        assert ref["modes_covered"] == ev["num_modes"] == (8 if name == "ring" else 25)
        assert ref["hq_fraction"] > 0.9 and 0 <= ev["hq_fraction"] <= 1
    elif name == "stacked_mnist":  # 200 real triples: ~180 distinct modes, small FD
        assert ref["modes_covered"] > 150 and ref["fd"] < ev["fd"]
    elif name == "mnist":
        assert ref["fd"] < ev["fd"] and ref["precision"] > 0.5
    else:  # diagnostics: ESS of the ELBO weights in (0, 1]; none of real data
        assert 0 < ev["weight_ess"] <= 1 and ref == {}


# ------------------------------------------------------------------------------ methods


def _one_step(config, start_step: int = 0):
    """(lowered text, initial params, new state, metrics) of one step as training runs it."""
    text, host_state, new_state, metrics = helpers.one_jit_step(config, start_step)
    return text, _flat(host_state.params), new_state, metrics


@pytest.mark.parametrize("method", configuration.METHODS)
def test_every_method_takes_a_step(method):
    config = helpers.load_config("ring", "tiny")
    config.method = method
    # Step 2 of 4: the cosine schedule is at α = 0.5, apart from vae's 1 and adversarial's 0.
    _, init, new_state, metrics = _one_step(config, start_step=2)
    after = _flat(new_state.params)

    assert int(new_state.step) == 3 and metrics["update_applied"] == 1.0
    assert all(math.isfinite(v) for v in metrics.values()), metrics
    expected_alpha = {"vae": 1.0, "adversarial": 0.0}.get(method, 0.5)
    assert metrics["alpha"] == pytest.approx(expected_alpha, abs=1e-6)

    uses_encoder = methods.get(method).encoder
    assert ("negative_elbo" in metrics) == uses_encoder
    for part in ("encoder", "decoder", "critic"):
        keys = [k for k in init if k.startswith(f"['{part}']")]
        assert keys, part
        moved = any(not np.array_equal(init[k], after[k]) for k in keys)
        # fgan and nsgan have no encoder: its gradient is zero and Adam leaves it alone.
        assert moved == (part != "encoder" or uses_encoder), (method, part)

    loss, bound = metrics["generator_loss"], metrics["bound"]
    if method == "vae":  # B at α = 1 is the negative ELBO, whatever the critic says
        assert loss == pytest.approx(metrics["negative_elbo"], rel=1e-5)
    elif method in ("adversarial", "fgan"):  # B at α = 0, and fgan's B_α alone
        assert loss == pytest.approx(bound, rel=1e-5, abs=1e-6)
    elif method == "hybrid":  # negative ELBO + 1 · mean softplus(−d) > negative ELBO
        assert loss > metrics["negative_elbo"]
        assert loss - metrics["negative_elbo"] < 10.0
    elif method == "nsgan":  # mean softplus(−d) > 0
        assert 0.0 < loss < 10.0
    else:  # bridge at α = 0.5 mixes both terms: neither one alone
        assert loss != pytest.approx(metrics["negative_elbo"], rel=1e-3)
        assert loss != pytest.approx(bound, rel=1e-3)


# ------------------------------------------------------------------------------- resume


def test_pictures_are_drawn_in_order_off_the_loop_and_their_errors_reach_it():
    """The loop hands sample pictures to one worker thread: writes run in submission order
    on another thread, wait() returns when all are done, and a failed write is raised
    in the loop (by the next submit or by wait), not lost."""
    import threading

    writer = reporting.BackgroundWriter()
    done, threads = [], set()
    gate = threading.Event()

    def write(i):
        gate.wait(5)
        threads.add(threading.get_ident())
        done.append(i)

    for i in range(5):
        writer.submit(write, i)
    assert done == []  # the loop did not wait for them
    gate.set()
    writer.wait()
    assert done == [0, 1, 2, 3, 4] and threading.get_ident() not in threads

    def fail():
        raise OSError("No space left on device")

    writer.submit(fail)
    with pytest.raises(OSError, match="No space left"):
        writer.wait()
    writer.submit(fail)
    time.sleep(0.2)
    with pytest.raises(OSError, match="No space left"):
        writer.submit(write, 5)  # the earlier failure surfaces at the next submit
    writer.close()


def test_batches_from_worker_processes_train_the_same_state_bitwise(trained, tmp_path,
                                                                   tfds_dir):
    """data.num_workers = 2 (a tfds reader in two spawned processes) trains exactly the
    run that reads its batches in this process, and resumes with another worker count."""
    _, straight = trained("cifar10")
    config = _config("cifar10", "tiny", tfds_dir)
    config.data.num_workers = 2
    config.num_steps = 3
    config.alpha.transition_steps = config.generator.lr_decay_steps = 4
    config.critic.lr_decay_steps = 4
    workdir = str(tmp_path / "workers")
    train.train_and_evaluate(config, workdir)
    config.num_steps, config.data.num_workers = 4, 1
    resumed = train.train_and_evaluate(config, workdir)
    a, b = _flat(straight.state), _flat(resumed.state)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_resume_in_process_is_bitwise_identical(trained, tmp_path, tfds_dir):
    _, straight = trained("ring")  # 4 steps in one go (transition_steps -1 → 4)
    workdir = str(tmp_path / "resumed")
    config = _config("ring", "tiny", tfds_dir)
    config.alpha.transition_steps = 4  # the same α schedule when num_steps is 2
    config.generator.lr_decay_steps = config.critic.lr_decay_steps = 4  # and lr schedules
    config.num_steps = 2
    first = train.train_and_evaluate(config, workdir)
    assert first.steps_run == 2 and int(first.state.step) == 2
    config.num_steps = 4
    second = train.train_and_evaluate(config, workdir)
    assert second.steps_run == 2 and int(second.state.step) == 4

    a, b = _flat(straight.state), _flat(second.state)
    assert a.keys() == b.keys()
    for k in a:  # params, both optimizer states, rng, counters
        assert np.array_equal(a[k], b[k]), k
    halfway = _flat(first.state)
    assert any(not np.array_equal(halfway[k], a[k]) for k in a)  # steps 3-4 did something
    steps = [r["step"] for r in reporting.read_metrics(workdir)]
    assert steps == [2, 4]  # the second call appended step 4


# ---------------------------------------------------------------------------------- CLI


def _cli(workdir, *overrides, cache):
    return subprocess.Popen(
        [helpers.PYTHON, "-m", "bridge_jax.main",
         f"--config={helpers.ROOT / 'configs' / 'ring.py'}:tiny", f"--workdir={workdir}",
         *overrides],
        cwd=str(helpers.ROOT), env=helpers.subprocess_env(cache), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)


def test_cli_overrides_and_errors(tmp_path, tmp_path_factory):
    cache = helpers.cache_dir(tmp_path_factory)
    good = tmp_path / "good"
    bad = {"alpha.start": "--config.alpha.start=1.5", "method": "--config.method=foo",
           "nonexistent": "--config.nonexistent=1"}
    procs = {"good": _cli(good, "--config.alpha.schedule=linear", "--config.batch_size=32",
                          cache=cache)}
    procs.update({field: _cli(tmp_path / field, flag, cache=cache)
                  for field, flag in bad.items()})
    try:
        outputs = {k: p.communicate(timeout=180) for k, p in procs.items()}
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()

    out, err = outputs["good"]
    assert procs["good"].returncode == 0, err[-3000:]
    assert "done: 4 steps" in out
    with open(good / "config.json") as f:
        saved = json.load(f)
    assert saved["alpha"]["schedule"] == "linear" and saved["batch_size"] == 32
    records = reporting.read_metrics(str(good))
    # The linear schedule reached the step: α = 1 − s/4 at steps 1 and 3 (cosine: .85, .15).
    np.testing.assert_allclose([r["alpha"] for r in records], [0.75, 0.25], rtol=1e-6)

    for field in bad:
        out, err = outputs[field]
        assert procs[field].returncode == 2, (field, err[-3000:])
        assert "Traceback" not in err, err
        lines = [line for line in err.splitlines() if line.startswith("bridge_jax: error:")]
        assert len(lines) == 1 and field in lines[0], err
        assert not (tmp_path / field).exists()  # rejected before anything was written


# ---------------------------------------------------------------------------- bfloat16


def test_bfloat16_compute_keeps_float32_params():
    f32 = helpers.load_config("mnist", "tiny")
    bf16 = helpers.load_config("mnist", "tiny")
    bf16.model.dtype = "bfloat16"
    text32, init32, state32, metrics32 = _one_step(f32)
    text16, init16, state16, metrics16 = _one_step(bf16)
    assert "bf16" in text16 and "bf16" not in text32  # the model computes in bfloat16
    for k in init32:  # the same float32 initial parameters
        np.testing.assert_array_equal(init16[k], init32[k], err_msg=k)

    assert metrics16["update_applied"] == 1.0
    assert all(math.isfinite(v) for v in metrics16.values()), metrics16
    after = _flat(state16.params)
    assert all(v.dtype == np.float32 for v in after.values())
    assert all(v.dtype == np.float32 for v in _flat(state16.gen_opt_state).values()
               if v.dtype.kind == "f")
    assert any(not np.array_equal(init16[k], after[k]) for k in init16)
    # bfloat16 keeps about 3 significant digits: close to float32, but not the same.
    for key in ("negative_elbo", "critic_loss"):
        assert metrics16[key] == pytest.approx(metrics32[key], rel=2e-2), key
    assert metrics16["negative_elbo"] != metrics32["negative_elbo"]


def test_cosine_learning_rate_decay_reaches_adam():
    """lr(t) = lr·(f + (1−f)·½(1 + cos(πt/T))); with a constant gradient Adam's update is −lr(t)."""
    from bridge_jax import train_state

    opt = configuration.base_config().generator
    opt.learning_rate, opt.lr_schedule, opt.final_lr_fraction = 1e-2, "cosine", 0.1
    sched = train_state.learning_rate_schedule(opt, 100)
    for t in (0, 25, 50, 100, 300):
        expected = 1e-2 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(t, 100) / 100)))
        assert float(sched(t)) == pytest.approx(expected, rel=1e-5)
    tx = train_state.make_optimizer(opt, 100)
    params = {"w": np.zeros(3, np.float32)}
    state = tx.init(params)
    grads = {"w": np.full(3, 0.5, np.float32)}  # norm < clip_norm: clipping is a no-op
    for t in range(60):
        updates, state = tx.update(grads, state, params)
        if t in (0, 50, 59):
            np.testing.assert_allclose(updates["w"], -float(sched(t)), rtol=1e-4)
    opt.lr_schedule = "constant"
    assert train_state.learning_rate_schedule(opt, 100) == pytest.approx(1e-2)


def test_scale_lr_multiplier_scales_only_the_decoder_scale_update():
    """With multiplier k the decoder's log σ moves k × as far as any weight; k = 1 (the
    default) leaves the chain as clip → Adam."""
    from bridge_jax import models, train_state

    opt = configuration.base_config().generator
    opt.learning_rate = 1e-2
    params = {"decoder": {models.DECODER_SCALE_PARAM: np.zeros((), np.float32),
                          "w": np.zeros(3, np.float32)},
              "encoder": {"w": np.zeros(2, np.float32)}}
    grads = jax.tree_util.tree_map(lambda p: np.full(p.shape, 0.5, np.float32), params)
    for k in (1.0, 10.0):
        opt.scale_lr_multiplier = k
        tx = train_state.make_optimizer(opt, 100)
        state = tx.init(params)
        for _ in range(3):
            updates, state = tx.update(grads, state, params)
        np.testing.assert_allclose(updates["decoder"]["w"], -1e-2, rtol=1e-4)
        np.testing.assert_allclose(updates["encoder"]["w"], -1e-2, rtol=1e-4)
        np.testing.assert_allclose(updates["decoder"][models.DECODER_SCALE_PARAM], -1e-2 * k,
                                   rtol=1e-4)
    mask = train_state.is_decoder_scale(params)
    assert mask == {"decoder": {models.DECODER_SCALE_PARAM: True, "w": False},
                    "encoder": {"w": False}}


def test_gradient_penalty_adds_gamma_times_r1_to_the_critic_loss():
    base = helpers.load_config("ring", "tiny")
    base.critic.gradient_penalty = 0.0  # the ring config has γ = 1e-3
    with_gp = helpers.load_config("ring", "tiny")
    with_gp.critic.gradient_penalty = 10.0
    _, _, _, m0 = _one_step(base, start_step=2)
    _, _, state, m1 = _one_step(with_gp, start_step=2)

    # Recompute R1 at the step's initial critic and the same encoder noise.
    dataset = train.make_dataset(with_gp)
    models, host_state = train.build(with_gp, dataset.example_shape)
    model = train_step.StepModel(with_gp, models)
    x = dataset.get_batch(2)
    key = jax.random.fold_in(host_state.rng, 2)
    critic_key, _ = jax.random.split(key)
    noise_key = jax.random.fold_in(critic_key, 0)
    idx = np.arange(x.shape[0])
    k_enc, _, _ = jax.random.split(noise_key, 3)
    eps = train_step.per_example_normal(k_enc, idx, (model.latent_dim,))
    _, _, z = model.encode(host_state.params["encoder"], x, eps)
    r1 = losses.gradient_penalty(
        lambda x_, z_: model.critic(host_state.params["critic"], x_, z_), x, z)
    assert float(r1) > 0
    assert m1["critic_loss"] - m0["critic_loss"] == pytest.approx(10.0 * float(r1), rel=1e-4)
    assert int(state.step) == 3 and m1["update_applied"] == 1.0
