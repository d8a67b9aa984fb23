"""The PyTorch side of the comparison: the reference step built from a JAX case's weights,
its runners, the interleaved JAX/PyTorch timing and the same-loss check."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bridge_jax import configuration, train_step
from bridge_jax.benchmarks.cases import ALPHA, JaxCase, build_jax_case
from bridge_jax.benchmarks.measurement import measure_interleaved

LOSS_RTOL = 1e-3  # JAX vs PyTorch loss agreement (float32, different conv algorithms)


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _opt_settings(config) -> dict[str, tuple]:
    return {side: (float(config[side].learning_rate), float(config[side].b1),
                   float(config[side].b2), float(config[side].clip_norm))
            for side in ("critic", "generator")}


def reference_for(config, example_shape, params, **kwargs):
    """The PyTorch reference (:class:`~bridge_jax.benchmarks.torch_reference.TorchBridge`)
    of ``config``'s networks and optimizers, with the Flax ``params``' weights."""
    from bridge_jax.benchmarks import torch_reference
    from bridge_jax.train_state import model_config

    return torch_reference.TorchBridge(model_config(config), example_shape,
                                       jax.device_get(params), _opt_settings(config), **kwargs)


def build_torch(case: JaxCase, params=None, **kwargs):
    return reference_for(case.config, case.example_shape,
                         case.state.params if params is None else params, **kwargs)


def _jax_noise(config, key, batch: int, shape) -> dict[str, np.ndarray]:
    """The noise the JAX step draws from ``key`` (as train_step.draw_noise, one device)."""
    idx = jnp.arange(batch)
    latent = int(config.model.latent_dim)
    k_enc, k_prior, k_dec = jax.random.split(key, 3)
    normal = train_step.per_example_normal
    return {"eps_enc": np.asarray(normal(k_enc, idx, (latent,))),
            "z_prior": np.asarray(normal(k_prior, idx, (latent,))),
            "eps_dec": np.asarray(normal(k_dec, idx, tuple(shape)))}


def _torch_noise_of_step(case: JaxCase, ref, state, batch: int) -> tuple[dict, dict]:
    """The (critic, generator) noise the JAX step at ``state`` draws, as PyTorch tensors."""
    import torch

    key = jax.random.fold_in(state.rng, state.step)
    critic_key, gen_key = jax.random.split(key)
    noises = []
    for k in (jax.random.fold_in(critic_key, 0), gen_key):
        n = _jax_noise(case.config, k, batch, case.example_shape)
        n = {name: torch.from_numpy(v) for name, v in n.items()}
        if ref.is_image:
            n["eps_dec"] = n["eps_dec"].permute(0, 3, 1, 2).contiguous()
        noises.append(n)
    return noises[0], noises[1]


def check_losses(size: str, batch: int, steps: int = 2) -> dict[str, Any]:
    """Runs ``steps`` steps of JAX and PyTorch from the same weights on the same batch and
    noise; returns both critic/generator losses per step and the largest relative gap."""
    case = build_jax_case(size, batch)
    ref = build_torch(case)
    schedule = configuration.effective_alpha_schedule(case.config)
    x_t = ref.to_torch_batch(np.asarray(case.batch))
    rows, worst = [], 0.0
    state = case.state
    for s in range(steps):
        noises = _torch_noise_of_step(case, ref, state, batch)
        alpha = float(schedule(s))
        state, metrics = case.compiled(state, case.batch)
        t_c, t_g = ref.step(x_t, alpha, noise=noises)
        j_c, j_g = float(metrics["critic_loss"]), float(metrics["generator_loss"])
        for j, t in ((j_c, float(t_c)), (j_g, float(t_g))):
            worst = max(worst, abs(j - t) / max(abs(j), 1e-6))
        rows.append({"step": s, "alpha": alpha, "jax_critic_loss": j_c,
                     "torch_critic_loss": float(t_c), "jax_generator_loss": j_g,
                     "torch_generator_loss": float(t_g)})
    case.state = state
    return {"size": size, "batch": batch, "steps": rows, "max_rel_diff": worst,
            "rtol": LOSS_RTOL, "ok": worst <= LOSS_RTOL}


def torch_runner(ref, x_np: np.ndarray, alpha: float = ALPHA[0]) -> Callable[[int], None]:
    x_t = ref.to_torch_batch(x_np)

    def run(n: int) -> None:
        for _ in range(n):
            ref.step(x_t, alpha)

    return run


def torch_compile_runner(case: JaxCase, log, budget_s: float = 300.0):
    """torch.compile'd reference step, or None if it fails or compiles for too long."""
    import torch

    ref = build_torch(case)
    try:
        for m in (ref.encoder, ref.decoder, ref.critic):
            m.forward = torch.compile(m.forward)
        run = torch_runner(ref, np.asarray(case.batch))
        t0 = time.perf_counter()
        run(2)
        if time.perf_counter() - t0 > budget_s:
            log("  torch.compile: warm-up exceeded the time box; skipped")
            return None
        return run
    except Exception as e:  # inductor needs a C++ compiler etc.
        log(f"  torch.compile failed: {type(e).__name__}: {str(e)[:200]}")
        return None


def time_jax_and_torch(size: str, batch: int, windows: int, window_s: float,
                       with_torch: bool) -> tuple[JaxCase, dict]:
    """The JAX step (and, ``with_torch``, its PyTorch reference) timed in interleaved
    windows: (the JAX case, :func:`measure_interleaved`'s result for "jax" and "torch")."""
    case = build_jax_case(size, batch)
    runners = {"jax": case.run}
    if with_torch:
        runners["torch"] = torch_runner(build_torch(case), np.asarray(case.batch))
    return case, measure_interleaved(runners, batch, windows, window_s)
