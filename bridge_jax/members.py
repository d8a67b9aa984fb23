"""The compiled program of one run: N ≥ 1 members trained together.

One member (a plain run) is the data-parallel step of :mod:`bridge_jax.parallel`
(``jit`` or ``pmap``) on a state without a member axis, exactly as before members
existed. N > 1 members (seeds and α paths of one :func:`bridge_jax.sweeps.group_members`
group) stack their states on a leading axis and run

    (state[N], batch[N, B, ...], α table[N, T]) → jax.vmap(train step) → state[N]

as one ``jax.jit`` program: the batch sharded over the devices on its B axis, the
state replicated. Each member reads α from its own row of the table, so members
whose α paths differ (VAE α ≡ 1, fixed α, the α-Bridge's cosine 1 → 0, ...) share
the program, and every member's step is the step it would run alone; the non-finite
policy acts per member (a stopped member holds its step and state, the others go on).
When any member's α is adaptive, every member's state carries the controller's state
and the program also takes each member's controller settings (stacked arrays, with an
``enabled`` flag: a member that is not adaptive reads its table row as before).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from bridge_jax import configuration, schedules, train_state, train_step
from bridge_jax import data as data_lib
from bridge_jax import models as models_lib
from bridge_jax.data.workers import BatchRecipe
from bridge_jax.parallel import DATA_AXIS, DataParallel


def dataset_kwargs(config, *, seed: int | None = None) -> dict:
    """``data.make_dataset``'s keyword arguments (``name`` included) for the training data
    stream of ``config`` on this process."""
    d = config.data
    tfds_name = d.tfds_name or None
    image_size = d.image_size or (configuration.TFDS_DEFAULT_IMAGE_SIZE.get(tfds_name)
                                  if d.name == "tfds" else None)
    return dict(name=d.name, seed=int(config.seed if seed is None else seed),
                global_batch_size=int(config.batch_size), process_index=jax.process_index(),
                process_count=jax.process_count(), tfds_name=tfds_name,
                data_dir=d.data_dir or None, split=d.split, image_size=image_size)


def make_dataset(config, *, seed: int | None = None) -> data_lib.Dataset:
    """The training data stream of ``config`` for this process."""
    return data_lib.make_dataset(**dataset_kwargs(config, seed=seed))


def build(config, example_shape: tuple[int, ...]):
    """(models, initial state on the host) for ``config``."""
    models = models_lib.make_models(train_state.model_config(config), example_shape)
    rng = jax.random.PRNGKey(int(config.seed))
    state = train_state.create_train_state(config, models, example_shape, rng)
    return models, state


def alpha_table(config) -> np.ndarray:
    """α(step) for step = 0..num_steps−1 under the config's (effective) schedule, float32."""
    schedule = configuration.effective_alpha_schedule(config)
    return np.asarray(jax.vmap(schedule)(jnp.arange(int(config.num_steps))), np.float32)


def _stack(trees):
    return jax.tree.map(lambda *a: np.stack([np.asarray(x) for x in a]), *trees)


@dataclasses.dataclass
class MemberStatus:
    """One member's non-finite record: updates skipped, and the first one (step, what)."""

    count: int
    first_step: int | None
    what: str | None


