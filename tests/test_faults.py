"""Faults a careless or hostile user causes (issue 22, round two of the reliability work):
junk checkpoint steps, lost digests, failed saves, two runs on one workdir, resumes with
another config, reruns of finished runs, runs that learn nothing, repeated signals.

Where the behaviour is a process's (exit status, one error line, prompt exit, signals)
the tests run the CLI in subprocesses on the tiny ring config; the checkpoint and lock
mechanics are tested in-process on small pytrees.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from bridge_jax import checkpointing, resume, workdir_lock
from tests.train_helpers import ROOT, cache_dir, subprocess_env

CONFIG = "configs/ring.py:tiny"
FLAGS = ("--config.log_every=1", "--config.num_final_samples=0")


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    return subprocess_env(cache_dir(tmp_path_factory), PYTHONUNBUFFERED="1")


def _cli(workdir, *extra, config: str = CONFIG) -> list[str]:
    return [sys.executable, "-m", "bridge_jax.main", f"--config={config}",
            f"--workdir={workdir}", *FLAGS, *extra]


def _run(args, env, timeout=300, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def _one_error_line(result: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [x for x in result.stderr.splitlines() if x.startswith("bridge_jax: error:")]
    assert len(lines) == 1, result.stderr[-3000:]
    return lines[0]


def _steps(workdir) -> list[int]:
    d = Path(workdir) / "checkpoints"
    return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit())


@pytest.fixture(scope="module")
def finished(tmp_path_factory, env) -> Path:
    """A finished 4-step tiny ring run (checkpoints at 2 and 4)."""
    workdir = tmp_path_factory.mktemp("finished") / "run"
    result = _run(_cli(workdir), env)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


def _copy(finished: Path, tmp_path: Path) -> Path:
    workdir = tmp_path / "run"
    shutil.copytree(finished, workdir, ignore=shutil.ignore_patterns(".lock"))
    return workdir


# ---- checkpoints: junk steps, lost digests, failed saves ----------------------------------

def _small_state(value: float) -> dict:
    return {"w": np.full((3, 4), value, np.float32), "step": np.int32(value)}


def _saved(directory: Path, steps=(2, 4)) -> checkpointing.Checkpointer:
    ckpt = checkpointing.Checkpointer(directory, max_to_keep=5)
    for step in steps:
        ckpt.save(step, _small_state(step))
    ckpt.wait()
    ckpt.close()
    return ckpt


@pytest.mark.parametrize("damage", ["empty_newer_step", "newest_step_lost_its_item"])
def test_a_junk_step_directory_falls_back_and_is_moved_aside(tmp_path, damage):
    directory = tmp_path / "checkpoints"
    _saved(directory)
    if damage == "empty_newer_step":
        (directory / "999999").mkdir()
    else:
        shutil.rmtree(directory / "4" / "default")
    ckpt = checkpointing.Checkpointer(directory)
    state, step = ckpt.restore_latest(_small_state(0))
    ckpt.close()
    expected = 4 if damage == "empty_newer_step" else 2
    assert step == expected and float(state["w"][0, 0]) == expected
    aside = [p.name.split(".")[0] for p in (tmp_path / "checkpoints_unreadable").iterdir()]
    assert aside == (["999999"] if damage == "empty_newer_step" else ["4"])


def test_a_step_without_its_digest_is_unreadable_unless_allowed(tmp_path):
    directory = tmp_path / "checkpoints"
    _saved(directory)
    (directory / "4" / "_CHECKPOINT_METADATA").unlink()
    backup = tmp_path / "backup"
    shutil.copytree(directory, backup)

    ckpt = checkpointing.Checkpointer(directory)
    _, step = ckpt.restore_latest(_small_state(0))
    ckpt.close()
    assert step == 2 and _steps(tmp_path) == [2]

    allowed = checkpointing.Checkpointer(backup, allow_unverified=True)
    state, step = allowed.restore_latest(_small_state(0))
    allowed.close()
    assert step == 4 and float(state["w"][0, 0]) == 4.0


def test_a_failed_save_is_one_error_naming_the_newest_complete_step(tmp_path):
    directory = tmp_path / "checkpoints"
    ckpt = checkpointing.Checkpointer(directory, max_to_keep=5)
    ckpt.save(2, _small_state(2))
    ckpt.wait()
    big = {"w": np.random.default_rng(0).random((64, 1024), np.float32)}  # 256 KB
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, hard))  # files over 16 KB: EFBIG
    try:
        with pytest.raises(checkpointing.CheckpointSaveError) as err:
            ckpt.save(4, big)
            ckpt.wait()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    ckpt.close()
    message = str(err.value)
    assert "File too large" in message and "newest complete checkpoint is step 2" in message


@pytest.mark.parametrize("blocker", ["checkpoints", "checkpoints_unreadable"])
def test_an_unusable_checkpoint_directory_is_refused_before_training(tmp_path, env, blocker):
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / blocker).write_text("not a directory")
    result = _run(_cli(workdir), env, timeout=120)
    assert result.returncode == 2
    line = _one_error_line(result)
    assert blocker in line and "is not a directory" in line
    assert not (workdir / "metrics.jsonl").exists()  # refused before the first step


def test_a_disk_that_fills_up_exits_at_once_with_one_line(tmp_path, env):
    """Under a 16 KB file-size limit (EFBIG, what a full disk looks like to the writer)
    a run fails on its first big write with one line; orbax's non-daemon threads used
    to hold the exit for about 300 s after several tracebacks."""
    no_cache = {k: v for k, v in env.items() if not k.startswith("JAX_PERSISTENT")
                and k != "JAX_COMPILATION_CACHE_DIR"}
    command = " ".join(shlex.quote(a) for a in _cli(tmp_path / "run"))
    t0 = time.monotonic()
    result = _run(["bash", "-c", f"ulimit -f 16 && exec {command}"], no_cache, timeout=280)
    elapsed = time.monotonic() - t0
    assert result.returncode == 1, result.stderr[-3000:]
    line = _one_error_line(result)
    # The first failed write named: the checkpoints' here (sample pictures are drawn on a
    # worker thread, so their failure no longer comes first), with what a rerun finds.
    assert "File too large" in line
    assert "rerun resumes" in line or "no complete checkpoint exists" in line
    assert elapsed < 150, f"took {elapsed:.0f} s"


# ---- one run per workdir -------------------------------------------------------------------

def test_the_workdir_lock_refuses_a_second_holder_and_frees_on_release(tmp_path):
    first = workdir_lock.WorkdirLock(tmp_path).__enter__()
    with pytest.raises(workdir_lock.WorkdirBusyError, match=f"pid {os.getpid()} on host"):
        workdir_lock.WorkdirLock(tmp_path).__enter__()
    first.release()
    workdir_lock.WorkdirLock(tmp_path).__enter__().release()


def test_lease_locks_expire_or_die_with_their_owner(tmp_path, monkeypatch):
    """The object-store path (no flock): a live, fresh lease refuses; a lease of a dead
    process on this host, or one whose heartbeat is too old, is taken over."""
    monkeypatch.setattr(workdir_lock.WorkdirLock, "_take_flock", lambda self: False)
    lease = tmp_path / workdir_lock.LOCK_NAME
    owner = workdir_lock._owner_record("other")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    cases = {"live": ({**owner, "pid": os.getppid()}, True),
             "dead_process": ({**owner, "pid": dead.pid}, False),
             "expired": ({**owner, "pid": os.getppid(), "host": "elsewhere",
                          "heartbeat": time.time() - 2 * workdir_lock.LEASE_EXPIRY_S}, False)}
    for name, (record, refused) in cases.items():
        lease.write_text(json.dumps(record))
        if refused:
            with pytest.raises(workdir_lock.WorkdirBusyError):
                workdir_lock.WorkdirLock(tmp_path).__enter__()
            continue
        lock = workdir_lock.WorkdirLock(tmp_path).__enter__()
        assert json.loads(lease.read_text())["pid"] == os.getpid(), name
        lock.release()
        assert not lease.exists(), name


def _start(args, env, log: Path) -> subprocess.Popen:
    with open(log, "w") as f:  # a file, not a pipe: a full pipe would block the run
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT)


def _wait_for_checkpoint(workdir: Path, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 240
    while not ((workdir / "checkpoints").is_dir() and _steps(workdir)):
        assert proc.poll() is None, log.read_text()[-3000:]
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("no checkpoint within 240 s:\n" + log.read_text()[-3000:])
        time.sleep(0.05)


LONG = ("--config.num_steps=1000000", "--config.checkpoint_every=20",
        "--config.eval.every=0", "--config.log_every=20")


def test_a_second_run_on_a_live_workdir_is_refused_and_a_killed_one_does_not_block(
        tmp_path, env):
    workdir, log = tmp_path / "run", tmp_path / "first.log"
    first = _start(_cli(workdir, *LONG), env, log)
    try:
        _wait_for_checkpoint(workdir, first, log)
        # Paused, not ended: it holds the workdir as a running one does, without training
        # (and saving) on a core of its own while the second one starts.
        first.send_signal(signal.SIGSTOP)
        second = _run(_cli(workdir, *LONG), env, timeout=120)
        assert second.returncode == 2
        assert "is in use by another run (pid " + str(first.pid) in _one_error_line(second)
    finally:
        first.kill()
        first.wait()
    # The kill -9 left the lock file but not the lock: the rerun gets past it (and is then
    # refused for its num_steps, which lies below the newest checkpoint).
    third = _run(_cli(workdir, *LONG[1:], "--config.num_steps=1"), env, timeout=120)
    assert third.returncode == 2 and "is below step" in _one_error_line(third)


# ---- resuming with another config ----------------------------------------------------------

@pytest.mark.parametrize(("flag", "field"), [("--config.seed=1", "seed"),
                                              ("--config.batch_size=32", "batch_size"),
                                              ("--config.data.name=grid", "data.name")])
def test_a_resume_with_another_config_is_refused_and_the_record_kept(
        finished, tmp_path, env, flag, field):
    workdir = _copy(finished, tmp_path)
    record = (workdir / "config.json").read_bytes(), (workdir / "members.json").read_bytes()
    result = _run(_cli(workdir, flag, "--config.num_steps=6"), env, timeout=120)
    assert result.returncode == 2
    line = _one_error_line(result)
    assert field in line and "use a new workdir" in line
    assert ((workdir / "config.json").read_bytes(),
            (workdir / "members.json").read_bytes()) == record


def test_extending_a_finished_run_keeps_the_schedules_horizons(finished, tmp_path, env):
    """num_steps 4 → 8 with α's horizon at -1: the updates of steps 5–8 use α's end (0)
    instead of climbing back up a stretched cosine (0.146 → 0.309 before). (The α
    logged at step s is the one its update used, the schedule's value at s − 1.)"""
    workdir = _copy(finished, tmp_path)
    result = _run(_cli(workdir, "--config.num_steps=8"), env)
    assert result.returncode == 0, result.stderr[-3000:]
    alphas = {r["step"]: r["alpha"] for r in _train_records(workdir)}
    assert [alphas[s] for s in range(5, 9)] == [0.0] * 4
    assert 1.0 > alphas[2] > alphas[4] > 0.0
    changes = [json.loads(x) for x in (workdir / "resumes.jsonl").read_text().splitlines()]
    assert changes[-1]["changed"] == {"num_steps": [4, 8]}
    assert json.loads((workdir / "config.json").read_text())["num_steps"] == 4


def test_pinned_horizons_are_the_first_runs(tmp_path):
    from tests.train_helpers import load_config

    first = json.loads(load_config("ring", "tiny").to_json_best_effort())
    longer = load_config("ring", "tiny")
    longer.num_steps = 10
    pinned = resume.pin_horizons(longer, first)
    assert (pinned.alpha.transition_steps, pinned.critic.lr_decay_steps,
            pinned.generator.lr_decay_steps) == (4, 4, 4)
    longer.critic.lr_decay_steps = 10  # set explicitly: the user's horizon stands
    assert resume.pin_horizons(longer, first).critic.lr_decay_steps == 10


# ---- results: reruns, metrics, runs that learn nothing -------------------------------------

def _train_records(workdir: Path) -> list[dict]:
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if "member" not in r]


