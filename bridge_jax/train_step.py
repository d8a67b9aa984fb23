"""The pure train step ``(state, batch) -> (state, metrics)`` and the sampler.

One step, one compiled function (METHOD.md §5):
  1. α = schedule(step), or the adaptive controller's α_t (``state.alpha_control``);
     keys = fold_in(rng, step).
  2. ``critic.steps`` critic updates on the batch (fresh model-side noise each),
     encoder/decoder frozen: minimise ``losses.critic_loss``. With instance noise the
     critic sees x + σ(step)·ε on both sides (here and in step 3).
  3. One encoder/decoder update with the critic frozen, on the method's
     objective (see :mod:`bridge_jax.methods`): one critic pass per side
     serves both the weights w (stop-gradient) and B_α.
  4. If any loss or gradient norm, or the norm of the updated parameters, is
     non-finite (a huge learning rate overflows the parameters from finite
     gradients), the update is discarded
     (state kept), counted, and the first such step recorded; under the
     "stop" policy the step counter stays too and every later step is a
     no-op, so the state stays the last good one (step == the bad step)
     until the loop sees the flag and stops.
  5. An adaptive α moves by ``schedules.adaptive_update`` from the signal the step
     measured (the ESS of the ELBO weights on the generator pass, or the critic's
     accuracy), kept with the update only when the update is applied.

Noise is drawn per example from fold_in(key, global example index), so a
global batch gets the same noise whether it runs on one device, is sharded
by ``jax.jit``, or split by ``jax.pmap`` (``axis_name`` set): the three paths
compute the same update. The same holds for the instance noise, and the ESS signal is
combined over devices from its moments (``losses.shifted_weight_moments``), so every
path measures the ESS of the whole global batch.

:func:`make_train_step` reads the step's static settings from the config once
(``_TrainStep``); each part above is one of its methods, and the returned step
composes them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax

from bridge_jax import configuration, divergences, losses, schedules
from bridge_jax import methods as methods_lib
from bridge_jax import models as models_lib
from bridge_jax.train_state import GENERATOR_KEYS, TrainState

# Bits of TrainState.first_nonfinite_what, naming the quantity that failed.
NONFINITE_QUANTITIES = ("critic_loss", "critic_grad_norm", "generator_loss",
                        "generator_grad_norm", "parameters")

Metrics = dict[str, jax.Array]
INSTANCE_NOISE_STREAM = 0x1A5  # fold_in(step key, this) → the instance noise's keys


def per_example_normal(key: jax.Array, indices: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Standard normal noise (len(indices), *shape); row i from fold_in(key, indices[i])."""
    return jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(key, i), shape))(indices)


def _example_indices(local_batch: int, axis_name: str | None) -> jax.Array:
    """Global indices of this shard's examples (pmap: offset by the device index)."""
    offset = 0 if axis_name is None else jax.lax.axis_index(axis_name) * local_batch
    return offset + jnp.arange(local_batch)


def _mean_over_devices(tree, axis_name: str | None):
    return tree if axis_name is None else jax.lax.pmean(tree, axis_name)


def _max_over_devices(x, axis_name: str | None):
    return x if axis_name is None else jax.lax.pmax(x, axis_name)


def _with_noise(x, eps, sigma):
    """x + σ·ε (instance noise), or x itself where there is none."""
    return x if eps is None else x + sigma * eps


class StepModel:
    """The forward passes the step needs, closed over the Flax modules."""

    def __init__(self, config: ml_collections.ConfigDict, models: models_lib.Models):
        self.models = models
        self.likelihood = config.model.likelihood
        self.latent_dim = int(config.model.latent_dim)
        method = methods_lib.get(config.method)
        self.joint = method.critic_input == "joint"
        self.uses_encoder = method.encoder

    def encode(self, enc_params, x, eps):
        mean, log_std = self.models.encoder.apply({"params": enc_params}, x)
        return mean, log_std, models_lib.encoder_sample(mean, log_std, eps)

    def decode(self, dec_params, z):
        return self.models.decoder.apply({"params": dec_params}, z)

    def critic(self, critic_params, x, z):
        if self.joint:
            return self.models.critic.apply({"params": critic_params}, x, z)
        return self.models.critic.apply({"params": critic_params}, x)

    def forward(self, gen_params, x, noise, with_nll: bool = True):
        """Data-side pairs (x, z~q(z|x)) with ℓ, and model-side pairs (G(z)+σε, z)."""
        out: dict[str, Any] = {}
        if self.uses_encoder:
            mean, log_std, z_data = self.encode(gen_params["encoder"], x, noise["eps_enc"])
            if with_nll:
                dec_data = self.decode(gen_params["decoder"], z_data)
                out["nll"] = models_lib.negative_elbo_terms(mean, log_std, z_data, dec_data,
                                                            x, self.likelihood)
        else:
            z_data = noise["eps_enc"]  # unused by an x-only critic
        dec_model = self.decode(gen_params["decoder"], noise["z_prior"])
        out["x_model"] = models_lib.decoder_sample(dec_model, noise["eps_dec"], self.likelihood)
        out["z_data"] = z_data
        out["z_model"] = noise["z_prior"]
        out["log_scale"] = dec_model.log_scale
        return out


