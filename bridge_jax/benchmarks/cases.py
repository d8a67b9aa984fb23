"""The benchmark cases: model sizes, their experiment configs and compiled JAX train steps."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bridge_jax import configuration, train, train_step
from bridge_jax.benchmarks.measurement import cost_flops

# name -> (dataset, example shape, model overrides, batch sizes (full), batch sizes (quick)).
# Models mirror configs/ring.py, mnist.py, cifar10.py and celeba.py.
MODEL_SIZES: dict[str, dict[str, Any]] = {
    "mlp2d": dict(data="ring", shape=(2,), arch="mlp", latent_dim=2, width=128, depth=2,
                  batches=(256, 1024), quick=(256,)),
    "28x28": dict(data="mnist", shape=(28, 28, 1), arch="dcgan", latent_dim=16, width=32,
                  depth=2, batches=(64, 128), quick=(64,)),
    "32x32": dict(data="tfds:cifar10", shape=(32, 32, 3), arch="dcgan", latent_dim=64,
                  width=64, depth=2, batches=(32, 64), quick=(32,)),
    "64x64": dict(data="tfds:celeb_a", shape=(64, 64, 3), arch="dcgan", latent_dim=128,
                  width=64, depth=2, batches=(16, 32), quick=(16,)),
}
ALPHA = (0.7, 0.3)  # schedule start/end: both loss terms active from step 0


def make_config(size: str, batch: int, **model_overrides):
    """The experiment config of one benchmark case (method 'bridge', 1 critic step)."""
    spec = MODEL_SIZES[size]
    c = configuration.base_config()
    c.batch_size = int(batch)
    c.num_steps = 100_000
    c.data.name = "ring" if spec["arch"] == "mlp" else "mnist"
    for key in ("arch", "latent_dim", "width", "depth"):
        c.model[key] = spec[key]
    for key, value in model_overrides.items():
        c.model[key] = value
    if spec["arch"] == "dcgan":
        c.critic.learning_rate = c.generator.learning_rate = 2e-4
    c.alpha.start, c.alpha.end = ALPHA
    c.progress_bar = False
    return c


@dataclasses.dataclass
class JaxCase:
    """A compiled JAX train step with its state and batch, ready to time."""

    config: Any
    models: Any
    state: Any
    batch: jax.Array
    compiled: Any
    compile_s: float
    flops: float
    example_shape: tuple[int, ...]

    def run(self, n: int) -> None:
        state = self.state
        for _ in range(n):
            state, _ = self.compiled(state, self.batch)
        jax.block_until_ready(state)
        self.state = state


def repeating_runner(step, state, batch) -> Callable[[int], None]:
    """run(n): applies ``state, _ = step(state, batch)`` n times (donating the state), then
    blocks until done; the state is carried from call to call."""
    holder = [state]

    def run(n: int) -> None:
        s = holder[0]
        for _ in range(n):
            s, _ = step(s, batch)
        jax.block_until_ready(s)
        holder[0] = s

    return run


def random_batch(shape: tuple[int, ...], batch: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.random((batch, *shape), dtype=np.float32)
    return x if len(shape) == 3 else (2.0 * x - 1.0)


def build_jax_case(size: str, batch: int, **model_overrides) -> JaxCase:
    config = make_config(size, batch, **model_overrides)
    shape = MODEL_SIZES[size]["shape"]
    models, state = train.build(config, shape)
    state = jax.device_put(state)
    x = jnp.asarray(random_batch(shape, batch))
    step = jax.jit(train_step.make_train_step(config, models, shape), donate_argnums=0)
    t0 = time.perf_counter()
    compiled = step.lower(state, x).compile()
    compile_s = time.perf_counter() - t0
    return JaxCase(config, models, state, x, compiled, compile_s, cost_flops(compiled), shape)


def build_scan_case(size: str, batch: int, steps_per_call: int) -> tuple[Callable, int]:
    """A runner doing ``steps_per_call`` steps per compiled call (lax.scan over batches)."""
    config = make_config(size, batch)
    shape = MODEL_SIZES[size]["shape"]
    models, state = train.build(config, shape)
    step = train_step.make_train_step(config, models, shape)
    xs = jnp.broadcast_to(jnp.asarray(random_batch(shape, batch)),
                          (steps_per_call, batch, *shape))
    multi = jax.jit(lambda s, xs: jax.lax.scan(step, s, xs), donate_argnums=0)
    return repeating_runner(multi, jax.device_put(state), xs), batch * steps_per_call
