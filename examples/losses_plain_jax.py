"""The α-Bridge losses in plain JAX: a linear-Gaussian VAE taken from α = 1 to α = 0.

Run it from the repository root (about 10 s on a CPU):

    python examples/losses_plain_jax.py

What it shows: the loss core (``bridge_jax.divergences``, ``losses``, ``schedules``)
used from your own code, with parameters as dicts of arrays and your own ``jax.jit``
training step; no Flax and none of the trainer (``pip install bridge_jax`` suffices).

The toy is the linear-Gaussian model of METHOD.md §6, where everything is known in
closed form:

    data     Q(x, z) = q(x) q_φ(z|x):   x ~ N(m, v),  z | x ~ N(c x + e, t²)   (encoder φ)
    model    P(x, z) = p(z) p_θ(x|z):   z ~ N(0, 1),  x | z ~ N(a z + b, s²)   (decoder θ)
    critic   d_ψ(x, z) = β + wᵀu + uᵀAu,  u = (x, z)   (quadratic, so it can equal log Q/P)

Both joints are 2-D Gaussians, so D_α(Q‖P) has a closed form (``gaussian_alpha_divergence``
below). Each training step makes 5 critic updates on ``losses.critic_loss`` (optimum
d = log Q/P), then one encoder/decoder update on ``losses.bridge_loss`` while α follows
``schedules.cosine`` from 1 (the VAE) to 0 (adversarial), reached at step 300 and held.

Every 50 steps it prints, on 20,000 fresh samples per side:

    B(critic)     B_α = ``divergences.alpha_bound`` of the trained critic's logits;
    B(exact d*)   the same bound at the exact log ratio d* = log q(x) + ℓ(x, z), a
                  Monte-Carlo estimate of D_α (the bound is tight there);
    D_alpha       the closed-form D_α(Q‖P) at the current α;
    -ELBO         the mean negative ELBO, whose least value is the entropy of q(x).

D_α falls from about 3 to below 0.01 as the model fits the data; B(critic) ≤ D_α (the
bound can dip below 0 when the critic lags behind a fast-moving model) and
B(exact d*) ≈ D_α.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bridge_jax import divergences, losses, schedules

DATA_MEAN, DATA_VAR = 1.5, 0.5  # q(x) = N(m, v): the data, fixed
NUM_STEPS = 400
ALPHA_STEPS = 300  # α reaches 0 here and then stays there
BATCH = 256
EVAL_BATCH = 20_000
PRINT_EVERY = 50
CRITIC_STEPS = 5  # critic updates per encoder/decoder update
LOG_2PI = float(np.log(2.0 * np.pi))


# ---------------------------------------------------------------------------
# The model: plain functions of dicts of arrays.


def init_params():
    """Encoder/decoder parameters far from the data, and a zero critic (d ≡ 0)."""
    f32 = jnp.float32  # explicit dtypes: weakly typed scalars would make jit compile twice
    gen = {
        "enc": {"c": jnp.array(0.0, f32), "e": jnp.array(0.0, f32), "log_t": jnp.array(0.0, f32)},
        "dec": {"a": jnp.array(0.3, f32), "b": jnp.array(-1.0, f32), "log_s": jnp.array(0.0, f32)},
    }
    critic = {"bias": jnp.array(0.0, f32), "w": jnp.zeros(2, f32), "A": jnp.zeros((2, 2), f32)}
    return gen, critic


def log_normal(x, mean, log_std):
    return -0.5 * (LOG_2PI + 2.0 * log_std + ((x - mean) * jnp.exp(-log_std)) ** 2)


def critic_fn(critic, x, z):
    """d_ψ(x, z) = β + wᵀu + uᵀAu: a quadratic, the family the exact log Q/P lies in."""
    u = jnp.stack([x, z], axis=-1)
    return critic["bias"] + u @ critic["w"] + jnp.einsum("ni,ij,nj->n", u, critic["A"], u)


def encode(enc, x, eps):
    """Reparameterised z ~ q_φ(z|x)."""
    return enc["c"] * x + enc["e"] + jnp.exp(enc["log_t"]) * eps


def generate(dec, z, eps):
    """Reparameterised x̃ ~ p_θ(x|z)."""
    return dec["a"] * z + dec["b"] + jnp.exp(dec["log_s"]) * eps


def negative_elbo_terms(gen, x, z):
    """ℓ(x, z) = log q_φ(z|x) − log p(z) − log p_θ(x|z), per example."""
    enc, dec = gen["enc"], gen["dec"]
    return (log_normal(z, enc["c"] * x + enc["e"], enc["log_t"])
            - log_normal(z, 0.0, 0.0)
            - log_normal(x, dec["a"] * z + dec["b"], dec["log_s"]))


def sample_pairs(gen, x, key):
    """Data-side pairs (x, z ~ q_φ(z|x)) and as many model-side pairs (x̃ ~ p_θ(x|z̃), z̃)."""
    k_enc, k_prior, k_dec = jax.random.split(key, 3)
    z = encode(gen["enc"], x, jax.random.normal(k_enc, x.shape))
    z_model = jax.random.normal(k_prior, x.shape)
    x_model = generate(gen["dec"], z_model, jax.random.normal(k_dec, x.shape))
    return (x, z), (x_model, z_model)


def forward(gen, critic, x, key):
    """(ℓ, d_data, d_model): what the bridge losses need, on data- and model-side pairs."""
    data_pair, model_pair = sample_pairs(gen, x, key)
    return (negative_elbo_terms(gen, *data_pair), critic_fn(critic, *data_pair),
            critic_fn(critic, *model_pair))


def sample_data(key, n):
    return DATA_MEAN + np.sqrt(DATA_VAR) * jax.random.normal(key, (n,))


# ---------------------------------------------------------------------------
# Training: your own jitted step, with optax and a traced α.

alpha_fn = schedules.cosine(1.0, 0.0, transition_steps=ALPHA_STEPS)
gen_opt = optax.adam(optax.cosine_decay_schedule(2e-2, NUM_STEPS, alpha=0.02), b1=0.5)
critic_opt = optax.adam(1e-2, b1=0.5)


def critic_objective(critic, gen, x, key):
    _, d_data, d_model = forward(jax.lax.stop_gradient(gen), critic, x, key)
    return losses.critic_loss(d_data, d_model, kind="logistic")


def generator_objective(gen, critic, x, key, alpha):
    nll, d_data, d_model = forward(gen, critic, x, key)  # critic is not differentiated
    return losses.bridge_loss(nll, d_data, d_model, alpha)  # α=1: VAE; α=0: adversarial


@jax.jit
def train_step(state, step, key):
    """CRITIC_STEPS critic updates, then one encoder/decoder update at α = alpha_fn(step)."""
    gen, critic, gen_state, critic_state = state
    alpha = alpha_fn(step)  # a traced scalar: fine inside jit

    def critic_update(carry, k):
        critic, critic_state = carry
        k_x, k_fwd = jax.random.split(k)
        grads = jax.grad(critic_objective)(critic, gen, sample_data(k_x, BATCH), k_fwd)
        updates, critic_state = critic_opt.update(grads, critic_state, critic)
        return (optax.apply_updates(critic, updates), critic_state), None

    (critic, critic_state), _ = jax.lax.scan(
        critic_update, (critic, critic_state), jax.random.split(key, CRITIC_STEPS))
    k_x, k_fwd = jax.random.split(jax.random.fold_in(key, 1))
    loss, grads = jax.value_and_grad(generator_objective)(
        gen, critic, sample_data(k_x, BATCH), k_fwd, alpha)
    updates, gen_state = gen_opt.update(grads, gen_state, gen)
    gen = optax.apply_updates(gen, updates)
    return (gen, critic, gen_state, critic_state), loss


def log_q_data(x):
    return log_normal(x, DATA_MEAN, 0.5 * np.log(DATA_VAR))


def exact_log_ratio(gen, x, z):
    """d*(x, z) = log Q(x, z) − log P(x, z) = log q(x) + ℓ(x, z), the optimal critic."""
    return log_q_data(x) + negative_elbo_terms(gen, x, z)


@jax.jit
def evaluate(gen, critic, alpha, key):
    """On EVAL_BATCH samples per side: B_α of the trained critic, B_α of the exact
    critic d* (a Monte-Carlo estimate of D_α itself), and the mean negative ELBO."""
    k_x, k_pairs = jax.random.split(key)
    data_pair, model_pair = sample_pairs(gen, sample_data(k_x, EVAL_BATCH), k_pairs)
    bound = divergences.alpha_bound(critic_fn(critic, *data_pair),
                                    critic_fn(critic, *model_pair), alpha)
    estimate = divergences.alpha_bound(exact_log_ratio(gen, *data_pair),
                                       exact_log_ratio(gen, *model_pair), alpha)
    return bound, estimate, losses.negative_elbo(negative_elbo_terms(gen, *data_pair))


# ---------------------------------------------------------------------------
# The closed form: both joints are Gaussians over u = (x, z).


def joint_gaussians(gen):
    """(μ_Q, Σ_Q), (μ_P, Σ_P) of the data-side and model-side joints, float64."""
    g = jax.tree.map(float, gen)
    c, e, t2 = g["enc"]["c"], g["enc"]["e"], np.exp(2 * g["enc"]["log_t"])
    a, b, s2 = g["dec"]["a"], g["dec"]["b"], np.exp(2 * g["dec"]["log_s"])
    m, v = DATA_MEAN, DATA_VAR
    q = (np.array([m, c * m + e]), np.array([[v, c * v], [c * v, c * c * v + t2]]))
    p = (np.array([b, 0.0]), np.array([[a * a + s2, a], [a, 1.0]]))
    return q, p


def gaussian_kl(mu1, cov1, mu2, cov2):
    diff = mu1 - mu2
    inv2 = np.linalg.inv(cov2)
    return 0.5 * (np.trace(inv2 @ cov1) + diff @ inv2 @ diff - len(mu1)
                  + np.linalg.slogdet(cov2)[1] - np.linalg.slogdet(cov1)[1])


def gaussian_alpha_divergence(q, p, alpha: float) -> float:
    """D_α(Q‖P) = (1 − ∫Q^α P^(1−α)) / (α(1−α)) for Gaussians; the KLs at the ends."""
    (mu1, cov1), (mu2, cov2) = q, p
    if alpha <= 0.0:
        return float(gaussian_kl(mu2, cov2, mu1, cov1))
    if alpha >= 1.0:
        return float(gaussian_kl(mu1, cov1, mu2, cov2))
    cov_a = (1.0 - alpha) * cov1 + alpha * cov2
    diff = mu1 - mu2
    log_affinity = (-0.5 * alpha * (1 - alpha) * diff @ np.linalg.solve(cov_a, diff)
                    - 0.5 * np.linalg.slogdet(cov_a)[1]
                    + 0.5 * (1 - alpha) * np.linalg.slogdet(cov1)[1]
                    + 0.5 * alpha * np.linalg.slogdet(cov2)[1])
    return float(-np.expm1(log_affinity) / (alpha * (1.0 - alpha)))


# ---------------------------------------------------------------------------


def report(step, gen, critic, key):
    alpha = float(alpha_fn(step))
    bound, estimate, nelbo = (float(v) for v in evaluate(gen, critic, alpha, key))
    exact = gaussian_alpha_divergence(*joint_gaussians(gen), alpha)
    print(f"{step:5d} {alpha:6.3f} {bound:12.4f} {estimate:12.4f} {exact:12.4f} {nelbo:8.4f}")


def main():
    gen, critic = init_params()
    state = (gen, critic, gen_opt.init(gen), critic_opt.init(critic))
    key = jax.random.key(0)
    eval_key = jax.random.key(1)
    print(f"{'step':>5} {'alpha':>6} {'B(critic)':>12} {'B(exact d*)':>12} "
          f"{'D_alpha':>12} {'-ELBO':>8}")
    for step in range(NUM_STEPS + 1):
        if step % PRINT_EVERY == 0:
            report(step, state[0], state[1], eval_key)
        if step < NUM_STEPS:
            state, _ = train_step(state, step, jax.random.fold_in(key, step))
    dec = jax.tree.map(float, state[0]["dec"])
    var = dec["a"] ** 2 + np.exp(2 * dec["log_s"])
    print(f"model p(x) = N({dec['b']:.3f}, {var:.3f}); data q(x) = N({DATA_MEAN}, {DATA_VAR}), "
          f"whose entropy {0.5 * np.log(2 * np.pi * np.e * DATA_VAR):.4f} is the least -ELBO")


if __name__ == "__main__":
    main()