class Program:
    """Data, models, state placement and the compiled step of one run's members."""

    def __init__(self, member_configs: list, parallel: DataParallel):
        self.configs = list(member_configs)
        self.config = self.configs[0]
        self.n = len(self.configs)
        self.parallel = parallel
        self.stacked = self.n > 1
        # One data stream per distinct seed; the recipe says which stream each member reads
        # (the worker processes of data.num_workers compute the same batches from it).
        by_seed: dict[int, Any] = {}
        for c in self.configs:
            by_seed.setdefault(int(c.seed), c)
        seeds = list(by_seed)
        self._recipe = BatchRecipe(
            tuple(dataset_kwargs(c) for c in by_seed.values()),
            tuple(seeds.index(int(c.seed)) for c in self.configs) if self.stacked else None)
        self._streams = [make_dataset(c) for c in by_seed.values()]
        self.dataset = self._streams[0]
        self.example_shape = self.dataset.example_shape
        self.tables = np.stack([alpha_table(c) for c in self.configs])
        self.adaptive = [configuration.adaptive_alpha(c) for c in self.configs]
        self._member_batch = NamedSharding(parallel.mesh, P(None, DATA_AXIS))

    # ---- state ---------------------------------------------------------------------------
    def initial_state(self):
        """(models, state placed for the step); members' states stacked on axis 0."""
        built = [build(c, self.example_shape) for c in self.configs]
        self.models = built[0][0]
        states = [s for _, s in built]
        if not self.stacked:
            return self.parallel.place_state(states[0])
        # Optimizer chains are static pytree data: every member shares the first's objects.
        states = [s.replace(gen_tx=states[0].gen_tx, critic_tx=states[0].critic_tx)
                  for s in states]
        if self.any_adaptive:  # one state structure for all: a controller state each
            states = [s if s.alpha_control is not None else s.replace(
                alpha_control=schedules.adaptive_init(c.alpha.start))
                for s, c in zip(states, self.configs, strict=True)]
        return jax.device_put(_stack(states), self.parallel.replicated)

    def global_state(self, state):
        """The state as replicated global arrays (for checkpoints and sampling)."""
        return state if self.stacked else self.parallel.global_state(state)

    def from_global(self, global_state):
        """A restored global state placed for the step."""
        if not self.stacked and self.config.parallel == "pmap":
            return self.parallel.place_state(global_state)
        return global_state

    # ---- step ----------------------------------------------------------------------------
    def compile_step(self):
        """``step(state, host_batch) -> (state, metrics)``, compiled once."""
        config, models, shape = self.config, self.models, self.example_shape
        if not self.stacked:
            fn = self.parallel.compile_step(lambda axis_name: train_step.make_train_step(
                config, models, shape, axis_name=axis_name))
            return lambda state, batch: fn(state, self.parallel.place_batch(batch))

        def member_step(state, x, table, adaptive):
            return train_step.make_train_step(
                config, models, shape, alpha_schedule=schedules.from_table(table),
                adaptive=adaptive)(state, x)

        rep = self.parallel.replicated
        fn = jax.jit(jax.vmap(member_step), in_shardings=(rep, self._member_batch, rep, rep),
                     out_shardings=(rep, rep), donate_argnums=0)
        tables = jax.device_put(self.tables, rep)
        settings = jax.device_put(self.adaptive_settings(), rep)
        return lambda state, batch: fn(state, jax.make_array_from_process_local_data(
            self._member_batch, batch), tables, settings)

    @property
    def any_adaptive(self) -> bool:
        return any(a is not None for a in self.adaptive)

    def adaptive_settings(self) -> schedules.AdaptiveAlpha | None:
        """Every member's controller settings stacked on axis 0 (``enabled`` false for
        members whose α follows their table), or None when no member is adaptive."""
        if not self.any_adaptive:
            return None
        rows = [a if a is not None else schedules.adaptive_settings(c.alpha, enabled=False)
                for a, c in zip(self.adaptive, self.configs, strict=True)]
        f32 = np.float32
        dtypes = (f32, f32, np.int32, f32, f32, f32, f32, np.bool_)  # AdaptiveAlpha's fields
        columns = zip(*rows, strict=True)
        return schedules.AdaptiveAlpha(*(np.asarray(column, dtype) for column, dtype
                                         in zip(columns, dtypes, strict=True)))

    def get_batch(self, step: int) -> np.ndarray:
        """This host's batch of ``step``: (B, ...) or, stacked, (N, B, ...) (member m
        reads its own seed's stream)."""
        return self._recipe.batch(self._streams, step)

    def batch_recipe(self) -> BatchRecipe:
        """What :meth:`get_batch` computes, as a picklable recipe for worker processes
        (``data.num_workers``)."""
        return self._recipe

    # ---- host views ----------------------------------------------------------------------
    def _field(self, state, name: str) -> np.ndarray:
        value = np.asarray(jax.device_get(getattr(state, name)))
        if not self.stacked:
            return value.reshape(-1)[:1]
        return value.reshape(self.n)

    def member_steps(self, state) -> np.ndarray:
        """Each member's step counter (a stopped member's stays at its bad step)."""
        return self._field(state, "step")

    def progress(self, state) -> int:
        """Batches consumed so far: the largest member step."""
        return int(self.member_steps(state).max())

    def statuses(self, state) -> list[MemberStatus]:
        counts = self._field(state, "nonfinite_count")
        firsts = self._field(state, "first_nonfinite_step")
        whats = self._field(state, "first_nonfinite_what")
        return [MemberStatus(int(c), int(f) if f >= 0 else None,
                             train_step.describe_nonfinite(int(w)) if f >= 0 else None)
                for c, f, w in zip(counts, firsts, whats, strict=True)]

    def member_params(self, state, m: int) -> Any:
        """Member ``m``'s parameters (global arrays)."""
        params = self.global_state(state).params
        return params if not self.stacked else jax.tree.map(lambda a: a[m], params)

    def host_metrics(self, metrics) -> dict[str, float]:
        """Metrics as Python floats: the step's, or their mean over the members."""
        if not self.stacked:
            return self.parallel.host_metrics(metrics)
        return {k: float(np.mean(np.asarray(v))) for k, v in jax.device_get(metrics).items()}

    def alpha_at(self, m: int, step: int, state=None) -> float:
        """Member ``m``'s α at ``step`` (the last table entry past its end); for an adaptive
        member, the controller's α in ``state`` (the α of the state's next step)."""
        if self.adaptive[m] is not None and state is not None:
            value = np.asarray(jax.device_get(state.alpha_control["alpha"])).reshape(-1)
            return float(value[m if self.stacked else 0])
        table = self.tables[m]
        return float(table[min(max(int(step), 0), len(table) - 1)])
