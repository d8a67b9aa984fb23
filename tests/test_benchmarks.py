"""The benchmark machinery at a tiny size (no PyTorch, no timing assertions), and a check
that the real training loop traces and compiles its step exactly once."""

from __future__ import annotations

import functools
import subprocess

import jax
import numpy as np
import pytest

from bridge_jax import configuration, train, train_step
from bridge_jax.benchmarks import run as bench
from bridge_jax.parallel import DataParallel


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
