"""The benchmark machinery at a tiny size (no timing assertions; the PyTorch parts skip
when it is not installed), and a check that the real training loop traces and compiles
its step exactly once."""

from __future__ import annotations

import functools
import json
import pathlib
import subprocess

import jax
import numpy as np
import pytest

from bridge_jax import configuration, train, train_step
from bridge_jax.benchmarks import run as bench
from bridge_jax.benchmarks import sweep_throughput, trainer_overhead
from bridge_jax.parallel import DataParallel
from tests import train_helpers as helpers


@pytest.fixture(scope="module")
def tiny_case():
    return bench.build_jax_case("mlp2d", 8, width=8, depth=1)


def test_cost_analysis_counts_flops(tiny_case):
    assert tiny_case.flops > 0
    assert tiny_case.compile_s > 0
    # A matmul's FLOPs are counted as 2·m·n·k.
    a = jax.numpy.ones((16, 32))
    b = jax.numpy.ones((32, 8))
    compiled = jax.jit(jax.numpy.matmul).lower(a, b).compile()
    assert bench.cost_flops(compiled) == pytest.approx(2 * 16 * 32 * 8, rel=0.05)


def test_throughput_measurement_returns_positive_numbers(tiny_case):
    r = bench.measure_interleaved({"jax": tiny_case.run}, 8, windows=2, window_s=0.0)
    assert r["jax"]["steps_per_window"] == 1
    assert r["jax"]["median"] > 0 and r["jax"]["min"] <= r["jax"]["max"]
    assert int(tiny_case.state.step) >= 4  # warm-up + calibration + 2 windows


def test_scan_runner_and_pipeline():
    run, per_call = bench.build_scan_case("mlp2d", 4, steps_per_call=3)
    assert per_call == 12
    run(1)
    assert bench.pipeline_throughput("ring", 16, seconds=0.05) > 0
    assert bench.pipeline_throughput("tfds:no_such_dataset", 16, seconds=0.05) is None


def test_format_table_aligns_columns():
    text = bench.format_table(["size", "ex/s", "ratio"],
                              [["mlp2d", 12345.6, 1.234], ["64x64", 98.7, None]])
    lines = text.splitlines()
    assert len(lines) == 4 and len({len(line) for line in lines}) == 1
    assert "12,346" in text and "1.23" in text and "98.7" in text and "-" in lines[3]


def test_render_without_torch():
    results = {"machine": {"cpu": "test", "cpu_count": 2, "jax": jax.__version__,
                           "load_avg_start": (1.0, 1.0, 1.0)},
               "torch": None, "windows": 2, "matmul_peak_flops": 1e11,
               "throughput": [{"size": "mlp2d", "batch": 8, "jax_examples_per_s": 1e4,
                               "torch_examples_per_s": None, "ratio": None, "compile_s": 1.0,
                               "gflop_per_step": 1e-3, "gflops_achieved": 10.0,
                               "share_of_peak": 0.1}],
               "pipeline": [{"dataset": "ring", "batch": 8, "examples_per_s": 1e6,
                             "step_consumes": 1e4, "headroom": 100.0}],
               "multidevice": {"mlp2d": [{"devices": 1, "global_batch": 8,
                                          "examples_per_s": 1e4}]}}
    text = bench.render(results)
    assert "not installed" in text and "mlp2d" in text and "headroom" in text


def _count_backend_compiles(name: str):
    compiles: list[str] = []

    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration" and \
                kwargs.get("fun_name") == name:
            compiles.append(name)

    jax.monitoring.register_event_duration_secs_listener(listener)
    return compiles, listener


def _counting_make_train_step(traces: list[int]):
    original = train_step.make_train_step

    def make(*args, **kwargs):
        step = original(*args, **kwargs)

        @functools.wraps(step)
        def counted(state, x):
            traces.append(1)  # Python side effect: runs once per trace, never per step
            return step(state, x)

        return counted

    return make


