"""Shared helpers of the training tests (test_train, test_parallel, test_reliability,
test_experiments; not a test itself).

Compiling the train step dominates these tests' time on a CPU, so they

* turn off most XLA optimizations (``jax_disable_most_optimizations``): compiles
  take about half as long; the programs compute the same quantities (results
  differ from optimized ones by float32 rounding at most, and every comparison
  below is between runs made under the same setting);
* share one persistent compilation cache per pytest session, in the session's
  temporary directory, so that a program compiled once (e.g. the ``ring:tiny``
  step, trained again when resuming, or in a subprocess) is loaded, not compiled.

Both are undone when a test module finishes (:func:`fast_compiles`), so other test
modules run with JAX's defaults.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pathlib
import socket
import sys

import jax
import numpy as np
from jax.experimental.compilation_cache import compilation_cache

ROOT = pathlib.Path(__file__).resolve().parent.parent
CONFIG_NAMES = ("ring", "grid", "mnist", "stacked_mnist", "cifar10", "celeba")


def load_config(name: str, arg: str | None = None):
    """``configs/<name>.py``'s ``get_config(arg)``."""
    spec = importlib.util.spec_from_file_location(f"_configs_{name}",
                                                  ROOT / "configs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


def load_tests_module(name: str):
    """Imports ``tests/<name>.py`` by path (works under any pytest rootdir/import mode)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "tests" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cache_dir(tmp_path_factory) -> str:
    """The session's persistent compilation cache (shared by modules and subprocesses)."""
    path = tmp_path_factory.getbasetemp() / "jax_compilation_cache"
    path.mkdir(exist_ok=True)
    return str(path)


@contextlib.contextmanager
def fast_compiles(directory: str):
    """Unoptimized compiles and a persistent compilation cache in ``directory``, then undone."""
    names = ("jax_disable_most_optimizations", "jax_compilation_cache_dir",
             "jax_persistent_cache_min_compile_time_secs",
             "jax_persistent_cache_min_entry_size_bytes")
    previous = {name: jax.config.values[name] for name in names}
    jax.config.update("jax_disable_most_optimizations", True)
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    compilation_cache.reset_cache()  # the cache is set up once per process otherwise
    try:
        yield
    finally:
        for name, value in previous.items():
            jax.config.update(name, value)
        compilation_cache.reset_cache()
        jax.clear_caches()  # executables compiled without optimizations stay here


def subprocess_env(cache: str, **extra: str) -> dict[str, str]:
    """Environment of a child python: CPU only, this checkout importable, fast compiles."""
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    env.update(
        JAX_PLATFORMS="cpu",
        JAX_DISABLE_MOST_OPTIMIZATIONS="1",
        JAX_COMPILATION_CACHE_DIR=cache,
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1",
        PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        **extra,
    )
    return env


class PoisonedDataset:
    """A dataset whose batches at ``steps`` are all NaN; everything else is ``inner``'s."""

    def __init__(self, inner, steps):
        self._inner, self._steps = inner, set(steps)

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def get_batch(self, step):
        batch = self._inner.get_batch(step)
        return np.full_like(batch, np.nan) if step in self._steps else batch


def free_port() -> int:
    """A TCP port that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


PYTHON = sys.executable


def flat_state(tree) -> dict[str, np.ndarray]:
    """A (device) pytree's state dict as {key path: host array}, for leaf-by-leaf checks."""
    from flax import serialization

    return {jax.tree_util.keystr(k): np.asarray(v) for k, v in
            jax.tree_util.tree_leaves_with_path(serialization.to_state_dict(
                jax.device_get(tree)))}


def one_jit_step(config, start_step: int = 0):
    """(lowered text, initial state on the host, new state, host metrics) of one step at
    ``start_step``, compiled as train_and_evaluate compiles it (so programs of tiny runs
    come from the compilation cache instead of being compiled again). The initial state
    is copied to the host first: the step donates its input buffers."""
    from bridge_jax import configuration, train, train_step
    from bridge_jax.parallel import DataParallel

    configuration.validate_config(config)
    dataset = train.make_dataset(config)
    models, host_state = train.build(config, dataset.example_shape)
    host_state = host_state.replace(step=np.int32(start_step))
    dp = DataParallel("jit")
    step = dp.compile_step(lambda axis_name: train_step.make_train_step(
        config, models, dataset.example_shape, axis_name=axis_name))
    state, batch = dp.place_state(host_state), dp.place_batch(dataset.get_batch(start_step))
    initial = jax.device_get(host_state)
    text = step.lower(state, batch).as_text()
    new_state, metrics = step(state, batch)
    return text, initial, new_state, dp.host_metrics(metrics)
