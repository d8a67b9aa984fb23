"""Preemption across hosts: a SIGTERM to one process of a two-process run makes both
save the same step and exit 0, and a rerun resumes bitwise.

Two ``jax.distributed`` CPU processes (2 devices each) train ring:tiny through the CLI.
Only process 1 receives SIGTERM; JAX's preemption service (started by
``jax.distributed.initialize``) tells process 0, and
``multihost_utils.reached_preemption_sync_point`` names one step for both
(:class:`bridge_jax.train_loop.StopSignals`).

The preempted run is given far more steps than it can train, so the signal always
lands mid-run whatever the machine's speed; with the schedules' horizons set
explicitly, ``num_steps`` changes nothing else, so the rerun ends a few steps after
the preemption and is compared with an uninterrupted two-process run of that length.

Not covered here: a real pod (TPU hosts, the VM's own preemption notice).
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from bridge_jax import checkpointing
from tests import train_helpers as helpers

HORIZON = 1000  # α and learning-rate horizons, fixed so num_steps changes nothing else
FLAGS = ("--config.checkpoint_every=100000", "--config.log_every=5", "--config.eval.every=0",
         "--config.sample_every=100000", "--config.num_final_samples=0",
         f"--config.alpha.transition_steps={HORIZON}",
         f"--config.critic.lr_decay_steps={HORIZON}",
         f"--config.generator.lr_decay_steps={HORIZON}")
EXTRA_STEPS = 6  # trained by the rerun after the preemption step
TIMEOUT_S = 240  # a hang fails the test instead of blocking CI


def _start_pair(workdir: Path, num_steps: int, env, logs: Path, tag: str):
    """Two processes of one run; their stdout+stderr go to ``logs/<tag>.<i>.log``."""
    port = helpers.free_port()
    procs = []
    for i in range(2):
        args = [helpers.PYTHON, "-m", "bridge_jax.main",
                f"--config={helpers.ROOT / 'configs' / 'ring.py'}:tiny",
                f"--workdir={workdir}", f"--config.num_steps={num_steps}", *FLAGS,
                f"--coordinator_address=localhost:{port}", "--num_processes=2",
                f"--process_id={i}", "--distributed_timeout_s=60"]
        with open(logs / f"{tag}.{i}.log", "w") as log:
            procs.append(subprocess.Popen(args, cwd=helpers.ROOT, env=env, stdout=log,
                                          stderr=subprocess.STDOUT))
    return procs


def _wait(procs, logs: Path, tag: str) -> list[str]:
    """Every process's exit, then their logs; a hang or a failure fails the test."""
    try:
        for p in procs:
            p.wait(timeout=TIMEOUT_S)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    outs = [(logs / f"{tag}.{i}.log").read_text() for i in range(2)]
    for i, (p, out) in enumerate(zip(procs, outs, strict=True)):
        assert p.returncode == 0, f"{tag} process {i} exited {p.returncode}:\n{out[-3000:]}"
    return outs


def _digest(workdir: Path, step: int) -> str:
    """The content digest recorded with a checkpoint step (SHA-256 of every array)."""
    metadata = json.loads((workdir / "checkpoints" / str(step) / "_CHECKPOINT_METADATA")
                          .read_text())
    return metadata["custom_metadata"][checkpointing.DIGEST_KEY]


def _steps(workdir: Path) -> list[int]:
    d = workdir / "checkpoints"
    return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) if d.is_dir() else []


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("preemption")
    cache = helpers.cache_dir(tmp_path_factory)
    env = helpers.subprocess_env(cache, XLA_FLAGS="--xla_force_host_platform_device_count=2",
                                 PYTHONUNBUFFERED="1")
    preempted = root / "preempted"
    procs = _start_pair(preempted, 100_000, env, root, "preempted")
    metrics = preempted / "metrics.jsonl"  # process 0's first line: both are training
    deadline = time.monotonic() + TIMEOUT_S
    while not (metrics.exists() and metrics.read_text().strip()):
        if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
            for p in procs:
                p.kill()
            pytest.fail("the two processes did not start training:\n"
                        + (root / "preempted.0.log").read_text()[-3000:])
        time.sleep(0.05)
    procs[1].send_signal(signal.SIGTERM)  # process 1 only
    first = _wait(procs, root, "preempted")
    saved = _steps(preempted)
    assert len(saved) == 1, saved
    summary = json.loads((preempted / "summary.json").read_text())
    final = saved[0] + EXTRA_STEPS
    # The rerun and an uninterrupted run of the same length, side by side.
    rerun = _start_pair(preempted, final, env, root, "rerun")
    reference = _start_pair(root / "reference", final, env, root, "reference")
    return {"root": root, "first": first, "saved": saved[0], "final": final,
            "summary_after_preemption": summary,
            "rerun": _wait(rerun, root, "rerun"),
            "reference": _wait(reference, root, "reference")}


def test_sigterm_to_one_process_makes_both_save_the_same_step(runs):
    saved, (out0, out1) = runs["saved"], runs["first"]
    assert "SIGTERM caught" in out1 and "SIGTERM caught" not in out0  # only process 1
    for out in (out0, out1):
        assert f"preemption notice: every process saves a checkpoint at step {saved}" in out
        assert f"bridge_jax: preempted, checkpoint saved: {saved} steps" in out
    summary = runs["summary_after_preemption"]
    assert summary["preempted"] is True and summary["step"] == saved


def test_the_rerun_resumes_both_processes_bitwise(runs):
    saved, final, root = runs["saved"], runs["final"], runs["root"]
    for out in runs["rerun"]:
        assert f"resumed from checkpoint step {saved}" in out
        assert f"bridge_jax: done: {EXTRA_STEPS} steps" in out
    assert _digest(root / "preempted", final) == _digest(root / "reference", final)
    records = [json.loads(line)
               for line in (root / "preempted" / "metrics.jsonl").read_text().splitlines()]
    logged = [r["step"] for r in records if "member" not in r]  # not the final evaluation
    assert logged == list(range(5, final + 1, 5)) + ([final] if final % 5 else [])

