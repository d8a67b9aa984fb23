"""Runs a few train steps three ways, for tests/test_parallel.py (not a test itself).

    XLA_FLAGS=--xla_force_host_platform_device_count=8 JAX_PLATFORMS=cpu \
        python tests/parallel_worker.py OUT.npz WORKDIR ring mnist

For each named config (its ``tiny`` variant, global batch 16) it takes one
initial state and three batches and runs them with (a) ``jax.jit`` on one
device, (b) ``jax.jit`` sharded over all 8 devices, (c) ``jax.pmap`` over all
8 devices. OUT.npz holds, per config and mode, the final parameters and the
per-step metrics, and the initial parameters; OUT.json the device count and
the message of the ConfigError that a batch of 12 on 8 devices raises.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys

import jax
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bridge_jax import configuration, train, train_step  # noqa: E402
from bridge_jax.parallel import DataParallel  # noqa: E402

NUM_STEPS = 3
BATCH = 16
METRICS = ("generator_loss", "critic_loss", "negative_elbo", "param_norm")


def get_config(name: str, arg: str | None = "tiny"):
    spec = importlib.util.spec_from_file_location(f"configs_{name}",
                                                  os.path.join(ROOT, "configs", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


def flat(tree) -> dict[str, np.ndarray]:
    leaves = jax.tree_util.tree_leaves_with_path(jax.device_get(tree))
    return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}


def run(config, mode: str, devices, host_state, models, example_shape, batches, out, tag):
    dp = DataParallel(mode, devices=devices)
    # device_put copies a host (numpy) state, so donating it cannot touch host_state.
    state = dp.place_state(host_state)
    step = dp.compile_step(lambda axis_name: train_step.make_train_step(
        config, models, example_shape, axis_name=axis_name))
    history = {k: [] for k in METRICS}
    for batch in batches:
        state, metrics = step(state, dp.place_batch(batch))
        metrics = dp.host_metrics(metrics)
        for k in METRICS:
            history[k].append(metrics[k])
    final = dp.global_state(state)
    assert dp.host_scalar(final, "step") == NUM_STEPS
    for k, v in flat(final.params).items():
        out[f"{tag}|{mode}{len(devices)}|params|{k}"] = v
    for k, v in history.items():
        out[f"{tag}|{mode}{len(devices)}|metrics|{k}"] = np.asarray(v, np.float64)


def main(out_path: str, workdir: str, names: list[str]) -> None:
    devices = jax.devices()
    out: dict[str, np.ndarray] = {}
    for name in names:
        config = get_config(name)
        config.batch_size = BATCH
        if name == "mnist":
            config.model.width = 4
        dataset = train.make_dataset(config)
        batches = [dataset.get_batch(s) for s in range(NUM_STEPS)]
        models, host_state = train.build(config, dataset.example_shape)
        host_state = jax.device_get(host_state)
        for k, v in flat(host_state.params).items():
            out[f"{name}|init|params|{k}"] = v
        for mode, devs in (("jit", devices[:1]), ("jit", devices), ("pmap", devices)):
            run(config, mode, devs, host_state, models, dataset.example_shape, batches, out,
                name)
    np.savez(out_path, **out)

    # A global batch that the devices cannot split: rejected before anything is written.
    config = get_config("ring")
    config.batch_size = 12
    try:
        train.train_and_evaluate(config, workdir)
        error = None
    except configuration.ConfigError as err:
        error = str(err)
    info = {"device_count": jax.device_count(), "batch12_error": error,
            "workdir_created": os.path.exists(workdir)}
    with open(os.path.splitext(out_path)[0] + ".json", "w") as f:
        json.dump(info, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
