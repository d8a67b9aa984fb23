r"""The method sweep on the 2-D mixtures (METHOD.md §7, §8): every baseline, several seeds.

    python -m bridge_jax.experiments.sweep --quick --out results/
    python -m bridge_jax.experiments.sweep --full --out results/

Every method of §7 is trained on the ring of 8 and the grid of 25 Gaussians for
several seeds, all seeds of a method *at once*: one TrainState per seed, stacked
into one pytree, and the pure train step ``jax.vmap``-ed over (state, batch),
with per-seed batches from ``make_dataset(config, seed=s)``. Methods that differ
only in their α schedule (VAE α≡1, adversarial α≡0, fixed α, the α-Bridge 1→0)
share one compiled step: each run reads α from its own row of a table that is
an argument of the step, so ``jax.vmap`` runs them side by side as well. (On
Stacked MNIST the α-Bridge path is 1→0.25: ``configuration.STACKED_MNIST_OVERRIDES``.)

Every ``eval_every`` steps each run draws 2,500 samples and is scored with the
PacGAN protocol (:func:`bridge_jax.evaluation.mixtures.mixture_metrics`). The
output folder receives ``results.md`` (tables: mean ± std over seeds, with the
published PacGAN rows for context), ``results.json`` (every seed, every
evaluation), and the plots of :mod:`bridge_jax.experiments.plots`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from bridge_jax import configuration, schedules, train, train_step
from bridge_jax import data as data_lib
from bridge_jax.configuration import set_field
from bridge_jax.evaluation.mixtures import (
    HQ_NUM_STDS,
    PACGAN_NUM_EVAL_SAMPLES,
    STRICT_COVERAGE_FRACTION,
    mixture_metrics,
)
from bridge_jax.evaluation.stacked_mnist import STACKED_MNIST_NUM_MODES
from bridge_jax.experiments import stacked_mnist as stacked_mnist_sweep

METRIC_KEYS = ("modes_covered", "modes_covered_strict", "hq_fraction", "reverse_kl")
IMAGE_METRIC_KEYS = stacked_mnist_sweep.METRIC_KEYS
# The first row of every table: real data scored by the same protocol.
DATA_REFERENCE_LABEL = "training data (reference)"
TRACKED_STEP_METRICS = ("alpha", "critic_accuracy", "generator_loss", "update_applied",
                        "decoder_scale")
BRIDGE_RUN = "bridge_cosine"  # the run whose trajectory is plotted first
MIXTURE_DATASETS = ("ring", "grid")
IMAGE_DATASETS = ("stacked_mnist",)


@dataclasses.dataclass(frozen=True)
class Run:
    """One column of the sweep: a method and, for the α family, its α schedule."""

    key: str
    label: str
    method: str  # config.method that builds the step
    schedule: str = "constant"
    alpha_start: float = 1.0
    alpha_end: float = 0.0
    note: str = ""


RUNS: tuple[Run, ...] = (
    Run("vae", "VAE (α≡1)", "bridge", "constant", 1.0, 1.0,
        "method=vae: the step of method=bridge with α≡1"),
    Run("adversarial", "Adversarial (α≡0)", "bridge", "constant", 0.0, 0.0,
        "method=adversarial: the step of method=bridge with α≡0 (ALI/BiGAN-like)"),
    Run("nsgan", "NS-GAN", "nsgan"),
    Run("hybrid", "VAE-GAN hybrid", "hybrid"),
    Run("fgan_0.5", "f-GAN α-family (α=0.5)", "fgan", "constant", 0.5, 0.5),
    Run("fixed_0.25", "fixed α=0.25", "bridge", "constant", 0.25, 0.25),
    Run("fixed_0.5", "fixed α=0.5", "bridge", "constant", 0.5, 0.5),
    Run("fixed_0.75", "fixed α=0.75", "bridge", "constant", 0.75, 0.75),
    Run("bridge_cosine", "α-Bridge 1→0 (cosine)", "bridge", "cosine", 1.0, 0.0),
    Run("bridge_linear", "α-Bridge 1→0 (linear)", "bridge", "linear", 1.0, 0.0),
)
RUNS_BY_KEY = {r.key: r for r in RUNS}


@dataclasses.dataclass(frozen=True)
class SweepSize:
    """How big a sweep is; the same for every method."""

    num_seeds: int
    num_steps: dict[str, int]  # per dataset
    eval_every: int
    batch_size: int
    width: dict[str, int]
    depth: dict[str, int]
    learning_rate: float = 1e-3
    critic_steps: int = 1
    init_scale: float = 0.03  # initial decoder noise scale σ (learned); base_config: 0.1
    lr_schedule: str = "constant"  # both players: "constant" or "cosine" decay to 0
    # α-Bridge schedules reach α_end at this fraction of training, then hold it.
    transition_fraction: float = 1.0
    num_eval_samples: int = PACGAN_NUM_EVAL_SAMPLES
    # Stacked MNIST (DCGAN, Bernoulli decoder; one member at a time, see stacked_mnist.py).
    image_num_seeds: int = 1
    image_eval_every: int = 500
    image_num_eval_samples: int = 26_000  # the VEEGAN/PacGAN protocol
    image_learning_rate: float = 2e-4
    image_latent_dim: int = 32
    # Config fields for one dataset's runs (every method), applied before `overrides`:
    # {"stacked_mnist": (("critic.gradient_penalty", 1.0), ...), ...}.
    dataset_overrides: dict[str, tuple[tuple[str, Any], ...]] = dataclasses.field(
        default_factory=dict)
    # Further config overrides for every run, ("critic.steps", 2), ...: applied last.
    overrides: tuple[tuple[str, Any], ...] = ()


# 2 shared CPU cores: small MLPs and batches so that 10 methods × 10 seeds × 2 datasets fit.
QUICK = SweepSize(num_seeds=3, num_steps={"ring": 300, "grid": 300, "stacked_mnist": 200},
                  eval_every=100, batch_size=64,
                  width={"ring": 64, "grid": 64, "stacked_mnist": 16},
                  depth={"ring": 2, "grid": 2, "stacked_mnist": 1},
                  image_eval_every=100, image_num_eval_samples=2_000)
# Chosen from the 5-seed runs of results/investigation.md: width 128 and cosine lr
# decay help every method; the α-Bridge reaches α=0 at 1/6 of training; per mixture
# (configuration.MIXTURE_DEPTH, MIXTURE_OVERRIDES, shared with configs/ring.py and
# grid.py): 3 (ring) or 4 (grid) hidden layers, an R1 penalty on every critic, which
# keeps the bridge's modes through the adversarial phase, and on the ring a
# faster-learning decoder σ.
FULL = SweepSize(num_seeds=10, num_steps={"ring": 9000, "grid": 9000, "stacked_mnist": 1500},
                 eval_every=500, batch_size=64,
                 width={"ring": 128, "grid": 128, "stacked_mnist": 32},
                 depth={**configuration.MIXTURE_DEPTH, "stacked_mnist": 1},
                 lr_schedule="cosine", transition_fraction=1 / 6,
                 image_num_seeds=1, image_eval_every=500,
                 # Stacked MNIST (configuration.STACKED_MNIST_OVERRIDES): R1 keeps the
                 # critic's logits bounded, and the α-Bridge holds α = 0.25 from 1/6 of
                 # training. (Earlier sweeps: --set alpha.end=0 --set
                 # alpha.transition_steps=-1 is the 1 → 0 path over the whole run;
                 # results/stacked_mnist_self_normalised/ also self-normalised the ELBO weights.)
                 dataset_overrides={
                     **configuration.MIXTURE_OVERRIDES,
                     "stacked_mnist": configuration.STACKED_MNIST_OVERRIDES})
TINY = SweepSize(num_seeds=2, num_steps={"ring": 4, "grid": 4, "stacked_mnist": 4},
                 eval_every=2, batch_size=16,
                 width={"ring": 8, "grid": 8, "stacked_mnist": 8},
                 depth={"ring": 1, "grid": 1, "stacked_mnist": 1},
                 num_eval_samples=200, image_num_seeds=2, image_eval_every=2,
                 image_num_eval_samples=300)
SIZES = {"quick": QUICK, "full": FULL, "tiny": TINY}

# Published rows (context, not our measurement): Lin et al. 2018, "PacGAN: The power
# of two samples in generative adversarial networks", NeurIPS; Tables 2 and 3 (2-D
# mixtures, 10 trials) and Table 4 (Stacked MNIST, unrolled-GAN architecture).
PUBLISHED = {
    "ring": [("GAN", 6.3, 98.2, 0.45), ("ALI", 6.6, 97.6, 0.36), ("PacGAN4", 7.8, 95.9, 0.07)],
    "grid": [("GAN", 17.3, 94.8, 0.70), ("ALI", 24.1, 95.7, 0.14),
             ("PacGAN4", 24.8, 93.6, 0.04)],
    "stacked_mnist": [("DCGAN", 78.9, None, 4.50), ("PacDCGAN2", 1000.0, None, 0.06)],
}
PUBLISHED_SOURCE = ("Lin, Khetan, Fanti, Oh (2018), PacGAN: The power of two samples in "
                    "generative adversarial networks, NeurIPS 2018 — 2-D mixture tables "
                    "(average over 10 trials) and the Stacked MNIST table")


def run_config(dataset: str, run: Run, size: SweepSize, seed: int = 0) -> ml_collections.ConfigDict:
    """The experiment config of one (dataset, run, seed)."""
    c = configuration.base_config()
    c.seed = int(seed)
    c.method = run.method
    c.data.name = dataset
    c.model.width = int(size.width[dataset])
    c.model.depth = int(size.depth[dataset])
    c.num_steps = int(size.num_steps[dataset])
    c.batch_size = int(size.batch_size)
    learning_rate = float(size.learning_rate)
    if dataset in IMAGE_DATASETS:
        c.model.arch = "dcgan"
        c.model.latent_dim = int(size.image_latent_dim)
        c.model.likelihood = "bernoulli"  # as configs/mnist.py; see its comment
        learning_rate = float(size.image_learning_rate)
    else:
        c.model.arch = "mlp"
        c.model.latent_dim = 2
        c.model.init_log_scale = math.log(float(size.init_scale))
    c.alpha.schedule = run.schedule
    c.alpha.start = float(run.alpha_start)
    c.alpha.end = float(run.alpha_end)
    c.critic.steps = int(size.critic_steps)
    c.critic.learning_rate = learning_rate
    c.generator.learning_rate = learning_rate
    c.critic.lr_schedule = c.generator.lr_schedule = str(size.lr_schedule)
    c.alpha.transition_steps = max(1, round(float(size.transition_fraction) * c.num_steps))
    c.progress_bar = False
    for name, value in size.dataset_overrides.get(dataset, ()):
        set_field(c, name, value)
    for name, value in size.overrides:
        set_field(c, name, value)
    configuration.validate_config(c)
    return c


def parse_overrides(items: list[str]) -> tuple[tuple[str, str], ...]:
    """['critic.steps=2', ...] → (('critic.steps', '2'), ...)."""
    out = []
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise configuration.ConfigError(f"--set expects field=value, got {item!r}")
        out.append((name.strip(), value.strip()))
    return tuple(out)


def alpha_table(config: ml_collections.ConfigDict) -> np.ndarray:
    """α(step) for step = 0..num_steps−1 under the config's schedule, float32."""
    schedule = configuration.effective_alpha_schedule(config)
    steps = jnp.arange(int(config.num_steps))
    return np.asarray(jax.vmap(schedule)(steps), np.float32)


