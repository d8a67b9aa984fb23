"""One pytree train state: step, every parameter, both optimizer states, RNG.

    TrainState
      step                 int32 scalar; α = schedule(step) inside the step
      params               {"encoder": φ, "decoder": θ, "critic": ψ}
      gen_opt_state        optax state over {"encoder", "decoder"}
      critic_opt_state     optax state over ψ
      rng                  raw uint32[2] key; per-step keys are fold_in(rng, step)
      nonfinite_count      updates skipped because a loss or gradient was not finite
      first_nonfinite_step step of the first skipped update, −1 if none
      first_nonfinite_what bit mask of the non-finite quantities at that step
      alpha_control        the adaptive α controller's state {"alpha": α_t, "signal": s̄_(t−1)}
                           (schedules.adaptive_update); None when α follows a schedule, and
                           then absent from checkpoints, which keep their old layout

The two optax chains (clip by global norm → Adam, see make_optimizer) are static fields: they are
part of the program, not of the data, so checkpoints hold arrays only.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import serialization, struct

from bridge_jax import models as models_lib
from bridge_jax import schedules

GENERATOR_KEYS = ("encoder", "decoder")


class TrainState(struct.PyTreeNode):
    step: jax.Array
    params: dict[str, Any]
    gen_opt_state: Any
    critic_opt_state: Any
    rng: jax.Array
    nonfinite_count: jax.Array
    first_nonfinite_step: jax.Array
    first_nonfinite_what: jax.Array
    gen_tx: optax.GradientTransformation = struct.field(pytree_node=False)
    critic_tx: optax.GradientTransformation = struct.field(pytree_node=False)
    alpha_control: Any = None

    @property
    def generator_params(self) -> dict[str, Any]:
        return {k: self.params[k] for k in GENERATOR_KEYS}


_DATA_FIELDS = tuple(f.name for f in dataclasses.fields(TrainState)
                     if f.metadata.get("pytree_node", True))


def _state_dict(state: TrainState) -> dict[str, Any]:
    """Flax's state dict of the data fields, without ``alpha_control`` when it is None."""
    return {name: serialization.to_state_dict(getattr(state, name)) for name in _DATA_FIELDS
            if not (name == "alpha_control" and state.alpha_control is None)}


def _from_state_dict(template: TrainState, state: dict[str, Any]) -> TrainState:
    """The inverse of :func:`_state_dict` (every field present, none unknown)."""
    state = dict(state)
    if template.alpha_control is None and "alpha_control" not in state:
        state["alpha_control"] = None
    missing, unknown = set(_DATA_FIELDS) - set(state), set(state) - set(_DATA_FIELDS)
    if missing or unknown:
        raise ValueError(f"cannot restore a TrainState: missing field(s) {sorted(missing)}, "
                         f"unknown field(s) {sorted(unknown)}")
    return template.replace(**{name: serialization.from_state_dict(
        getattr(template, name), state[name], name=name) for name in _DATA_FIELDS})


serialization.register_serialization_state(TrainState, _state_dict, _from_state_dict,
                                            override=True)


def learning_rate_schedule(opt_config: ml_collections.ConfigDict,
                           num_steps: int) -> float | optax.Schedule:
    """The optimizer's learning rate per update: constant, or cosine decay

        lr(t) = lr · (f + (1 − f) · ½(1 + cos(π · min(t, T)/T))),   T = num_steps,

    from ``learning_rate`` to ``f · learning_rate`` (f = ``final_lr_fraction``).
    The critic's count is per critic update, so T is num_steps · critic.steps there.
    Constant is a plain float, so the Adam state holds no schedule counter.
    """
    lr = float(opt_config.learning_rate)
    if opt_config.lr_schedule == "constant":
        return lr
    return optax.cosine_decay_schedule(lr, decay_steps=max(int(num_steps), 1),
                                       alpha=float(opt_config.final_lr_fraction))


