"""Batches computed by worker processes (data.num_workers): the same batches, bitwise,
as in-process, in step order, with a worker's error raised at its step."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

from bridge_jax.data import DataError, workers
from tests import train_helpers as helpers

tfds_fixture = helpers.load_tests_module("tfds_fixture")


@pytest.fixture(scope="module")
def png_dir(tmp_path_factory):
    return tfds_fixture.prepare_tiny_png(tmp_path_factory.mktemp("tfds"))


def _tfds(png_dir, seed=0, **extra):
    return dict(name="tfds", seed=seed, global_batch_size=4, tfds_name="tiny_png",
                data_dir=png_dir, image_size=8, **extra)


def test_worker_batches_equal_in_process_batches_in_step_order(png_dir):
    # a stacked program's recipe: members read streams 1, 0, 1 (two seeds; host 1 of 2)
    recipe = workers.BatchRecipe(
        (_tfds(png_dir, 3, process_index=1, process_count=2),
         _tfds(png_dir, 5, process_index=1, process_count=2)), member_streams=(1, 0, 1))
    with workers.prefetch_in_processes(recipe, 7, 5, num_workers=2) as batches:
        got = list(batches)
    assert [step for step, _ in got] == [7, 8, 9, 10, 11]
    datasets = recipe.build()
    for step, batch in got:
        assert batch.shape == (3, 2, 8, 8, 3) and batch.dtype == np.float32
        np.testing.assert_array_equal(batch, recipe.batch(datasets, step))
        np.testing.assert_array_equal(batch[1], datasets[0].get_batch(step))
        np.testing.assert_array_equal(batch[0], datasets[1].get_batch(step))
    assert not np.array_equal(got[0][1][0], got[0][1][1])  # the two seeds differ


def test_a_workers_error_is_raised_at_its_step_in_one_line(tmp_path):
    recipe = workers.BatchRecipe((_tfds(str(tmp_path / "missing")),))
    with workers.prefetch_in_processes(recipe, 0, 3, num_workers=1) as batches:
        with pytest.raises(DataError, match="does not exist") as raised:
            next(batches)
    assert "\n" not in str(raised.value)


def _ignores(pid: int, sig: int) -> bool:
    """Whether process ``pid`` ignores signal ``sig`` (Linux: SigIgn in /proc/PID/status)."""
    with open(f"/proc/{pid}/status") as f:
        mask = next(int(line.split()[1], 16) for line in f if line.startswith("SigIgn:"))
    return bool(mask >> (sig - 1) & 1)


def test_workers_outlive_a_preemption_signal_and_stop_when_closed(png_dir):
    prefetcher = workers.prefetch_in_processes(workers.BatchRecipe((_tfds(png_dir),)), 0,
                                               None, num_workers=2)
    step, _ = next(prefetcher)
    processes = list(prefetcher._pool._processes.values())
    assert step == 0 and len(processes) == 2
    deadline = time.monotonic() + 120  # until both have set up (the mask, from /proc)
    while not all(_ignores(p.pid, signal.SIGTERM) for p in processes):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    for p in processes:  # what a preemption notice to the process group does to them
        os.kill(p.pid, signal.SIGTERM)
        os.kill(p.pid, signal.SIGINT)
    assert [next(prefetcher)[0] for _ in range(6)] == [1, 2, 3, 4, 5, 6]
    assert all(p.is_alive() for p in processes)
    prefetcher.close()
    assert not any(p.is_alive() for p in processes)
    with pytest.raises(StopIteration):
        next(prefetcher)


def test_a_stacked_programs_recipe_computes_its_batches():
    from bridge_jax import members
    from bridge_jax.parallel import DataParallel

    configs = []
    for seed in (4, 9, 4):
        config = helpers.load_config("mnist", "tiny")
        config.seed = seed
        configs.append(config)
    program = members.Program(configs, DataParallel("jit"))
    recipe = program.batch_recipe()
    assert recipe.member_streams == (0, 1, 0) and [s["seed"] for s in recipe.streams] == [4, 9]
    np.testing.assert_array_equal(recipe(3), program.get_batch(3))
    single = members.Program(configs[1:2], DataParallel("jit")).batch_recipe()
    assert single.member_streams is None
    np.testing.assert_array_equal(single(3), program.get_batch(3)[1])