def _stack(trees):
    return jax.tree.map(lambda *a: jnp.stack(a), *trees)


def _tile_members(tree, reps: int):
    """(S, ...) leaves → (reps·S, ...): member m = r·S + s holds seed s."""
    return jax.tree.map(lambda a: jnp.tile(a, (reps,) + (1,) * (a.ndim - 1)), tree)


def _finite_stats(values) -> dict[str, Any]:
    v = np.asarray(values, np.float64)
    fin = v[np.isfinite(v)]
    return {"mean": float(fin.mean()) if fin.size else math.inf,
            "std": float(fin.std()) if fin.size else math.nan,
            "num_nonfinite": int(v.size - fin.size)}


def summarize(per_seed: list[dict], keys: tuple[str, ...] = METRIC_KEYS) -> dict[str, dict]:
    """mean/std over seeds per metric; non-finite values (KL with no HQ sample) are counted."""
    return {k: _finite_stats([m[k] for m in per_seed]) for k in keys}


def mixture_data_reference(dataset: str, num_seeds: int,
                           num_eval_samples: int) -> dict[str, dict]:
    """The metrics of the true mixture's own samples (``num_eval_samples`` per seed, one
    draw per seed), summarised like a run: the best a perfect generator can score (HQ is
    1 − e^(−9/2) ≈ 98.9% in expectation; KL is the finite-sample floor)."""
    source = data_lib.make_dataset(dataset, seed=0, global_batch_size=1)
    per_seed = [mixture_metrics(source.eval_arrays(int(num_eval_samples), seed=s)[0],
                                source.mode_centers, source.mode_std)
                for s in range(int(num_seeds))]
    return summarize(per_seed)


