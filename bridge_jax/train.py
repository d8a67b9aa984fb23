"""The training loop: data → compiled step → metrics, evaluations, samples, checkpoints.

``train_and_evaluate(config, workdir)`` is importable (the CLI is a thin shell around
it). It validates the config and every member of it before anything compiles. A plain
config is one run of ``sweep.num_seeds`` members (1 by default) trained in ``workdir``;
a config with ``sweep.runs`` is a sweep (:mod:`bridge_jax.sweeps`), whose groups of
members train one after another in ``workdir/<group>``. Each run resumes from the
newest readable checkpoint in its workdir and writes:

  config.json, members.json     the resolved config; every member's run, seed, config
  metrics.jsonl                 scalars every ``log_every`` steps (mean over members),
                                and one "eval/..." line per member and evaluation
  tensorboard/                  the same, as TensorBoard events
  samples/step_N[_mM].png       samples every ``sample_every`` steps (per member)
  checkpoints/N/                orbax checkpoints every ``checkpoint_every`` steps
  samples.npy, samples*.png     ``num_final_samples`` samples per member at the end
  summary.json                  steps, wall time, non-finite records, and "evals": the
                                final evaluation (one dict, or one per member)

A SIGTERM (the preemption signal) makes the loop save a checkpoint at the current
step and return early; rerunning with the same workdir resumes bitwise.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from typing import Any

import jax
import ml_collections

from bridge_jax import checkpointing, configuration, data, members, reporting, sweeps
from bridge_jax import train_loop as loop_lib
from bridge_jax.eval_runner import EvalRunner
from bridge_jax.parallel import DataParallel
from bridge_jax.reporting import jsonable
from bridge_jax.train_loop import NonFiniteError, SigtermFlag

# Re-exported: the data stream and initial state of a config.
make_dataset = members.make_dataset
build = members.build
__all__ = ["NonFiniteError", "SigtermFlag", "TrainResult", "build", "format_evals",
           "make_dataset", "train_and_evaluate", "train_group"]

log = logging.getLogger(__name__)


@dataclasses.dataclass
class TrainResult:
    state: Any  # replicated global arrays (members stacked on axis 0)
    last_metrics: dict[str, float]
    steps_run: int  # steps executed by this call (0 if already complete)
    wall_time_s: float
    preempted: bool = False
    evals: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # per member
    labels: list[str] = dataclasses.field(default_factory=list)  # per member
    seeds: list[int] = dataclasses.field(default_factory=list)  # per member


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> TrainResult | None:
    """Trains ``config`` in ``workdir`` (resuming if it holds checkpoints); a sweep trains
    its unfinished groups and returns the last one's result (None if all were done)."""
    parallel = DataParallel(config.parallel)
    configuration.validate_config(config, num_devices=parallel.num_devices,
                                  process_count=jax.process_count(), workdir=workdir)
    all_members = sweeps.expand(config, num_devices=parallel.num_devices,
                                process_count=jax.process_count())
    if config.sweep.runs:
        return sweeps.run_sweep(
            config, all_members, workdir,
            lambda group, sub: train_group(group, sub, parallel, in_sweep=True),
            is_chief=jax.process_index() == 0)
    return train_group(all_members, workdir, parallel)


def _write_json(workdir: str, name: str, value) -> None:
    with open(os.path.join(workdir, name), "w") as f:
        json.dump(value, f, indent=1)


def _restore(checkpointer, program, state, workdir: str, legacy_resume: bool):
    """The newest readable checkpoint placed for the step, or ``state`` if there is none."""
    restored = checkpointer.restore_latest(program.global_state(state))
    if restored is None:
        return state
    global_state, restored_step = restored
    log.info("resumed from checkpoint step %d in %s", restored_step, workdir)
    if legacy_resume:
        global_state = loop_lib.clear_stop_flag(global_state, program.parallel, restored_step)
    return program.from_global(global_state)