def test_no_recompilation_in_compile_step():
    config = configuration.shrink_for_tests(configuration.base_config())
    dataset = train.make_dataset(config)
    models, host_state = train.build(config, dataset.example_shape)
    parallel = DataParallel("jit")
    traces: list[int] = []
    make = _counting_make_train_step(traces)
    compiles, listener = _count_backend_compiles("jit(train_step)")
    try:
        step = parallel.compile_step(
            lambda axis_name: make(config, models, dataset.example_shape, axis_name=axis_name))
        state = parallel.place_state(host_state)
        for i in range(5):
            state, metrics = step(state, parallel.place_batch(dataset.get_batch(i)))
            if i == 0:
                jax.block_until_ready(state)
                first_compiles = len(compiles)
        jax.block_until_ready(state)
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert len(traces) == 1
    assert first_compiles == 1 and len(compiles) == 1
    assert int(np.asarray(state.step)) == 5


def test_training_loop_traces_the_step_once(tmp_path, monkeypatch):
    config = configuration.shrink_for_tests(configuration.base_config())
    config.num_steps = 6
    config.checkpoint_every = 100
    config.sample_every = 100
    traces: list[int] = []
    monkeypatch.setattr(train_step, "make_train_step", _counting_make_train_step(traces))
    compiles, listener = _count_backend_compiles("jit(train_step)")
    try:
        result = train.train_and_evaluate(config, str(tmp_path))
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert result.steps_run == 6
    assert len(traces) == 1, "the train step was retraced"
    assert len(compiles) == 1, "the train step was compiled more than once"


def test_worker_failures_are_retried_and_reported(monkeypatch):
    calls = []

    def fake_run(cmd, env, **kwargs):
        calls.append(env["XLA_FLAGS"])
        if len(calls) == 1:
            raise subprocess.CalledProcessError(-6, cmd, stderr="Fatal Python error")
        return subprocess.CompletedProcess(cmd, 0, stdout='log\n{"examples_per_s": 5.0}\n')

    monkeypatch.setattr(subprocess, "run", fake_run)
    rows = bench.run_multidevice("mlp2d", 4, [2], windows=1, window_s=0.0)
    assert len(calls) == 2 and "--xla_force_host_platform_device_count=2" in calls[0]
    assert rows[0]["devices"] == 2 and rows[0]["examples_per_s"] == 5.0
    summary = bench.describe_worker_failures(rows[0])
    assert "SIGABRT" in summary and "retry" in summary

    def always_fail(cmd, env, **kwargs):
        raise subprocess.CalledProcessError(1, cmd, stderr="boom")

    monkeypatch.setattr(subprocess, "run", always_fail)
    row = bench.run_flag_variants("28x28", 8, ["--xla_cpu_use_onednn=true"], 1, 0.0)[0]
    assert row["xla_flags"] == "--xla_cpu_use_onednn=true" and "boom" in row["error"]
    assert bench.describe_worker_failures(row) == "failed (exit status 1)"


def test_render_with_torch_shows_both_peaks_and_the_ratio_cap():
    results = {"machine": {"cpu": "test", "cpu_count": 2, "jax": jax.__version__,
                           "load_avg_start": (1.0, 1.0, 1.0)},
               "torch": {"version": "x"}, "windows": 2, "matmul_peak_flops": 2e11,
               "torch_matmul_peak_flops": 2.5e11, "peak_flops": 2.5e11,
               "throughput": [{"size": "28x28", "batch": 64, "jax_examples_per_s": 100.0,
                               "torch_examples_per_s": 125.0, "ratio": 0.8, "compile_s": 1.0,
                               "gflop_per_step": 1.0, "gflops_achieved": 100.0,
                               "share_of_peak": 0.4, "torch_share_of_peak": 0.5}],
               "xla_flags": [{"size": "28x28", "batch": 64, "xla_flags": "--f=1",
                              "jax_examples_per_s": 110.0, "torch_examples_per_s": 120.0,
                              "ratio": 110 / 120}]}
    text = bench.render(results)
    assert "PyTorch 250.0 GFLOP/s; peak = 250.0" in text
    row = next(line for line in text.splitlines() if line.strip().startswith("28x28  "))
    assert row.split()[-3:] == ["40", "50", "2"]  # JAX % peak, PyTorch % peak, cap 1/0.5
    assert "--f=1" in text and "0.917" in text


def test_time_jax_and_torch_without_torch_times_jax_only():
    case, r = bench.time_jax_and_torch("mlp2d", 8, windows=1, window_s=0.0, with_torch=False)
    assert list(r) == ["jax"] and r["jax"]["median"] > 0
    assert case.batch.shape == (8, 2) and case.flops > 0