def image_data_reference(evaluator) -> dict:
    """The real images' row (``data_reference``, summarised like a run) and their KL split
    (``data_reference_split``: the floor of the class-imbalance and dependence terms)."""
    ref = evaluator.data_reference
    return {"data_reference": summarize([ref], IMAGE_METRIC_KEYS),
            "data_reference_split": {k: ref[k] for k in ("kl_channel_marginals",
                                                         "kl_dependence")}}


def add_missing_data_references(results: dict, classifier_cache: str,
                                log=print) -> list[str]:
    """Computes ``data_reference`` for the datasets of a sweep written before it existed
    (Stacked MNIST needs the digit classifier: cached in ``classifier_cache``, or trained
    there); returns the names of the datasets it filled in."""
    size, added = results["size"], []
    for dataset, d in results["datasets"].items():
        if "data_reference" in d:
            continue
        if d.get("kind") == "image":
            config = configuration.base_config()
            config.data.name = dataset
            evaluator = stacked_mnist_sweep.make_evaluator(
                config, int(size["image_num_eval_samples"]), classifier_cache, log=log)
            d.update(image_data_reference(evaluator))
        else:
            d["data_reference"] = mixture_data_reference(dataset, size["num_seeds"],
                                                         size["num_eval_samples"])
        added.append(dataset)
    return added


