"""Reliability: stop/resume, checkpoint integrity, non-finite values, bad input at the
run's edges, a dead peer in a multi-process run, and determinism.

The stop/resume, corruption and multi-process tests drive the real CLI
(``python -m bridge_jax.main``) as subprocesses and compare final checkpoints
bitwise with an uninterrupted run of the same command. The subprocesses and the
in-process runs compile without most XLA optimizations and share the session's
persistent JAX compilation cache (``tests/train_helpers.py``), so that a program is
compiled once.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import serialization

from bridge_jax import checkpointing, configuration, data, members, reporting, train
from tests.train_helpers import (
    PoisonedDataset,
    cache_dir,
    fast_compiles,
    load_config,
    subprocess_env,
)

ROOT = Path(__file__).resolve().parents[1]
CONFIG = f"{ROOT / 'configs' / 'ring.py'}:tiny"
NUM_STEPS = 20
# log every step and checkpoint every other step: slow enough to interrupt mid-way.
RUN_FLAGS = (f"--config.num_steps={NUM_STEPS}", "--config.checkpoint_every=2",
             "--config.log_every=1", "--config.sample_every=1000000",
             "--config.num_final_samples=0", "--config.keep_checkpoints=3")
KEEP = 3


# ---------------------------------------------------------------------------------------
# helpers


def _ring_config(arg: str | None = "tiny") -> ml_collections.ConfigDict:
    return load_config("ring", arg)


def _cli(workdir, *extra) -> list[str]:
    return [sys.executable, "-m", "bridge_jax.main", f"--config={CONFIG}",
            f"--workdir={workdir}", *RUN_FLAGS, *extra]


def _run(args, env, timeout=240) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _start(args, env, log_path: Path) -> subprocess.Popen:
    with open(log_path, "w") as log:  # a file, not a pipe: a full pipe would block the run
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def _wait_for(condition, proc: subprocess.Popen, log_path: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"process exited ({proc.returncode}) before the condition held:\n"
                        + log_path.read_text()[-3000:])
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out after {timeout} s:\n" + log_path.read_text()[-3000:])
        time.sleep(0.02)


def _steps(workdir) -> list[int]:
    d = Path(workdir) / "checkpoints"
    return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) if d.is_dir() else []


_TEMPLATE = None


def _template():
    """The abstract train state of the tiny ring config (no compile: eval_shape)."""
    global _TEMPLATE
    if _TEMPLATE is None:
        _TEMPLATE = jax.eval_shape(lambda: train.build(_ring_config(), (2,))[1])
    return _TEMPLATE


def _restore(workdir) -> tuple[dict, int]:
    """(host state dict, step) of the newest readable checkpoint in ``workdir``."""
    ckpt = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"))
    try:
        restored = ckpt.restore_latest(_template())
    finally:
        ckpt.close()
    assert restored is not None, f"no checkpoint in {workdir}"
    state, step = restored
    return _host(state), step


def _host(state) -> dict:
    return jax.tree.map(np.asarray, serialization.to_state_dict(state))


def _assert_identical(a: dict, b: dict, skip: tuple[str, ...] = ()) -> None:
    """Every leaf (params, both optimizer states, rng, step, ...) equal bitwise."""
    la = jax.tree_util.tree_flatten_with_path(a)[0]
    lb = jax.tree_util.tree_flatten_with_path(b)[0]
    assert [p for p, _ in la] == [p for p, _ in lb]
    compared = 0
    for (path, x), (_, y) in zip(la, lb, strict=True):
        name = jax.tree_util.keystr(path)
        if any(s in name for s in skip):
            continue
        assert x.dtype == y.dtype and x.shape == y.shape, name
        assert np.array_equal(x, y), f"{name} differs"
        compared += 1
    assert compared > 10


def _last_metrics(workdir) -> dict:
    """The last training record (but its speed) and the last evaluation record."""
    last = reporting.read_metrics(str(workdir))[-1]
    last.pop("steps_per_s")
    return {"train": last, "eval": reporting.read_metrics(str(workdir), "eval")[-1]}


def _one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("bridge_jax: error:")]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    """The subprocesses' environment: CPU only, unoptimized compiles and the session's
    persistent compilation cache (train_helpers.py)."""
    return subprocess_env(cache_dir(tmp_path_factory), PYTHONUNBUFFERED="1")


@pytest.fixture(scope="module", autouse=True)
def _compile_cache(env):
    """The in-process runs compile as the subprocesses do, into the same cache (undone
    after the module): an in-process state is compared bitwise only with another
    in-process one, a subprocess's only with another subprocess's."""
    with fast_compiles(env["JAX_COMPILATION_CACHE_DIR"]):
        yield


def _data_files(step_dir: Path) -> list[Path]:
    """The array data files of one orbax step (files inside any ``d/`` folder)."""
    return sorted(p for p in step_dir.rglob("*") if p.is_file() and p.parent.name == "d")


class Runs:
    """The CLI runs of section 1 and 2, made once: an uninterrupted reference run; a run
    killed with SIGKILL and one stopped with SIGTERM once they saved step >= 4, each then
    rerun to the end; and a copy of the reference with its newest step corrupted, rerun.
    Independent runs go in parallel to use both cores."""

    def __init__(self, root: Path, env: dict[str, str]):
        self.reference = root / "reference"
        r = _run(_cli(self.reference), env)
        assert r.returncode == 0, r.stderr[-3000:]
        assert f"bridge_jax: done: {NUM_STEPS} steps" in r.stdout
        self.state, self.step = _restore(self.reference)
        self.metrics = _last_metrics(self.reference)

        self.killed, self.termed = root / "killed", root / "termed"
        procs = {w: _start(_cli(w), env, w.with_suffix(".log"))
                 for w in (self.killed, self.termed)}
        signals = {self.killed: signal.SIGKILL, self.termed: signal.SIGTERM}
        try:
            deadline = time.monotonic() + 240
            while signals:
                for w, proc in procs.items():
                    if w in signals and any(s >= 4 for s in _steps(w)):
                        proc.send_signal(signals.pop(w))
                    elif w in signals and proc.poll() is not None:
                        pytest.fail(f"{w.name} exited early:\n"
                                    + w.with_suffix(".log").read_text()[-3000:])
                assert time.monotonic() < deadline, "runs did not reach step 4"
                time.sleep(0.02)
            self.first_rc = {w: proc.wait(timeout=120) for w, proc in procs.items()}
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.kill()
        self.first_out = {w: w.with_suffix(".log").read_text() for w in procs}
        self.steps_after_stop = {w: _steps(w) for w in procs}
        self.summary_after_term = json.loads((self.termed / "summary.json").read_text())

        self.corrupted = root / "corrupted"
        shutil.copytree(self.reference, self.corrupted)
        for f in _data_files(self.corrupted / "checkpoints" / str(NUM_STEPS)):
            f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])  # truncate array files

        workdirs = (self.killed, self.termed, self.corrupted)
        reruns = {w: subprocess.Popen(_cli(w), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True) for w in workdirs}
        self.rerun = {}
        for w, proc in reruns.items():
            out, err = proc.communicate(timeout=240)
            self.rerun[w] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, env) -> Runs:
    return Runs(tmp_path_factory.mktemp("runs"), env)


# ---------------------------------------------------------------------------------------
# 1. stop and resume


def test_reference_run_keeps_only_the_newest_checkpoints(runs):
    assert runs.step == NUM_STEPS
    assert _steps(runs.reference) == [NUM_STEPS - 2 * i for i in reversed(range(KEEP))]
    summary = json.loads((runs.reference / "summary.json").read_text())
    assert summary["steps_run"] == NUM_STEPS and summary["preempted"] is False


def _assert_rerun_matches_reference(runs, workdir) -> None:
    r = runs.rerun[workdir]
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resumed from checkpoint step" in r.stderr
    state, step = _restore(workdir)
    assert step == NUM_STEPS
    _assert_identical(state, runs.state)
    assert _last_metrics(workdir) == runs.metrics


def test_sigkill_then_rerun_is_bitwise_identical_to_uninterrupted_run(runs):
    assert runs.first_rc[runs.killed] == -signal.SIGKILL
    saved = runs.steps_after_stop[runs.killed]
    assert saved and max(saved) < NUM_STEPS, "the run was not interrupted mid-way"
    _assert_rerun_matches_reference(runs, runs.killed)


def test_sigterm_saves_and_exits_cleanly_then_rerun_matches(runs):
    out = runs.first_out[runs.termed]
    assert runs.first_rc[runs.termed] == 0, out[-3000:]
    assert "SIGTERM received: saving a checkpoint and stopping" in out
    saved = max(runs.steps_after_stop[runs.termed])
    summary = runs.summary_after_term
    assert summary["preempted"] is True
    assert summary["steps_run"] == saved < NUM_STEPS  # saved at the step it stopped at
    assert f"bridge_jax: preempted, checkpoint saved: {saved} steps" in out
    r = runs.rerun[runs.termed]
    assert f"resumed from checkpoint step {saved}" in r.stderr
    assert f"bridge_jax: done: {NUM_STEPS - saved} steps" in r.stdout
    _assert_rerun_matches_reference(runs, runs.termed)


# ---------------------------------------------------------------------------------------
# 2. checkpoint integrity


def test_corrupt_newest_checkpoint_falls_back_and_finishes_identically(runs):
    r = runs.rerun[runs.corrupted]
    assert f"checkpoint step {NUM_STEPS} in {runs.corrupted / 'checkpoints'} is unreadable" \
        in r.stderr
    assert f"resumed from checkpoint step {NUM_STEPS - 2}" in r.stderr
    assert "bridge_jax: done: 2 steps" in r.stdout
    aside = list((runs.corrupted / "checkpoints_unreadable").iterdir())
    assert [p.name.split(".")[0] for p in aside] == [str(NUM_STEPS)]  # kept, not deleted
    _assert_rerun_matches_reference(runs, runs.corrupted)


def _corrupt(path: Path, mode: str) -> None:
    raw = bytearray(path.read_bytes())
    if mode == "delete":
        path.unlink()
    elif mode == "truncate":
        path.write_bytes(bytes(raw[: len(raw) // 2]))
    else:  # "flip@q": flip one bit at q of the length: same size, different content
        raw[int(float(mode.split("@")[1]) * len(raw))] ^= 0x01
        path.write_bytes(bytes(raw))


# Orbax leaves un-awaited tasks behind when it fails to read a corrupted step.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_no_single_file_corruption_restores_wrong_content(tmp_path, runs, caplog):
    """Orbax restores flipped bytes in an array file silently; the digest must catch it."""
    good = runs.state
    source = runs.reference / "checkpoints"
    newest = source / str(NUM_STEPS)
    cases = [(f, "truncate") for f in sorted(p for p in newest.rglob("*") if p.is_file())]
    cases += [(f, m) for f in _data_files(newest) for m in ("flip@0.25", "flip@0.5", "delete")]
    assert len(cases) > 10
    caplog.set_level(logging.INFO, logger="bridge_jax")
    outcomes = {"same": 0, "fell_back": 0, "digest": 0}
    for i, (f, mode) in enumerate(cases):
        ckpts = tmp_path / f"c{i}" / "checkpoints"
        shutil.copytree(source, ckpts)
        _corrupt(ckpts / f.relative_to(source), mode)
        caplog.clear()
        state, step = _restore(ckpts.parent)
        what = f"{mode} {f.relative_to(newest)}"
        if step == NUM_STEPS:  # the damage was in a file the restore does not need
            _assert_identical(state, good)
            outcomes["same"] += 1
            continue
        assert step == NUM_STEPS - 2, what
        assert f"checkpoint step {NUM_STEPS} in {ckpts} is unreadable" in caplog.text, what
        outcomes["fell_back"] += 1
        outcomes["digest"] += "does not match its SHA-256 digest" in caplog.text
        shutil.rmtree(ckpts.parent)
    assert outcomes["fell_back"] > 0
    assert outcomes["digest"] > 0, f"no corruption needed the digest: {outcomes}"


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_every_checkpoint_corrupt_is_a_clear_error(tmp_path, env, runs):
    workdir = tmp_path / "run"
    shutil.copytree(runs.reference, workdir)
    for step in _steps(workdir):
        for f in _data_files(workdir / "checkpoints" / str(step)):
            f.unlink()
    with pytest.raises(checkpointing.CheckpointError) as err:
        _restore(workdir)
    assert str(workdir / "checkpoints") in str(err.value)
    for step in _steps(workdir):
        assert f"step {step}:" in str(err.value)
    assert _steps(workdir) == _steps(runs.reference)  # nothing moved or deleted

    r = _run(_cli(workdir), env)
    assert r.returncode == 2, r.stderr[-3000:]
    line = _one_error_line(r.stderr)
    assert f"no readable checkpoint in {workdir / 'checkpoints'}" in line


def test_save_never_overwrites_an_existing_step(tmp_path):
    ckpt = checkpointing.Checkpointer(str(tmp_path / "checkpoints"), max_to_keep=5)
    first = {"w": np.arange(4, dtype=np.float32), "step": np.int32(7)}
    ckpt.save(7, first)
    ckpt.wait()
    files = {p: p.stat().st_mtime_ns for p in (tmp_path / "checkpoints" / "7").rglob("*")}
    ckpt.save(7, {"w": np.full(4, 9.0, np.float32), "step": np.int32(7)})
    ckpt.wait()
    assert {p: p.stat().st_mtime_ns for p in files} == files
    restored, step = ckpt.restore_latest({"w": np.zeros(4, np.float32), "step": np.int32(0)})
    ckpt.close()
    assert step == 7 and np.array_equal(restored["w"], first["w"])


def test_checkpoint_digest_covers_every_leaf():
    base = {"a": np.arange(3, dtype=np.float32), "b": {"c": np.int32(1)}}
    digest = checkpointing.state_digest(base)
    assert digest == checkpointing.state_digest(jax.tree.map(np.copy, base))
    for changed in ({**base, "a": np.array([0, 1, 2.5], np.float32)},
                    {**base, "b": {"c": np.int32(2)}},
                    {**base, "a": np.arange(3, dtype=np.float64)},
                    {"a2": base["a"], "b": base["b"]}):
        assert checkpointing.state_digest(changed) != digest


# ---------------------------------------------------------------------------------------
# 3. non-finite values (in-process, NaN batches injected at chosen steps)


def _poison(monkeypatch, steps) -> None:
    real = members.make_dataset
    monkeypatch.setattr(members, "make_dataset",
                        lambda config, **kw: PoisonedDataset(real(config, **kw), steps))


def _small_config(**overrides) -> ml_collections.ConfigDict:
    c = _ring_config()
    c.num_final_samples = 0
    c.sample_every = 10**6
    c.alpha.transition_steps = 8  # α(step) independent of num_steps
    c.generator.lr_decay_steps = c.critic.lr_decay_steps = 8  # and so are the lr schedules
    for key, value in overrides.items():
        node = c
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return c


@pytest.fixture(scope="module")
def clean_runs(tmp_path_factory) -> dict[str, dict]:
    """Uninterrupted in-process runs of 3 steps: seed 0 twice, seed 1 once."""
    out = {}
    for name, seed in (("a", 0), ("b", 0), ("seed1", 1)):
        workdir = str(tmp_path_factory.mktemp(f"clean_{name}"))
        result = train.train_and_evaluate(_small_config(num_steps=3, seed=seed), workdir)
        out[name] = _host(result.state)
        out[f"{name}_workdir"] = workdir
    return out


def test_same_seed_is_bitwise_identical_and_another_seed_differs(clean_runs):
    _assert_identical(clean_runs["a"], clean_runs["b"])
    for part in ("params", "rng"):
        a = jax.tree.leaves(clean_runs["a"][part])
        other = jax.tree.leaves(clean_runs["seed1"][part])
        assert not all(np.array_equal(x, y) for x, y in zip(a, other, strict=True)), part


def _main_in_process(argv: list[str], capsys, monkeypatch) -> tuple[int, str]:
    """Runs the CLI's main() here: (exit status, stderr)."""
    from absl import logging as absl_logging

    from bridge_jax import main as cli

    verbosity = absl_logging.get_verbosity()
    level = logging.getLogger("bridge_jax").level
    capsys.readouterr()
    argv = ["bridge_jax", f"--config={CONFIG}", *argv]
    monkeypatch.setattr(sys, "argv", argv)  # config_flags reads the overrides from sys.argv
    try:
        cli.FLAGS(argv)
        try:
            cli.main([])
            status = 0
        except SystemExit as exit_:
            status = exit_.code
    finally:
        cli.FLAGS.unparse_flags()
        absl_logging.set_verbosity(verbosity)
        logging.getLogger("bridge_jax").setLevel(level)
    return status, capsys.readouterr().err


