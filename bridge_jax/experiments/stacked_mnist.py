r"""The method sweep on Stacked MNIST (METHOD.md §8; VEEGAN/PacGAN protocol).

Called by :mod:`bridge_jax.experiments.sweep` for ``--datasets stacked_mnist``.
DCGAN-sized models are trained one member (run, seed) at a time — ``jax.vmap``
over convolution weights becomes a grouped convolution, which XLA:CPU runs
slowly — but every α-family member reuses one compiled step,
its α read from a table argument, as in the 2-D sweep (one call per step: no
``lax.scan``, whose while loop slows convolutions on XLA:CPU).

Every ``eval_every`` steps each member draws ``num_eval_samples`` decoder means
(26,000 in the protocol), and is scored by
:func:`bridge_jax.evaluation.stacked_mnist.stacked_mnist_metrics` (modes of 1000
predicted at least once, KL(p̂ ‖ U_1000)) with the project's digit classifier,
plus FD-MNIST-classifier: the Fréchet distance between the classifier's
penultimate features of generated and real channels (every channel of every
image is one 28×28 digit; not FID, see :mod:`bridge_jax.evaluation.frechet`).
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bridge_jax import schedules, train, train_step
from bridge_jax.evaluation import classifier as classifier_lib
from bridge_jax.evaluation.frechet import frechet_distance_from_features
from bridge_jax.evaluation.stacked_mnist import stacked_mnist_metrics

METRIC_KEYS = ("modes_covered", "kl_to_uniform", "fd")
SAMPLE_CHUNK = 1000  # samples drawn per compiled sampler call
NUM_SHOWN_SAMPLES = 64  # seed-0 images kept per run for the plots


def channel_features(params, images: np.ndarray) -> np.ndarray:
    """Classifier penultimate features of every channel: (N, 28, 28, C) → (N·C, D)."""
    images = np.asarray(images, np.float32)
    channels = np.moveaxis(images, -1, 0).reshape(-1, *images.shape[1:3], 1)
    return classifier_lib.batched_features(params, channels)


def draw_samples(sample_fn, params, key: jax.Array, n: int) -> np.ndarray:
    """n decoder means, drawn SAMPLE_CHUNK at a time with one compiled sampler."""
    chunks = []
    for i in range(-(-n // SAMPLE_CHUNK)):
        chunks.append(np.asarray(sample_fn(params, jax.random.fold_in(key, i))))
    return np.concatenate(chunks)[:n]


def image_metrics(samples: np.ndarray, classifier_params, real_features: np.ndarray) -> dict:
    """Stacked-MNIST modes and KL (with its split into the channels' class imbalance and
    their dependence), and FD-MNIST-classifier of the channels against real ones."""
    m = stacked_mnist_metrics(samples, classifier_params)
    fd = frechet_distance_from_features(channel_features(classifier_params, samples),
                                        real_features)
    return m | {"fd": fd}


@dataclasses.dataclass(frozen=True)
class Evaluator:
    """What every member's evaluation shares: the digit classifier and the real features."""

    classifier_params: Any
    accuracy: float
    real_features: np.ndarray
    data_reference: dict  # image_metrics of real images: the floor the protocol allows


def make_evaluator(config, num_eval_samples: int, cache_dir: str, log=print) -> Evaluator:
    """Loads (or trains and caches) the classifier; features of min(n, 10,000) real images
    (eval stream seed 0); and the metrics of ``num_eval_samples`` other real images (seed
    1), scored exactly as a model's samples are: what the data itself gets (modes, KL from
    the classifier's errors and the finite sample, FD of two real sets)."""
    classifier_params, accuracy = classifier_lib.load_or_train_classifier(cache_dir)
    dataset = train.make_dataset(config, seed=0)
    real, _ = dataset.eval_arrays(min(num_eval_samples, 10_000), seed=0)
    real_features = channel_features(classifier_params, real)
    reference = image_metrics(dataset.eval_arrays(num_eval_samples, seed=1)[0],
                              classifier_params, real_features)
    log(f"  [{config.data.name}] digit classifier held-out accuracy {accuracy:.4f}; "
        f"{len(real)} real images for FD; real data scores {reference['modes_covered']} "
        f"modes, KL {reference['kl_to_uniform']:.3f}, FD {reference['fd']:.2f}")
    return Evaluator(classifier_params, float(accuracy), real_features, reference)