def train_group(dataset: str, runs: list[Run], size: SweepSize, log=print) -> dict[str, dict]:
    """Trains ``runs`` (one config.method) × seeds at once; returns per-run results."""
    seeds = list(range(size.num_seeds))
    num_runs, num_seeds = len(runs), len(seeds)
    cfgs = [run_config(dataset, r, size) for r in runs]
    cfg = cfgs[0]
    num_steps, eval_every = int(cfg.num_steps), int(size.eval_every)
    datasets = [train.make_dataset(cfg, seed=s) for s in seeds]
    shape = datasets[0].example_shape
    centers, std = datasets[0].mode_centers, datasets[0].mode_std

    states = []
    for s in seeds:
        models, st = train.build(run_config(dataset, runs[0], size, seed=s), shape)
        states.append(st)
    # Optimizer chains are static pytree aux data: every member must share the same objects.
    states = [st.replace(gen_tx=states[0].gen_tx, critic_tx=states[0].critic_tx)
              for st in states]
    state = _tile_members(_stack(states), num_runs)
    tables = jnp.asarray(np.repeat(np.stack([alpha_table(c) for c in cfgs]), num_seeds, axis=0))

    def member_step(st, x, table):
        step_fn = train_step.make_train_step(cfg, models, shape,
                                                 alpha_schedule=schedules.from_table(table))
        return step_fn(st, x)

    vstep = jax.vmap(member_step)

    def run_chunk(st, data, tabs):  # data: (K, S, B, *shape)
        def body(carry, x):
            carry, metrics = vstep(carry, jnp.tile(x, (num_runs,) + (1,) * (x.ndim - 1)), tabs)
            return carry, {k: metrics[k] for k in TRACKED_STEP_METRICS if k in metrics}

        st, metrics = jax.lax.scan(body, st, data)
        return st, jax.tree.map(lambda a: jnp.mean(a, axis=0), metrics)

    run_chunk = jax.jit(run_chunk, donate_argnums=0)
    sampler = train_step.make_sampler(cfg, models, shape)
    n_eval = int(size.num_eval_samples)
    vsample = jax.jit(jax.vmap(lambda p, k: sampler(p, k, n_eval)))

    def evaluate(st, step):
        keys = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(1234), step),
                                num_runs * num_seeds)
        samples = np.asarray(vsample(st.params, keys))
        return samples, [mixture_metrics(x, centers, std) for x in samples]

    t0 = time.time()
    trajectory = []
    step, compile_s = 0, None
    while step < num_steps:
        k = min(eval_every, num_steps - step)
        data = np.stack([np.stack([d.get_batch(step + i) for d in datasets]) for i in range(k)])
        tc = time.time()
        state, chunk_metrics = run_chunk(state, data, tables)
        chunk_metrics = jax.device_get(chunk_metrics)
        if compile_s is None:
            compile_s = time.time() - tc
        step += k
        samples, metrics = evaluate(state, step)
        trajectory.append({"step": step, "metrics": metrics,
                           "train": {kk: np.asarray(v).tolist()
                                     for kk, v in chunk_metrics.items()}})
        modes = np.mean([m["modes_covered"] for m in metrics])
        log(f"  [{dataset}] {'/'.join(r.key for r in runs)} step {step}/{num_steps} "
            f"mean modes {modes:.2f} ({time.time() - t0:.0f}s)")
    wall = time.time() - t0
    nonfinite = np.asarray(state.nonfinite_count)
    first_nonfinite = train_step.first_nonfinite_records(state)

    out = {}
    for r_i, run in enumerate(runs):
        members = list(range(r_i * num_seeds, (r_i + 1) * num_seeds))
        final = [trajectory[-1]["metrics"][m] for m in members]
        out[run.key] = {
            "key": run.key, "label": run.label, "method": run.method, "note": run.note,
            "alpha": {"schedule": run.schedule, "start": run.alpha_start, "end": run.alpha_end},
            "seeds": seeds, "num_steps": num_steps,
            "per_seed": [{k: v for k, v in m.items() if k != "mode_counts"} | {
                "mode_counts": m["mode_counts"]} for m in final],
            "summary": summarize(final),
            "nonfinite_updates": nonfinite[members].tolist(),
            "first_nonfinite": [first_nonfinite[m] for m in members],
            "trajectory": [{
                "step": t["step"],
                "summary": summarize([t["metrics"][m] for m in members]),
                **{f"train_{k}": float(np.mean(np.asarray(v)[members]))
                   for k, v in t["train"].items()},
            } for t in trajectory],
            "samples_seed0": samples[members[0]].tolist(),
            "group_wall_s": wall, "group_first_chunk_s": compile_s,
        }
    return out


def groups_of(run_keys: list[str]) -> list[list[Run]]:
    """Runs grouped by the step they compile to (config.method), in RUNS order."""
    groups: dict[str, list[Run]] = {}
    for key in run_keys:
        run = RUNS_BY_KEY[key]
        groups.setdefault(run.method, []).append(run)
    return list(groups.values())


def run_sweep(size: SweepSize, out_dir: str, *, datasets=("ring", "grid"),
              run_keys: list[str] | None = None, size_name: str = "custom",
              plots: bool = True, classifier_cache: str | None = None, log=print) -> dict:
    """Trains and evaluates every run on every dataset; writes results.{md,json} and plots.

    ``classifier_cache``: folder of the cached Stacked-MNIST digit classifier
    (default ``<out_dir>/classifier``; trained there on first use, ~40 s).
    """
    unknown = [d for d in datasets if d not in MIXTURE_DATASETS + IMAGE_DATASETS]
    if unknown:
        raise configuration.ConfigError(
            f"unknown sweep dataset(s) {unknown}; choose from {MIXTURE_DATASETS + IMAGE_DATASETS}")
    os.makedirs(out_dir, exist_ok=True)
    run_keys = list(run_keys or [r.key for r in RUNS])
    t0 = time.time()
    results: dict[str, Any] = {"size_name": size_name, "size": dataclasses.asdict(size),
                               "datasets": {}, "platform": _platform()}
    for dataset in datasets:
        td = time.time()
        per_run: dict[str, dict] = {}
        image = dataset in IMAGE_DATASETS
        if image:
            evaluator = stacked_mnist_sweep.make_evaluator(
                run_config(dataset, RUNS_BY_KEY[run_keys[0]], size),
                int(size.image_num_eval_samples),
                classifier_cache or stacked_mnist_sweep.default_cache_dir(out_dir), log=log)
        for group in groups_of(run_keys):
            seeds = size.image_num_seeds if image else size.num_seeds
            log(f"[{dataset}] training {[r.key for r in group]} × {seeds} seeds")
            if image:
                per_run.update(stacked_mnist_sweep.train_image_group(
                    dataset, group, size, run_config=run_config, alpha_table=alpha_table,
                    summarize=summarize, tracked=TRACKED_STEP_METRICS, evaluator=evaluator,
                    log=log))
            else:
                per_run.update(train_group(dataset, group, size, log=log))
        results["datasets"][dataset] = {
            "kind": "image" if image else "mixture",
            **(image_data_reference(evaluator) if image else {
                "data_reference": mixture_data_reference(dataset, size.num_seeds,
                                                         size.num_eval_samples)}),
            "runs": {k: per_run[k] for k in run_keys},
            "wall_s": time.time() - td,
            "num_modes": (STACKED_MNIST_NUM_MODES if image
                          else per_run[run_keys[0]]["per_seed"][0]["num_modes"]),
        }
    results["wall_s"] = time.time() - t0
    label_runs_by_their_alpha(results)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(_jsonable(results), f, indent=1)
    save_samples(results, out_dir)
    if plots:
        from bridge_jax.experiments import plots as plots_lib

        results["plots"] = sorted(plots_lib.write_all(results, out_dir))
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(results_markdown(results))
    log(f"wrote {out_dir}/results.md ({results['wall_s']:.0f}s)")
    return results