# ---------------------------------------------------------------------------------------
# Sweep throughput, trainer overhead, and the naming of GPU-vs-host-CPU ratios.

TINY_MLP = dict(width=8, depth=1)


@pytest.fixture
def unoptimized(tmp_path_factory):
    """Unoptimized XLA compiles and the session's compilation cache, for the tests that
    compile the same tiny programs (undone after each test)."""
    with helpers.fast_compiles(helpers.cache_dir(tmp_path_factory)):
        yield


def _flat_params(tree) -> dict[str, np.ndarray]:
    return {jax.tree_util.keystr(k): np.asarray(v)
            for k, v in jax.tree_util.tree_leaves_with_path(tree)}


def test_sweep_member_program_trains_what_the_runs_would_train_one_by_one(unoptimized):
    configs = sweep_throughput.member_configs("mlp2d", 8, 2, **TINY_MLP)
    assert [int(c.seed) for c in configs] == [0, 1]
    vmapped = sweep_throughput.VmapRunner(configs)
    one_by_one = sweep_throughput.OnePerProgramRunner(configs, vmapped.batches)
    vmapped(3)
    one_by_one(3)
    for m in range(2):
        together, alone = _flat_params(vmapped.params(m)), _flat_params(one_by_one.params(m))
        for name, value in alone.items():
            # vmap batches the members' matmuls, rounded differently in the last bits.
            np.testing.assert_allclose(together[name], value, rtol=1e-5, atol=1e-6,
                                       err_msg=f"member {m} {name}")
        assert not np.allclose(alone[name], _flat_params(vmapped.initial_params[m])[name])
    # Each run its own seed: different weights and batches.
    assert not np.array_equal(vmapped.batches[0], vmapped.batches[1])


def test_sweep_row_ratios_and_their_names_on_a_gpu():
    rates = {"jax_vmap": 300.0, "jax_one_per_program": 150.0, "torch_sequential": 100.0,
             "torch_vmap": 120.0}
    row = sweep_throughput.sweep_row("mlp2d", 64, 4, rates, "cpu")
    assert row["best_torch"] == "torch.func.vmap"
    assert row["ratio"] == pytest.approx(2.5)
    assert row["ratio_one_per_program"] == pytest.approx(1.25)
    gpu = sweep_throughput.sweep_row("mlp2d", 64, 4, rates, "gpu")
    assert "ratio" not in gpu and "ratio_one_per_program" not in gpu
    assert gpu["gpu_vs_host_cpu_ratio"] == pytest.approx(2.5)
    assert gpu["gpu_vs_host_cpu_ratio_one_per_program"] == pytest.approx(1.25)
    no_torch = sweep_throughput.sweep_row("mlp2d", 64, 1, {"jax_vmap": 5.0}, "cpu")
    assert no_torch["best_torch"] is None and no_torch["ratio"] is None
    assert bench.ratio_key("cpu") == "ratio" and bench.ratio_key("tpu") == \
        "tpu_vs_host_cpu_ratio" and bench.ratio_key("gpu", torch_device="cuda") == "ratio"
    text = bench.render({"machine": {"cpu": "t", "cpu_count": 2, "jax": "x",
                                     "jax_backend": "gpu", "load_avg_start": (1, 1, 1)},
                         "torch": None, "windows": 1, "sweep": [gpu, no_torch]})
    assert "JAX gpu / PyTorch host cpu" in text and "JAX vmap/best" not in text
    assert "2.5" in text and "torch.func.vmap" in text


def test_throughput_rows_name_a_gpu_vs_host_cpu_ratio_and_drop_the_ratio_cap(tiny_case):
    from bridge_jax.benchmarks.suite import _throughput_row

    r = {"jax": {"median": 1000.0}, "torch": {"median": 50.0}}
    cpu = _throughput_row(tiny_case, "mlp2d", 8, r, 1e12, "cpu")
    gpu = _throughput_row(tiny_case, "mlp2d", 8, r, 1e12, "gpu")
    assert cpu["ratio"] == gpu["gpu_vs_host_cpu_ratio"] == pytest.approx(20.0)
    assert "ratio" not in gpu
    results = {"machine": {"cpu": "t", "cpu_count": 2, "jax": "x", "jax_backend": "gpu",
                           "load_avg_start": (1, 1, 1)}, "torch": {"version": "x"},
               "windows": 1, "matmul_peak_flops": 1e12, "throughput": [gpu]}
    text = bench.render(results)
    assert "JAX gpu / PyTorch host cpu" in text and "ratio cap:" not in text
    assert "jax x on gpu" in text


