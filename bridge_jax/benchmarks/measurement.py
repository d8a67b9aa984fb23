"""Timing and FLOP measurement: XLA cost analysis, interleaved throughput windows, the
machine's matmul peak and the input pipeline's throughput."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from bridge_jax import configuration


def cost_flops(compiled) -> float:
    """FLOPs of one call of an AOT-compiled function (XLA cost analysis), NaN if unknown."""
    try:
        cost = compiled.cost_analysis()
    except Exception:  # some backends do not implement it
        return float("nan")
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else {}
    return float((cost or {}).get("flops", float("nan")))


def calibrate(run: Callable[[int], None], window_s: float, warmup: int = 2) -> int:
    """Steps per timed window so that one window lasts about ``window_s``."""
    run(warmup)
    t0 = time.perf_counter()
    run(1)
    dt = max(time.perf_counter() - t0, 1e-6)
    return max(1, int(round(window_s / dt)))


def measure_interleaved(runners: dict[str, Callable[[int], None]],
                        examples_per_step: int | dict[str, int], windows: int,
                        window_s: float, warmup: int = 2) -> dict[str, dict[str, float]]:
    """Examples/s of each runner; windows alternate between runners (same load for all).

    ``runners[name](n)`` runs n calls and returns after the last one has finished; a call
    processes ``examples_per_step`` examples (an int, or one per runner); each runner
    first makes ``warmup`` untimed calls (:func:`calibrate`).
    Returns {name: {"median", "min", "max", "steps_per_window"}}.
    """
    if not isinstance(examples_per_step, dict):
        examples_per_step = dict.fromkeys(runners, examples_per_step)
    steps = {name: calibrate(run, window_s, warmup) for name, run in runners.items()}
    rates: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(windows):
        for name, run in runners.items():
            t0 = time.perf_counter()
            run(steps[name])
            rates[name].append(steps[name] * examples_per_step[name] / (time.perf_counter() - t0))
    return {name: {"median": statistics.median(r), "min": min(r), "max": max(r),
                   "steps_per_window": steps[name]} for name, r in rates.items()}


def _median_flops(call: Callable[[], None], flops: float, reps: int) -> float:
    call()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return flops / statistics.median(times)


def matmul_peak(n: int = 2048, reps: int = 7) -> float:
    """Measured float32 FLOP/s of a jitted n×n matmul (median of ``reps``; machine peak)."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.PRNGKey(1), (n, n), jnp.float32)
    f = jax.jit(jnp.matmul)
    return _median_flops(lambda: f(a, b).block_until_ready(), 2.0 * n**3, reps)


def torch_matmul_peak(n: int = 2048, reps: int = 7) -> float:
    """The same n×n float32 matmul in PyTorch (its BLAS), FLOP/s: PyTorch's own ceiling."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    return _median_flops(lambda: torch.mm(a, b), 2.0 * n**3, reps)


def ratio_key(jax_backend: str, base: str = "ratio", torch_device: str = "cpu") -> str:
    """The record's name of a JAX/PyTorch throughput ratio: ``base`` when both ran on the
    same kind of device; ``<JAX backend>_vs_host_<PyTorch device>_<base>`` (e.g.
    ``gpu_vs_host_cpu_ratio``) when JAX ran on an accelerator and PyTorch on the host:
    a comparison of two machines, not of two implementations."""
    if jax_backend == {"cuda": "gpu"}.get(torch_device, torch_device):
        return base
    return f"{jax_backend}_vs_host_{torch_device}_{base}"


def find_ratio(row: dict[str, Any], base: str = "ratio") -> tuple[str, Any]:
    """(key, value) of the ratio ``base`` in a record row, under either of
    :func:`ratio_key`'s names; (``base``, None) if the row has none."""
    for key, value in row.items():
        if key == base or (key.endswith("_" + base) and "_vs_host_" in key
                           and key.split("_vs_host_", 1)[1].split("_", 1)[1] == base):
            return key, value
    return base, None


def pipeline_throughput(name: str, batch: int, seconds: float) -> float | None:
    """Examples/s of ``make_dataset(name).get_batch(step)`` (None if not available)."""
    from bridge_jax import data

    kwargs: dict[str, Any] = {}
    if name.startswith("tfds:"):
        tfds_name = name.split(":", 1)[1]
        data_dir = os.path.expanduser("~/tensorflow_datasets")
        if not os.path.isdir(os.path.join(data_dir, tfds_name)):
            return None
        kwargs = dict(tfds_name=tfds_name, data_dir=data_dir,
                      image_size=configuration.TFDS_DEFAULT_IMAGE_SIZE.get(tfds_name))
        name = "tfds"
    try:
        ds = data.make_dataset(name, seed=0, global_batch_size=batch, **kwargs)
        ds.get_batch(0)
    except Exception:
        return None
    return examples_per_second(ds.get_batch, batch, seconds)


def examples_per_second(next_batch: Callable[[int], Any], batch: int,
                        seconds: float) -> float:
    """Calls ``next_batch(1)``, ``next_batch(2)``, ... for ``seconds``; examples/s."""
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        next_batch(n + 1)
        n += 1
    return n * batch / (time.perf_counter() - t0)