@dataclasses.dataclass(frozen=True, eq=False)
class _TrainStep:
    """The static settings of one compiled step, and the step's parts as methods.

    Everything here is fixed at trace time (Python values, modules, the schedule);
    :meth:`train_step` is the pure ``(state, batch) -> (state, metrics)``. ``adaptive``
    holds the α controller's settings (Python numbers, or a member's traced values).
    """

    model: StepModel
    schedule: Callable[[jax.Array], jax.Array]
    objective: str  # methods.Method.objective
    critic_kind: str  # config.critic.loss
    n_critic: int
    penalty_weight: float
    mix: str
    self_normalize: bool
    hybrid_weight: float
    stop_policy: bool  # nonfinite_policy == "stop"
    latent: int
    axis_name: str | None
    example_shape: tuple[int, ...]
    adaptive: schedules.AdaptiveAlpha | None = None
    adaptive_signal: str = "ess"  # config.alpha.adaptive.signal
    noise_scale: Callable[[jax.Array], jax.Array] | None = None  # instance noise σ(step)

    @classmethod
    def from_config(cls, config: ml_collections.ConfigDict, models: models_lib.Models,
                    example_shape: tuple[int, ...], axis_name: str | None,
                    alpha_schedule: Callable[[jax.Array], jax.Array] | None,
                    adaptive: schedules.AdaptiveAlpha | None = None) -> _TrainStep:
        model = StepModel(config, models)
        return cls(
            model=model,
            schedule=(alpha_schedule if alpha_schedule is not None
                      else configuration.effective_alpha_schedule(config)),
            objective=methods_lib.get(config.method).objective,
            critic_kind=config.critic.loss,
            n_critic=int(config.critic.steps),
            penalty_weight=float(config.critic.gradient_penalty),
            mix=config.alpha.mix,
            self_normalize=bool(config.alpha.self_normalize),
            hybrid_weight=float(config.hybrid_weight),
            stop_policy=config.nonfinite_policy == "stop",
            latent=model.latent_dim,
            axis_name=axis_name,
            example_shape=example_shape,
            adaptive=adaptive if adaptive is not None else configuration.adaptive_alpha(config),
            adaptive_signal=config.alpha.adaptive.signal,
            noise_scale=instance_noise_schedule(config),
        )

    def draw_noise(self, key, local_batch):
        """eps_enc, z_prior ~ N(0, I_latent) and eps_dec ~ N(0, I_example), per example;
        with instance noise also inst_data, inst_model ~ N(0, I_example), from
        fold_in(key, INSTANCE_NOISE_STREAM), so the other noise is the same with or without."""
        idx = _example_indices(local_batch, self.axis_name)
        k_enc, k_prior, k_dec = jax.random.split(key, 3)
        noise = {"eps_enc": per_example_normal(k_enc, idx, (self.latent,)),
                 "z_prior": per_example_normal(k_prior, idx, (self.latent,)),
                 "eps_dec": per_example_normal(k_dec, idx, self.example_shape)}
        if self.noise_scale is not None:
            k_data, k_model = jax.random.split(jax.random.fold_in(key, INSTANCE_NOISE_STREAM))
            noise["inst_data"] = per_example_normal(k_data, idx, self.example_shape)
            noise["inst_model"] = per_example_normal(k_model, idx, self.example_shape)
        return noise

    def critic_inputs(self, x, x_model, noise, sigma):
        """The critic's x on each side: (x + σ·ε_data, x̃ + σ·ε_model), or (x, x̃)."""
        return (_with_noise(x, noise.get("inst_data"), sigma),
                _with_noise(x_model, noise.get("inst_model"), sigma))

    def critic_objective(self, critic_params, sides, x, alpha):
        """(``losses.critic_loss`` [+ γ·R1 penalty], accuracy); encoder/decoder side frozen.
        ``x`` and ``sides["x_model"]`` are the critic's inputs (with any instance noise)."""
        model, sg = self.model, jax.lax.stop_gradient
        d_data = model.critic(critic_params, x, sg(sides["z_data"]))
        d_model = model.critic(critic_params, sg(sides["x_model"]), sg(sides["z_model"]))
        loss = losses.critic_loss(d_data, d_model, alpha, kind=self.critic_kind)
        if self.penalty_weight > 0:
            loss = loss + self.penalty_weight * losses.gradient_penalty(
                lambda x_, z_: model.critic(critic_params, x_, z_), x, sg(sides["z_data"]))
        accuracy = 0.5 * (jnp.mean(d_data > 0) + jnp.mean(d_model < 0))
        return loss, accuracy

    def generator_objective(self, gen_params, critic_params, x, noise, alpha, sigma):
        """(the method's encoder/decoder loss, aux metrics); one critic pass per side.
        aux["log_weights"] (per example, stop-gradient) is for the ESS signal."""
        model = self.model
        sides = model.forward(gen_params, x, noise)
        x_data, x_model = self.critic_inputs(x, sides["x_model"], noise, sigma)
        d_data = model.critic(critic_params, x_data, sides["z_data"])
        d_model = model.critic(critic_params, x_model, sides["z_model"])
        bound = divergences.alpha_bound(d_data, d_model, alpha)
        aux = {"bound": bound}
        if self.adaptive is not None and self.adaptive_signal == "ess":
            aux["log_weights"] = losses.log_bridge_weights(d_data, alpha)
        if model.uses_encoder:
            aux["negative_elbo"] = jnp.mean(sides["nll"])
            w = losses.bridge_weights(d_data, alpha, self_normalize=self.self_normalize)
            aux["weight_mean"] = jnp.mean(w)
            aux["weight_ess"] = losses.effective_sample_size(w)
        if sides["log_scale"] is not None:
            aux["decoder_scale"] = jnp.exp(jnp.mean(sides["log_scale"]))
        if self.objective == "bridge":
            loss = losses.bridge_loss(sides["nll"], d_data, d_model, alpha, mix=self.mix,
                                      self_normalize=self.self_normalize)
        elif self.objective == "bound":
            loss = bound
        elif self.objective == "nonsaturating":
            loss = losses.nonsaturating_generator_loss(d_model)
        else:  # "hybrid"
            loss = losses.hybrid_loss(sides["nll"], d_model, self.hybrid_weight)
        return loss, aux

    def critic_updates(self, state: TrainState, gen_params, x, alpha, sigma, critic_key):
        """``n_critic`` critic updates (fresh model-side noise each, from fold_in(key, i)).

        Returns (critic params, critic opt state, loss, accuracy, grad norm) of the last.
        """
        local_batch = x.shape[0]

        def critic_update(i, carry):
            critic_params, opt_state, _, _, _ = carry
            noise = self.draw_noise(jax.random.fold_in(critic_key, i), local_batch)
            sides = self.model.forward(gen_params, x, noise, with_nll=False)
            x_data, x_model = self.critic_inputs(x, sides["x_model"], noise, sigma)
            (loss, acc), grads = jax.value_and_grad(self.critic_objective, has_aux=True)(
                critic_params, {**sides, "x_model": x_model}, x_data, alpha)
            grads, loss, acc = _mean_over_devices((grads, loss, acc), self.axis_name)
            updates, opt_state = state.critic_tx.update(grads, opt_state, critic_params)
            return (optax.apply_updates(critic_params, updates), opt_state, loss, acc,
                    optax.tree.norm(grads))

        zero = jnp.zeros((), jnp.float32)
        carry = (state.params["critic"], state.critic_opt_state, zero, zero, zero)
        # No while loop (the count is static): XLA runs convolutions inside one several
        # times slower on CPU (3x for the DCGANs, 20x unoptimized). A 1-trip fori_loop
        # still compiles to a while loop, so one step is called directly.
        return (critic_update(0, carry) if self.n_critic == 1
                else jax.lax.fori_loop(0, self.n_critic, critic_update, carry, unroll=True))

    def generator_update(self, state: TrainState, gen_params, critic_params, x, alpha, sigma,
                         gen_key):
        """One encoder/decoder update, critic frozen: (new params, opt state, loss, norm,
        aux, ESS signal or None)."""
        noise = self.draw_noise(gen_key, x.shape[0])
        (g_loss, aux), g_grads = jax.value_and_grad(self.generator_objective, has_aux=True)(
            gen_params, critic_params, x, noise, alpha, sigma)
        log_w = aux.pop("log_weights", None)
        g_grads, g_loss, aux = _mean_over_devices((g_grads, g_loss, aux), self.axis_name)
        g_updates, gen_opt_state = state.gen_tx.update(g_grads, state.gen_opt_state, gen_params)
        new_gen = optax.apply_updates(gen_params, g_updates)
        ess = None if log_w is None else self.global_ess(log_w)
        return new_gen, gen_opt_state, g_loss, optax.tree.norm(g_grads), aux, ess

    def global_ess(self, log_w):
        """The ESS of the whole global batch's weights: moments about the global max,
        averaged over devices like the losses (losses.shifted_weight_moments)."""
        shift = _max_over_devices(jnp.max(log_w), self.axis_name)
        moments = _mean_over_devices(losses.shifted_weight_moments(log_w, shift),
                                     self.axis_name)
        return losses.ess_from_moments(*moments)

    def alpha(self, state: TrainState) -> jax.Array:
        """α of this step: the schedule's, or the controller's α_t when it is enabled."""
        scheduled = self.schedule(state.step)
        if self.adaptive is None:
            return scheduled
        return jnp.where(self.adaptive.enabled, state.alpha_control["alpha"], scheduled)

    def next_control(self, state: TrainState, ess, accuracy, apply):
        """(controller state after this step, measured signal): moved only when the update
        is applied and the signal is finite, else kept."""
        signal = ess if self.adaptive_signal == "ess" else schedules.accuracy_signal(accuracy)
        moved = schedules.adaptive_update(state.alpha_control, signal, state.step, self.adaptive)
        keep = apply & jnp.isfinite(signal) & jnp.asarray(self.adaptive.enabled)
        control = jax.tree.map(lambda n, o: jnp.where(keep, n, o), moved, state.alpha_control)
        return control, signal

    def commit(self, state: TrainState, checks: jax.Array, new_params, gen_opt_state,
               critic_opt_state) -> tuple[TrainState, jax.Array]:
        """(next state, applied): the update if every check is finite and the run is not
        frozen, else the old state with the non-finite step counted (and recorded if first)."""
        finite = jnp.all(checks)
        what = jnp.sum(jnp.where(checks, 0, 2 ** jnp.arange(checks.shape[0]))).astype(jnp.int32)
        frozen = (state.first_nonfinite_step >= 0) if self.stop_policy else jnp.bool_(False)
        apply = finite & ~frozen
        # 'stop' keeps the step counter too, so the saved state is exactly the state before
        # the bad update (step == first_nonfinite_step) and a rerun resumes at that step.
        hold = (frozen | ~finite) if self.stop_policy else jnp.bool_(False)

        select = lambda new, old: jax.tree.map(lambda n, o: jnp.where(apply, n, o), new, old)
        bad_now = ~finite & ~frozen
        first_bad = (state.first_nonfinite_step < 0) & bad_now
        new_state = state.replace(
            step=jnp.where(hold, state.step, state.step + 1),
            params=select(new_params, state.params),
            gen_opt_state=select(gen_opt_state, state.gen_opt_state),
            critic_opt_state=select(critic_opt_state, state.critic_opt_state),
            nonfinite_count=state.nonfinite_count + bad_now.astype(jnp.int32),
            first_nonfinite_step=jnp.where(first_bad, state.step, state.first_nonfinite_step),
            first_nonfinite_what=jnp.where(first_bad, what, state.first_nonfinite_what),
        )
        return new_state, apply

    def train_step(self, state: TrainState, x: jax.Array) -> tuple[TrainState, Metrics]:
        """The pure step: critic updates, one generator update, the non-finite guard, and
        the adaptive α controller."""
        alpha = self.alpha(state)
        sigma = None if self.noise_scale is None else self.noise_scale(state.step)
        key = jax.random.fold_in(state.rng, state.step)
        critic_key, gen_key = jax.random.split(key)
        gen_params = state.generator_params
        critic_params, critic_opt_state, c_loss, c_acc, c_gnorm = self.critic_updates(
            state, gen_params, x, alpha, sigma, critic_key)
        new_gen, gen_opt_state, g_loss, g_gnorm, aux, ess = self.generator_update(
            state, gen_params, critic_params, x, alpha, sigma, gen_key)

        new_params = {**{k: new_gen[k] for k in GENERATOR_KEYS}, "critic": critic_params}
        # The norm, not only the elements: parameters so large that their norm overflows
        # float32 (lr 1e30 from finite gradients) give non-finite losses one step later.
        checks = jnp.stack([jnp.isfinite(c_loss), jnp.isfinite(c_gnorm),
                            jnp.isfinite(g_loss), jnp.isfinite(g_gnorm),
                            jnp.isfinite(optax.tree.norm(new_params))])
        new_state, apply = self.commit(state, checks, new_params, gen_opt_state,
                                       critic_opt_state)
        metrics = {"alpha": alpha, "critic_loss": c_loss, "critic_accuracy": c_acc,
                   "critic_grad_norm": c_gnorm, "generator_loss": g_loss,
                   "generator_grad_norm": g_gnorm,
                   "param_norm": optax.tree.norm(new_state.params),
                   "update_applied": apply.astype(jnp.float32), **aux}
        if sigma is not None:
            metrics["instance_noise"] = jnp.asarray(sigma, jnp.float32)
        if self.adaptive is not None:
            control, metrics["alpha_signal"] = self.next_control(state, ess, c_acc, apply)
            metrics["alpha_signal_smoothed"] = control["signal"]
            new_state = new_state.replace(alpha_control=control)
        return new_state, metrics


