"""Data parallelism gives the single-device update: jit sharding, pmap, and two processes.

The per-example noise is drawn from fold_in(key, global example index), so the
same global batch gets the same noise whichever device holds which example; what
may differ is only the order of the float32 sums (the batch mean becomes a sum of
per-device partial sums, all-reduced). Tolerances are therefore stated relative to
one Adam step: early in training Adam moves every parameter by about the learning
rate per step (m/√v ≈ ±1), so a real mistake (other noise, another slice of the
batch, a missing gradient average) shows up as differences of order lr, while
reordered sums give differences of order 1e-7 on the ring (measured: 1.2e-7 after
three steps; a few 1e-6 for the MNIST DCGAN), well under 5% of lr.

Both multi-device setups run in subprocesses: the 8 CPU devices come from
``--xla_force_host_platform_device_count=8``, which must not be forced on the
pytest process itself.
"""

from __future__ import annotations

import json
import subprocess

import jax
import numpy as np
import pytest

from bridge_jax import checkpointing, reporting, train
from tests import train_helpers as helpers

# Parameter tolerance, as a fraction of one step's learning rate (see the module doc).
LR_FRACTION = 0.05
SUBPROCESS_TIMEOUT_S = 180  # a hang fails the test instead of blocking CI (typical: 30 s)


@pytest.fixture(scope="module", autouse=True)
def _fast(tmp_path_factory):
    with helpers.fast_compiles(helpers.cache_dir(tmp_path_factory)):
        yield


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return helpers.cache_dir(tmp_path_factory)


def _params(npz, tag: str) -> dict[str, np.ndarray]:
    prefix = f"{tag}|params|"
    return {k[len(prefix):]: npz[k] for k in npz.files if k.startswith(prefix)}


def _max_abs_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys() and a
    return max(float(np.max(np.abs(a[k] - b[k]))) for k in a)


# ----------------------------------------------------------------- 8 devices, one process


@pytest.fixture(scope="module")
def eight_devices(tmp_path_factory, cache):
    out = tmp_path_factory.mktemp("eight")
    env = helpers.subprocess_env(cache, XLA_FLAGS="--xla_force_host_platform_device_count=8")
    proc = subprocess.run(
        [helpers.PYTHON, str(helpers.ROOT / "tests" / "parallel_worker.py"),
         str(out / "result.npz"), str(out / "rejected_workdir"), "ring"],
        env=env, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out / "result.json") as f:
        info = json.load(f)
    return np.load(out / "result.npz"), info


def test_jit_sharded_and_pmap_match_one_device(eight_devices):
    npz, info = eight_devices
    name = "ring"
    assert info["device_count"] == 8
    lr = float(helpers.load_config(name).generator.learning_rate)
    init = _params(npz, f"{name}|init")
    one = _params(npz, f"{name}|jit1")
    # Three steps really moved the parameters (equal-because-nothing-happened can't pass).
    assert _max_abs_diff(one, init) > 2 * lr
    for mode in ("jit8", "pmap8"):
        other = _params(npz, f"{name}|{mode}")
        diff = _max_abs_diff(one, other)
        assert diff <= LR_FRACTION * lr, (mode, diff)
        for metric in ("generator_loss", "critic_loss", "negative_elbo", "param_norm"):
            a = npz[f"{name}|jit1|metrics|{metric}"]
            b = npz[f"{name}|{mode}|metrics|{metric}"]
            assert a.shape == (3,) and np.all(np.isfinite(a))
            np.testing.assert_allclose(b, a, rtol=1e-5, err_msg=f"{mode} {metric}")
    # The losses changed from step to step (three different batches were used).
    assert len(set(npz[f"{name}|jit1|metrics|generator_loss"].tolist())) == 3


def test_batch_not_divisible_by_devices_is_a_config_error(eight_devices):
    _, info = eight_devices
    assert info["batch12_error"] == ("batch_size=12 is not divisible by the 8 devices; "
                                     "use a multiple of 8")
    assert not info["workdir_created"]  # rejected before anything was written


# ------------------------------------------------------------ two processes (jax.distributed)


def test_two_processes_match_one_process(tmp_path, cache):
    """Two jax.distributed CPU processes (2 devices each) train ring:tiny like one process."""
    workdir = tmp_path / "two_processes"  # shared by both processes, as on a shared filesystem
    record = tmp_path / "fed"
    port = helpers.free_port()
    env = helpers.subprocess_env(cache, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    procs = [
        subprocess.Popen(
            [helpers.PYTHON, str(helpers.ROOT / "tests" / "multihost_worker.py"), str(record),
             "--config=" + str(helpers.ROOT / "configs" / "ring.py") + ":tiny",
             f"--workdir={workdir}", f"--coordinator_address=localhost:{port}",
             "--num_processes=2", f"--process_id={i}", "--distributed_timeout_s=60"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    try:
        # Meanwhile, the same config in this process, on one device.
        config = helpers.load_config("ring", "tiny")
        single = train.train_and_evaluate(config, str(tmp_path / "one_process"))
        outputs = [p.communicate(timeout=SUBPROCESS_TIMEOUT_S) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for i, (p, (out, err)) in enumerate(zip(procs, outputs, strict=True)):
        assert p.returncode == 0, f"process {i}:\n{err[-3000:]}"
        assert "done: 4 steps" in out, out

    # Each process fed its own half of every global batch, and the halves differ.
    dataset = train.make_dataset(config)
    fed = [np.load(f"{record}.{i}.npz") for i in range(2)]
    for i, rec in enumerate(fed):
        assert int(rec["data_process_index"]) == i and int(rec["data_process_count"]) == 2
        assert int(rec["local_device_count"]) == 2 and int(rec["device_count"]) == 4
        assert rec["batches"].shape == (4, 8, 2)
    for step in range(4):
        global_batch = dataset.get_batch(step)
        np.testing.assert_array_equal(fed[0]["batches"][step], global_batch[:8])
        np.testing.assert_array_equal(fed[1]["batches"][step], global_batch[8:])

    # The checkpoint written jointly by both processes holds the one-process parameters.
    ckpt = checkpointing.Checkpointer(str(workdir / "checkpoints"))
    try:
        assert ckpt.all_steps() == [2, 4]
        restored, step = ckpt.restore_latest(single.state)
    finally:
        ckpt.close()
    assert step == 4 and int(restored.step) == 4
    lr = float(config.generator.learning_rate)
    flat_two = {jax.tree_util.keystr(k): np.asarray(v)
                for k, v in jax.tree_util.tree_leaves_with_path(restored.params)}
    flat_one = {jax.tree_util.keystr(k): np.asarray(v)
                for k, v in jax.tree_util.tree_leaves_with_path(single.state.params)}
    assert _max_abs_diff(flat_two, flat_one) <= LR_FRACTION * lr

    # The chief alone wrote the logs: steps 2 and 4 once each, with the one-process losses.
    records = reporting.read_metrics(str(workdir))
    assert [r["step"] for r in records] == [2, 4]
    np.testing.assert_allclose(records[-1]["generator_loss"],
                               single.last_metrics["generator_loss"], rtol=1e-5)
    with open(workdir / "summary.json") as f:
        assert json.load(f)["steps_run"] == 4
    assert np.load(workdir / "samples.npy").shape == (64, 2)
