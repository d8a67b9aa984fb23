r"""Sweep throughput: N runs (seeds) of one experiment trained at once by the trainer's
member machinery, against PyTorch running the same N runs.

    python -m bridge_jax.benchmarks.run --sweep --no-step [--members 1,4,10,32]

For each model size (the 2-D MLP, the 28×28 DCGAN) and member count N, four ways of
training the same N runs (same networks and α-Bridge step as the single-step benchmark,
:func:`~bridge_jax.benchmarks.cases.make_config`; each run its own seed, weights, noise
and batch of ``batch`` examples per step) are timed in interleaved windows of one
process, each in runs·steps/s = N · steps per run / seconds:

* ``jax_vmap``: the trainer's program of N members (:class:`bridge_jax.members.Program`
  of ``sweep.num_seeds = N``): its compiled ``jax.vmap``-ed step, called as the training
  loop calls it (``Program.compile_step``, the host batch ``Program.get_batch`` placed
  each call). N = 1 is the plain one-run program (no vmap). Not timed: the loop around
  the step (logs, checkpoints, samples: see :mod:`~bridge_jax.benchmarks.trainer_overhead`).
* ``jax_one_per_program``: the trainer's one-member program (``sweep.vmap_members =
  False``, what ``configs/sweeps/stacked_mnist.py`` uses for convolutions), the N runs one
  after another. Its step is compiled once and reused for every run (the trainer
  compiles each member's program; compile time is not counted in either row).
* ``torch_sequential``: the PyTorch eager reference
  (:mod:`~bridge_jax.benchmarks.torch_reference`), the N runs one after another.
* ``torch_vmap``: the same N reference steps as one ``torch.func.vmap`` program
  (:class:`~bridge_jax.benchmarks.torch_members.VmappedBridge`); its losses are first
  checked against the sequential runs' from the same weights, batches and noise
  (``torch_vmap_max_rel_diff``).

Each run reuses its step-0 batch (as the single-step benchmark does); α is the
benchmark's fixed (0.7, 0.3) schedule, both loss terms active. The ratio is
``jax_vmap`` / (the faster PyTorch way), named ``gpu_vs_host_cpu_ratio`` when JAX ran
on a GPU (:func:`~bridge_jax.benchmarks.measurement.ratio_key`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from bridge_jax import members, sweeps
from bridge_jax.benchmarks.cases import ALPHA, MODEL_SIZES, make_config
from bridge_jax.benchmarks.measurement import measure_interleaved, ratio_key
from bridge_jax.parallel import DataParallel

SWEEP_SIZES = ("mlp2d", "28x28")
MEMBER_COUNTS = (1, 4, 10, 32)
# Per-run batch: that of configs/ring.py and configs/mnist.py, the sweeps' experiments.
SWEEP_BATCH = {"mlp2d": 64, "28x28": 64, "32x32": 32, "64x64": 16}
TORCH_WAYS = {"torch_sequential": "sequential", "torch_vmap": "torch.func.vmap"}


def member_configs(size: str, batch: int, n: int, **model_overrides) -> list:
    """The N member configs (seeds 0..N−1) of the benchmark case ``size`` at ``batch``, as
    :func:`bridge_jax.sweeps.expand` makes them from ``sweep.num_seeds = N``."""
    config = make_config(size, batch, **model_overrides)
    config.sweep.num_seeds = int(n)
    return [m.config for m in sweeps.expand(config)]


class VmapRunner:
    """The trainer's program of N members: ``runner(k)`` makes k calls of its compiled
    step on each run's batch (N·k runs·steps); :meth:`params` reads member m's weights."""

    def __init__(self, configs: list):
        self.program = members.Program(configs, DataParallel("jit"))
        self.state = self.program.initial_state()
        self.batch = self.program.get_batch(0)
        self.batches = list(self.batch) if self.program.stacked else [self.batch]
        self.initial_params = [self.params(m) for m in range(self.program.n)]
        self.step = self.program.compile_step()

    def __call__(self, k: int) -> None:
        s = self.state
        for _ in range(k):
            s, _ = self.step(s, self.batch)
        self.state = jax.block_until_ready(s)

    def params(self, m: int):
        return jax.device_get(self.program.member_params(self.state, m))


class OnePerProgramRunner:
    """The trainer's one-member program: ``runner(k)`` takes k steps of each run in turn,
    each on its own batch (N·k runs·steps); :meth:`params` reads run m's weights."""

    def __init__(self, configs: list, batches: Sequence[np.ndarray]):
        self.program = members.Program(configs[:1], DataParallel("jit"))
        first = self.program.initial_state()
        self.states, self.batches = [first], list(batches)
        for c in configs[1:]:
            _, host = members.build(c, self.program.example_shape)
            # Optimizer chains are static pytree data: share the first run's, as the
            # trainer does for members, so the compiled step is reused, not recompiled.
            host = host.replace(gen_tx=first.gen_tx, critic_tx=first.critic_tx)
            self.states.append(self.program.parallel.place_state(host))
        self.step = self.program.compile_step()

    def __call__(self, k: int) -> None:
        for m, x in enumerate(self.batches):
            s = self.states[m]
            for _ in range(k):
                s, _ = self.step(s, x)
            self.states[m] = jax.block_until_ready(s)

    def params(self, m: int):
        return jax.device_get(self.states[m].params)


