"""The whole benchmark (every measurement of :mod:`bridge_jax.benchmarks.run`'s docstring),
one function per measurement, collected into one JSON-serialisable dict."""

from __future__ import annotations

import dataclasses
import os
import platform
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from bridge_jax.benchmarks.cases import MODEL_SIZES, JaxCase, build_jax_case, build_scan_case
from bridge_jax.benchmarks.measurement import (
    matmul_peak,
    measure_interleaved,
    pipeline_throughput,
    ratio_key,
    torch_matmul_peak,
)
from bridge_jax.benchmarks.subprocess_workers import run_flag_variants, run_multidevice
from bridge_jax.benchmarks.sweep_throughput import measure_sweep
from bridge_jax.benchmarks.torch_comparison import (
    build_torch,
    check_losses,
    time_jax_and_torch,
    torch_available,
    torch_compile_runner,
    torch_runner,
)
from bridge_jax.benchmarks.trainer_overhead import measure_overhead

# (dataset, the model size whose step consumes it), for the input-pipeline measurement.
PIPELINE_DATASETS = (("ring", "mlp2d"), ("grid", "mlp2d"), ("mnist", "28x28"),
                     ("stacked_mnist", "28x28"), ("tfds:cifar10", "32x32"),
                     ("tfds:celeb_a", "64x64"))