def train_image_group(dataset: str, runs: list, size, *, run_config, alpha_table, summarize,
                      tracked: tuple[str, ...], evaluator: Evaluator,
                      log=print) -> dict[str, dict]:
    """Trains ``runs`` (one config.method) × seeds on an image dataset; per-run results.

    ``run_config``, ``alpha_table`` and ``summarize`` are the sweep's own functions,
    passed in so that both sweeps build configs and tables the same way; ``evaluator``
    is made once per sweep (:func:`make_evaluator`).
    """
    seeds = list(range(size.image_num_seeds))
    cfgs = [run_config(dataset, r, size) for r in runs]
    cfg = cfgs[0]
    num_steps, eval_every = int(cfg.num_steps), int(size.image_eval_every)
    n_eval = int(size.image_num_eval_samples)
    shape = train.make_dataset(cfg, seed=0).example_shape
    classifier_params, accuracy = evaluator.classifier_params, evaluator.accuracy
    real_features = evaluator.real_features

    # Optimizer chains are static pytree aux data: every member shares these objects,
    # so the compiled chunk is reused instead of retraced.
    models, first_state = train.build(cfg, shape)

    def one_step(state, x, table):
        step_fn = train_step.make_train_step(cfg, models, shape,
                                                 alpha_schedule=schedules.from_table(table))
        state, metrics = step_fn(state, x)
        return state, {k: metrics[k] for k in tracked if k in metrics}

    # One call per step, not a lax.scan: XLA:CPU runs convolutions inside a while loop
    # several times slower (see train_step.py).
    step_jit = jax.jit(one_step, donate_argnums=0)

    def run_chunk(state, batches, table):
        history = []
        for x in batches:
            state, metrics = step_jit(state, x, table)
            history.append(metrics)
        return state, jax.tree.map(lambda *a: jnp.mean(jnp.stack(a)), *history)

    sampler = train_step.make_sampler(cfg, models, shape)
    sample_fn = jax.jit(lambda p, k: sampler(p, k, SAMPLE_CHUNK))

    out: dict[str, dict] = {}
    t0 = time.time()
    for r_i, run in enumerate(runs):
        table = jnp.asarray(alpha_table(cfgs[r_i]))
        per_seed, trajectories, shown, nonfinite, first_nonfinite = [], [], None, [], []
        for seed in seeds:
            _, state = train.build(run_config(dataset, run, size, seed=seed), shape)
            state = state.replace(gen_tx=first_state.gen_tx, critic_tx=first_state.critic_tx)
            data = train.make_dataset(cfg, seed=seed)
            traj, step = [], 0
            while step < num_steps:
                k = min(eval_every, num_steps - step)
                batch = np.stack([data.get_batch(step + i) for i in range(k)])
                state, train_metrics = run_chunk(state, batch, table)
                step += k
                key = jax.random.fold_in(jax.random.PRNGKey(1234 + seed), step)
                samples = draw_samples(sample_fn, state.params, key, n_eval)
                metrics = image_metrics(samples, classifier_params, real_features)
                traj.append({"step": step, "metrics": metrics,
                             "train": {kk: float(v) for kk, v in
                                       jax.device_get(train_metrics).items()}})
                log(f"  [{dataset}] {run.key} seed {seed} step {step}/{num_steps}: "
                    f"{metrics['modes_covered']} modes, KL {metrics['kl_to_uniform']:.3f}, "
                    f"FD {metrics['fd']:.2f} ({time.time() - t0:.0f}s)")
            per_seed.append(traj[-1]["metrics"])
            trajectories.append(traj)
            nonfinite.append(int(state.nonfinite_count))
            first_nonfinite += train_step.first_nonfinite_records(state)
            if shown is None:
                shown = samples[:NUM_SHOWN_SAMPLES]
        out[run.key] = {
            "key": run.key, "label": run.label, "method": run.method, "note": run.note,
            "alpha": {"schedule": run.schedule, "start": run.alpha_start, "end": run.alpha_end},
            "seeds": seeds, "num_steps": num_steps, "per_seed": per_seed,
            "summary": summarize(per_seed, METRIC_KEYS),
            "nonfinite_updates": nonfinite,
            "first_nonfinite": first_nonfinite,
            "trajectory": [{
                "step": points[0]["step"],
                "summary": summarize([p["metrics"] for p in points], METRIC_KEYS),
                **{f"train_{k}": float(np.mean([p["train"][k] for p in points]))
                   for k in points[0]["train"]},
            } for points in zip(*trajectories, strict=True)],
            "samples_seed0": np.asarray(shown),
            "classifier_accuracy": float(accuracy),
        }
    wall = time.time() - t0
    for run_out in out.values():
        run_out["group_wall_s"] = wall
    return out


def default_cache_dir(out_dir: str) -> str:
    """Where the digit classifier is cached: ``<out_dir>/classifier``."""
    return os.path.join(out_dir, "classifier")
