"""The α-Bridge losses with a Flax NNX model, on a ring of 8 Gaussians in 2-D.

Run it from the repository root (about 15 s on a CPU):

    python examples/losses_flax_nnx.py

What it shows: ``bridge_jax.losses`` and ``bridge_jax.schedules`` inside your own
``nnx.jit`` training step, with ``flax.nnx`` modules and ``nnx.Optimizer`` (optax Adam).
Besides the loss core it needs Flax (``pip install "bridge_jax[train]"`` has it).
The model is a small VAE (MLP encoder q_φ(z|x), MLP decoder p_θ(x|z) = N(G(z), σ²I) with a
learned σ) and a joint critic d_ψ(x, z) ≈ log Q/P. Each step updates the critic on
``losses.critic_loss`` plus the R1 penalty ``losses.gradient_penalty``, then the VAE on
``losses.bridge_loss`` at α = ``alpha_fn(step)``, a cosine path from 1 (the VAE loss) to
0 (the adversarial bound), reached at step 200 and held for the last 100 steps.

The data are 8 Gaussians on the unit circle (``bridge_jax.data.mixtures.ring_centers``)
with std 0.1, wider than the benchmark's 0.01 so that a few seconds of training suffice.
Every 50 steps it prints the last step's α, critic loss (with the penalty), bridge loss
and bound B_α on the batch (``divergences.alpha_bound``; the bridge loss equals it at
α = 0), and the quality of 2,500 model samples x = G(z) + σε by the PacGAN protocol
(``bridge_jax.evaluation.mixtures.mixture_metrics``): ``hq``, the fraction of samples
within 3 std of a mode centre, and ``modes``, the modes such samples reach (of 8).
``hq`` rises as the samples gather on the modes: from about 0.13 for the untrained
decoder to about 0.36 here (the benchmark ring takes thousands of steps to get sharp).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from bridge_jax import divergences, losses, schedules
from bridge_jax.data.mixtures import ring_centers, sample_mixture
from bridge_jax.evaluation.mixtures import mixture_metrics

MODE_STD = 0.1
NUM_STEPS = 300
ALPHA_STEPS = 200
BATCH = 256
EVAL_SAMPLES = 2500
PRINT_EVERY = 50
WIDTH = 64
LATENT = 2
LEARNING_RATE = 5e-3
GP_WEIGHT = 10 * MODE_STD**2  # R1 weight γ, scaled as in configs/mixture.py
LOG_2PI = float(np.log(2.0 * np.pi))


def log_normal(x, mean, log_std):
    """log N(x; mean, e^(2 log_std)) summed over the last axis."""
    z = (x - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * (LOG_2PI + z * z) - log_std, axis=-1)


class MLP(nnx.Module):
    """Two hidden layers of WIDTH units."""

    def __init__(self, d_in: int, d_out: int, act, rngs: nnx.Rngs):
        self.layers = nnx.List([nnx.Linear(d_in, WIDTH, rngs=rngs),
                                nnx.Linear(WIDTH, WIDTH, rngs=rngs),
                                nnx.Linear(WIDTH, d_out, rngs=rngs)])
        self.act = act

    def __call__(self, h):
        for layer in self.layers[:-1]:
            h = self.act(layer(h))
        return self.layers[-1](h)


class VAE(nnx.Module):
    """Encoder q_φ(z|x) = N(μ(x), diag s(x)²); decoder p_θ(x|z) = N(G(z), σ² I), σ learned."""

    def __init__(self, rngs: nnx.Rngs):
        self.encoder = MLP(2, 2 * LATENT, nnx.relu, rngs)
        self.decoder = MLP(LATENT, 2, nnx.relu, rngs)
        self.log_scale = nnx.Param(jnp.array(np.log(0.1), jnp.float32))

    def encode(self, x, eps):
        """Reparameterised z ~ q_φ(z|x), and log q_φ(z|x)."""
        mean, log_std = jnp.split(self.encoder(x), 2, axis=-1)
        z = mean + jnp.exp(log_std) * eps
        return z, log_normal(z, mean, log_std)

    def decode(self, z, eps):
        """Reparameterised x̃ ~ p_θ(x|z)."""
        return self.decoder(z) + jnp.exp(self.log_scale[...]) * eps

    def log_likelihood(self, x, z):
        return log_normal(x, self.decoder(z), self.log_scale[...])


class Critic(nnx.Module):
    """d_ψ(x, z): one logit per (x, z) pair, estimating log Q(x, z)/P(x, z)."""

    def __init__(self, rngs: nnx.Rngs):
        self.mlp = MLP(2 + LATENT, 1, lambda h: nnx.leaky_relu(h, 0.2), rngs)

    def __call__(self, x, z):
        return self.mlp(jnp.concatenate([x, z], axis=-1))[:, 0]


def forward(vae: VAE, critic: Critic, x, key):
    """(ℓ, d_data, d_model): the per-example negative ELBO integrand and critic logits."""
    k_enc, k_prior, k_dec = jax.random.split(key, 3)
    z, log_q_z = vae.encode(x, jax.random.normal(k_enc, (x.shape[0], LATENT)))
    nll = log_q_z - log_normal(z, 0.0, 0.0) - vae.log_likelihood(x, z)
    z_model = jax.random.normal(k_prior, (x.shape[0], LATENT))
    x_model = vae.decode(z_model, jax.random.normal(k_dec, x.shape))
    return nll, critic(x, z), critic(x_model, z_model)


alpha_fn = schedules.cosine(1.0, 0.0, transition_steps=ALPHA_STEPS)


def critic_objective(critic, vae, x, key):
    """Logistic critic loss (optimum d = log Q/P) plus the R1 penalty on data-side pairs."""
    k_fwd, k_enc = jax.random.split(key)
    _, d_data, d_model = forward(vae, critic, x, k_fwd)
    z, _ = vae.encode(x, jax.random.normal(k_enc, (x.shape[0], LATENT)))
    penalty = losses.gradient_penalty(critic, x, z)  # critic(x, z) -> (N,) logits
    return losses.critic_loss(d_data, d_model, kind="logistic") + GP_WEIGHT * penalty


def vae_objective(vae, critic, x, key, alpha):
    nll, d_data, d_model = forward(vae, critic, x, key)
    return losses.bridge_loss(nll, d_data, d_model, alpha), divergences.alpha_bound(
        d_data, d_model, alpha)


@nnx.jit
def train_step(vae, critic, vae_opt, critic_opt, x, key, step):
    """One critic update, then one VAE update.

    ``nnx.value_and_grad`` differentiates only the first argument: the critic update
    leaves the VAE alone, and the VAE update sees a frozen critic, as ``bridge_loss``
    requires.
    """
    alpha = alpha_fn(step)
    k_critic, k_vae = jax.random.split(key)
    critic_loss, grads = nnx.value_and_grad(critic_objective)(critic, vae, x, k_critic)
    critic_opt.update(critic, grads)
    (loss, bound), grads = nnx.value_and_grad(vae_objective, has_aux=True)(
        vae, critic, x, k_vae, alpha)
    vae_opt.update(vae, grads)
    return {"alpha": alpha, "critic_loss": critic_loss, "bridge_loss": loss, "bound": bound}


@nnx.jit
def sample(vae, key):
    k_prior, k_dec = jax.random.split(key)
    z = jax.random.normal(k_prior, (EVAL_SAMPLES, LATENT))
    return vae.decode(z, jax.random.normal(k_dec, (EVAL_SAMPLES, 2)))


def quality(vae, key):
    """PacGAN metrics of EVAL_SAMPLES model samples against the ring's modes."""
    return mixture_metrics(np.asarray(sample(vae, key)), ring_centers(), MODE_STD)