def _platform() -> dict:
    return {"jax": jax.__version__, "backend": jax.default_backend(),
            "cpu_count": os.cpu_count(), "python": platform.python_version()}


def _jsonable(x):
    if isinstance(x, dict):  # samples are in the plots, not in the JSON
        return {k: _jsonable(v) for k, v in x.items() if k != "samples_seed0"}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(x) else str(float(x))
    if isinstance(x, np.integer):
        return int(x)
    return x


def _pm(stat: dict, scale: float = 1.0, digits: int = 2) -> str:
    if not math.isfinite(stat["mean"]):
        return "∞ (no HQ sample)"
    s = f"{stat['mean'] * scale:.{digits}f} ± {stat['std'] * scale:.{digits}f}"
    if stat["num_nonfinite"]:
        s += f" (+{stat['num_nonfinite']} ∞)"
    return s


def results_markdown(results: dict) -> str:
    size = results["size"]
    lines = ["# Method sweep: 2-D Gaussian mixtures and Stacked MNIST", ""]
    lines += [
        f"Sweep size: `{results['size_name']}`. Wall time of the whole sweep: "
        f"**{results['wall_s'] / 60:.1f} min** ({results['wall_s']:.0f} s) on "
        f"{results['platform']['cpu_count']} CPU cores (shared with other jobs), "
        f"jax {results['platform']['jax']} ({results['platform']['backend']}).", "",
    ]
    if any(d.get("kind") != "image" for d in results["datasets"].values()):
        lines += mixture_protocol_markdown(results)
    for dataset, d in results["datasets"].items():
        if d.get("kind") == "image":
            lines += image_markdown(dataset, d, size)
            continue
        lines += mixture_table_markdown(dataset, d, size)
    if "stacked_mnist" not in results["datasets"]:
        lines += ["## Stacked MNIST", "",
                  "Not in this sweep's datasets (run it with `--datasets stacked_mnist`). "
                  "Published reference rows for context, not our measurement:", "",
                  "| method (PacGAN paper) | modes (of 1000) | KL |", "|---|---|---|"]
        for name, modes, _, kl in PUBLISHED["stacked_mnist"]:
            lines.append(f"| {name} | {modes:g} | {kl} |")
        lines += ["", f"Source: {PUBLISHED_SOURCE}.", ""]
    if results.get("plots"):
        lines += ["## Plots", ""] + [f"- `{p}`" for p in results["plots"]] + [""]
    return "\n".join(lines)


def mixture_protocol_markdown(results: dict) -> list[str]:
    """The 2-D sections' protocol and hyper-parameters."""
    size = results["size"]
    mixtures = [d for d, v in results["datasets"].items() if v.get("kind") != "image"]
    lines = [
        "## Protocol", "",
        f"- Each method is trained for the same number of steps with {size['num_seeds']} seeds "
        "(seed s: parameter init, training noise and data stream); all seeds of a method — "
        "and all runs that differ only in α — are trained at once with `jax.vmap`.",
        f"- Evaluation (PacGAN protocol, Lin et al. 2018 §5.1): {size['num_eval_samples']:,} "
        f"samples x = G(z) + σε per seed; a sample is *high quality* (HQ) when it lies within "
        f"{HQ_NUM_STDS:g} standard deviations of the nearest mode centre; a mode is *covered* "
        "when it is the nearest centre of at least one HQ sample; *strict* modes need at "
        f"least {STRICT_COVERAGE_FRACTION:g} × N/K HQ samples; reverse KL = KL(p̂ ‖ uniform) "
        "over the modes, p̂ the histogram of the HQ samples (∞ if there is none; such seeds "
        "are left out of the mean and counted as `+n ∞`).",
        "- Values are mean ± std (population std) over seeds, after the last training step.",
        "- Data: ring = 8 Gaussians on the unit circle, std 0.01; grid = 25 Gaussians on "
        "{−4,−2,0,2,4}², std 0.05 (PacGAN geometry).", "",
        "## Hyper-parameters (identical for every method)", "",
        f"- batch {size['batch_size']}, Adam lr {size['learning_rate']:g} (β1 0.5, β2 0.999"
        + ("; cosine decay to 0 over training" if size.get("lr_schedule") == "cosine" else "")
        + f") for encoder/decoder and critic, gradient clipping 10, {size['critic_steps']} critic "
        "update(s) per generator update, logistic critic loss, latent dim 2, Gaussian "
        f"decoder with a learned scalar scale σ (init {size['init_scale']:g}, min 1e-3; "
        "base_config's 0.1 leaves σ far above the ring's 0.01 after a CPU-sized budget).",
        "- MLP width/depth: " + ", ".join(
            f"{d}: {_setting(size, d, 'model.width', size['width'][d])}×"
            f"{_setting(size, d, 'model.depth', size['depth'][d])}" for d in mixtures) + ".",
        "- Steps: " + ", ".join(f"{d}: {size['num_steps'][d]:,}" for d in mixtures)
        + f"; evaluated every {size['eval_every']} steps (trajectory plots).",
        "- Config overrides for every method's runs: "
        + _per_dataset_text(_overrides_text, size, mixtures) + ".",
        "- α-Bridge schedules go from α=1 at step 0 to "
        + _per_dataset_text(_transition_text, size, mixtures) + "; fixed-α runs "
        "use method=bridge with a constant schedule; f-GAN uses the α-family bound at "
        "α=0.5 with an x-only critic; the hybrid uses β=1.", "",
        "Every setting above is shared by all methods except the α-Bridge's schedule length; "
        "how they were chosen (5-seed runs on the ring, each change measured) is in "
        "`results/investigation.md`.", "",
    ]
    return lines