def decay_steps(config: ml_collections.ConfigDict, side: str) -> int:
    """The cosine horizon T in optimizer updates: ``lr_decay_steps`` (−1: num_steps) train
    steps, × critic.steps for the critic. Fixing it keeps the schedule when a run is
    resumed with a larger num_steps."""
    steps = int(config[side].lr_decay_steps)
    steps = int(config.num_steps) if steps == -1 else steps
    return steps * (int(config.critic.steps) if side == "critic" else 1)


def is_decoder_scale(params: Any) -> Any:
    """A pytree of bools like ``params``: True at the decoder's log-scale parameter σ."""
    return jax.tree_util.tree_map_with_path(
        lambda path, _: getattr(path[-1], "key", None) == models_lib.DECODER_SCALE_PARAM, params)


def make_optimizer(opt_config: ml_collections.ConfigDict,
                   num_steps: int = 1) -> optax.GradientTransformation:
    """clip_by_global_norm(clip_norm) → Adam(learning rate schedule, b1, b2), then the
    decoder scale's update × ``scale_lr_multiplier`` (generator only; 1: no change).

    Adam moves every parameter by about lr per step, so the decoder's log σ moves by at
    most ~lr per step too; the multiplier lets σ follow its gradient faster than the
    networks' weights without raising their learning rate.
    """
    transforms = [
        optax.clip_by_global_norm(float(opt_config.clip_norm)),
        optax.adam(learning_rate_schedule(opt_config, num_steps), b1=float(opt_config.b1),
                   b2=float(opt_config.b2)),
    ]
    multiplier = float(opt_config.get("scale_lr_multiplier", 1.0))
    if multiplier != 1.0:
        transforms.append(optax.masked(optax.scale(multiplier), is_decoder_scale))
    return optax.chain(*transforms)


def model_config(config: ml_collections.ConfigDict) -> models_lib.ModelConfig:
    """The models' own config, from the experiment config."""
    from bridge_jax import configuration

    m = config.model
    return models_lib.ModelConfig(
        arch=m.arch, latent_dim=int(m.latent_dim), width=int(m.width), depth=int(m.depth),
        likelihood=m.likelihood, scale=m.scale, init_log_scale=float(m.init_log_scale),
        min_log_scale=float(m.min_log_scale), upsample=m.upsample,
        critic_input=configuration.critic_input(config),
        dtype=jnp.bfloat16 if m.dtype == "bfloat16" else jnp.float32,
    )


@functools.cache
def _init_program(models: models_lib.Models, example_shape: tuple[int, ...], latent_dim: int):
    """models_lib.init_params as one compiled program of the key, one per (models, shape):
    op by op it compiled a few hundred tiny programs (5-25 s for the image models on a
    CPU), and a sweep's members, whose models compare equal, share it. Same bits as the
    op-by-op values."""
    return jax.jit(lambda key: models_lib.init_params(models, key, example_shape, latent_dim))


def create_train_state(
    config: ml_collections.ConfigDict,
    models: models_lib.Models,
    example_shape: tuple[int, ...],
    rng: jax.Array,
) -> TrainState:
    """Initialises parameters and both optimizer states from a raw uint32[2] key (and the
    α controller's state for ``alpha.schedule='adaptive'``)."""
    from bridge_jax import configuration

    init_key, state_key = jax.random.split(rng)
    params = _init_program(models, tuple(int(d) for d in example_shape),
                           int(config.model.latent_dim))(init_key)
    gen_tx = make_optimizer(config.generator, decay_steps(config, "generator"))
    critic_tx = make_optimizer(config.critic, decay_steps(config, "critic"))
    gen_params = {k: params[k] for k in GENERATOR_KEYS}
    adaptive = configuration.adaptive_alpha(config)
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        gen_opt_state=gen_tx.init(gen_params),
        critic_opt_state=critic_tx.init(params["critic"]),
        rng=state_key,
        nonfinite_count=jnp.zeros((), jnp.int32),
        first_nonfinite_step=jnp.full((), -1, jnp.int32),
        first_nonfinite_what=jnp.zeros((), jnp.int32),
        gen_tx=gen_tx,
        critic_tx=critic_tx,
        alpha_control=None if adaptive is None else schedules.adaptive_init(adaptive.start),
    )