def report(step, vae, metrics, key):
    """One line: the last step's α and losses ('-' before training), and sample quality."""
    if metrics is None:
        losses_text = f"{float(alpha_fn(0)):6.3f} {'-':>8} {'-':>8} {'-':>8}"
    else:
        m = {k: float(v) for k, v in metrics.items()}
        losses_text = (f"{m['alpha']:6.3f} {m['critic_loss']:8.4f} {m['bridge_loss']:8.4f} "
                       f"{m['bound']:8.4f}")
    q = quality(vae, key)
    print(f"{step:5d} {losses_text} {q['hq_fraction']:6.3f} {q['modes_covered']:5d}")


def make_optimizer(model):
    """Adam (b1 = 0.5, as usual for adversarial training) with a cosine learning-rate decay."""
    tx = optax.adam(optax.cosine_decay_schedule(LEARNING_RATE, NUM_STEPS, alpha=0.1), b1=0.5)
    return nnx.Optimizer(model, tx, wrt=nnx.Param)


def main():
    rngs = nnx.Rngs(0)
    vae, critic = VAE(rngs), Critic(rngs)
    vae_opt, critic_opt = make_optimizer(vae), make_optimizer(critic)
    data_rng = np.random.default_rng(0)
    key, eval_key = jax.random.key(1), jax.random.key(2)
    print(f"{'step':>5} {'alpha':>6} {'critic':>8} {'bridge':>8} {'B_alpha':>8} "
          f"{'hq':>6} {'modes':>5}")
    metrics = None  # the last step's metrics
    for step in range(NUM_STEPS + 1):
        if step % PRINT_EVERY == 0:
            report(step, vae, metrics, eval_key)
        if step < NUM_STEPS:
            x, _ = sample_mixture(data_rng, ring_centers(), MODE_STD, BATCH)
            metrics = train_step(vae, critic, vae_opt, critic_opt, jnp.asarray(x),
                                 jax.random.fold_in(key, step), step)


if __name__ == "__main__":
    main()