def _table_rows(d: dict, cells) -> list[str]:
    """The data reference row (sweeps written before it have none), then one row per run:
    label | cells(summary)... | seeds with a non-finite update."""
    rows = [(f"*{DATA_REFERENCE_LABEL}*", d["data_reference"], "—")] if (
        "data_reference" in d) else []
    rows += [(run["label"], run["summary"], str(sum(1 for v in run["nonfinite_updates"] if v)))
             for run in d["runs"].values()]
    return ["| " + " | ".join([label, *cells(summary), last]) + " |"
            for label, summary, last in rows]


def _nonfinite_notes(d: dict, size: dict, dataset: str) -> list[str]:
    """A line under the table naming each member's first non-finite update (run, seed,
    step, quantities); none when every update was finite or for sweeps written before
    the sweep recorded them."""
    events = [f"{run['label']} seed {seed} at step {event['step']:,} ({event['what']})"
              for run in d["runs"].values()
              for seed, event in zip(run["seeds"],
                                     run.get("first_nonfinite") or [None] * len(run["seeds"]),
                                     strict=True)
              if event]
    if not events:
        return []
    return ["", ("Stopped by a non-finite update: " if _stops_on_nonfinite(size, dataset)
                 else "First skipped non-finite update: ") + "; ".join(events) + "."]


def _stops_on_nonfinite(size: dict, dataset: str) -> bool:
    """Whether the runs had ``nonfinite_policy=stop`` (the default): a member whose loss or
    gradient turned non-finite is frozen there; under ``skip`` it goes on."""
    return _setting(size, dataset, "nonfinite_policy",
                    configuration.base_config().nonfinite_policy) == "stop"


def _nonfinite_column(size: dict, dataset: str) -> str:
    """The last column's title, per the runs' non-finite policy."""
    return ("seeds stopped by a non-finite update (row: the model at that step)"
            if _stops_on_nonfinite(size, dataset) else "seeds with skipped non-finite updates")


def mixture_table_markdown(dataset: str, d: dict, size: dict) -> list[str]:
    """One 2-D dataset's table and the published rows."""
    lines: list[str] = []
    k = d["num_modes"]
    any_run = next(iter(d["runs"].values()))
    lines += [f"## {dataset} ({k} modes) — {len(any_run['seeds'])} seeds, "
              f"{any_run['num_steps']:,} steps, wall {d['wall_s'] / 60:.1f} min", "",
              f"| method | modes covered (of {k}) | strict modes | HQ % | reverse KL "
              f"| {_nonfinite_column(size, dataset)} |",
              "|---|---|---|---|---|---|"]
    lines += _table_rows(d, lambda s: [_pm(s["modes_covered"]),
                                       _pm(s["modes_covered_strict"]),
                                       _pm(s["hq_fraction"], 100, 1), _pm(s["reverse_kl"])])
    lines += _nonfinite_notes(d, size, dataset)
    if dataset in PUBLISHED:
        lines += ["", "Published reference rows (context, **not our measurement**; "
                  "different architectures and budgets):", "",
                  "| method (PacGAN paper) | modes covered | HQ % | reverse KL |",
                  "|---|---|---|---|"]
        for name, modes, hq, kl in PUBLISHED[dataset]:
            hq_s = "—" if hq is None else f"{hq}"
            lines.append(f"| {name} | {modes:g} | {hq_s} | {kl} |")
        lines += ["", f"Source: {PUBLISHED_SOURCE}."]
    lines.append("")
    return lines


def _dataset_overrides(size: dict, dataset: str) -> tuple[tuple[str, Any], ...]:
    """The config overrides one dataset's runs had, from a results.json ``size``.

    Sweeps written before ``dataset_overrides`` kept the image runs' as ``image_overrides``.
    """
    legacy = size.get("image_overrides", ()) if dataset in IMAGE_DATASETS else ()
    per_dataset = size.get("dataset_overrides") or {}
    return tuple((k, v) for k, v in per_dataset.get(dataset, legacy))


def _setting(size: dict, dataset: str, field: str, default: Any) -> Any:
    """A config field as one dataset's runs had it: the last override of ``field``
    (dataset overrides, then ``--set``), else ``default`` (the size's own value)."""
    return dict((*_dataset_overrides(size, dataset), *size.get("overrides", ()))).get(
        field, default)


