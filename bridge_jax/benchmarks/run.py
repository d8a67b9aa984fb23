r"""Benchmark of the α-Bridge train step (JAX) against a PyTorch eager reference.

    python -m bridge_jax.benchmarks.run [--quick] [--out results.json]

Prints tables and writes them (with machine details) as JSON:

* train-step throughput (examples/s; median over timed windows after warm-up, each window
  ended by ``block_until_ready``) per model size (2-D MLP, 28×28, 32×32, 64×64) at two batch
  sizes, compile time, the step's FLOPs from XLA's cost analysis and achieved FLOP/s as a
  share of the machine's measured peak (the faster of a jitted and a PyTorch float32 2048²
  matmul, in the same run), for JAX and for PyTorch, and the "ratio cap" 1 / (PyTorch's
  share): the JAX/PyTorch ratio a JAX step at 100% of peak would reach;
* when PyTorch is installed, the same networks and α-Bridge step in PyTorch eager, timed in
  windows interleaved with the JAX ones (same process, same threads), so the headline
  ratio JAX/PyTorch is robust to load from other processes; and a check that both compute
  the same losses from the same weights, batch and noise;
* variants: several steps per call (``lax.scan``), bfloat16 compute, transposed-conv
  upsampling;
* input-pipeline throughput of each dataset (``get_batch``) against the step's consumption;
* XLA:CPU flag sets (default ``--xla_cpu_use_onednn=true``) against none, JAX vs PyTorch
  interleaved in one subprocess per set (flags are read when the backend starts);
* multi-device overhead: the step on 1, 2, 4, 8 simulated CPU devices at a fixed per-device
  batch (subprocesses with ``--xla_force_host_platform_device_count``). All simulated
  devices share the same cores, so this measures partitioning/all-reduce overhead, not
  speed-up.

PyTorch is optional: ``pip install torch`` (CPU build) to get the comparison; without it
the JAX-only parts run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bridge_jax import configuration, train, train_step
from bridge_jax.parallel import DataParallel

# name -> (dataset, example shape, model overrides, batch sizes (full), batch sizes (quick)).
# Models mirror configs/ring.py, mnist.py, cifar10.py and celeba.py.
MODEL_SIZES: dict[str, dict[str, Any]] = {
    "mlp2d": dict(data="ring", shape=(2,), arch="mlp", latent_dim=2, width=128, depth=2,
                  batches=(256, 1024), quick=(256,)),
    "28x28": dict(data="mnist", shape=(28, 28, 1), arch="dcgan", latent_dim=16, width=32,
                  depth=2, batches=(64, 128), quick=(64,)),
    "32x32": dict(data="tfds:cifar10", shape=(32, 32, 3), arch="dcgan", latent_dim=64,
                  width=64, depth=2, batches=(32, 64), quick=(32,)),
    "64x64": dict(data="tfds:celeb_a", shape=(64, 64, 3), arch="dcgan", latent_dim=128,
                  width=64, depth=2, batches=(16, 32), quick=(16,)),
}
ALPHA = (0.7, 0.3)  # schedule start/end: both loss terms active from step 0
LOSS_RTOL = 1e-3  # JAX vs PyTorch loss agreement (float32, different conv algorithms)


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def make_config(size: str, batch: int, **model_overrides):
    """The experiment config of one benchmark case (method 'bridge', 1 critic step)."""
    spec = MODEL_SIZES[size]
    c = configuration.base_config()
    c.batch_size = int(batch)
    c.num_steps = 100_000
    c.data.name = "ring" if spec["arch"] == "mlp" else "mnist"
    for key in ("arch", "latent_dim", "width", "depth"):
        c.model[key] = spec[key]
    for key, value in model_overrides.items():
        c.model[key] = value
    if spec["arch"] == "dcgan":
        c.critic.learning_rate = c.generator.learning_rate = 2e-4
    c.alpha.start, c.alpha.end = ALPHA
    c.progress_bar = False
    return c


# ---- measurement helpers -------------------------------------------------------------------


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
                        window_s: float) -> dict[str, dict[str, float]]:
    """Examples/s of each runner; windows alternate between runners (same load for all).

    ``runners[name](n)`` runs n calls and returns after the last one has finished; a call
    processes ``examples_per_step`` examples (an int, or one per runner).
    Returns {name: {"median", "min", "max", "steps_per_window"}}.
    """
    if not isinstance(examples_per_step, dict):
        examples_per_step = dict.fromkeys(runners, examples_per_step)
    steps = {name: calibrate(run, window_s) for name, run in runners.items()}
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


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table; floats get 3 significant digits (or fewer decimals if large)."""

    def fmt(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            if v != v:
                return "n/a"
            if abs(v) >= 100:
                return f"{v:,.0f}"
            return f"{v:.3g}"
        return str(v)

    cells = [[fmt(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = lambda vals: "  ".join(v.rjust(w) for v, w in zip(vals, widths, strict=True))
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in cells])


# ---- one JAX case --------------------------------------------------------------------------


@dataclasses.dataclass
class JaxCase:
    """A compiled JAX train step with its state and batch, ready to time."""

    config: Any
    models: Any
    state: Any
    batch: jax.Array
    compiled: Any
    compile_s: float
    flops: float
    example_shape: tuple[int, ...]

    def run(self, n: int) -> None:
        state = self.state
        for _ in range(n):
            state, _ = self.compiled(state, self.batch)
        jax.block_until_ready(state)
        self.state = state


def _repeating_runner(step, state, batch):
    """run(n): applies ``state, _ = step(state, batch)`` n times (donating the state), then
    blocks until done; the state is carried from call to call."""
    holder = [state]

    def run(n: int) -> None:
        s = holder[0]
        for _ in range(n):
            s, _ = step(s, batch)
        jax.block_until_ready(s)
        holder[0] = s

    return run


def random_batch(shape: tuple[int, ...], batch: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.random((batch, *shape), dtype=np.float32)
    return x if len(shape) == 3 else (2.0 * x - 1.0)


def build_jax_case(size: str, batch: int, **model_overrides) -> JaxCase:
    config = make_config(size, batch, **model_overrides)
    shape = MODEL_SIZES[size]["shape"]
    models, state = train.build(config, shape)
    state = jax.device_put(state)
    x = jnp.asarray(random_batch(shape, batch))
    step = jax.jit(train_step.make_train_step(config, models, shape), donate_argnums=0)
    t0 = time.perf_counter()
    compiled = step.lower(state, x).compile()
    compile_s = time.perf_counter() - t0
    return JaxCase(config, models, state, x, compiled, compile_s, cost_flops(compiled), shape)


def build_scan_case(size: str, batch: int, steps_per_call: int) -> tuple[Callable, int]:
    """A runner doing ``steps_per_call`` steps per compiled call (lax.scan over batches)."""
    config = make_config(size, batch)
    shape = MODEL_SIZES[size]["shape"]
    models, state = train.build(config, shape)
    step = train_step.make_train_step(config, models, shape)
    xs = jnp.broadcast_to(jnp.asarray(random_batch(shape, batch)),
                          (steps_per_call, batch, *shape))
    multi = jax.jit(lambda s, xs: jax.lax.scan(step, s, xs), donate_argnums=0)
    return _repeating_runner(multi, jax.device_put(state), xs), batch * steps_per_call


# ---- the PyTorch side ----------------------------------------------------------------------


def _opt_settings(config) -> dict[str, tuple]:
    return {side: (float(config[side].learning_rate), float(config[side].b1),
                   float(config[side].b2), float(config[side].clip_norm))
            for side in ("critic", "generator")}


def build_torch(case: JaxCase, params=None, **kwargs):
    from bridge_jax.benchmarks import torch_reference
    from bridge_jax.train_state import model_config

    params = jax.device_get(case.state.params if params is None else params)
    return torch_reference.TorchBridge(model_config(case.config), case.example_shape, params,
                                       _opt_settings(case.config), **kwargs)


def _jax_noise(config, key, batch: int, shape) -> dict[str, np.ndarray]:
    """The noise the JAX step draws from ``key`` (as train_step.draw_noise, one device)."""
    idx = jnp.arange(batch)
    latent = int(config.model.latent_dim)
    k_enc, k_prior, k_dec = jax.random.split(key, 3)
    normal = train_step.per_example_normal
    return {"eps_enc": np.asarray(normal(k_enc, idx, (latent,))),
            "z_prior": np.asarray(normal(k_prior, idx, (latent,))),
            "eps_dec": np.asarray(normal(k_dec, idx, tuple(shape)))}


def check_losses(size: str, batch: int, steps: int = 2) -> dict[str, Any]:
    """Runs ``steps`` steps of JAX and PyTorch from the same weights on the same batch and
    noise; returns both critic/generator losses per step and the largest relative gap."""
    import torch

    case = build_jax_case(size, batch)
    ref = build_torch(case)
    schedule = configuration.effective_alpha_schedule(case.config)
    x_t = ref.to_torch_batch(np.asarray(case.batch))
    rows, worst = [], 0.0
    state = case.state
    for s in range(steps):
        key = jax.random.fold_in(state.rng, state.step)
        critic_key, gen_key = jax.random.split(key)
        noises = []
        for k in (jax.random.fold_in(critic_key, 0), gen_key):
            n = _jax_noise(case.config, k, batch, case.example_shape)
            n = {name: torch.from_numpy(v) for name, v in n.items()}
            if ref.is_image:
                n["eps_dec"] = n["eps_dec"].permute(0, 3, 1, 2).contiguous()
            noises.append(n)
        alpha = float(schedule(s))
        state, metrics = case.compiled(state, case.batch)
        t_c, t_g = ref.step(x_t, alpha, noise=tuple(noises))
        j_c, j_g = float(metrics["critic_loss"]), float(metrics["generator_loss"])
        for j, t in ((j_c, float(t_c)), (j_g, float(t_g))):
            worst = max(worst, abs(j - t) / max(abs(j), 1e-6))
        rows.append({"step": s, "alpha": alpha, "jax_critic_loss": j_c,
                     "torch_critic_loss": float(t_c), "jax_generator_loss": j_g,
                     "torch_generator_loss": float(t_g)})
    case.state = state
    return {"size": size, "batch": batch, "steps": rows, "max_rel_diff": worst,
            "rtol": LOSS_RTOL, "ok": worst <= LOSS_RTOL}


def torch_runner(ref, x_np: np.ndarray, alpha: float = ALPHA[0]) -> Callable[[int], None]:
    x_t = ref.to_torch_batch(x_np)

    def run(n: int) -> None:
        for _ in range(n):
            ref.step(x_t, alpha)

    return run


# ---- input pipeline -----------------------------------------------------------------------


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
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        ds.get_batch(n + 1)
        n += 1
    return n * batch / (time.perf_counter() - t0)


# ---- multi-device (subprocess worker) ------------------------------------------------------


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
    run = _repeating_runner(step, state, batch)

    t0 = time.perf_counter()
    run(1)
    first_s = time.perf_counter() - t0
    r = measure_interleaved({"jax": run}, per_device_batch * n, windows, window_s)["jax"]
    return {"devices": n, "global_batch": per_device_batch * n, "examples_per_s": r["median"],
            "first_step_s": first_s}


def time_jax_and_torch(size: str, batch: int, windows: int, window_s: float,
                       with_torch: bool) -> tuple[JaxCase, dict]:
    """The JAX step (and, ``with_torch``, its PyTorch reference) timed in interleaved
    windows: (the JAX case, :func:`measure_interleaved`'s result for "jax" and "torch")."""
    case = build_jax_case(size, batch)
    runners = {"jax": case.run}
    if with_torch:
        runners["torch"] = torch_runner(build_torch(case), np.asarray(case.batch))
    return case, measure_interleaved(runners, batch, windows, window_s)


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


# ---- the whole benchmark -------------------------------------------------------------------


def _machine() -> dict[str, Any]:
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


def run_benchmark(quick: bool = False, sizes: Sequence[str] | None = None,
                  torch_compile: bool = False, multidevice: bool = True,
                  torch_threads: int | None = None,
                  xla_flags: Sequence[str] = (),
                  log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every measurement of the module docstring; ``xla_flags``: XLA:CPU flag sets to
    compare (each in a subprocess, against the same subprocess's PyTorch)."""
    sizes = list(sizes or MODEL_SIZES)
    windows, window_s = (3, 0.3) if quick else (5, 1.0)
    has_torch = torch_available()
    results: dict[str, Any] = {"machine": _machine(), "quick": quick, "torch": None,
                               "windows": windows, "window_s": window_s}
    if has_torch:
        import torch

        torch.set_num_threads(torch_threads or os.cpu_count() or 1)
        results["torch"] = {"version": torch.__version__, "threads": torch.get_num_threads()}
    else:
        log("PyTorch is not installed: running the JAX-only parts. For the JAX/PyTorch "
            "comparison: pip install torch (CPU build).")

    jax_peak = matmul_peak()
    results["matmul_peak_flops"] = jax_peak
    log(f"measured float32 matmul peak (jitted 2048^2): {jax_peak / 1e9:.1f} GFLOP/s")
    peak = jax_peak
    if has_torch:
        results["torch_matmul_peak_flops"] = torch_matmul_peak()
        peak = max(jax_peak, results["torch_matmul_peak_flops"])
        log(f"PyTorch float32 matmul (2048^2): "
            f"{results['torch_matmul_peak_flops'] / 1e9:.1f} GFLOP/s")
    results["peak_flops"] = peak  # the faster of the two BLAS: the machine's ceiling

    # 1. throughput per size and batch, JAX vs PyTorch interleaved.
    rows = []
    for size in sizes:
        for batch in MODEL_SIZES[size]["quick" if quick else "batches"]:
            case, r = time_jax_and_torch(size, batch, windows, window_s, has_torch)
            jx = r["jax"]["median"]
            th = r["torch"]["median"] if has_torch else None
            step_s = batch / jx
            row = {"size": size, "batch": batch, "jax_examples_per_s": jx,
                   "torch_examples_per_s": th, "ratio": jx / th if th else None,
                   "compile_s": case.compile_s, "gflop_per_step": case.flops / 1e9,
                   "gflops_achieved": case.flops / step_s / 1e9,
                   "share_of_peak": case.flops / step_s / peak,
                   # Same work (checked below), so PyTorch's FLOP/s use the same count.
                   "torch_share_of_peak": case.flops * th / batch / peak if th else None,
                   "windows": r}
            rows.append(row)
            log(f"  {size} b={batch}: JAX {jx:,.0f} ex/s"
                + (f", PyTorch {th:,.0f} ex/s, ratio {jx / th:.2f}" if th else "")
                + f", {row['share_of_peak']:.0%} of peak")
    results["throughput"] = rows

    # 2. same-loss check.
    if has_torch:
        checks = []
        for size in sizes:
            checks.append(check_losses(size, MODEL_SIZES[size]["quick"][0]))
            log(f"  loss check {size}: max rel diff {checks[-1]['max_rel_diff']:.2e}")
        results["loss_check"] = checks

    # 3. variants: steps per call (scan), bfloat16, transposed convs; torch channels_last.
    variants = []
    if "mlp2d" in sizes:
        b = MODEL_SIZES["mlp2d"]["batches"][0]
        base = build_jax_case("mlp2d", b)
        runners, per_call = {"1 step/call": base.run}, {"1 step/call": b}
        for k in (10,) if quick else (10, 50):
            name = f"{k} steps/call (lax.scan)"
            runners[name], per_call[name] = build_scan_case("mlp2d", b, k)
        r = measure_interleaved(runners, per_call, windows, window_s)
        for name, v in r.items():
            variants.append({"size": "mlp2d", "batch": b, "variant": name,
                             "jax_examples_per_s": v["median"]})
    for size in [s for s in sizes if MODEL_SIZES[s]["arch"] == "dcgan"]:
        if quick and size != "32x32":
            continue
        b = MODEL_SIZES[size]["batches"][0]
        cases = {"float32 subpixel": build_jax_case(size, b),
                 "bfloat16 subpixel": build_jax_case(size, b, dtype="bfloat16")}
        if size == "32x32":
            cases["float32 transpose"] = build_jax_case(size, b, upsample="transpose")
        runners = {name: c.run for name, c in cases.items()}
        if has_torch and size != "28x28":
            base = cases["float32 subpixel"]
            runners["torch channels_last"] = torch_runner(
                build_torch(base, channels_last=True), np.asarray(base.batch))
        if has_torch and torch_compile and size == "32x32":
            runners["torch.compile"] = _torch_compile_runner(cases["float32 subpixel"], log)
        r = {name: v for name, v in
             measure_interleaved({k: v for k, v in runners.items() if v is not None}, b,
                                 windows, window_s).items()}
        for name, v in r.items():
            variants.append({"size": size, "batch": b, "variant": name,
                             "jax_examples_per_s": v["median"],
                             "compile_s": cases[name].compile_s if name in cases else None})
    results["variants"] = variants

    # 4. input pipeline against the step's consumption.
    pipe = []
    consumption = {(r["size"], r["batch"]): r["jax_examples_per_s"] for r in rows}
    for name, size in (("ring", "mlp2d"), ("grid", "mlp2d"), ("mnist", "28x28"),
                       ("stacked_mnist", "28x28"), ("tfds:cifar10", "32x32"),
                       ("tfds:celeb_a", "64x64")):
        if size not in sizes:
            continue
        b = MODEL_SIZES[size]["quick" if quick else "batches"][0]
        rate = pipeline_throughput(name, b, 0.5 if quick else 2.0)
        step_rate = consumption.get((size, b))
        pipe.append({"dataset": name, "batch": b, "examples_per_s": rate,
                     "step_consumes": step_rate,
                     "headroom": rate / step_rate if rate and step_rate else None})
    results["pipeline"] = pipe

    # 5. XLA:CPU flags, each in its own process (flags are read once, at backend start).
    if xla_flags:
        flag_rows = []
        for size in [s for s in sizes if MODEL_SIZES[s]["arch"] == "dcgan"]:
            b = MODEL_SIZES[size]["batches"][0]
            flag_rows += run_flag_variants(size, b, ["", *xla_flags], windows, window_s)
            log(f"  XLA flags {size}: " + ", ".join(
                f"{f['xla_flags']}: {f.get('ratio') or float('nan'):.2f}x"
                for f in flag_rows if f["size"] == size))
        results["xla_flags"] = flag_rows

    # 6. multi-device overhead (simulated CPU devices; overhead, not speed-up).
    if multidevice:
        counts = (1, 2) if quick else (1, 2, 4, 8)
        md = {}
        for size, pdb in (("mlp2d", 64), ("28x28", 16)):
            if size in sizes:
                md[size] = run_multidevice(size, pdb, counts, windows, window_s)
                log(f"  multi-device {size}: " + ", ".join(
                    f"{m['devices']}: {m.get('examples_per_s', float('nan')):,.0f} ex/s"
                    for m in md[size]))
        results["multidevice"] = md

    results["machine"]["load_avg_end"] = os.getloadavg()
    return results


def _torch_compile_runner(case: JaxCase, log, budget_s: float = 300.0):
    """torch.compile'd reference step, or None if it fails or compiles for too long."""
    import torch

    ref = build_torch(case)
    try:
        for m in (ref.encoder, ref.decoder, ref.critic):
            m.forward = torch.compile(m.forward)
        run = torch_runner(ref, np.asarray(case.batch))
        t0 = time.perf_counter()
        run(2)
        if time.perf_counter() - t0 > budget_s:
            log("  torch.compile: warm-up exceeded the time box; skipped")
            return None
        return run
    except Exception as e:  # inductor needs a C++ compiler etc.
        log(f"  torch.compile failed: {type(e).__name__}: {str(e)[:200]}")
        return None


def _short_error(row: dict) -> str | None:
    """One line for a worker's failures: the signal or exit status, and any retry."""
    failures = row.get("failures") or ([row["error"]] if row.get("error") else [])
    if not failures:
        return None
    first = failures[0].split("; stderr:")[0]
    if "died with" in first:
        first = first.split("died with")[-1].strip(" .<>")
    elif "exit status" in first:
        first = "exit status " + first.split("exit status")[-1].strip(" .")
    else:
        first = first[:80]
    return (f"failed ({first})" if row.get("error")
            else f"{first} on try 1, OK on retry")


def render(results: dict[str, Any]) -> str:
    """The human-readable report of :func:`run_benchmark`'s results."""
    m = results["machine"]
    out = [f"bridge_jax train-step benchmark: {m.get('cpu', '?')}, {m['cpu_count']} cores, "
           f"jax {m['jax']}, torch {(results['torch'] or {}).get('version', 'not installed')}, "
           f"load avg {m['load_avg_start'][0]:.1f} -> "
           f"{m.get('load_avg_end', m['load_avg_start'])[0]:.1f}",
           f"matmul peak (float32 2048^2): JAX jitted {results['matmul_peak_flops'] / 1e9:.1f} "
           "GFLOP/s" + (f", PyTorch {results['torch_matmul_peak_flops'] / 1e9:.1f} GFLOP/s; "
                        f"peak = {results['peak_flops'] / 1e9:.1f}"
                        if results.get("torch_matmul_peak_flops") else ""), ""]
    out.append("Train step (critic update + encoder/decoder update), examples/s, median of "
               f"{results['windows']} interleaved windows")
    out.append(format_table(
        ["size", "batch", "JAX ex/s", "PyTorch ex/s", "JAX/PyTorch", "compile s",
         "GFLOP/step", "JAX GFLOP/s", "JAX % peak", "PyTorch % peak", "ratio cap"],
        [[r["size"], r["batch"], r["jax_examples_per_s"], r["torch_examples_per_s"],
          r["ratio"], r["compile_s"], r["gflop_per_step"], r["gflops_achieved"],
          100 * r["share_of_peak"],
          100 * r["torch_share_of_peak"] if r.get("torch_share_of_peak") else None,
          1 / r["torch_share_of_peak"] if r.get("torch_share_of_peak") else None]
         for r in results["throughput"]]))
    if any(r.get("torch_share_of_peak") for r in results["throughput"]):
        out.append("ratio cap: the JAX/PyTorch ratio a JAX step running at 100% of peak "
                   "would reach (1 / PyTorch % peak)")
    if results.get("loss_check"):
        out += ["", "Same losses from the same weights, batch and noise (JAX vs PyTorch):"]
        rows = []
        for c in results["loss_check"]:
            for s in c["steps"]:
                rows.append([c["size"], c["batch"], s["step"], s["jax_critic_loss"],
                             s["torch_critic_loss"], s["jax_generator_loss"],
                             s["torch_generator_loss"]])
            rows.append([c["size"], "", "max rel diff", f"{c['max_rel_diff']:.1e}",
                         f"rtol {c['rtol']:.0e}", "OK" if c["ok"] else "MISMATCH", ""])
        out.append(format_table(["size", "batch", "step", "JAX critic", "torch critic",
                                 "JAX gen", "torch gen"], rows))
    if results.get("variants"):
        out += ["", "Variants (interleaved within each size; examples/s):"]
        out.append(format_table(["size", "batch", "variant", "ex/s", "compile s"],
                                [[v["size"], v["batch"], v["variant"], v["jax_examples_per_s"],
                                  v.get("compile_s")] for v in results["variants"]]))
    if results.get("pipeline"):
        out += ["", "Input pipeline (get_batch on the host, one thread) vs the step's "
                "consumption:"]
        out.append(format_table(["dataset", "batch", "get_batch ex/s", "step ex/s", "headroom"],
                                [[p["dataset"], p["batch"], p["examples_per_s"],
                                  p["step_consumes"], p["headroom"]]
                                 for p in results["pipeline"]]))
    if results.get("xla_flags"):
        out += ["", "XLA:CPU flags (one process per flag set; JAX and PyTorch interleaved in "
                "each):"]
        out.append(format_table(
            ["size", "batch", "XLA_FLAGS", "JAX ex/s", "PyTorch ex/s", "JAX/PyTorch", "error"],
            [[f["size"], f["batch"], f["xla_flags"], f.get("jax_examples_per_s"),
              f.get("torch_examples_per_s"), f.get("ratio"), _short_error(f)]
             for f in results["xla_flags"]]))
    if results.get("multidevice"):
        out += ["", "Simulated CPU devices (same cores shared: overhead, not speed-up), fixed "
                "per-device batch:"]
        rows = []
        for size, ms in results["multidevice"].items():
            base = next((x.get("examples_per_s") for x in ms if x.get("devices") == 1), None)
            for x in ms:
                rate = x.get("examples_per_s")
                rows.append([size, x["devices"], x.get("global_batch"), rate,
                             rate / base if rate and base else None, _short_error(x)])
        out.append(format_table(["size", "devices", "global batch", "ex/s", "vs 1 device",
                                 "error"], rows))
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="one batch size, short windows")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.add_argument("--sizes", default=None, help="comma-separated subset of "
                   + ",".join(MODEL_SIZES))
    p.add_argument("--torch-compile", action="store_true",
                   help="also time torch.compile on 32x32 (slow to compile)")
    p.add_argument("--no-multidevice", action="store_true")
    p.add_argument("--xla-flags", action="append", default=None, metavar="FLAGS",
                   help="an XLA:CPU flag set to compare against no flags on the image "
                   "models (repeatable; default: --xla_cpu_use_onednn=true)")
    p.add_argument("--no-xla-flags", action="store_true")
    p.add_argument("--torch-threads", type=int, default=None,
                   help="PyTorch intra-op threads (default: all cores, as XLA uses). On a "
                   "loaded machine OpenMP barriers make 2+ threads erratic; try 1")
    p.add_argument("--_worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--_flags-worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--_batch", type=int, default=16, help=argparse.SUPPRESS)
    p.add_argument("--_per-device-batch", type=int, default=16, help=argparse.SUPPRESS)
    p.add_argument("--_windows", type=int, default=3, help=argparse.SUPPRESS)
    p.add_argument("--_window-s", type=float, default=0.3, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._flags_worker:
        print(json.dumps(flags_worker(args._flags_worker, args._batch, args._windows,
                                      args._window_s)))
        return 0
    if args._worker:
        print(json.dumps(multidevice_worker(args._worker, args._per_device_batch,
                                            args._windows, args._window_s)))
        return 0
    sizes = args.sizes.split(",") if args.sizes else None
    results = run_benchmark(quick=args.quick, sizes=sizes, torch_compile=args.torch_compile,
                            multidevice=not args.no_multidevice,
                            torch_threads=args.torch_threads,
                            xla_flags=() if args.no_xla_flags else
                            (args.xla_flags or ["--xla_cpu_use_onednn=true"]),
                            log=lambda s: print(s, file=sys.stderr, flush=True))
    print(render(results))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())