def test_rerunning_a_finished_run_keeps_its_summary(finished, tmp_path, env):
    workdir = _copy(finished, tmp_path)
    summary = (workdir / "summary.json").read_bytes()
    metrics = (workdir / "metrics.jsonl").read_bytes()
    result = _run(_cli(workdir), env, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "already complete" in result.stdout and "scores: " in result.stdout
    assert (workdir / "summary.json").read_bytes() == summary
    assert (workdir / "metrics.jsonl").read_bytes() == metrics
    assert json.loads(summary)["evals"]["num_modes"] == 8


def test_a_resume_writes_no_metrics_line_twice(finished, tmp_path, env):
    workdir = _copy(finished, tmp_path)
    shutil.rmtree(workdir / "checkpoints" / "4")  # the run resumes from step 2
    with open(workdir / "metrics.jsonl", "a") as f:
        f.write('{"step": 4, "alph')  # and a line torn by a kill
    result = _run(_cli(workdir), env)
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines()]
    keys = [(r["step"], r.get("member")) for r in records]
    assert len(keys) == len(set(keys)), keys
    assert [r["step"] for r in records] == sorted(r["step"] for r in records)
    assert [r["step"] for r in records if "member" not in r] == [1, 2, 3, 4]
    assert [r["step"] for r in records if "member" in r] == [2, 4]