def _overrides_text(size: dict, dataset: str) -> str:
    """`field=value`, ... of every override a dataset's runs had, or "none"."""
    return ", ".join(f"`{k}={v}`" for k, v in (*_dataset_overrides(size, dataset),
                                               *size.get("overrides", ()))) or "none"


def _per_dataset_text(text_fn, size: dict, datasets: list[str]) -> str:
    """text_fn(size, d) once when every dataset has the same, else "d1: …; d2: …"."""
    texts = {d: text_fn(size, d) for d in datasets}
    if len(set(texts.values())) <= 1:
        return next(iter(texts.values()), "")
    return "; ".join(f"{d}: {t}" for d, t in texts.items())


def _transition_text(size: dict, dataset: str) -> str:
    """Where the α-Bridge schedules reach α_end, and its value, as the runs' configs had
    them: "α=E at step N, then hold α=E"."""
    end = f"α={float(_setting(size, dataset, 'alpha.end', 0.0)):g}"
    steps = _setting(size, dataset, "alpha.transition_steps", None)
    fraction = size.get("transition_fraction", 1.0)
    if steps is not None:
        where = ("the last step" if int(steps) == -1
                 else f"step {int(steps):,}, then hold {end}")
    else:
        where = (f"{fraction:.3g} of the training steps, then hold {end}" if fraction < 1
                 else "the last step")
    return f"{end} at {where}"


def label_runs_by_their_alpha(results: dict) -> None:
    """Gives every α-Bridge run the α path its configs had: a run whose α_start/α_end were
    overridden (``--set alpha.end=…``) gets them in ``alpha`` and is labelled by them
    ("α-Bridge 1→0.25 (cosine)") instead of its default 1→0, in place, before the JSON,
    the tables and the plots are written (and on ``--render`` of an older results.json)."""
    size = results["size"]
    for dataset, d in results["datasets"].items():
        for run in d["runs"].values():
            alpha = run.get("alpha") or {}
            if alpha.get("schedule", "constant") == "constant":
                continue
            start = float(_setting(size, dataset, "alpha.start", alpha["start"]))
            end = float(_setting(size, dataset, "alpha.end", alpha["end"]))
            if (start, end) != (float(alpha["start"]), float(alpha["end"])):
                run["alpha"] = {**alpha, "start": start, "end": end}
                run["label"] = f"α-Bridge {start:g}→{end:g} ({alpha['schedule']})"


def image_markdown(dataset: str, d: dict, size: dict) -> list[str]:
    """The Stacked-MNIST section of results.md: protocol, table, published rows."""
    any_run = next(iter(d["runs"].values()))
    acc = any_run.get("classifier_accuracy", math.nan)
    lines = [f"## {dataset} ({d['num_modes']} modes) — {len(any_run['seeds'])} seed(s), "
             f"{any_run['num_steps']:,} steps, wall {d['wall_s'] / 60:.1f} min", "",
             "- Models: DCGAN-style encoder/decoder/critic, width "
             f"{_setting(size, dataset, 'model.width', size['width'][dataset])}, latent dim "
             f"{_setting(size, dataset, 'model.latent_dim', size['image_latent_dim'])}, "
             "Bernoulli decoder, batch "
             f"{size['batch_size']}, Adam lr {size['image_learning_rate']:g} (β1 0.5"
             + ("; cosine decay to 0" if size.get("lr_schedule") == "cosine" else "")
             + ") for both players; same settings for every method.",
             "- α-Bridge schedules go from α=1 to " + _transition_text(size, dataset)
             + "; config overrides for every run: " + _overrides_text(size, dataset) + ".",
             f"- Evaluation (VEEGAN/PacGAN protocol): {size['image_num_eval_samples']:,} decoder "
             "means per seed; each channel is classified by the project's digit classifier "
             f"(held-out accuracy {acc:.3f} on 500 bundled digits); a mode (digit triple) is "
             "covered when predicted at least once; KL = KL(p̂ ‖ U_1000).",
             "- FD-MNIST-classifier: Fréchet distance between the classifier's penultimate "
             "features of generated and of real channels "
             f"({min(size['image_num_eval_samples'], 10_000):,} real stacked images). "
             "Not FID; lower is better.", "",
             "| method | modes (of 1000) | KL to uniform | FD-MNIST-classifier "
             f"| {_nonfinite_column(size, dataset)} |", "|---|---|---|---|---|"]
    lines += _table_rows(d, lambda s: [_pm(s["modes_covered"], digits=1),
                                       _pm(s["kl_to_uniform"]), _pm(s["fd"])])
    lines += _nonfinite_notes(d, size, dataset)
    lines += _kl_split_notes(d)
    lines += ["", "Published reference rows (context, **not our measurement**; their "
              "classifier, architectures and budgets):", "",
              "| method (PacGAN paper) | modes (of 1000) | KL |", "|---|---|---|"]
    for name, modes, _, kl in PUBLISHED["stacked_mnist"]:
        lines.append(f"| {name} | {modes:g} | {kl} |")
    lines += ["", f"Source: {PUBLISHED_SOURCE}.", ""]
    return lines


