"""``gs://`` workdirs and data_dirs, offline, against a local GCS emulator.

The pure-Python ``gcp-storage-emulator`` (requirements.txt) serves the GCS JSON API on
127.0.0.1 from this pytest process (a daemon thread, objects in memory). The CLI runs
in subprocesses whose environment points every client at it before any is imported:
gcsfs (etils.epath: metadata, metrics, samples, the lock), tensorstore (orbax's
arrays) and google-cloud-storage (tensorboardX's events):

    STORAGE_EMULATOR_HOST=http://127.0.0.1:PORT   gcsfs, google-cloud-storage
    FSSPEC_GCS_TOKEN=anon                          gcsfs: no credentials
    GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false        gcsfs: no 60 s bucket-layout probe
    TENSORSTORE_GCS_HTTP_URL=http://127.0.0.1:PORT tensorstore
    GOOGLE_AUTH_TOKEN_FOR_TESTING=x                tensorstore: no metadata server

The emulator leaves out the ``x-goog-generation`` header of downloads, which real GCS
sends and tensorstore's OCDBT needs to update a checkpoint's manifest (without it the
second array of a step fails with "Malformed StorageGeneration"); the fixture adds it.
The test skips, saying why, only when the emulator cannot start.

Not covered (no network here): real GCS (credentials, IAM, latency, retries).
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import serialization

from bridge_jax import checkpointing, configuration, storage, train
from tests import train_helpers as helpers

BUCKET = "test-bucket"
NUM_STEPS = 20
RUN_FLAGS = (f"--config.num_steps={NUM_STEPS}", "--config.checkpoint_every=2",
             "--config.log_every=1", "--config.sample_every=10")
KEEP = "--config.keep_checkpoints=3"  # the rerun keeps 4: a change resumes.jsonl records
TIMEOUT_S = 240  # a hang fails the test instead of blocking CI


class Emulator:
    """The running emulator: its URL, and a reader of its objects over HTTP."""

    def __init__(self, url: str):
        self.url = url

    def env(self, cache: str, **extra: str) -> dict[str, str]:
        """A CLI subprocess's environment: every GCS client pointed at the emulator."""
        return helpers.subprocess_env(
            cache, STORAGE_EMULATOR_HOST=self.url, FSSPEC_GCS_TOKEN="anon",
            GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT="false", TENSORSTORE_GCS_HTTP_URL=self.url,
            GOOGLE_AUTH_TOKEN_FOR_TESTING="x", PYTHONUNBUFFERED="1", **extra)

    def names(self, prefix: str) -> list[str]:
        """The names of the bucket's objects under ``prefix``."""
        names, token = [], ""
        while True:
            query = urllib.parse.urlencode({"prefix": prefix, "pageToken": token})
            with urllib.request.urlopen(f"{self.url}/storage/v1/b/{BUCKET}/o?{query}") as r:
                page = json.load(r)
            names += [item["name"] for item in page.get("items", [])]
            token = page.get("nextPageToken")
            if not token:
                return sorted(names)

    def read(self, name: str) -> bytes:
        with urllib.request.urlopen(f"{self.url}/{BUCKET}/{urllib.parse.quote(name)}") as r:
            return r.read()

    def upload(self, name: str, data: bytes) -> None:
        query = urllib.parse.urlencode({"uploadType": "media", "name": name})
        request = urllib.request.Request(
            f"{self.url}/upload/storage/v1/b/{BUCKET}/o?{query}", data=data, method="POST",
            headers={"Content-Type": "application/octet-stream"})
        urllib.request.urlopen(request).close()

    def steps(self, run: str) -> list[int]:
        """The complete checkpoint steps of ``run`` (orbax's commit marker on GCS)."""
        parts = [n.split("/") for n in self.names(f"{run}/checkpoints/")]
        return sorted(int(p[2]) for p in parts
                      if len(p) == 4 and p[2].isdigit() and p[3] == "commit_success.txt")

    def download(self, prefix: str, target: Path) -> None:
        """Copies every object under ``prefix`` into the local folder ``target``."""
        for name in self.names(prefix):
            path = target / name[len(prefix):].lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(self.read(name))


def _add_generation_headers(objects) -> Callable[[], None]:
    """Makes the emulator's downloads carry ``x-goog-generation`` as GCS does; returns
    the undo."""
    original = objects.download

    def download(request, response, storage_, *args, **kwargs):
        try:
            obj = storage_.get_file_obj(request.params["bucket_name"],
                                        request.params["object_id"])
            response["x-goog-generation"] = str(obj["generation"])
            response["x-goog-metageneration"] = str(obj.get("metageneration", "1"))
        except Exception:  # a missing object: the original answers 404
            pass
        return original(request, response, storage_, *args, **kwargs)

    objects.download = download
    return lambda: setattr(objects, "download", original)


