"""The training loop: data → compiled step → metrics, evaluations, samples, checkpoints.

``train_and_evaluate(config, workdir)`` is importable (the CLI is a thin shell around
it). It validates the config and every member of it before anything compiles. A plain
config is one run of ``sweep.num_seeds`` members (1 by default) trained in ``workdir``;
a config with ``sweep.runs`` is a sweep (:mod:`bridge_jax.sweeps`), whose groups of
members train one after another in ``workdir/<group>``. Each run resumes from the
newest readable checkpoint in its workdir (a local folder or a ``gs://`` URI:
:mod:`bridge_jax.storage`) and writes:

  config.json, members.json     the resolved config; every member's run, seed, config
  metrics.jsonl                 scalars every ``log_every`` steps (mean over members),
                                and one "eval/..." line per member and evaluation
  tensorboard/                  the same, as TensorBoard events
  samples/step_N[_mM].png       samples every ``sample_every`` steps (per member)
  checkpoints/N/                orbax checkpoints every ``checkpoint_every`` steps
  samples.npy, samples*.png     ``num_final_samples`` samples per member at the end
  summary.json                  steps, wall time, non-finite records, and "evals": the
                                final evaluation (one dict, or one per member)

  resumes.jsonl                 the settings a resume changed (``bridge_jax.resume``)

A SIGTERM (the preemption signal) makes the loop save a checkpoint at the current
step and return early (in a multi-process run, every process at one agreed step:
:class:`bridge_jax.train_loop.StopSignals`); rerunning with the same workdir resumes
bitwise. The workdir
is locked while a run holds it (``bridge_jax.workdir_lock``); config.json and
members.json, the record of how the checkpoints were made, are never rewritten, and a
resume may change only what ``bridge_jax.resume`` allows. A finished run that is run
again keeps its summary.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import time
from typing import Any

import jax
import ml_collections

from bridge_jax import (
    checkpointing,
    configuration,
    data,
    members,
    reporting,
    resume,
    storage,
    sweeps,
    workdir_lock,
)
from bridge_jax import train_loop as loop_lib
from bridge_jax.data import workers as workers_lib
from bridge_jax.eval_runner import EvalRunner
from bridge_jax.parallel import DataParallel
from bridge_jax.reporting import jsonable
from bridge_jax.train_loop import NonFiniteError, StopSignals

# Re-exported: the data stream and initial state of a config.
make_dataset = members.make_dataset
build = members.build
__all__ = ["NonFiniteError", "StopSignals", "TrainResult", "build", "format_evals",
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


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       allow_unverified_checkpoints: bool = False) -> TrainResult | None:
    """Trains ``config`` in ``workdir`` (resuming if it holds checkpoints); a sweep trains
    its unfinished groups and returns the last one's result (None if all were done).

    The workdir is locked for the call (:mod:`bridge_jax.workdir_lock`): a second run on
    it is refused. ``allow_unverified_checkpoints`` lets a step whose content digest is
    lost be restored unverified (otherwise it counts as unreadable)."""
    parallel = DataParallel(config.parallel)
    configuration.validate_config(config, num_devices=parallel.num_devices,
                                  process_count=jax.process_count(), workdir=workdir)
    all_members = sweeps.expand(config, num_devices=parallel.num_devices,
                                process_count=jax.process_count())
    train = functools.partial(train_group, parallel=parallel,
                              allow_unverified=allow_unverified_checkpoints)
    with workdir_lock.hold(workdir):
        if config.sweep.runs:
            return sweeps.run_sweep(config, all_members, workdir,
                                    lambda group, sub: train(group, sub, in_sweep=True),
                                    is_chief=jax.process_index() == 0)
        return train(all_members, workdir)


def _write_json(workdir: str, name: str, value) -> None:
    storage.write_json(storage.join(workdir, name), value)


def _read_json(workdir: str, name: str, default=None):
    return storage.read_json(storage.join(workdir, name), default)


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


def _open_checkpoints(workdir: str, config, allow_unverified: bool):
    """The run's Checkpointer, after checking that its directory can be written."""
    directory = storage.join(workdir, "checkpoints")
    checkpointing.check_writable(directory)
    return checkpointing.Checkpointer(directory, max_to_keep=int(config.keep_checkpoints),
                                      allow_unverified=allow_unverified)