def torch_runners(configs: list, shape: tuple[int, ...], params: list,
                  batches: Sequence[np.ndarray], torch_vmap: bool,
                  log: Callable[[str], None]) -> tuple[dict[str, Callable], dict[str, Any]]:
    """The PyTorch runners (sequential and, for N > 1, torch.func.vmap) from the same
    initial weights, and {"torch_vmap_max_rel_diff", "torch_vmap_error"}."""
    from bridge_jax.benchmarks import torch_members
    from bridge_jax.benchmarks.torch_comparison import reference_for

    def make_refs():
        return [reference_for(c, shape, p) for c, p in zip(configs, params, strict=True)]

    runners = {"torch_sequential": torch_members.sequential_runner(make_refs(), batches,
                                                                   ALPHA[0])}
    info: dict[str, Any] = {"torch_vmap_max_rel_diff": None, "torch_vmap_error": None}
    if torch_vmap and len(configs) > 1:
        try:
            info["torch_vmap_max_rel_diff"] = torch_members.vmap_agreement(
                make_refs, batches, ALPHA[0])
            runners["torch_vmap"] = torch_members.vmap_runner(make_refs(), batches, ALPHA[0])
        except Exception as e:  # an op without a vmap rule, etc.: reported, not fatal
            info["torch_vmap_error"] = f"{type(e).__name__}: {str(e)[:300]}"
            log(f"  torch.func.vmap failed: {info['torch_vmap_error']}")
    return runners, info


def sweep_row(size: str, batch: int, n: int, rates: dict[str, float | None],
              jax_backend: str, **extra) -> dict[str, Any]:
    """One row of the record: runs·steps/s of each way, the faster PyTorch way, and
    ratio = jax_vmap / best PyTorch (ratio_one_per_program likewise), under
    :func:`ratio_key`'s names (``gpu_vs_host_cpu_ratio`` for JAX on a GPU)."""
    row: dict[str, Any] = {"size": size, "batch": batch, "members": n,
                           **{k: rates.get(k) for k in ("jax_vmap", "jax_one_per_program",
                                                        *TORCH_WAYS)}}
    torch_rates = {k: v for k, v in rates.items() if k in TORCH_WAYS and v}
    best = max(torch_rates, key=torch_rates.get) if torch_rates else None
    row["best_torch"] = TORCH_WAYS[best] if best else None
    for base, jax_way in (("ratio", "jax_vmap"), ("ratio_one_per_program",
                                                  "jax_one_per_program")):
        value = rates.get(jax_way)
        row[ratio_key(jax_backend, base)] = (value / torch_rates[best]
                                             if best and value else None)
    row.update(extra)
    return row


def measure_sweep_case(size: str, n: int, batch: int, windows: int, window_s: float,
                       has_torch: bool, torch_vmap: bool = True,
                       log: Callable[[str], None] = print, **model_overrides) -> dict[str, Any]:
    """One (size, N) row: every way of training the N runs, in interleaved windows
    (``model_overrides``: model fields changed from the case's, e.g. a tiny width)."""
    configs = member_configs(size, batch, n, **model_overrides)
    vmapped = VmapRunner(configs)
    runners: dict[str, Callable[[int], None]] = {"jax_vmap": vmapped}
    if n > 1:
        runners["jax_one_per_program"] = OnePerProgramRunner(configs, vmapped.batches)
    info: dict[str, Any] = {}
    if has_torch:
        more, info = torch_runners(configs, MODEL_SIZES[size]["shape"],
                                   vmapped.initial_params, vmapped.batches, torch_vmap, log)
        runners.update(more)
    r = measure_interleaved(runners, n, windows, window_s, warmup=1)
    row = sweep_row(size, batch, n, {k: v["median"] for k, v in r.items()},
                    jax.default_backend(), **info, windows=r)
    log(f"  sweep {size} N={n}: " + ", ".join(
        f"{k} {v['median']:,.1f}" for k, v in r.items()) + " runs·steps/s"
        + (f"; JAX vmap / best PyTorch ({row['best_torch']}) "
           f"{row[ratio_key(jax.default_backend())]:.2f}" if row["best_torch"] else ""))
    return row


def measure_sweep(sizes: Sequence[str] = SWEEP_SIZES, counts: Sequence[int] = MEMBER_COUNTS,
                  windows: int = 5, window_s: float = 1.0, has_torch: bool = False,
                  torch_vmap: bool = True, batches: dict[str, int] | None = None,
                  log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """:func:`measure_sweep_case` for every size and member count."""
    batches = {**SWEEP_BATCH, **(batches or {})}
    return [measure_sweep_case(size, int(n), batches[size], windows, window_s, has_torch,
                               torch_vmap, log)
            for size in sizes for n in counts]