@pytest.fixture(scope="module")
def emulator():
    try:
        from gcp_storage_emulator.handlers import objects
        from gcp_storage_emulator.server import create_server
    except ImportError as err:
        pytest.skip(f"the GCS emulator cannot start: gcp-storage-emulator is not installed "
                    f"({err}); pip install -r requirements.txt")
    port = helpers.free_port()
    try:
        server = create_server("127.0.0.1", port, in_memory=True, default_bucket=BUCKET)
        server._api.daemon = True  # never holds pytest's exit
        server.start()
    except OSError as err:
        pytest.skip(f"the GCS emulator cannot start on 127.0.0.1:{port}: {err}")
    undo = _add_generation_headers(objects)
    yield Emulator(f"http://127.0.0.1:{port}")
    undo()
    server.stop()


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return helpers.cache_dir(tmp_path_factory)


def _cli(workdir: str, *extra: str) -> list[str]:
    return [helpers.PYTHON, "-m", "bridge_jax.main",
            f"--config={helpers.ROOT / 'configs' / 'ring.py'}:tiny", f"--workdir={workdir}",
            *RUN_FLAGS, *extra]


def _start(args, env, cwd: Path, log: Path) -> subprocess.Popen:
    with open(log, "w") as f:  # a file, not a pipe: a full pipe would block the run
        return subprocess.Popen(args, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT)


def _digest(emulator: Emulator, run: str, step: int) -> str:
    """The content digest that the step's metadata records (SHA-256 of every array)."""
    metadata = json.loads(emulator.read(f"{run}/checkpoints/{step}/_CHECKPOINT_METADATA"))
    return metadata["custom_metadata"][checkpointing.DIGEST_KEY]


def _metrics(emulator: Emulator, run: str) -> list[dict]:
    lines = emulator.read(f"{run}/metrics.jsonl").decode().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "steps_per_s"}
            for line in lines]


def _local_gs_folders(root: Path) -> list[str]:
    """Anything named like a URI's scheme (``gs:``) under ``root``."""
    return [os.path.join(d, n) for d, dirs, files in os.walk(root)
            for n in dirs + files if n.startswith("gs:")]


@pytest.fixture(scope="module")
def runs(emulator, cache, tmp_path_factory):
    """An uninterrupted run and one SIGKILLed after its first checkpoint (both on the
    bucket, side by side), then the killed one rerun to the end."""
    cwd = tmp_path_factory.mktemp("cwd")  # the runs' current directory: must stay empty
    logs = tmp_path_factory.mktemp("logs")
    env = emulator.env(cache)
    t0 = time.monotonic()
    reference = _start(_cli(f"gs://{BUCKET}/reference", KEEP), env, cwd,
                       logs / "reference.log")
    killed = _start(_cli(f"gs://{BUCKET}/run", KEEP), env, cwd, logs / "killed.log")
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while not emulator.steps("run"):
            assert killed.poll() is None, (logs / "killed.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint reached the bucket"
            time.sleep(0.05)
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=60)
        steps_at_kill = emulator.steps("run")
        assert reference.wait(timeout=TIMEOUT_S) == 0, \
            (logs / "reference.log").read_text()[-3000:]
    finally:
        for p in (reference, killed):
            if p.poll() is None:
                p.kill()
    rerun = subprocess.run(_cli(f"gs://{BUCKET}/run", "--config.keep_checkpoints=4"),
                           cwd=cwd, env=env,
                           capture_output=True, text=True, timeout=TIMEOUT_S)
    return {"cwd": cwd, "steps_at_kill": steps_at_kill, "rerun": rerun,
            "killed_rc": killed.returncode, "wall_s": time.monotonic() - t0}


def test_a_killed_gs_run_resumes_bitwise_from_the_bucket(emulator, runs, tmp_path):
    assert runs["killed_rc"] == -signal.SIGKILL
    assert runs["steps_at_kill"] and max(runs["steps_at_kill"]) < NUM_STEPS
    r = runs["rerun"]
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"resumed from checkpoint step {max(runs['steps_at_kill'])}" in r.stderr, \
        r.stderr[-3000:]
    assert f"outputs in gs://{BUCKET}/run" in r.stdout
    assert emulator.steps("run")[-1] == emulator.steps("reference")[-1] == NUM_STEPS
    # The final states are bitwise equal: their digests cover every array's bytes...
    assert _digest(emulator, "run", NUM_STEPS) == _digest(emulator, "reference", NUM_STEPS)
    # ... and the objects in the bucket restore to that content (digest verified).
    local = tmp_path / "run_checkpoints"
    emulator.download(f"run/checkpoints/{NUM_STEPS}", local / str(NUM_STEPS))
    template = jax.eval_shape(lambda: train.build(helpers.load_config("ring", "tiny"),
                                                  (2,))[1])
    ckpt = checkpointing.Checkpointer(str(local))
    try:
        state, step = ckpt.restore_latest(template)
    finally:
        ckpt.close()
    assert step == NUM_STEPS and int(serialization.to_state_dict(state)["step"]) == NUM_STEPS