def test_nonfinite_stop_saves_last_good_state_and_rerun_can_continue(tmp_path, monkeypatch,
                                                                     capsys, clean_runs):
    bad = 3
    _poison(monkeypatch, [bad])
    workdir = str(tmp_path)
    overrides = dict(num_steps=8, log_every=8, checkpoint_every=2, keep_checkpoints=10)
    # Through the CLI's main() in this process (the poisoned data cannot cross processes).
    rc, stderr = _main_in_process(
        [f"--workdir={workdir}", *(f"--config.{k}={v}" for k, v in overrides.items()),
         "--config.num_final_samples=0", "--config.sample_every=1000000",
         "--config.alpha.transition_steps=8", "--config.generator.lr_decay_steps=8",
         "--config.critic.lr_decay_steps=8"], capsys, monkeypatch)
    assert rc == 2, stderr
    message = _one_error_line(stderr)
    assert f"at step {bad}" in message and "critic_loss" in message and workdir in message
    assert _steps(workdir) == [2, bad]  # nothing saved under a later step
    state, step = _restore(workdir)
    assert step == bad and int(state["step"]) == bad
    assert int(state["first_nonfinite_step"]) == bad and int(state["nonfinite_count"]) == 1
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(state["params"]))
    # The state just before the bad step: identical to a clean run of `bad` steps.
    _assert_identical(state, clean_runs["a"], skip=("nonfinite_count", "first_nonfinite"))

    # Rerun in the same workdir with policy 'skip': resumes from the last good state
    # (not frozen), skips the bad update once, and finishes.
    result = train.train_and_evaluate(_small_config(**overrides, nonfinite_policy="skip"),
                                      workdir)
    assert result.steps_run == 8 - bad
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["skipped_nonfinite_updates"] == 1
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(result.state.params))