def _stored_members(workdir: str, group: list[sweeps.Member]) -> list[dict] | None:
    """The members.json of the run in ``workdir``; for a run older than members.json, its
    config.json as the record of its single member; None if there is no record."""
    stored = _read_json(workdir, "members.json")
    if stored is None and len(group) == 1:
        config = _read_json(workdir, "config.json")
        if config is not None:
            stored = [{**group[0].record(), "config": config}]
    return stored


def _reconcile_with_record(group: list[sweeps.Member], workdir: str, has_checkpoints: bool,
                           is_chief: bool) -> tuple[list[sweeps.Member], bool]:
    """(members to train, whether the run's record must be written). A run with
    checkpoints and a record is checked against it (:mod:`bridge_jax.resume`): refused
    changes raise ConfigError, -1 horizons are pinned, accepted changes are appended
    to resumes.jsonl, and the record is kept as it is."""
    if not has_checkpoints:
        return group, True
    stored = _stored_members(workdir, group)
    if stored is None:
        raise configuration.ConfigError(
            f"{workdir} holds checkpoints but no readable record of how they were made "
            "(members.json and config.json are missing or damaged); restore them, or use "
            "a new workdir")
    changes = resume.check_members(stored, [m.record() for m in group], workdir)
    group = [dataclasses.replace(m, config=resume.pin_horizons(m.config, old["config"]))
             for m, old in zip(group, stored, strict=True)]
    if changes and is_chief:
        log.warning("resuming %s with changed settings: %s", workdir,
                    ", ".join(f"{k}={v[1]!r} (was {v[0]!r})" for k, v in changes.items()))
        storage.append_text(storage.join(workdir, "resumes.jsonl"), json.dumps(
            {"time": time.strftime("%Y-%m-%d %H:%M:%S"),
             "changed": {k: list(v) for k, v in changes.items()}}) + "\n")
    return group, False


def _write_record(workdir: str, group: list[sweeps.Member]) -> None:
    """config.json and members.json: how the run's checkpoints are made."""
    storage.write_text(storage.join(workdir, "config.json"),
                       group[0].config.to_json_best_effort(indent=2))
    _write_json(workdir, "members.json", [m.record() for m in group])


def train_group(group: list[sweeps.Member], workdir: str, parallel: DataParallel | None = None,
                *, in_sweep: bool = False, allow_unverified: bool = False) -> TrainResult:
    """Trains the members of one group (one compiled program) in ``workdir``.

    A plain single-member run keeps the trainer's original contract under
    ``nonfinite_policy='stop'``: it saves the last good state and raises
    NonFiniteError. With several members (or inside a sweep) a member that stops is
    frozen and recorded, the others go on, and the run ends normally. A run that is
    already complete is not trained, sampled or evaluated again: its stored summary
    is returned as it is.
    """
    parallel = parallel or DataParallel(group[0].config.parallel)
    is_chief = jax.process_index() == 0
    storage.make_dirs(storage.join(workdir, "samples"))  # local disks only
    checkpointer = _open_checkpoints(workdir, group[0].config, allow_unverified)
    group, new_record = _reconcile_with_record(group, workdir, bool(checkpointer.all_steps()),
                                               is_chief)
    config = group[0].config
    program = members.Program([m.config for m in group], parallel)
    state = _restore(checkpointer, program, program.initial_state(), workdir,
                     program.n == 1 and not in_sweep)
    if new_record and is_chief:  # after the restore: a refused checkpoint keeps its record
        _write_record(workdir, group)
    start_step, num_steps = program.progress(state), int(config.num_steps)
    if start_step > num_steps:
        raise configuration.ConfigError(
            f"num_steps={num_steps} is below step {start_step} of the newest checkpoint "
            f"in {workdir}; raise num_steps or use a new workdir")
    previous = _read_json(workdir, "summary.json", {}) if start_step > 0 else {}
    previous = previous if isinstance(previous, dict) else {}  # a damaged summary: ignored
    if start_step == num_steps and previous.get("complete") and (
            previous.get("num_steps") == num_steps):
        checkpointer.close()
        log.info("%s is already complete at step %d; its summary is kept", workdir, num_steps)
        return _stored_result(program, state, group, previous)
    if is_chief:
        reporting.trim_metrics(workdir, start_step, evals_at_step=start_step < num_steps)
    run = loop_lib.Loop(program, group, workdir, checkpointer, EvalRunner(program),
                        reporting.MetricWriter(workdir, enabled=is_chief),
                        raise_on_stop=program.n == 1 and not in_sweep, is_chief=is_chief)
    t0 = time.time()
    with StopSignals() as stop:
        with _batches(program, start_step, num_steps - start_step) as batches:
            state = run.train(state, batches, start_step, stop, t0)
        run.finish_checkpoints(state)  # further SIGTERMs are ignored while this saves
    wall = time.time() - t0
    evals = run.final(state) if not run.preempted else []
    run.pictures.close()  # the final samples' pictures, drawn while the evaluators ran
    steps_run = program.progress(state) - start_step
    if is_chief:
        _write_json(workdir, "summary.json", _summary(workdir, program, run, state, evals,
                                                       steps_run, wall, previous))
    run.writer.close()
    _refuse_if_nothing_learned(program, state, workdir)
    return TrainResult(program.global_state(state), run.last_metrics, steps_run, wall,
                       run.preempted, evals, [m.label for m in group], [m.seed for m in group])