def _kl_split_notes(d: dict) -> list[str]:
    """Where each row's KL to uniform comes from (mean over seeds):
    KL = Σ_c KL(p̂_c ‖ U_10) (digits generated too rarely or too often, per channel) +
    the channels' dependence; absent for sweeps written before the split was kept."""
    runs = [(run["label"], run["per_seed"]) for run in d["runs"].values()
            if all("kl_dependence" in m for m in run["per_seed"])]
    if not runs:
        return []
    rows = [(f"*{DATA_REFERENCE_LABEL}*", [d["data_reference_split"]])] if (
        "data_reference_split" in d) else []
    parts = [f"{label} {np.mean([sum(m['kl_channel_marginals']) for m in ms]):.3f} + "
             f"{np.mean([m['kl_dependence'] for m in ms]):.3f}" for label, ms in rows + runs]
    return ["", "KL to uniform split into the channels' class imbalance Σ_c KL(p̂_c ‖ U_10) "
            "and their dependence (mean over seeds): " + "; ".join(parts) + "."]


def _from_json(x):
    """Inverse of _jsonable for the values: 'inf'/'-inf'/'nan' strings back to floats."""
    if isinstance(x, dict):
        return {k: _from_json(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_from_json(v) for v in x]
    if isinstance(x, str) and x in ("inf", "-inf", "nan"):
        return float(x)
    return x


SAMPLES_FILE = "samples_seed0.npz"  # the plotted samples, which results.json leaves out


def save_samples(results: dict, out_dir: str) -> str:
    """Writes every run's seed-0 samples to ``out_dir/samples_seed0.npz`` (float16)."""
    arrays = {f"{dataset}.{key}": np.asarray(run["samples_seed0"], np.float16)
              for dataset, d in results["datasets"].items()
              for key, run in d["runs"].items() if "samples_seed0" in run}
    path = os.path.join(out_dir, SAMPLES_FILE)
    np.savez_compressed(path, **arrays)
    return path


def render(out_dir: str, classifier_cache: str | None = None, log=print) -> str:
    """Rewrites ``out_dir/results.md`` from its ``results.json``, and the plots too when
    ``out_dir/samples_seed0.npz`` holds the samples (older sweeps: the plots present).
    A sweep written before the data reference rows gets them computed and added to its
    ``results.json`` (:func:`add_missing_data_references`)."""
    json_path = os.path.join(out_dir, "results.json")
    with open(json_path) as f:
        results = _from_json(json.load(f))
    label_runs_by_their_alpha(results)
    added = add_missing_data_references(
        results, classifier_cache or stacked_mnist_sweep.default_cache_dir(out_dir), log=log)
    if added:
        log(f"added the data reference rows of {added} to {json_path}")
        with open(json_path, "w") as f:
            json.dump(_jsonable(results), f, indent=1)
    samples_path = os.path.join(out_dir, SAMPLES_FILE)
    if os.path.exists(samples_path):
        with np.load(samples_path) as samples:
            for dataset, d in results["datasets"].items():
                for key, run in d["runs"].items():
                    run["samples_seed0"] = samples[f"{dataset}.{key}"].astype(np.float32)
        from bridge_jax.experiments import plots as plots_lib

        plots_lib.write_all(results, out_dir)
    results["plots"] = sorted(p for p in os.listdir(out_dir) if p.endswith(".png"))
    text = results_markdown(results)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(text)
    return text


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="a few hundred steps, 3 seeds")
    g.add_argument("--full", action="store_true", help="10 seeds, the converging budget")
    g.add_argument("--tiny", action="store_true", help="a smoke test of the machinery")
    p.add_argument("--out", default="results")
    p.add_argument("--render", action="store_true",
                   help="only rewrite OUT/results.md from OUT/results.json, and the plots "
                        f"from OUT/{SAMPLES_FILE} (no training)")
    p.add_argument("--datasets", default="ring,grid",
                   help="comma-separated: ring, grid, stacked_mnist")
    p.add_argument("--classifier-cache", default="",
                   help="folder of the cached Stacked-MNIST digit classifier "
                        "(default: <out>/classifier)")
    p.add_argument("--runs", default="", help="comma-separated run keys (default: all)")
    p.add_argument("--steps", type=int, default=0, help="override the steps of every dataset")
    p.add_argument("--seeds", type=int, default=0,
                   help="override the number of seeds (2-D mixtures)")
    p.add_argument("--image-seeds", type=int, default=0,
                   help="override the number of Stacked MNIST seeds (full size: 1)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="config override for every run, e.g. --set critic.steps=2 (repeatable)")
    args = p.parse_args(argv)
    if args.render:
        render(args.out, args.classifier_cache or None)
        return
    name = "full" if args.full else "tiny" if args.tiny else "quick"
    size = SIZES[name]
    if args.steps:
        size = dataclasses.replace(size, num_steps={k: args.steps for k in size.num_steps})
    if args.seeds:
        size = dataclasses.replace(size, num_seeds=args.seeds)
    if args.image_seeds:
        size = dataclasses.replace(size, image_num_seeds=args.image_seeds)
    if args.set:
        try:
            size = dataclasses.replace(size, overrides=parse_overrides(args.set))
            run_config(args.datasets.split(",")[0], RUNS[0], size)  # fail now, not mid-sweep
        except configuration.ConfigError as e:
            p.error(str(e))
    run_keys = [k for k in args.runs.split(",") if k] or None
    try:
        run_sweep(size, args.out, datasets=tuple(args.datasets.split(",")), run_keys=run_keys,
                  size_name=name, classifier_cache=args.classifier_cache or None)
    except configuration.ConfigError as e:
        p.error(str(e))


if __name__ == "__main__":
    main()