def instance_noise_schedule(config: ml_collections.ConfigDict):
    """σ(step) of ``critic.instance_noise`` over ``critic.instance_noise_steps`` (-1:
    num_steps), or None when σ₀ = 0 (the step then draws and adds nothing)."""
    sigma = float(config.critic.instance_noise)
    if sigma == 0:
        return None
    steps = int(config.critic.instance_noise_steps)
    return schedules.instance_noise(sigma, int(config.num_steps) if steps == -1 else steps)


def make_train_step(
    config: ml_collections.ConfigDict,
    models: models_lib.Models,
    example_shape: tuple[int, ...],
    *,
    axis_name: str | None = None,
    alpha_schedule: Callable[[jax.Array], jax.Array] | None = None,
    adaptive: schedules.AdaptiveAlpha | None = None,
) -> Callable[[TrainState, jax.Array], tuple[TrainState, Metrics]]:
    """Returns the pure step for ``config.method``; pmap callers pass ``axis_name``.

    ``alpha_schedule`` (step -> α) replaces the config's schedule; the sweep passes
    one that reads a traced per-run table, so runs that differ only in α share a
    compiled step under ``jax.vmap``. ``adaptive`` replaces the config's controller
    settings the same way (a member's traced settings; ``enabled`` false: the table's α),
    and then the state must carry ``alpha_control``.
    """
    return _TrainStep.from_config(config, models, example_shape, axis_name,
                                  alpha_schedule, adaptive).train_step


def make_sampler(
    config: ml_collections.ConfigDict, models: models_lib.Models, example_shape: tuple[int, ...]
) -> Callable[[dict[str, Any], jax.Array, int], jax.Array]:
    """sample(params, key, n) -> n model samples.

    2-D data: x = G(z) + σε (the model's samples). Images: the decoder mean
    (sigmoid of the logits for Bernoulli), as image GAN/VAE papers show.
    """
    model = StepModel(config, models)
    is_image = len(example_shape) == 3

    def sample(params, key, n):
        k_z, k_eps = jax.random.split(key)
        z = jax.random.normal(k_z, (n, model.latent_dim))
        out = model.decode(params["decoder"], z)
        if is_image:
            return models_lib.decoder_mean(out, model.likelihood)
        eps = jax.random.normal(k_eps, (n, *example_shape))
        return models_lib.decoder_sample(out, eps, model.likelihood)

    return sample


def describe_nonfinite(what: int) -> str:
    """Names the quantities set in a first_nonfinite_what bit mask."""
    names = [n for i, n in enumerate(NONFINITE_QUANTITIES) if what & (1 << i)]
    return ", ".join(names) or "unknown"