def _stored_result(program, state, group, summary: dict[str, Any]) -> TrainResult:
    """The result of a complete run, read back from its summary.json."""
    from bridge_jax.report_data import from_json

    evals = from_json(summary.get("evals", []))
    evals = [evals] if isinstance(evals, dict) else list(evals)
    metrics = {k: v for k, v in from_json(summary).items()
               if isinstance(v, float) and k not in ("wall_time_s", "total_wall_time_s")}
    return TrainResult(program.global_state(state), metrics, 0, 0.0, False, evals,
                       [m.label for m in group], [m.seed for m in group])


def _batches(program, start_step: int, num_steps: int):
    """The host batches of ``num_steps`` steps from ``start_step``, computed ahead: on one
    thread, or by ``data.num_workers`` processes (same batches, bitwise)."""
    workers = int(program.config.data.get("num_workers", 0))
    if workers > 0:
        return workers_lib.prefetch_in_processes(program.batch_recipe(), start_step,
                                                 num_steps, workers)
    return data.prefetch(program.get_batch, start_step, num_steps)


def _refuse_if_nothing_learned(program, state, workdir: str) -> None:
    """NonFiniteError when every update of every member was skipped as non-finite."""
    step = program.progress(state)
    counts = [s.count for s in program.statuses(state)]
    if step > 0 and all(count >= step for count in counts):
        raise NonFiniteError(
            f"every one of the {step} updates was non-finite and skipped "
            f"(nonfinite_policy='skip'), so nothing was learned; see {workdir}/summary.json. "
            "Lower the learning rates or check the data and model scale.")


def _summary(workdir, program, run, state, evals, steps_run, wall,
             previous: dict[str, Any]) -> dict[str, Any]:
    statuses = program.statuses(state)
    last_metrics = run.last_metrics or _last_logged(workdir)
    summary = {
        "complete": not run.preempted, "preempted": run.preempted,
        "num_steps": int(program.config.num_steps), "step": program.progress(state),
        "steps_run": steps_run, "wall_time_s": wall,
        "total_wall_time_s": float(previous.get("total_wall_time_s", 0.0)) + wall,
        "num_members": program.n,
        "skipped_nonfinite_updates": sum(s.count for s in statuses),
        "nonfinite": [dataclasses.asdict(s) for s in statuses],
        **last_metrics,
    }
    if evals:
        summary["evals_step"] = program.progress(state)
        summary["evals"] = evals[0] if program.n == 1 else evals
        summary["evals_reference"] = run.reference
    return jsonable(summary)


def _last_logged(workdir: str) -> dict[str, float]:
    """The last training scalars in metrics.jsonl (a rerun that trained no step)."""
    try:
        records = reporting.read_metrics(workdir, kind="train")
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in records[-1].items() if k != "step"} if records else {}


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
