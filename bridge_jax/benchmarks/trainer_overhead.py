r"""Trainer overhead: steps/s of :func:`bridge_jax.train.train_and_evaluate` against the
bare compiled step on the same batches.

    python -m bridge_jax.benchmarks.run --overhead --no-step [--overhead-configs ...]

The trainer runs a config as a user would (data prefetched on its thread, scalars
written every ``log_every`` steps, samples every ``sample_every``, checkpoints every
``checkpoint_every``, a fresh workdir), with what lies outside the loop switched off:
evaluators (``eval.evaluators = ""``), the progress bar and the final samples. With
P = lcm(log_every, sample_every, checkpoint_every) it trains (W + periods)·P steps and
its rate is read from its own log: the loop writes ``steps_per_s = s / (t_s − t0)`` at
each logged step s, so between the logged steps a = W·P and b = (W + periods)·P

    trainer steps/s = (b − a) / (b / rate_b − a / rate_a),

which holds exactly ``periods`` of every periodic event (the events of step s come after
its log line) and leaves out the first W periods (``warm_periods``, default 2): the
compile and start-up, and the one-time costs of the first events (the sampler's
compile, the first checkpoint's set-up), as the bare step leaves out its compile.

The bare step is the same compiled step (:meth:`bridge_jax.members.Program.compile_step`)
on the same host batches (``Program.get_batch(a..b−1)``, made before the clock starts),
after two warm-up steps: bare steps/s = (b − a) / time to the last step's end. Trainer
and bare runs alternate ``repeats`` times; the overhead figure is
median(trainer) / median(bare).

:func:`profile_trainer` runs the trainer once more under cProfile and reports the
cumulative seconds of the loop's parts (step calls, waiting for data, logs, samples,
checkpoints and their digests), to say where the time outside the step goes.
"""

from __future__ import annotations

import copy
import cProfile
import math
import pstats
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import ml_collections

from bridge_jax import (
    config_files,
    config_names,
    configuration,
    members,
    reporting,
    sweeps,
    train,
)
from bridge_jax.parallel import DataParallel

# The 2-D MLP experiment; configs/mnist.py (28×28) costs about 0.15 s a step on 2 cores.
OVERHEAD_CONFIGS = ("configs/ring.py",)

# (label, file name suffix, function name) of the loop's parts that the profile reports.
PROFILED = (
    ("loop (Loop.train)", "train_loop.py", "train"),
    ("step calls (the first compiles)", "members.py", "<lambda>"),
    ("waiting for data", "prefetch.py", "__next__"),
    ("metrics to host", "members.py", "host_metrics"),
    ("scalars written", "reporting.py", "write_scalars"),
    ("non-finite check", "train_loop.py", "check_nonfinite"),
    ("samples", "train_loop.py", "save_samples"),
    ("checkpoints (save call)", "train_loop.py", "save_checkpoint"),
    ("checkpoint digests", "checkpointing.py", "state_digest"),
    ("metrics flush", "reporting.py", "flush"),
)


def load_config(spec: str) -> ml_collections.ConfigDict:
    """``"base"``: :func:`bridge_jax.configuration.base_config`; else what
    ``--config=spec`` loads (a file or shipped name, ``:arg`` allowed)."""
    if spec == "base":
        return configuration.base_config()
    return config_files.load_experiment(config_names.resolve(spec))


def prepare(config: ml_collections.ConfigDict, periods: int, members_n: int = 1,
            warm_periods: int = 2) -> tuple[ml_collections.ConfigDict, int]:
    """(the config to time, its period P): evaluators, progress bar and final samples off,
    ``sweep.num_seeds = members_n``, num_steps = (warm_periods + periods)·P."""
    c = copy.deepcopy(config)
    c.eval.evaluators, c.eval.every = "", 0
    c.progress_bar = False
    c.num_final_samples = 0
    c.sweep.num_seeds = int(members_n)
    period = math.lcm(int(c.log_every), int(c.sample_every), int(c.checkpoint_every))
    c.num_steps = (int(warm_periods) + int(periods)) * period
    return c, period


def steady_rate(a: int, rate_a: float, b: int, rate_b: float) -> float:
    """Steps/s between logged steps a < b from the cumulative rates s / (t_s − t0)."""
    return (b - a) / (b / rate_b - a / rate_a)


