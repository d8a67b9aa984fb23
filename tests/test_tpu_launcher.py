"""launch/tpu_pod.sh, through ``--dry-run`` (no gcloud, no pod here).

The dry run prints every command and runs none (a fake ``gcloud`` on PATH records any
call; the local tarball is not written). The printed commands are parsed as a shell
would: the Python the workers get is one the pins accept, the install line is the
pinned requirements plus ``jax[tpu]`` at the pinned version, training is one process
per worker with ``--distributed`` and the workdir passed through unchanged. The code
shipping is run for real on this machine (the printed ``tar``, then the workers' unpack
command twice in a scratch HOME): a second launch replaces ``~/bridge_jax`` instead of
nesting a copy inside it; the workers' training command, run here with a stand-in
Python, trains on a shared workdir and refuses one on the worker's own disk. A launch
without ``--dry-run`` against a stand-in ``gcloud`` reuses a ready slice, creates a
missing one and recreates a preempted one.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "launch" / "tpu_pod.sh"
WORKDIR = "gs://test-bucket/runs/ring 1"  # a space: the value must survive two shells
BASE_ARGS = ["--name=bridge-v4-32", "--zone=us-central2-b", "--accelerator=v4-32",
             "--config=ring:tiny", f"--workdir={WORKDIR}"]


# A stand-in for gcloud: records each call; `describe` answers the slice's state
# ($FAKE_TPU_STATE), or fails as for a slice that does not exist (MISSING).
FAKE_GCLOUD = """#!/bin/sh
echo "$@" >> "$FAKE_GCLOUD_CALLS"
case "$*" in
  *" describe "*) [ "$FAKE_TPU_STATE" = MISSING ] && exit 1; echo "$FAKE_TPU_STATE";;