@dataclasses.dataclass(frozen=True)
class BenchmarkPlan:
    """What one :func:`run_benchmark` call measures, and how long each timed window is."""

    sizes: list[str]
    quick: bool
    windows: int
    window_s: float
    has_torch: bool
    log: Callable[[str], None]

    def batches(self, size: str) -> tuple[int, ...]:
        return MODEL_SIZES[size]["quick" if self.quick else "batches"]

    def image_sizes(self) -> list[str]:
        return [s for s in self.sizes if MODEL_SIZES[s]["arch"] == "dcgan"]


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                            "cpu_count": os.cpu_count(), "jax": jax.__version__,
                            "jax_backend": jax.default_backend(),
                            "load_avg_start": os.getloadavg()}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(ln.split(":", 1)[1].strip() for ln in f
                               if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return info


def setup_torch(plan: BenchmarkPlan, torch_threads: int | None) -> dict[str, Any] | None:
    """Sets PyTorch's threads; its version and threads, or None (logged) if not installed."""
    if not plan.has_torch:
        plan.log("PyTorch is not installed: running the JAX-only parts. For the JAX/PyTorch "
                 "comparison: pip install torch (CPU build).")
        return None
    import torch

    torch.set_num_threads(torch_threads or os.cpu_count() or 1)
    # The reference never moves its tensors to an accelerator: it runs on the host CPU.
    return {"version": torch.__version__, "threads": torch.get_num_threads(), "device": "cpu"}


def measure_peaks(plan: BenchmarkPlan) -> dict[str, float]:
    """JAX's (and PyTorch's) float32 matmul FLOP/s; "peak_flops" is the faster of the two."""
    jax_peak = matmul_peak()
    peaks = {"matmul_peak_flops": jax_peak}
    plan.log(f"measured float32 matmul peak (jitted 2048^2): {jax_peak / 1e9:.1f} GFLOP/s")
    peak = jax_peak
    if plan.has_torch:
        peaks["torch_matmul_peak_flops"] = torch_matmul_peak()
        peak = max(jax_peak, peaks["torch_matmul_peak_flops"])
        plan.log(f"PyTorch float32 matmul (2048^2): "
                 f"{peaks['torch_matmul_peak_flops'] / 1e9:.1f} GFLOP/s")
    peaks["peak_flops"] = peak  # the faster of the two BLAS: the machine's ceiling
    return peaks


def _throughput_row(case: JaxCase, size: str, batch: int, r: dict, peak: float,
                    jax_backend: str = "cpu") -> dict:
    """One size and batch: examples/s of both, JAX/PyTorch (named ``ratio`` only when
    JAX ran on the CPU like the reference: :func:`ratio_key`), FLOPs and peak shares."""
    jx = r["jax"]["median"]
    th = r["torch"]["median"] if "torch" in r else None
    step_s = batch / jx
    return {"size": size, "batch": batch, "jax_examples_per_s": jx,
            "torch_examples_per_s": th, ratio_key(jax_backend): jx / th if th else None,
            "compile_s": case.compile_s, "gflop_per_step": case.flops / 1e9,
            "gflops_achieved": case.flops / step_s / 1e9,
            "share_of_peak": case.flops / step_s / peak,
            # Same work (checked by check_losses), so PyTorch's FLOP/s use the same count.
            "torch_share_of_peak": case.flops * th / batch / peak if th else None,
            "windows": r}


def measure_throughput(plan: BenchmarkPlan, peak: float) -> list[dict]:
    """Train-step throughput per size and batch, JAX vs PyTorch interleaved."""
    rows = []
    for size in plan.sizes:
        for batch in plan.batches(size):
            case, r = time_jax_and_torch(size, batch, plan.windows, plan.window_s,
                                         plan.has_torch)
            backend = jax.default_backend()
            row = _throughput_row(case, size, batch, r, peak, backend)
            rows.append(row)
            jx, th = row["jax_examples_per_s"], row["torch_examples_per_s"]
            plan.log(f"  {size} b={batch}: JAX {jx:,.0f} ex/s"
                     + (f", PyTorch {th:,.0f} ex/s, {ratio_key(backend)} {jx / th:.2f}"
                        if th else "")
                     + f", {row['share_of_peak']:.0%} of peak")
    return rows


def check_all_losses(plan: BenchmarkPlan) -> list[dict]:
    """:func:`check_losses` at each size's smallest quick batch."""
    checks = []
    for size in plan.sizes:
        checks.append(check_losses(size, MODEL_SIZES[size]["quick"][0]))
        plan.log(f"  loss check {size}: max rel diff {checks[-1]['max_rel_diff']:.2e}")
    return checks


def _steps_per_call_variants(plan: BenchmarkPlan) -> list[dict]:
    """The 2-D MLP step at 1 and several steps per compiled call (lax.scan)."""
    b = MODEL_SIZES["mlp2d"]["batches"][0]
    base = build_jax_case("mlp2d", b)
    runners, per_call = {"1 step/call": base.run}, {"1 step/call": b}
    for k in (10,) if plan.quick else (10, 50):
        name = f"{k} steps/call (lax.scan)"
        runners[name], per_call[name] = build_scan_case("mlp2d", b, k)
    r = measure_interleaved(runners, per_call, plan.windows, plan.window_s)
    return [{"size": "mlp2d", "batch": b, "variant": name, "jax_examples_per_s": v["median"]}
            for name, v in r.items()]


def _image_variants(plan: BenchmarkPlan, size: str, torch_compile: bool) -> list[dict]:
    """bfloat16, transposed convs (32x32), PyTorch channels_last and torch.compile."""
    b = MODEL_SIZES[size]["batches"][0]
    cases = {"float32 subpixel": build_jax_case(size, b),
             "bfloat16 subpixel": build_jax_case(size, b, dtype="bfloat16")}
    if size == "32x32":
        cases["float32 transpose"] = build_jax_case(size, b, upsample="transpose")
    runners = {name: c.run for name, c in cases.items()}
    if plan.has_torch and size != "28x28":
        base = cases["float32 subpixel"]
        runners["torch channels_last"] = torch_runner(
            build_torch(base, channels_last=True), np.asarray(base.batch))
    if plan.has_torch and torch_compile and size == "32x32":
        runners["torch.compile"] = torch_compile_runner(cases["float32 subpixel"], plan.log)
    r = measure_interleaved({k: v for k, v in runners.items() if v is not None}, b,
                            plan.windows, plan.window_s)
    return [{"size": size, "batch": b, "variant": name, "jax_examples_per_s": v["median"],
             "compile_s": cases[name].compile_s if name in cases else None}
            for name, v in r.items()]


def measure_variants(plan: BenchmarkPlan, torch_compile: bool) -> list[dict]:
    """Variants: steps per call (scan), bfloat16, transposed convs; torch channels_last."""
    variants = []
    if "mlp2d" in plan.sizes:
        variants += _steps_per_call_variants(plan)
    for size in plan.image_sizes():
        if plan.quick and size != "32x32":
            continue
        variants += _image_variants(plan, size, torch_compile)
    return variants


def measure_pipeline(plan: BenchmarkPlan, throughput: list[dict]) -> list[dict]:
    """Input-pipeline throughput of each dataset against the step's consumption."""
    pipe = []
    consumption = {(r["size"], r["batch"]): r["jax_examples_per_s"] for r in throughput}
    for name, size in PIPELINE_DATASETS:
        if size not in plan.sizes:
            continue
        b = plan.batches(size)[0]
        rate = pipeline_throughput(name, b, 0.5 if plan.quick else 2.0)
        step_rate = consumption.get((size, b))
        pipe.append({"dataset": name, "batch": b, "examples_per_s": rate,
                     "step_consumes": step_rate,
                     "headroom": rate / step_rate if rate and step_rate else None})
    return pipe


def measure_xla_flags(plan: BenchmarkPlan, xla_flags: Sequence[str]) -> list[dict]:
    """XLA:CPU flags, each in its own process (flags are read once, at backend start)."""
    flag_rows = []
    for size in plan.image_sizes():
        b = MODEL_SIZES[size]["batches"][0]
        flag_rows += run_flag_variants(size, b, ["", *xla_flags], plan.windows, plan.window_s)
        plan.log(f"  XLA flags {size}: " + ", ".join(
            f"{f['xla_flags']}: {f.get('ratio') or float('nan'):.2f}x"
            for f in flag_rows if f["size"] == size))
    return flag_rows


def measure_multidevice(plan: BenchmarkPlan) -> dict[str, list[dict]]:
    """Multi-device overhead (simulated CPU devices; overhead, not speed-up)."""
    counts = (1, 2) if plan.quick else (1, 2, 4, 8)
    md = {}
    for size, pdb in (("mlp2d", 64), ("28x28", 16)):
        if size in plan.sizes:
            md[size] = run_multidevice(size, pdb, counts, plan.windows, plan.window_s)
            plan.log(f"  multi-device {size}: " + ", ".join(
                f"{m['devices']}: {m.get('examples_per_s', float('nan')):,.0f} ex/s"
                for m in md[size]))
    return md


def measure_step(plan: BenchmarkPlan, results: dict[str, Any], torch_compile: bool,
                 xla_flags: Sequence[str], multidevice: bool) -> None:
    """The single-step measurements, into ``results``: peaks, throughput, loss check,
    variants, input pipeline, XLA flags and simulated devices."""
    results.update(measure_peaks(plan))
    results["throughput"] = measure_throughput(plan, results["peak_flops"])
    if plan.has_torch:
        results["loss_check"] = check_all_losses(plan)
    results["variants"] = measure_variants(plan, torch_compile)
    results["pipeline"] = measure_pipeline(plan, results["throughput"])
    if xla_flags:
        results["xla_flags"] = measure_xla_flags(plan, xla_flags)
    if multidevice:
        results["multidevice"] = measure_multidevice(plan)


def run_benchmark(quick: bool = False, sizes: Sequence[str] | None = None,
                  torch_compile: bool = False, multidevice: bool = True,
                  torch_threads: int | None = None,
                  xla_flags: Sequence[str] = (),
                  log: Callable[[str], None] = print, *, step: bool = True,
                  sweep: dict[str, Any] | None = None,
                  overhead: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every measurement of :mod:`bridge_jax.benchmarks.run`'s docstring; ``xla_flags``:
    XLA:CPU flag sets to compare (each in a subprocess, against the same subprocess's
    PyTorch). ``step=False`` leaves out the single-step measurements; ``sweep`` and
    ``overhead`` (keyword arguments of :func:`~bridge_jax.benchmarks.sweep_throughput.
    measure_sweep` and :func:`~bridge_jax.benchmarks.trainer_overhead.measure_overhead`)
    add the sweep throughput and the trainer overhead."""
    windows, window_s = (3, 0.3) if quick else (5, 1.0)
    plan = BenchmarkPlan(list(sizes or MODEL_SIZES), quick, windows, window_s,
                         torch_available(), log)
    results: dict[str, Any] = {"machine": machine_info(), "quick": quick, "torch": None,
                               "windows": windows, "window_s": window_s}
    results["torch"] = setup_torch(plan, torch_threads)
    if step:
        measure_step(plan, results, torch_compile, xla_flags, multidevice)
    if sweep is not None:
        log("sweep throughput (runs·steps/s):")
        results["sweep"] = measure_sweep(windows=windows, window_s=window_s,
                                         has_torch=plan.has_torch, log=log, **sweep)
    if overhead is not None:
        log("trainer overhead (steps/s):")
        results["overhead"] = measure_overhead(log=log, **overhead)
    results["machine"]["load_avg_end"] = os.getloadavg()
    return results