def test_a_run_whose_every_update_is_skipped_fails_and_says_so(tmp_path, env):
    """σ = e^100 overflows float32: every update is non-finite, and skipped."""
    workdir = tmp_path / "run"
    result = _run(_cli(workdir, "--config.nonfinite_policy=skip",
                       "--config.model.init_log_scale=100"), env)
    assert result.returncode == 2
    assert "nothing was learned" in _one_error_line(result)
    strict = json.loads((workdir / "summary.json").read_text(),
                        parse_constant=lambda c: pytest.fail(f"bare {c} in summary.json"))
    assert strict["skipped_nonfinite_updates"] == 4


# ---- signals -------------------------------------------------------------------------------

def test_a_second_sigterm_during_the_preemption_save_is_ignored(tmp_path, env):
    workdir, log = tmp_path / "run", tmp_path / "run.log"
    proc = _start(_cli(workdir, *LONG), env, log)
    _wait_for_checkpoint(workdir, proc, log)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert "preempted, checkpoint saved" in text and "received again: ignored" in text
    assert not [p for p in (workdir / "checkpoints").iterdir() if "tmp" in p.name]


def test_stop_signals_save_once_and_a_second_ctrl_c_exits_now():
    """(In-process: a second Ctrl-C sent to a running CLI usually lands after it has
    already saved and exited, so the handler itself is tested here.)"""
    from bridge_jax.train_loop import StopSignals

    def deliver(signum):
        os.kill(os.getpid(), signum)
        time.sleep(0.05)  # Python runs the handler between bytecodes

    before = signal.getsignal(signal.SIGINT)  # SIG_IGN in a pytest-xdist worker
    with StopSignals() as stop:
        deliver(signal.SIGTERM)
        assert stop.received
        deliver(signal.SIGTERM)  # ignored: no exception, still set
        deliver(signal.SIGINT)  # the first Ctrl-C: also only the flag
        with pytest.raises(KeyboardInterrupt):
            deliver(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before  # restored on exit


def test_ctrl_c_twice_is_one_line_and_status_130(tmp_path, monkeypatch, capsys):
    from bridge_jax import main as cli
    from bridge_jax import train

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    def exit_now(status):
        raise SystemExit(status)

    monkeypatch.setattr(train, "train_and_evaluate", interrupted)
    monkeypatch.setattr(cli.os, "_exit", exit_now)
    argv = ["bridge_jax", f"--config={CONFIG}", f"--workdir={tmp_path}"]
    monkeypatch.setattr(sys, "argv", argv)
    cli.FLAGS(argv)
    try:
        with pytest.raises(SystemExit) as exit_:
            cli.main([])
    finally:
        cli.FLAGS.unparse_flags()
    assert exit_.value.code == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("bridge_jax: error: interrupted") and "rerun resumes" in err[-1]


def test_a_refused_restore_prints_no_coroutine_noise(finished, tmp_path, env):
    """A record edited to claim another model width (so the record check passes): the
    restore fails on shapes, with one line and none of the "Exception ignored in
    coroutine" lines of orbax's in-flight reads."""
    workdir = _copy(finished, tmp_path)
    members = json.loads((workdir / "members.json").read_text())
    members[0]["config"]["model"]["width"] = 32
    (workdir / "members.json").write_text(json.dumps(members))
    result = _run(_cli(workdir, "--config.model.width=32"), env, timeout=120)
    assert result.returncode == 2
    assert "no readable checkpoint" in _one_error_line(result)
    assert "Exception ignored" not in result.stderr and "never awaited" not in result.stderr


def _unretrieved_task_record(coroutine_file: str, raise_in: str) -> logging.LogRecord:
    """asyncio's "never retrieved" record for a task whose coroutine is defined in
    ``coroutine_file`` and whose exception was raised by code compiled as ``raise_in``."""
    try:
        exec(compile("raise ValueError('short read')", raise_in, "exec"))
    except ValueError:
        exc_info = sys.exc_info()
    message = ("Task exception was never retrieved\nfuture: <Task finished name='Task-7' "
               f"coro=<read() done, defined at {coroutine_file}:12> exception=ValueError()>")
    return logging.LogRecord("asyncio", logging.ERROR, __file__, 1, message, None, exc_info)


@pytest.mark.parametrize("coroutine_file, raise_in, dropped", [
    ("/site/orbax/checkpoint/io.py", "/site/orbax/checkpoint/io.py", True),
    ("/site/jax/experimental/array_serialization/serialization.py", "/x/y.py", True),
    ("/home/user/job.py", "/site/tensorstore/__init__.py", True),  # only the traceback
    ("/home/user/job.py", "/home/user/job.py", False),  # a user's own task error is kept
])
def test_only_unretrieved_checkpoint_reads_are_silenced(coroutine_file, raise_in, dropped):
    """The asyncio filter behind the test above: a failed read's task, named by its
    coroutine or its traceback, is dropped; any other unretrieved task error is kept."""
    record = _unretrieved_task_record(coroutine_file, raise_in)
    assert checkpointing._drop_unretrieved_orbax_reads(record) is (not dropped)
    other = logging.LogRecord("asyncio", logging.ERROR, __file__, 1, "Unclosed loop",
                              None, None)
    assert checkpointing._drop_unretrieved_orbax_reads(other) is True


@pytest.mark.parametrize("name, silenced", [
    ("async_deserialize.<locals>.cb", True), ("_LimitInFlightBytes.wait_for_bytes", True),
    ("TypeHandler._read_and_create_array", True), ("my_job", False),
    ("load_my_data", False), ("async_deserialize_my_rows", False)])
def test_only_unawaited_checkpoint_read_coroutines_are_silenced(name, silenced):
    """The warnings filter for read coroutines a failed restore never started: JAX's and
    orbax's read coroutines by their exact (qualified) names; a user's are kept."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", message=checkpointing.UNAWAITED_READS,
                                category=RuntimeWarning)
        warnings.warn(f"coroutine '{name}' was never awaited", RuntimeWarning, stacklevel=1)
    assert (len(caught) == 0) is silenced


@pytest.mark.parametrize("damage", ["deleted", "torn"])
def test_checkpoints_without_a_readable_record_are_refused(finished, tmp_path, env, damage):
    """Without its record a resume could not be checked: refused, nothing rewritten."""
    workdir = _copy(finished, tmp_path)
    for name in ("members.json", "config.json"):
        if damage == "deleted":
            (workdir / name).unlink()
        else:
            (workdir / name).write_text((workdir / name).read_text()[:100])
    result = _run(_cli(workdir, "--config.seed=7", "--config.num_steps=6"), env, timeout=120)
    assert result.returncode == 2
    assert "no readable record" in _one_error_line(result)
    assert _steps(workdir) == [2, 4]


# ---- found by the red-team pass after the fixes above --------------------------------------

def test_an_update_that_overflows_the_parameters_is_caught_and_the_run_recovers(tmp_path,
                                                                                  env):
    """lr 1e30 gives finite losses and gradients but infinite parameters: the guard checks
    the updated parameters too, so the state saved by 'stop' is the finite one before it,
    and a rerun at the default learning rate continues from it."""
    workdir = tmp_path / "run"
    result = _run(_cli(workdir, "--config.generator.learning_rate=1e30"), env)
    assert result.returncode == 2
    assert "non-finite parameters at step 0" in _one_error_line(result)
    rerun = _run(_cli(workdir), env)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    summary = json.loads((workdir / "summary.json").read_text())
    assert np.isfinite(summary["param_norm"]) and summary["skipped_nonfinite_updates"] == 0


def test_the_report_refuses_bad_records_and_outputs_in_one_line(finished, tmp_path, capsys):
    from bridge_jax import report

    workdir = _copy(finished, tmp_path)
    with open(workdir / "metrics.jsonl", "ab") as f:
        f.write(b"\xff\xfe\x00x\n")  # not UTF-8: skipped
    assert report.main([str(workdir), "--out", str(tmp_path / "ok"), "--no-plots"]) == 0
    (tmp_path / "a_file").write_text("")
    assert report.main([str(workdir), "--out", str(tmp_path / "a_file"), "--no-plots"]) == 2
    (workdir / "summary.json").write_text("[]")
    assert report.main([str(workdir), "--out", str(tmp_path / "bad"), "--no-plots"]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2 and all(e.startswith("bridge_jax.report: error:") for e in errors)
    assert "cannot write the report" in errors[0] and "expected a JSON object" in errors[1]


def test_jax_that_cannot_start_is_one_line(tmp_path, env):
    result = _run(_cli(tmp_path / "run"), {**env, "JAX_PLATFORMS": "bogus"}, timeout=120)
    assert result.returncode == 2
    assert "JAX cannot start a backend" in _one_error_line(result)


def test_deleting_or_planting_the_lock_file_neither_unlocks_nor_overwrites(tmp_path):
    """The flock is on the workdir itself; .lock only names the owner and is never
    written through a symlink."""
    first = workdir_lock.WorkdirLock(tmp_path).__enter__()
    (tmp_path / workdir_lock.LOCK_NAME).unlink()
    with pytest.raises(workdir_lock.WorkdirBusyError):
        workdir_lock.WorkdirLock(tmp_path).__enter__()
    first.release()
    victim = tmp_path.parent / f"{tmp_path.name}_victim.txt"
    victim.write_text("precious")
    (tmp_path / workdir_lock.LOCK_NAME).symlink_to(victim)
    workdir_lock.WorkdirLock(tmp_path).__enter__().release()
    assert victim.read_text() == "precious"


def test_a_finished_sweep_refuses_other_settings_and_extends_to_more_steps(tmp_path):
    """run_sweep with a stand-in trainer that writes each group's record and summary: a
    rerun with another seed is refused before sweep.json changes; a rerun with more
    steps trains every group again (a finished group is complete only at its length)."""
    from bridge_jax import storage, sweeps
    from tests.train_helpers import load_config

    def sweep_config(**overrides):
        config = load_config("sweeps/ring", "tiny")
        for key, value in overrides.items():
            setattr(config, key, value)
        return config

    trained = []

    def fake_train_group(group, sub):
        trained.append(sub)
        storage.make_dirs(sub)
        storage.write_json(storage.join(sub, "members.json"), [m.record() for m in group])
        storage.write_json(storage.join(sub, "summary.json"),
                           {"complete": True, "num_steps": group[0].config.num_steps})
        return type("Result", (), {"preempted": False})()

    def run(config):
        return sweeps.run_sweep(config, sweeps.expand(config), str(tmp_path), fake_train_group)

    run(sweep_config())
    groups = len(trained)
    assert groups >= 2
    record = (tmp_path / sweeps.SWEEP_FILE).read_bytes()
    with pytest.raises(resume.ConfigError, match="seeds"):
        run(sweep_config(seed=5))
    assert (tmp_path / sweeps.SWEEP_FILE).read_bytes() == record and len(trained) == groups
    run(sweep_config())  # the same command: every group is complete, nothing trains
    assert len(trained) == groups
    run(sweep_config(num_steps=8))
    assert len(trained) == 2 * groups


def test_a_fresh_start_in_a_used_workdir_keeps_none_of_the_old_summary(finished, tmp_path,
                                                                         env):
    workdir = _copy(finished, tmp_path)
    shutil.rmtree(workdir / "checkpoints")  # nothing to resume: the run starts afresh
    result = _run(_cli(workdir), env)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["total_wall_time_s"] == summary["wall_time_s"]