def test_nonfinite_skip_discards_exactly_the_bad_updates(tmp_path, monkeypatch):
    bad = (2, 4)
    _poison(monkeypatch, bad)
    workdir = str(tmp_path)
    config = _small_config(num_steps=6, log_every=1, checkpoint_every=1, keep_checkpoints=10,
                           nonfinite_policy="skip")
    result = train.train_and_evaluate(config, workdir)
    assert result.steps_run == 6
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["skipped_nonfinite_updates"] == len(bad)
    final = _host(result.state)
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(final["params"]))
    assert int(final["first_nonfinite_step"]) == bad[0]
    applied = {m["step"]: m["update_applied"] for m in reporting.read_metrics(str(tmp_path))}
    assert applied == {s + 1: 0.0 if s in bad else 1.0 for s in range(6)}
    # The update at a bad step is removed: the state after it equals the state before it
    # (but for the step counter and the skip bookkeeping).
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype),
                            serialization.to_state_dict(_template()))
    ckpt = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"), max_to_keep=10)
    states = {s: jax.tree.map(np.asarray, ckpt.manager.restore(
        s, args=ocp.args.StandardRestore(abstract))) for s in (bad[0], bad[0] + 1)}
    ckpt.close()
    parts = ("params", "gen_opt_state", "critic_opt_state", "rng")
    _assert_identical({p: states[bad[0]][p] for p in parts},
                      {p: states[bad[0] + 1][p] for p in parts})
    assert int(states[bad[0] + 1]["step"]) == bad[0] + 1