def test_stored_gpu_records_carry_no_like_for_like_ratio():
    folder = pathlib.Path(__file__).resolve().parents[1] / "results" / "benchmarks"
    for path in folder.glob("gpu_*.json"):
        record = json.loads(path.read_text())
        assert record["machine"]["jax_backend"] == "gpu"
        for row in record["throughput"]:
            assert "ratio" not in row and row["gpu_vs_host_cpu_ratio"] > 1, path.name
        assert bench.render(record).strip() == path.with_suffix(".txt").read_text().strip()


def test_sweep_case_without_torch_times_the_jax_ways_only(unoptimized):
    row = sweep_throughput.measure_sweep_case("mlp2d", 2, 8, windows=1, window_s=0.0,
                                              has_torch=False, log=lambda s: None,
                                              **TINY_MLP)
    assert row["members"] == 2 and row["jax_vmap"] > 0 and row["jax_one_per_program"] > 0
    assert row["torch_sequential"] is None and row["ratio"] is None
    assert row["windows"]["jax_vmap"]["steps_per_window"] == 1
    assert "mlp2d" in bench.render({"machine": {"cpu": "t", "cpu_count": 2, "jax": "x",
                                                "load_avg_start": (1, 1, 1)},
                                    "torch": None, "windows": 1, "sweep": [row]})


def test_sweep_case_with_torch_times_both_pytorch_ways(unoptimized):
    pytest.importorskip("torch", reason="PyTorch (optional) is not installed")
    row = sweep_throughput.measure_sweep_case("mlp2d", 2, 8, windows=1, window_s=0.0,
                                              has_torch=True, log=lambda s: None,
                                              **TINY_MLP)
    assert row["torch_sequential"] > 0 and row["torch_vmap"] > 0
    assert row["torch_vmap_error"] is None and row["torch_vmap_max_rel_diff"] < 1e-5
    assert row["best_torch"] in ("sequential", "torch.func.vmap") and row["ratio"] > 0


def test_torch_func_vmap_step_matches_the_runs_one_by_one_on_the_dcgan(unoptimized):
    pytest.importorskip("torch", reason="PyTorch (optional) is not installed")
    from bridge_jax import models
    from bridge_jax.benchmarks import torch_members
    from bridge_jax.train_state import model_config

    configs = sweep_throughput.member_configs("28x28", 4, 2, width=8, depth=1, latent_dim=4)
    nets = models.make_models(model_config(configs[0]), (28, 28, 1))
    init = jax.jit(lambda key: models.init_params(nets, key, (28, 28, 1), 4))  # one compile
    params = [init(jax.random.PRNGKey(int(c.seed))) for c in configs]
    batches = [bench.random_batch((28, 28, 1), 4, seed=s) for s in range(2)]

    def make_refs():
        from bridge_jax.benchmarks.torch_comparison import reference_for

        return [reference_for(c, (28, 28, 1), p) for c, p in zip(configs, params, strict=True)]

    assert torch_members.vmap_agreement(make_refs, batches, bench.ALPHA[0]) < 1e-5


def test_steady_rate_and_the_overhead_config():
    # Logged cumulative rates s / (t_s - t0): step 10 at 2 s, step 30 at 4 s -> 10 steps/s.
    assert trainer_overhead.steady_rate(10, 10 / 2.0, 30, 30 / 4.0) == pytest.approx(10.0)
    base = configuration.base_config()
    base.eval.evaluators = "mixture"
    c, period = trainer_overhead.prepare(base, periods=3, members_n=2, warm_periods=2)
    assert period == 500 and c.num_steps == 2500 and c.sweep.num_seeds == 2
    assert c.eval.evaluators == "" and not c.progress_bar and c.num_final_samples == 0
    assert base.num_steps == 2000 and base.eval.evaluators == "mixture"  # not modified