def test_metrics_lose_no_line_across_the_kill(emulator, runs):
    """GCS has no append: the rerun's metrics.jsonl still holds every line once, as the
    uninterrupted run's (speeds aside)."""
    resumed, reference = _metrics(emulator, "run"), _metrics(emulator, "reference")
    assert [r["step"] for r in resumed if "member" not in r] == list(range(1, NUM_STEPS + 1))
    assert resumed == reference


def test_every_output_is_in_the_bucket_and_nothing_local(emulator, runs):
    names = set(emulator.names("run/"))
    for name in ("config.json", "members.json", "summary.json", "samples.npy", "samples.png",
                 "samples/step_0000010.png", "samples/step_0000020.png"):
        assert f"run/{name}" in names, sorted(names)
    assert any(n.startswith("run/tensorboard/events.out.tfevents") for n in names)
    assert "run/.lock" not in names  # the lease is released at exit
    resumes = [json.loads(line) for line in emulator.read("run/resumes.jsonl").splitlines()]
    assert [r["changed"] for r in resumes] == [{"keep_checkpoints": [3, 4]}]
    summary = json.loads(emulator.read("run/summary.json"))
    assert summary["complete"] and summary["step"] == NUM_STEPS
    samples = np.load(io.BytesIO(emulator.read("run/samples.npy")))
    assert samples.shape == (64, 2)
    assert not _local_gs_folders(runs["cwd"]) and not (helpers.ROOT / "gs:").exists()
    assert os.listdir(runs["cwd"]) == []


def test_an_unusable_uri_is_one_line_before_training(emulator, cache, tmp_path):
    r = subprocess.run(_cli("gs://no-such-bucket/run"), cwd=tmp_path,
                       env=emulator.env(cache), capture_output=True, text=True,
                       timeout=TIMEOUT_S)
    assert r.returncode == 2, r.stderr[-3000:]
    lines = [line for line in r.stderr.splitlines() if line.startswith("bridge_jax: error:")]
    assert len(lines) == 1 and "workdir='gs://no-such-bucket/run' is not writable" in lines[0]
    assert "Traceback" not in r.stderr and not os.listdir(tmp_path)
    assert "s3:// is not supported" in storage.workdir_problem("s3://bucket/run")
    config = helpers.load_config("ring", "tiny")
    config.eval.classifier_dir = "gs://bucket/classifier"  # a local cache only
    with pytest.raises(configuration.ConfigError, match="must be a local directory"):
        configuration.validate_config(config)


DATA_PROBE = """
import json, sys
from bridge_jax import data, storage
print(json.dumps({
    "missing": storage.data_dir_problem("gs://test-bucket/nothing"),
    "present": storage.data_dir_problem("gs://test-bucket/tfds"),
    "batch": data.make_dataset("tfds", tfds_name="tiny_images", data_dir=sys.argv[1],
                               seed=0, global_batch_size=4).get_batch(3).tolist()}))
"""


def test_a_tfds_data_dir_in_a_bucket_reads_as_the_local_one(emulator, cache, tmp_path):
    tfds_fixture = helpers.load_tests_module("tfds_fixture")
    local = Path(tfds_fixture.prepare_tiny_images(tmp_path / "tfds"))
    for f in sorted(p for p in local.rglob("*") if p.is_file()):
        emulator.upload(f"tfds/{f.relative_to(local)}", f.read_bytes())
    env = emulator.env(cache, BRIDGE_JAX_CACHE=str(tmp_path / "cache"))
    r = subprocess.run([helpers.PYTHON, "-c", DATA_PROBE, f"gs://{BUCKET}/tfds"],
                       cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=TIMEOUT_S)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.splitlines()[-1])
    assert out["present"] is None and "does not exist" in out["missing"]
    from bridge_jax import data

    expected = data.make_dataset("tfds", tfds_name="tiny_images", data_dir=str(local),
                                 seed=0, global_batch_size=4).get_batch(3)
    np.testing.assert_array_equal(np.asarray(out["batch"], np.float32), expected)
    assert (tmp_path / "cache" / "tfds" / BUCKET / "tfds" / "tiny_images").is_dir()