# ---------------------------------------------------------------------------------------
# 4. bad input at the run's edges (validate_config's own rules: test_config_validation.py)


def test_fewer_steps_than_the_checkpoint_is_a_config_error(clean_runs):
    with pytest.raises(configuration.ConfigError, match="num_steps=2 is below step 3"):
        train.train_and_evaluate(_small_config(num_steps=2, seed=1), clean_runs["seed1_workdir"])


# An unknown field (--config.nonexistent=1) and --config.alpha.start=1.5 are refused the
# same way, with the same checks and more (nothing written), in
# test_train.py::test_cli_overrides_and_errors.
CLI_ERRORS = [
    (["--config.num_steps=abc"], "num_steps"),
    (["--config.model.arch=dcgan"], "model.arch"),
    (["--config.progress_bar=maybe"], "progress_bar"),
]


def test_cli_user_errors_exit_2_with_one_line(tmp_path, env):
    procs = []
    for i, (flags, _) in enumerate(CLI_ERRORS):
        args = [sys.executable, "-m", "bridge_jax.main", f"--config={CONFIG}",
                f"--workdir={tmp_path / str(i)}", *flags]
        procs.append(subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    for proc, (flags, field) in zip(procs, CLI_ERRORS, strict=True):
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 2, (flags, stderr[-2000:])
        assert field in _one_error_line(stderr), (flags, stderr)


# ---------------------------------------------------------------------------------------
# 5. a peer process dies in a multi-process run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_killed_peer_makes_the_survivor_exit_promptly(tmp_path, env):
    workdir = tmp_path / "run"
    port = _free_port()
    procs, logs = [], []
    for i in range(2):
        args = [sys.executable, "-m", "bridge_jax.main", f"--config={CONFIG}",
                f"--workdir={workdir}", "--config.num_steps=100000", "--config.log_every=1",
                "--config.checkpoint_every=100000", "--config.num_final_samples=0",
                f"--coordinator_address=localhost:{port}", "--num_processes=2",
                f"--process_id={i}", "--distributed_timeout_s=30"]
        logs.append(tmp_path / f"process{i}.log")
        procs.append(_start(args, env, logs[-1]))
    try:
        metrics = workdir / "metrics.jsonl"  # written by process 0 once both train
        _wait_for(lambda: metrics.exists() and metrics.read_text().count("\n") >= 3,
                  procs[0], logs[0])
        assert procs[1].poll() is None
        procs[1].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        procs[0].wait(timeout=90)  # a hang fails here
        elapsed = time.monotonic() - killed
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    out = logs[0].read_text()
    assert procs[0].returncode == 1, out[-3000:]
    assert elapsed < 60
    line = _one_error_line(out)
    assert "the distributed runtime failed on process 0 of 2" in line


# ---------------------------------------------------------------------------------------
# 6. data order


def test_batches_are_a_pure_function_of_seed_step_and_process():
    def ds(seed, process_index=0, process_count=1):
        return data.make_dataset("ring", seed=seed, global_batch_size=16,
                                 process_index=process_index, process_count=process_count)

    a = ds(0)
    later = a.get_batch(5)
    first = [a.get_batch(s) for s in range(5)]
    assert np.array_equal(ds(0).get_batch(5), later)  # independent of what came before
    assert np.array_equal(ds(0).get_batch(0), first[0])
    assert not np.array_equal(a.get_batch(6), later)
    assert not np.array_equal(ds(1).get_batch(5), later)
    halves = [ds(0, p, 2).get_batch(5) for p in range(2)]
    assert np.array_equal(np.concatenate(halves), later)
