"""Measurements that need their own process (XLA flags are read when the backend starts):
the workers run inside ``python -m bridge_jax.benchmarks.run --_worker/--_flags-worker``,
and the launchers start them, retry a worker that dies and keep every failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence

import jax

from bridge_jax import train, train_step
from bridge_jax.benchmarks.cases import MODEL_SIZES, make_config, random_batch, repeating_runner
from bridge_jax.benchmarks.measurement import measure_interleaved
from bridge_jax.benchmarks.torch_comparison import time_jax_and_torch, torch_available
from bridge_jax.parallel import DataParallel


def multidevice_worker(size: str, per_device_batch: int, windows: int, window_s: float) -> dict:
    """Runs inside a subprocess with N simulated CPU devices; returns examples/s."""
    n = jax.device_count()
    config = make_config(size, per_device_batch * n)
    shape = MODEL_SIZES[size]["shape"]
    parallel = DataParallel("jit")
    models, host_state = train.build(config, shape)
    state = parallel.place_state(host_state)
    step = parallel.compile_step(
        lambda axis_name: train_step.make_train_step(config, models, shape, axis_name=axis_name))
    batch = parallel.place_batch(random_batch(shape, per_device_batch * n))
    run = repeating_runner(step, state, batch)

    t0 = time.perf_counter()
    run(1)
    first_s = time.perf_counter() - t0
    r = measure_interleaved({"jax": run}, per_device_batch * n, windows, window_s)["jax"]
    return {"devices": n, "global_batch": per_device_batch * n, "examples_per_s": r["median"],
            "first_step_s": first_s}


def flags_worker(size: str, batch: int, windows: int, window_s: float) -> dict:
    """Runs in a subprocess started with some XLA_FLAGS: JAX and PyTorch, interleaved."""
    has_torch = torch_available()
    if has_torch:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
    case, r = time_jax_and_torch(size, batch, windows, window_s, has_torch)
    th = r["torch"]["median"] if has_torch else None
    return {"jax_examples_per_s": r["jax"]["median"], "torch_examples_per_s": th,
            "ratio": r["jax"]["median"] / th if th else None, "compile_s": case.compile_s}


def _run_worker(args: list[str], env_flags: str, timeout_s: float,
                attempts: int = 2) -> dict:
    """``run --_worker ...`` in a subprocess with extra XLA_FLAGS; its JSON line.

    A worker that dies (e.g. SIGABRT) is retried once; every failure is kept in
    ``failures`` (with the tail of its stderr) so that the report shows it.
    """
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + env_flags).strip()
    env["JAX_PLATFORMS"] = "cpu"
    cmd = [sys.executable, "-m", "bridge_jax.benchmarks.run", *args]
    failures = []
    for _ in range(attempts):
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True,
                                  timeout=timeout_s, check=True)
            out = json.loads(proc.stdout.strip().splitlines()[-1])
            return {**out, "failures": failures} if failures else out
        except subprocess.CalledProcessError as e:
            failures.append(f"{e}; stderr: ...{(e.stderr or '')[-400:]}")
        except (subprocess.SubprocessError, ValueError, IndexError) as e:
            failures.append(str(e)[-400:])
    return {"error": failures[-1], "failures": failures}


def run_flag_variants(size: str, batch: int, flag_sets: Sequence[str], windows: int,
                      window_s: float, timeout_s: float = 600) -> list[dict]:
    """JAX vs PyTorch with each set of XLA:CPU flags (one subprocess per set)."""
    return [{"size": size, "batch": batch, "xla_flags": flags or "(none)",
             **_run_worker(["--_flags-worker", size, "--_batch", str(batch), "--_windows",
                            str(windows), "--_window-s", str(window_s)], flags, timeout_s)}
            for flags in flag_sets]


def run_multidevice(size: str, per_device_batch: int, counts: Sequence[int], windows: int,
                    window_s: float, timeout_s: float = 600) -> list[dict]:
    return [{"devices": n, **_run_worker(
        ["--_worker", size, "--_per-device-batch", str(per_device_batch), "--_windows",
         str(windows), "--_window-s", str(window_s)],
        f"--xla_force_host_platform_device_count={n}", timeout_s)} for n in counts]