def trainer_rate(config: ml_collections.ConfigDict, start: int, workdir: str) -> float:
    """Trains ``config`` in a fresh ``workdir``; its steps/s from step ``start`` to the
    end, from its logged rates."""
    result = train.train_and_evaluate(config, workdir)
    if result is None or result.preempted:
        raise RuntimeError(f"the trainer stopped before step {config.num_steps} (a SIGTERM "
                           "or Ctrl-C); its rate is not measured")
    rates = {r["step"]: r["steps_per_s"] for r in reporting.read_metrics(workdir)}
    b = int(config.num_steps)
    return steady_rate(start, rates[start], b, rates[b])


def bare_rate(config: ml_collections.ConfigDict, start: int) -> float:
    """Steps/s of the trainer's compiled step alone on the batches of steps
    ``start``..end−1 (after two warm-up steps)."""
    program = members.Program([m.config for m in sweeps.expand(config)],
                              DataParallel(config.parallel))
    state = program.initial_state()
    step = program.compile_step()
    for s in range(2):
        state, _ = step(state, program.get_batch(s))
    batches = [program.get_batch(s) for s in range(start, int(config.num_steps))]
    jax.block_until_ready(state)
    t0 = time.perf_counter()
    for x in batches:
        state, metrics = step(state, x)
    jax.block_until_ready((state, metrics))
    return len(batches) / (time.perf_counter() - t0)


def _fresh_workdir(root: str | None) -> str:
    return tempfile.mkdtemp(prefix="bridge_jax_overhead_", dir=root)


def profile_trainer(config: ml_collections.ConfigDict, root: str | None = None) -> list[dict]:
    """One trainer run under cProfile: cumulative seconds and calls of :data:`PROFILED`."""
    workdir = _fresh_workdir(root)
    profiler = cProfile.Profile()
    try:
        profiler.runcall(train.train_and_evaluate, config, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    stats = pstats.Stats(profiler).stats  # {(file, line, name): (cc, nc, tt, ct, callers)}
    rows = []
    for label, suffix, name in PROFILED:
        hits = [(v[1], v[3]) for (f, _, fn), v in stats.items()
                if f.endswith(suffix) and fn == name]
        rows.append({"part": label, "calls": sum(h[0] for h in hits),
                     "cumulative_s": sum(h[1] for h in hits)})
    return rows


def measure_overhead_case(spec: str, periods: int = 2, repeats: int = 2, members_n: int = 1,
                          profile: bool = False, root: str | None = None,
                          config: ml_collections.ConfigDict | None = None,
                          warm_periods: int = 2,
                          log: Callable[[str], None] = print) -> dict[str, Any]:
    """Trainer vs bare step for one config (``config`` if given, else :func:`load_config`
    of ``spec``), alternating ``repeats`` times; the record row."""
    c, period = prepare(config if config is not None else load_config(spec), periods,
                        members_n, warm_periods)
    start = warm_periods * period
    pairs = []
    for _ in range(repeats):
        workdir = _fresh_workdir(root)
        try:
            t = trainer_rate(c, start, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        pairs.append({"trainer": t, "bare": bare_rate(c, start)})
    trainer = statistics.median(p["trainer"] for p in pairs)
    bare = statistics.median(p["bare"] for p in pairs)
    row = {"config": spec, "members": int(members_n), "batch": int(c.batch_size),
           "log_every": int(c.log_every), "sample_every": int(c.sample_every),
           "checkpoint_every": int(c.checkpoint_every), "steps_timed": periods * period,
           "first_step_timed": start,
           "trainer_steps_per_s": trainer, "bare_steps_per_s": bare,
           "trainer_over_bare": trainer / bare, "pairs": pairs}
    if profile:
        row["profile"] = profile_trainer(c, root)
    log(f"  overhead {spec} x{members_n}: trainer {trainer:,.1f} steps/s, bare step "
        f"{bare:,.1f} steps/s, trainer/bare {trainer / bare:.3f}")
    return row


def measure_overhead(specs: Sequence[str] = OVERHEAD_CONFIGS, periods: int = 2,
                     repeats: int = 2, members_counts: Sequence[int] = (1,),
                     profile: bool = False, warm_periods: int = 2,
                     log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """:func:`measure_overhead_case` for every config and member count."""
    return [measure_overhead_case(spec, periods, repeats, int(n), profile,
                                  warm_periods=warm_periods, log=log)
            for spec in specs for n in members_counts]
