r"""Where the α-Bridge's encoder/decoder gradient comes from, along one training run.

    python -m bridge_jax.experiments.gradient_probe --dataset stacked_mnist \
        --run bridge_cosine --steps 1500 [--set critic.gradient_penalty=0 ...] --out FILE

Trains one sweep member (:func:`bridge_jax.experiments.sweep.run_config` at the full
size, with ``--set`` overrides) and every ``--every`` steps records, on that step's
batch with fixed noise and the current parameters (:func:`term_diagnostics`):

* the critic's logits on both sides (mean, std): how far it separates data and model;
* the ELBO weights w = e^(−(1−α)d) (mean) and their effective sample size
  ESS = (Σw)² / (N Σw²) ∈ (0, 1];
* the norms of the gradients with respect to (encoder, decoder) of the bridge loss's
  two terms, (λ/α)·mean(w·ℓ) and (1−λ)·B_α, and of the plain negative ELBO for scale.

Every ``--eval-every`` steps, Stacked MNIST runs are scored like the sweep (modes of
1000, KL, FD-MNIST-classifier) from ``--eval-samples`` decoder means; the sweep uses
26,000, the default here is 5,000 (faster; fewer modes can be hit by chance). With
``--digit-balance N`` each evaluation also records, from N prior samples and N real
images, where the per-digit imbalance of the samples comes from
(:func:`bridge_jax.evaluation.stacked_mnist.digit_balance`: the digit shares of the
samples, of the prior's nearest encoder codes, of reconstructions and of decoded
posterior samples).
Output: one JSON object per line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bridge_jax import configuration, losses, schedules, train, train_step
from bridge_jax import models as models_lib
from bridge_jax.evaluation import stacked_mnist as stacked_mnist_eval
from bridge_jax.experiments import sweep


def term_diagnostics(model: train_step.StepModel, params, x: jax.Array, noise: dict,
                     alpha: jax.Array, *, mix: str = "quadratic",
                     self_normalize: bool = False) -> dict[str, jax.Array]:
    """Critic logits, ELBO weights and per-term gradient norms of the bridge loss.

    ``noise`` as the train step draws it (eps_enc, z_prior, eps_dec); ``params`` holds
    encoder, decoder and critic. The critic is frozen; gradients are with respect to
    the encoder and decoder.
    """
    gen_params = {k: params[k] for k in train_step.GENERATOR_KEYS}
    critic_params = params["critic"]

    def terms(gp):
        sides = model.forward(gp, x, noise)
        d_data = model.critic(critic_params, x, sides["z_data"])
        d_model = model.critic(critic_params, sides["x_model"], sides["z_model"])
        ml, bound = losses.bridge_terms(sides["nll"], d_data, d_model, alpha, mix=mix,
                                        self_normalize=self_normalize)
        return (ml, bound, losses.negative_elbo(sides["nll"])), (d_data, d_model)

    (_, (d_data, d_model)) = terms(gen_params)
    grads = [jax.grad(lambda gp, i=i: terms(gp)[0][i])(gen_params) for i in range(3)]
    w = losses.bridge_weights(d_data, alpha)  # unnormalised: its mean shows the scale
    return {"alpha": jnp.asarray(alpha, jnp.float32),
            "d_data_mean": jnp.mean(d_data), "d_data_std": jnp.std(d_data),
            "d_model_mean": jnp.mean(d_model), "d_model_std": jnp.std(d_model),
            "weight_mean": jnp.mean(w),
            "weight_ess": losses.effective_sample_size(w),
            "grad_norm_elbo_term": optax.tree.norm(grads[0]),
            "grad_norm_bound_term": optax.tree.norm(grads[1]),
            "grad_norm_negative_elbo": optax.tree.norm(grads[2])}


def probe_run(dataset: str, run_key: str, num_steps: int, *, every: int = 50,
              eval_every: int = 250, eval_samples: int = 5000,
              overrides: tuple = (), classifier_cache: str = "", size=sweep.FULL,
              digit_balance: int = 0, log=print):
    """Trains one member for ``num_steps`` steps; yields one record per probe/evaluation.

    ``digit_balance`` > 0 (Stacked MNIST): each evaluation adds ``digit_balance`` from
    that many prior samples and real images (a held-out eval stream, seed 2).
    """
    size = dataclasses.replace(size, overrides=tuple(overrides))
    config = sweep.run_config(dataset, sweep.RUNS_BY_KEY[run_key], size)
    if config.method not in configuration.ENCODER_METHODS:
        raise configuration.ConfigError(
            f"run {run_key!r} (method {config.method}) has no ELBO term to probe")
    if digit_balance > 0 and (dataset != "stacked_mnist" or eval_every <= 0):
        raise configuration.ConfigError(
            "--digit-balance needs --dataset stacked_mnist and --eval-every > 0")
    data = train.make_dataset(config, seed=0)
    shape = data.example_shape
    models, state = train.build(config, shape)
    schedule = schedules.from_table(jnp.asarray(sweep.alpha_table(config)))
    step_fn = jax.jit(train_step.make_train_step(config, models, shape,
                                                 alpha_schedule=schedule), donate_argnums=0)
    model = train_step.StepModel(config, models)

    @jax.jit
    def probe(params, step, x):
        k_enc, k_prior, k_dec = jax.random.split(jax.random.PRNGKey(0), 3)
        idx = jnp.arange(x.shape[0])
        noise = {"eps_enc": train_step.per_example_normal(k_enc, idx, (model.latent_dim,)),
                 "z_prior": train_step.per_example_normal(k_prior, idx, (model.latent_dim,)),
                 "eps_dec": train_step.per_example_normal(k_dec, idx, shape)}
        return term_diagnostics(model, params, x, noise, schedule(step),
                                mix=config.alpha.mix,
                                self_normalize=bool(config.alpha.self_normalize))

    evaluate = None
    if dataset in sweep.IMAGE_DATASETS and eval_every > 0:
        from bridge_jax.experiments import stacked_mnist as image_sweep

        evaluator = image_sweep.make_evaluator(config, eval_samples, classifier_cache or
                                               image_sweep.default_cache_dir("."), log=log)
        sampler = train_step.make_sampler(config, models, shape)
        sample_fn = jax.jit(lambda p, k: sampler(p, k, image_sweep.SAMPLE_CHUNK))

        balance = None
        if digit_balance > 0:
            real_images, real_labels = data.eval_arrays(digit_balance, seed=2)
            prior_z = np.asarray(jax.random.normal(jax.random.PRNGKey(11),
                                                   (digit_balance, model.latent_dim)))

            def encode(p, x, i, noise):  # noise 0: the encoder mean; 1: z ~ q(z|x)
                key = jax.random.fold_in(jax.random.PRNGKey(13), i)
                eps = noise * jax.random.normal(key, (x.shape[0], model.latent_dim))
                return model.encode(p, x, eps)[2]

            encode = jax.jit(encode)
            decode_mean = jax.jit(lambda p, z: models_lib.decoder_mean(
                model.decode(p, z), model.likelihood))

            def chunked(fn, a):  # fn(chunk, chunk index)
                n = image_sweep.SAMPLE_CHUNK
                return np.concatenate([np.asarray(fn(a[i:i + n], i))
                                       for i in range(0, len(a), n)])

            def balance(params):
                enc, dec = params["encoder"], params["decoder"]
                return stacked_mnist_eval.digit_balance(
                    real_images=real_images, real_labels=real_labels, prior_z=prior_z,
                    encode_mean=lambda x: chunked(lambda c, i: encode(enc, c, i, 0.0), x),
                    encode_sample=lambda x: chunked(lambda c, i: encode(enc, c, i, 1.0), x),
                    decode_mean=lambda z: chunked(lambda c, i: decode_mean(dec, c), z),
                    classify=lambda x: stacked_mnist_eval.predict_triples(
                        x, evaluator.classifier_params))

        def evaluate(params):
            samples = image_sweep.draw_samples(sample_fn, params, jax.random.PRNGKey(7),
                                               eval_samples)
            out = image_sweep.image_metrics(samples, evaluator.classifier_params,
                                            evaluator.real_features)
            if balance is not None:
                out["digit_balance"] = balance(params)
            return out

    t0 = time.time()
    for step in range(num_steps):
        x = jnp.asarray(data.get_batch(step))
        if step % every == 0:
            yield {"step": step, **{k: float(v) for k, v in
                                    jax.device_get(probe(state.params, step, x)).items()}}
        state, metrics = step_fn(state, x)
        if evaluate is not None and (step + 1) % eval_every == 0:
            yield {"step": step + 1, "critic_accuracy": float(metrics["critic_accuracy"]),
                   "wall_s": time.time() - t0, **evaluate(state.params)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="stacked_mnist")
    p.add_argument("--run", default="bridge_cosine", help="a sweep run key")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--every", type=int, default=50)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--eval-samples", type=int, default=5000)
    p.add_argument("--classifier-cache", default="",
                   help="folder of the cached digit classifier (default: ./classifier)")
    p.add_argument("--digit-balance", type=int, default=0, metavar="N",
                   help="Stacked MNIST: per-digit shares of samples, decoded posterior "
                        "codes, nearest codes and reconstructions from N prior samples / "
                        "real images per evaluation")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    p.add_argument("--out", default="", help="JSON lines file (default: stdout only)")
    args = p.parse_args(argv)
    if args.run not in sweep.RUNS_BY_KEY:
        p.error(f"unknown run {args.run!r}; choose from {sorted(sweep.RUNS_BY_KEY)}")
    try:
        records = probe_run(args.dataset, args.run, args.steps, every=args.every,
                            eval_every=args.eval_every, eval_samples=args.eval_samples,
                            overrides=sweep.parse_overrides(args.set),
                            classifier_cache=args.classifier_cache,
                            digit_balance=args.digit_balance,
                            log=lambda s: print(s, file=sys.stderr))
        with open(args.out or os.devnull, "w") as out:
            for record in records:
                line = json.dumps(record)
                print(line, flush=True)
                out.write(line + "\n")
                out.flush()
    except configuration.ConfigError as e:
        p.error(str(e))
    return 0


if __name__ == "__main__":
    sys.exit(main())