def train_group(group: list[sweeps.Member], workdir: str, parallel: DataParallel | None = None,
                *, in_sweep: bool = False) -> TrainResult:
    """Trains the members of one group (one compiled program) in ``workdir``.

    A plain single-member run keeps the trainer's original contract under
    ``nonfinite_policy='stop'``: it saves the last good state and raises
    NonFiniteError. With several members (or inside a sweep) a member that stops is
    frozen and recorded, the others go on, and the run ends normally.
    """
    config = group[0].config
    parallel = parallel or DataParallel(config.parallel)
    is_chief = jax.process_index() == 0
    os.makedirs(os.path.join(workdir, "samples"), exist_ok=True)
    if is_chief:
        with open(os.path.join(workdir, "config.json"), "w") as f:
            f.write(config.to_json_best_effort(indent=2))
        _write_json(workdir, "members.json", [m.record() for m in group])
    program = members.Program([m.config for m in group], parallel)
    state = program.initial_state()
    checkpointer = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"),
                                              max_to_keep=int(config.keep_checkpoints))
    legacy = program.n == 1 and not in_sweep
    state = _restore(checkpointer, program, state, workdir, legacy)
    start_step = program.progress(state)
    if start_step > int(config.num_steps):
        raise configuration.ConfigError(
            f"num_steps={config.num_steps} is below step {start_step} of the newest checkpoint "
            f"in {workdir}; raise num_steps or use a new workdir")
    run = loop_lib.Loop(program, group, workdir, checkpointer, EvalRunner(program),
                        reporting.MetricWriter(workdir, enabled=is_chief),
                        raise_on_stop=legacy, is_chief=is_chief)
    t0 = time.time()
    with SigtermFlag() as sigterm, data.prefetch(program.get_batch, start_step,
                                                 int(config.num_steps) - start_step) as batches:
        state = run.train(state, batches, start_step, sigterm, t0)
    run.finish_checkpoints(state)
    wall = time.time() - t0
    evals = run.final(state) if not run.preempted else []
    steps_run = program.progress(state) - start_step
    if is_chief:
        _write_json(workdir, "summary.json", _summary(workdir, program, run, state, evals,
                                                       steps_run, wall))
    run.writer.close()
    return TrainResult(program.global_state(state), run.last_metrics, steps_run, wall,
                       run.preempted, evals, [m.label for m in group], [m.seed for m in group])


def _summary(workdir, program, run, state, evals, steps_run, wall) -> dict[str, Any]:
    previous = 0.0
    try:
        with open(os.path.join(workdir, "summary.json")) as f:
            previous = float(json.load(f).get("total_wall_time_s", 0.0))
    except (OSError, ValueError):
        pass
    statuses = program.statuses(state)
    summary = {
        "complete": not run.preempted, "preempted": run.preempted,
        "num_steps": int(program.config.num_steps), "steps_run": steps_run,
        "wall_time_s": wall, "total_wall_time_s": previous + wall,
        "num_members": program.n,
        "skipped_nonfinite_updates": sum(s.count for s in statuses),
        "nonfinite": [dataclasses.asdict(s) for s in statuses],
        **run.last_metrics,
    }
    if evals:
        summary["evals_step"] = program.progress(state)
        summary["evals"] = jsonable(evals[0] if program.n == 1 else evals)
        summary["evals_reference"] = jsonable(run.reference)
    return summary


def format_evals(result: TrainResult) -> list[str]:
    """Lines of the final scores: ``label [seed s]: metric=value, ...`` per member."""
    from bridge_jax.eval_runner import scalars

    lines = []
    for m, metrics in enumerate(result.evals):
        cells = [f"{k}={v:.4g}" for k, v in scalars(metrics, prefix="").items()]
        who = result.labels[m] + (f" seed {result.seeds[m]}" if len(result.evals) > 1 else "")
        if cells:
            lines.append(f"{who}: " + ", ".join(cells))
    return lines