def test_trainer_overhead_of_a_tiny_run_is_a_positive_ratio(tmp_path, unoptimized):
    config = configuration.shrink_for_tests(configuration.base_config())
    row = trainer_overhead.measure_overhead_case(
        "tiny", periods=1, repeats=1, config=config, warm_periods=1, root=str(tmp_path),
        log=lambda s: None)
    assert row["steps_timed"] == 4 and row["first_step_timed"] == 4
    assert row["trainer_steps_per_s"] > 0 and row["bare_steps_per_s"] > 0
    assert row["trainer_over_bare"] == pytest.approx(
        row["trainer_steps_per_s"] / row["bare_steps_per_s"])
    assert list(tmp_path.iterdir()) == []  # the trainer's workdirs are removed
    text = bench.render({"machine": {"cpu": "t", "cpu_count": 2, "jax": "x",
                                     "load_avg_start": (1, 1, 1)}, "torch": None,
                         "windows": 1, "overhead": [row]})
    assert "trainer/bare" in text and "2/4/2" in text


def test_cli_wires_sweep_and_overhead_into_one_record(monkeypatch, tmp_path, capsys):
    seen = {}

    def fake_run_benchmark(**kwargs):
        seen.update(kwargs)
        return {"machine": {"cpu": "t", "cpu_count": 2, "jax": "x",
                            "load_avg_start": (1, 1, 1)}, "torch": None, "windows": 1,
                "sweep": [sweep_throughput.sweep_row("mlp2d", 64, 4, {"jax_vmap": 9.0},
                                                     "cpu")]}

    monkeypatch.setattr(bench, "run_benchmark", fake_run_benchmark)
    out = tmp_path / "r.json"
    assert bench.main(["--no-step", "--sweep", "--members", "1,4", "--sweep-sizes", "mlp2d",
                       "--overhead", "--overhead-configs", "base", "--overhead-periods", "1",
                       "--out", str(out)]) == 0
    assert seen["step"] is False
    assert seen["sweep"] == {"sizes": ["mlp2d"], "counts": [1, 4], "torch_vmap": True,
                             "batches": None}
    assert seen["overhead"]["specs"] == ["base"] and seen["overhead"]["periods"] == 1
    assert json.loads(out.read_text())["sweep"][0]["jax_vmap"] == 9.0
    assert "Sweep: N runs" in capsys.readouterr().out


def test_torch_reference_computes_the_jax_losses():
    pytest.importorskip("torch", reason="PyTorch (optional) is not installed")
    check = bench.check_losses("mlp2d", 8)
    assert check["ok"] and check["max_rel_diff"] < bench.LOSS_RTOL
    assert len(check["steps"]) == 2


def test_input_pipeline_benchmark_reads_its_jpegs_and_computes_headroom(tmp_path):
    from bridge_jax.benchmarks import input_pipeline
    from bridge_jax.data import make_dataset

    data_dir = input_pipeline.build_jpeg_dataset(str(tmp_path / "d"), (20, 12), 8)
    ds = make_dataset(**input_pipeline.stream(data_dir, None, batch=8))
    rng = np.random.default_rng(0)
    originals = np.stack([input_pipeline.photo_like(rng, 20, 12) for _ in range(8)]) / 255
    got = ds.get_batch(0)
    assert got.shape == (8, 20, 12, 3)
    # every served example is one of the encoded images, within JPEG's error (it drops
    # most of the pixel noise, σ = 12/255), and far from the others
    errors = np.sort(np.abs(got[:, None] - originals[None]).mean(axis=(2, 3, 4)), axis=1)
    assert errors[:, 0].max() < 0.06 and (errors[:, 1] > 2 * errors[:, 0]).all()
    errors = np.abs(got[:, None] - originals[None]).mean(axis=(2, 3, 4))
    assert sorted(errors.argmin(axis=1)) == list(range(8))  # an epoch: each image once

    record = input_pipeline.measure([0, 1], 0.2, 16, cases=(("s", (16, 16), 8, "32x32"),),
                                    root=str(tmp_path))
    steps = input_pipeline.yardsticks()
    assert steps["32x32"] > 0 and {r["workers"] for r in record["rows"]} == {0, 1}
    for row in record["rows"]:
        assert row["examples_per_s"] > 0
        assert row["headroom"] == pytest.approx(row["examples_per_s"] / steps["32x32"])
        assert row["workers_for_target"] == int(np.ceil(10 * steps["32x32"]
                                                        / row["per_worker"]))
    assert "headroom" in input_pipeline.render(record)