esac
exit 0
"""


def _launch(tmp_path: Path, *args: str, state: str = "READY") -> subprocess.CompletedProcess:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir(exist_ok=True)
    (fake_bin / "gcloud").write_text(FAKE_GCLOUD)
    (fake_bin / "gcloud").chmod(0o755)
    (tmp_path / "tmp").mkdir(exist_ok=True)
    env = {**os.environ, "PATH": f"{fake_bin}:{os.environ['PATH']}",
           "TMPDIR": str(tmp_path / "tmp"), "FAKE_TPU_STATE": state,
           "FAKE_GCLOUD_CALLS": str(tmp_path / "gcloud_calls")}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                          env=env, timeout=60)


def _dry_run(tmp_path: Path, *args: str) -> list[list[str]]:
    """The commands of a dry run, each as its argv; asserts that none ran."""
    r = _launch(tmp_path, "--dry-run", *args)
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "gcloud_calls").exists(), "--dry-run called gcloud"
    assert not any((tmp_path / "tmp").iterdir()), "--dry-run wrote the tarball"
    return [shlex.split(line) for line in r.stdout.splitlines()
            if line.strip() and not line.startswith("#")]


def _remote(argv: list[str]) -> str:
    """The command a ``gcloud ... ssh`` runs on the workers."""
    (command,) = [a.removeprefix("--command=") for a in argv if a.startswith("--command=")]
    return command


def _ssh_commands(commands: list[list[str]]) -> list[str]:
    ssh = [c for c in commands if c[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh"]]
    for argv in ssh:
        assert "--worker=all" in argv, argv
    return [_remote(argv) for argv in ssh]


def _pinned(name: str) -> str:
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line.startswith(f"{name}=="):
            return line.split("==")[1]
    raise AssertionError(f"requirements.txt pins no {name}")


def test_the_dry_run_prints_the_slice_the_code_the_install_and_the_run_and_runs_none(tmp_path):
    commands = _dry_run(tmp_path, *BASE_ARGS)
    tools = [c[0] if c[0] != "gcloud" else " ".join(c[:5]) for c in commands]
    gcloud = "gcloud compute tpus tpu-vm"
    assert tools == [f"{gcloud} describe", f"{gcloud} delete", f"{gcloud} create", "tar",
                     f"{gcloud} scp", "rm", f"{gcloud} ssh", f"{gcloud} ssh", f"{gcloud} ssh"]
    create = commands[2]
    assert "--accelerator-type=v4-32" in create and "--zone=us-central2-b" in create
    assert "--spot" not in create
    spot = _dry_run(tmp_path, *BASE_ARGS, "--spot", "--service-account=sa@p.iam")[2]
    assert spot[-2:] == ["--spot", "--service-account=sa@p.iam"]
    scp = commands[4]
    assert "--recurse" not in scp and "--worker=all" in scp  # one file, not a directory


def test_the_workers_get_a_python_the_pins_accept_and_the_pinned_tpu_install(tmp_path):
    setup = _ssh_commands(_dry_run(tmp_path, *BASE_ARGS))[1]
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "requires-python"]
    minimum = tuple(int(x) for x in re.fullmatch(r">=(\d+)\.(\d+)", requires).groups())
    python = re.search(r"uv python install (3\.\d+)", setup).group(1)
    assert tuple(int(x) for x in python.split(".")) >= minimum >= (3, 11)
    venv = f"~/bridge_jax_venv-py{python}"
    assert f"uv venv --python {python} {venv}" in setup
    install = shlex.split(setup.split("&&")[-1])
    assert install[0].endswith("/uv") and install[1:3] == ["pip", "install"]
    assert install[install.index("--python") + 1] == f"{venv}/bin/python"
    assert install[install.index("-r") + 1] == "~/bridge_jax/requirements.txt"
    assert f"jax[tpu]=={_pinned('jax')}" in install


def test_training_is_one_process_per_worker_with_the_coordinator_and_workdir(tmp_path):
    commands = _dry_run(tmp_path, *BASE_ARGS, "--", "--config.batch_size=1024")
    train = _ssh_commands(commands)[2]
    assert sum("bridge_jax.main" in c for c in _ssh_commands(commands)) == 1
    run, tee = train.split(" && ")[-1].rsplit(" | ", 1)
    assert tee == "tee ~/bridge_jax_train.log"  # the output also in a log on each worker
    *argv, redirect = shlex.split(run)
    assert redirect == "2>&1"
    assert argv[:4] == ["PYTHONUNBUFFERED=1", "~/bridge_jax_venv-py3.11/bin/python", "-m",
                        "bridge_jax.main"]
    assert argv.count("bridge_jax.main") == 1  # one process on each worker (--worker=all)
    assert "--distributed" in argv  # jax.distributed.initialize() from the TPU metadata
    assert f"--workdir={WORKDIR}" in argv and "--config=ring:tiny" in argv
    assert argv[-1] == "--config.batch_size=1024"
    assert "--config.progress_bar=False" in argv

    detached = _ssh_commands(_dry_run(tmp_path, *BASE_ARGS, "--detach"))[2]
    assert "setsid nohup env PYTHONUNBUFFERED=1" in detached
    assert "> ~/bridge_jax_train.log 2>&1 < /dev/null &" in detached


def _run_on_a_worker(command: str, home: Path, fake_fs: str | None = None):
    """Runs a workers' command here, in a scratch HOME whose venv Python only prints its
    arguments (and, with ``fake_fs``, a ``findmnt`` that reports that filesystem)."""
    python = home / "bridge_jax_venv-py3.11" / "bin" / "python"
    python.parent.mkdir(parents=True, exist_ok=True)
    python.write_text('#!/bin/sh\nfor a in "$@"; do echo "arg: $a"; done\n')
    python.chmod(0o755)
    (home / "bridge_jax").mkdir(exist_ok=True)
    path = os.environ["PATH"]
    if fake_fs is not None:
        (home / "bin").mkdir(exist_ok=True)
        (home / "bin" / "findmnt").write_text(f"#!/bin/sh\necho {fake_fs}\n")
        (home / "bin" / "findmnt").chmod(0o755)
        path = f"{home / 'bin'}:{path}"
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "HOME": str(home), "PATH": path})


def test_the_workers_train_on_a_shared_workdir_and_refuse_one_on_their_own_disk(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    train = _ssh_commands(_dry_run(tmp_path, *BASE_ARGS))[2]
    r = _run_on_a_worker(train, home)  # gs://: nothing to check on the worker
    assert r.returncode == 0, r.stderr
    assert f"arg: --workdir={WORKDIR}" in r.stdout.splitlines()
    assert (home / "bridge_jax_train.log").read_text() == r.stdout

    local = tmp_path / "not shared" / "run"  # this machine's own disk
    args = [a for a in BASE_ARGS if not a.startswith("--workdir=")] + [f"--workdir={local}"]
    (tmp_path / "local").mkdir()
    train = _ssh_commands(_dry_run(tmp_path / "local", *args))[2]
    r = _run_on_a_worker(train, home)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == (f"tpu_pod.sh: error: --workdir={local} is on this worker's own disk, "
                        "not shared: use a gs:// workdir, or mount the bucket (gcsfuse) or "
                        "NFS there on every worker first (docs/tpu.md)\n")
    r = _run_on_a_worker(train, home, fake_fs="fuse.gcsfuse")  # as if a bucket were mounted
    assert r.returncode == 0 and f"arg: --workdir={local}" in r.stdout.splitlines(), r.stderr


def test_a_second_launch_replaces_the_code_instead_of_nesting_it(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    for launch in range(2):
        scratch = tmp_path / f"launch{launch}"
        scratch.mkdir()
        commands = _dry_run(scratch, *BASE_ARGS)
        tar, scp = commands[3], commands[4]
        subprocess.run(tar, check=True, timeout=60)  # the local tarball, for real
        tarball = Path(tar[tar.index("-czf") + 1])
        remote_name = scp[scp.index(str(tarball)) + 1].split(":", 1)[1]
        shutil.move(tarball, home / remote_name)  # what the scp does
        unpack = _ssh_commands(commands)[0]
        r = subprocess.run(["bash", "-c", unpack], env={**os.environ, "HOME": str(home)},
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        (home / "bridge_jax" / f"stale_from_launch_{launch}").write_text("")
        version = (home / "bridge_jax" / "VERSION").read_text().strip()
        assert remote_name == f"bridge_jax-{version}.tar.gz"
    code = home / "bridge_jax"
    assert (code / "bridge_jax" / "__init__.py").is_file()
    assert (code / "configs" / "ring.py").is_file() and (code / "requirements.txt").is_file()
    assert not (code / "bridge_jax" / "bridge_jax").exists(), "nested copy"
    assert not (code / "stale_from_launch_0").exists(), "the old code was kept"
    assert sorted(p.name for p in home.iterdir()) == ["bridge_jax"]  # no tarball, no .next


def test_a_real_launch_reuses_a_ready_slice_and_recreates_a_preempted_one(tmp_path):
    """Without --dry-run, against the stand-in gcloud: the slice's state decides."""
    expected = {"READY": [], "MISSING": ["create"], "PREEMPTED": ["delete", "create"]}
    for state, slice_calls in expected.items():
        scratch = tmp_path / state
        scratch.mkdir()
        r = _launch(scratch, *BASE_ARGS, state=state)
        assert r.returncode == 0, r.stderr
        calls = [line.split()[3] for line in (scratch / "gcloud_calls").read_text().splitlines()]
        assert calls == ["describe", *slice_calls, "scp", "ssh", "ssh", "ssh"], state
        assert not any((scratch / "tmp").iterdir()), "the local tarball was left behind"


def test_bad_arguments_are_one_line_and_exit_2(tmp_path):
    for args, message in [
        (BASE_ARGS + ["--python=3.10"], "--python=3.10: the pinned requirements need Python"),
        (BASE_ARGS[:-1], "--workdir=... is required"),
        (BASE_ARGS[:-1] + ["--workdir=runs/x"], "--workdir=runs/x must be an absolute path"),
        (BASE_ARGS + ["--bogus"], "unknown argument --bogus"),
    ]:
        r = _launch(tmp_path, "--dry-run", *args)
        assert r.returncode == 2 and r.stdout == ""
        assert r.stderr.startswith(f"tpu_pod.sh: error: {message}"), r.stderr
        assert len(r.stderr.splitlines()) == 1
