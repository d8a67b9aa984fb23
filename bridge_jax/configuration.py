"""The experiment config: defaults, methods, and validation before any compile.

Configs are ``ml_collections.ConfigDict`` objects. ``configs/*.py`` start from
:func:`base_config` and override fields; ``--config.x.y=...`` flags override
them again. :func:`validate_config` checks every field with one clear message
per problem, so a typo or an impossible setting fails in a second, not after a
compile or hours of training.

Methods (METHOD.md §7) are points of one space; the method chooses the critic
input, the critic objective and the encoder/decoder objective:

    method        α used                 critic input  generator objective
    bridge        config.alpha schedule  (x, z)        bridge_loss
    vae           ≡ 1                    (x, z)        bridge_loss = negative ELBO
    adversarial   ≡ 0                    (x, z)        bridge_loss = B_0 (ALI/BiGAN-like)
    fgan          config.alpha schedule  x             B_α only (no encoder)
    nsgan         —                      x             −log D(G(z)) (no encoder)
    hybrid        —                      x             negative ELBO + β·(−log D)
"""

from __future__ import annotations

import math
import os
from typing import Any

import ml_collections

from bridge_jax import schedules

METHODS = ("bridge", "vae", "adversarial", "fgan", "nsgan", "hybrid")
JOINT_CRITIC_METHODS = ("bridge", "vae", "adversarial")
ENCODER_METHODS = ("bridge", "vae", "adversarial", "hybrid")
DATASETS = ("ring", "grid", "mnist", "stacked_mnist", "tfds")
TFDS_DEFAULT_IMAGE_SIZE = {"mnist": 28, "cifar10": 32, "celeb_a": 64}
# Per-dataset settings of every 2-D mixture run (all methods), chosen on 5-seed α-Bridge
# runs in results/investigation.md; mixture_config and the full sweep both use them.
# - model.depth: hidden layers of the three MLPs. A continuous G maps the connected
#   2-D latent onto separated modes; deeper MLPs make its transitions between modes
#   steeper (fewer samples between them). Ring: 3 (4 was sharper but less even),
#   grid: 4.
# - critic.gradient_penalty: the R1 weight γ, 10·std² on the ring (std 0.01), 40·std² on
#   the grid (std 0.05). ‖∇_x d‖² grows as 1/std² for a critic that resolves the modes;
#   more γ keeps more modes and costs sharpness.
# - generator.scale_lr_multiplier (ring): the decoder σ must fall from the
#   maximum-likelihood residual (≈0.04) to below the ring's std 0.01 in the adversarial
#   phase; at the networks' lr it had not by the last step. (On the grid it cost modes.)
# Stacked MNIST settings of every run (configs/stacked_mnist.py and the full sweep),
# chosen in results/investigation.md:
# - critic.gradient_penalty: R1 weight γ; without a bounded critic every α-Bridge term
#   saturates once the critic separates the images.
# - alpha.end: the α-Bridge goes 1 → 0.25 by 1/6 of training and holds 0.25. At α = 0 the
#   ELBO term has weight 0 and reconstructions stop being faithful (α = 0 from step 1,000
#   of 1,500: digit accuracy 0.76 → 0.54); 0.25 keeps them and fills the prior's holes
#   (KL 0.36 → 0.24 at 1,500 steps, 2 seeds).
#   Fixed-α runs ignore it (a constant schedule uses alpha.start).
STACKED_MNIST_OVERRIDES = (("critic.gradient_penalty", 1.0), ("alpha.end", 0.25))
MIXTURE_DEPTH = {"ring": 3, "grid": 4}
MIXTURE_OVERRIDES = {
    "ring": (("critic.gradient_penalty", 1e-3), ("generator.scale_lr_multiplier", 10.0)),
    "grid": (("critic.gradient_penalty", 0.1),),
}
PARALLEL_MODES = ("jit", "pmap")
NONFINITE_POLICIES = ("stop", "skip")
DTYPES = ("float32", "bfloat16")


class ConfigError(ValueError):
    """A config field is missing, of the wrong type, or out of range."""


def base_config() -> ml_collections.ConfigDict:
    """Every field with its default: a small α-Bridge on the ring of 8 Gaussians."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.method = "bridge"
    c.num_steps = 2000
    c.batch_size = 256  # global batch, over all hosts and devices
    c.parallel = "jit"  # "jit" (NamedSharding over a mesh) or "pmap"
    c.nonfinite_policy = "stop"  # "stop" (save last good state, exit) or "skip"

    c.data = ml_collections.ConfigDict()
    c.data.name = "ring"
    c.data.tfds_name = ""  # for data.name == "tfds": mnist, cifar10, celeb_a, ...
    c.data.data_dir = ""  # tfds data_dir (prepared offline)
    c.data.split = "train"
    c.data.image_size = 0  # 0: the dataset's native/default size

    c.model = ml_collections.ConfigDict()
    c.model.arch = "mlp"  # "mlp" (2-D) or "dcgan" (images)
    c.model.latent_dim = 2
    c.model.width = 128
    c.model.depth = 2
    c.model.likelihood = "gaussian"  # "gaussian" or "bernoulli"
    c.model.scale = "scalar"  # learned decoder scale: "scalar" or "per_pixel"
    c.model.init_log_scale = math.log(0.1)
    c.model.min_log_scale = math.log(1e-3)
    c.model.upsample = "subpixel"  # "subpixel" or "transpose"
    c.model.dtype = "float32"  # compute dtype; parameters stay float32

    c.alpha = ml_collections.ConfigDict()
    c.alpha.schedule = "cosine"
    c.alpha.start = 1.0
    c.alpha.end = 0.0
    c.alpha.transition_begin = 0
    c.alpha.transition_steps = -1  # -1: num_steps − transition_begin
    c.alpha.num_stages = 4
    c.alpha.decay_rate = 0.01
    c.alpha.mix = "quadratic"  # λ(α) of the bridge loss
    c.alpha.self_normalize = False

    c.critic = ml_collections.ConfigDict()
    c.critic.loss = "logistic"  # "logistic" or "bound"
    c.critic.steps = 1  # critic updates per generator update
    c.critic.gradient_penalty = 0.0  # γ of the R1 penalty γ·½E_q‖∇_(x,z)d‖² (0: none)
    c.critic.learning_rate = 1e-3
    c.critic.b1 = 0.5
    c.critic.b2 = 0.999
    c.critic.clip_norm = 10.0
    c.critic.lr_schedule = "constant"  # "constant" or "cosine" (decay over training)
    c.critic.final_lr_fraction = 0.0  # cosine: final lr = fraction × learning_rate
    c.critic.lr_decay_steps = -1  # cosine horizon in steps; -1: num_steps

    c.generator = ml_collections.ConfigDict()
    c.generator.learning_rate = 1e-3
    c.generator.b1 = 0.5
    c.generator.b2 = 0.999
    c.generator.clip_norm = 10.0
    c.generator.lr_schedule = "constant"
    c.generator.final_lr_fraction = 0.0
    c.generator.lr_decay_steps = -1
    c.generator.scale_lr_multiplier = 1.0  # × the decoder log σ's update (train_state)
    c.hybrid_weight = 1.0  # β of the VAE-GAN hybrid

    c.log_every = 50
    c.sample_every = 500
    c.checkpoint_every = 500
    c.keep_checkpoints = 3
    c.num_final_samples = 10_000
    c.progress_bar = True
    return c


def effective_alpha_schedule(config: ml_collections.ConfigDict) -> schedules.Schedule:
    """The α schedule the method uses (constant 1 for vae, 0 for adversarial)."""
    if config.method == "vae":
        return schedules.constant(1.0)
    if config.method == "adversarial":
        return schedules.constant(0.0)
    a = config.alpha
    steps = a.transition_steps if a.transition_steps > 0 else config.num_steps - a.transition_begin
    return schedules.make_alpha_schedule(
        a.schedule, alpha_start=float(a.start), alpha_end=float(a.end),
        transition_steps=max(int(steps), 1), transition_begin=int(a.transition_begin),
        num_stages=int(a.num_stages), decay_rate=float(a.decay_rate))


def critic_input(config: ml_collections.ConfigDict) -> str:
    """'joint' for d(x, z) (bridge, vae, adversarial), else 'x'."""
    return "joint" if config.method in JOINT_CRITIC_METHODS else "x"


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _field_names(config, prefix: str = "") -> set[str]:
    """Dotted names of the leaf fields of a (nested) ConfigDict."""
    names = set()
    for key, value in config.items():
        if isinstance(value, ml_collections.ConfigDict):
            names |= _field_names(value, f"{prefix}{key}.")
        else:
            names.add(f"{prefix}{key}")
    return names


def _choice(name: str, value, allowed) -> None:
    _require(value in allowed, f"{name}={value!r} is not one of {tuple(allowed)}")


def _positive_int(name: str, value) -> None:
    _require(_is_int(value) and value > 0, f"{name} must be a positive integer, got {value!r}")


def _positive_number(name: str, value) -> None:
    _require(_is_number(value) and value > 0, f"{name} must be a positive number, got {value!r}")


def validate_config(
    config: ml_collections.ConfigDict,
    *,
    num_devices: int = 1,
    process_count: int = 1,
    workdir: str | None = None,
) -> None:
    """Raises ConfigError naming the first invalid field; returns None if all are valid."""
    c = config
    known, given = _field_names(base_config()), _field_names(c)
    _require(not given - known, f"unknown config field(s) {', '.join(sorted(given - known))} "
             "(a typo? the fields are those of configuration.base_config())")
    _require(not known - given, f"config field(s) {', '.join(sorted(known - given))} missing; "
             "start the config from configuration.base_config()")
    _choice("method", c.method, METHODS)
    _require(_is_int(c.seed) and 0 <= c.seed < 2**32,
             f"seed must be an integer in [0, 2**32), got {c.seed!r}")
    _positive_int("num_steps", c.num_steps)
    _positive_int("batch_size", c.batch_size)
    _choice("parallel", c.parallel, PARALLEL_MODES)
    _choice("nonfinite_policy", c.nonfinite_policy, NONFINITE_POLICIES)
    _require(c.batch_size % process_count == 0,
             f"batch_size={c.batch_size} is not divisible by the {process_count} hosts")
    _require(c.batch_size % num_devices == 0,
             f"batch_size={c.batch_size} is not divisible by the {num_devices} devices; "
             f"use a multiple of {num_devices}")

    _choice("data.name", c.data.name, DATASETS)
    if c.data.name == "tfds":
        _require(bool(c.data.tfds_name), "data.tfds_name is required when data.name='tfds' "
                 f"(e.g. one of {tuple(TFDS_DEFAULT_IMAGE_SIZE)})")
        _require(bool(c.data.data_dir), "data.data_dir is required when data.name='tfds': "
                 "datasets are read offline from a prepared tfds data_dir")
        _require(os.path.isdir(c.data.data_dir),
                 f"data.data_dir={c.data.data_dir!r} does not exist or is not a directory")
        _require(isinstance(c.data.split, str) and bool(c.data.split),
                 f"data.split must be a non-empty string such as 'train', got {c.data.split!r}")
    _require(_is_int(c.data.image_size) and c.data.image_size >= 0,
             f"data.image_size must be a non-negative integer, got {c.data.image_size!r}")
    _require(c.data.name not in ("ring", "grid") or c.data.image_size == 0,
             f"data.image_size must be 0 for the 2-D dataset {c.data.name!r}, "
             f"got {c.data.image_size!r}")

    m = c.model
    _choice("model.arch", m.arch, ("mlp", "dcgan"))
    is_2d = c.data.name in ("ring", "grid")
    _require(is_2d == (m.arch == "mlp"),
             f"model.arch={m.arch!r} does not fit data.name={c.data.name!r}: "
             "use 'mlp' for the 2-D mixtures and 'dcgan' for images")
    _positive_int("model.latent_dim", m.latent_dim)
    _positive_int("model.width", m.width)
    _positive_int("model.depth", m.depth)
    _choice("model.likelihood", m.likelihood, ("gaussian", "bernoulli"))
    _choice("model.scale", m.scale, ("scalar", "per_pixel"))
    _choice("model.upsample", m.upsample, ("subpixel", "transpose"))
    _choice("model.dtype", m.dtype, DTYPES)
    _require(_is_number(m.init_log_scale) and _is_number(m.min_log_scale)
             and m.init_log_scale > m.min_log_scale,
             "model.init_log_scale must be a number above model.min_log_scale, got "
             f"{m.init_log_scale!r} and {m.min_log_scale!r}")
    _require(not (is_2d and m.likelihood == "bernoulli"),
             "model.likelihood='bernoulli' needs images in [0, 1]; use 'gaussian' for 2-D data")

    a = c.alpha
    _choice("alpha.schedule", a.schedule, schedules.SCHEDULES)
    for name in ("start", "end"):
        v = a[name]
        _require(_is_number(v) and 0.0 <= v <= 1.0, f"alpha.{name} must lie in [0, 1], got {v!r}")
    _require(_is_int(a.transition_begin) and 0 <= a.transition_begin < c.num_steps,
             f"alpha.transition_begin must be in [0, num_steps), got {a.transition_begin!r}")
    _require(_is_int(a.transition_steps) and (a.transition_steps > 0 or a.transition_steps == -1),
             f"alpha.transition_steps must be positive or -1, got {a.transition_steps!r}")
    _positive_int("alpha.num_stages", a.num_stages)
    _require(_is_number(a.decay_rate) and 0 < a.decay_rate < 1,
             f"alpha.decay_rate must lie in (0, 1), got {a.decay_rate!r}")
    _choice("alpha.mix", a.mix, ("quadratic", "smoothstep"))
    _require(isinstance(a.self_normalize, bool), "alpha.self_normalize must be true or false")

    _choice("critic.loss", c.critic.loss, ("logistic", "bound"))
    _positive_int("critic.steps", c.critic.steps)
    _require(_is_number(c.critic.gradient_penalty) and c.critic.gradient_penalty >= 0,
             f"critic.gradient_penalty must be >= 0, got {c.critic.gradient_penalty!r}")
    for side in ("critic", "generator"):
        opt = c[side]
        _positive_number(f"{side}.learning_rate", opt.learning_rate)
        for b in ("b1", "b2"):
            _require(_is_number(opt[b]) and 0 <= opt[b] < 1,
                     f"{side}.{b} must lie in [0, 1), got {opt[b]!r}")
        _positive_number(f"{side}.clip_norm", opt.clip_norm)
        _choice(f"{side}.lr_schedule", opt.lr_schedule, ("constant", "cosine"))
        _require(_is_number(opt.final_lr_fraction) and 0 <= opt.final_lr_fraction <= 1,
                 f"{side}.final_lr_fraction must lie in [0, 1], got {opt.final_lr_fraction!r}")
        _require(_is_int(opt.lr_decay_steps)
                 and (opt.lr_decay_steps > 0 or opt.lr_decay_steps == -1),
                 f"{side}.lr_decay_steps must be positive or -1, got {opt.lr_decay_steps!r}")
    _positive_number("generator.scale_lr_multiplier", c.generator.scale_lr_multiplier)
    _require(_is_number(c.hybrid_weight) and c.hybrid_weight >= 0,
             f"hybrid_weight must be a non-negative number, got {c.hybrid_weight!r}")

    for name in ("log_every", "sample_every", "checkpoint_every", "keep_checkpoints"):
        _positive_int(name, c[name])
    _require(_is_int(c.num_final_samples) and c.num_final_samples >= 0,
             f"num_final_samples must be a non-negative integer, got {c.num_final_samples!r}")
    _require(isinstance(c.progress_bar, bool),
             f"progress_bar must be true or false, got {c.progress_bar!r}")

    if workdir is not None:
        parent = workdir
        while parent and not os.path.exists(parent):
            parent = os.path.dirname(parent.rstrip("/"))
        parent = parent or "."
        _require(os.path.isdir(parent) and os.access(parent, os.W_OK),
                 f"workdir={workdir!r} is not writable (checked {parent!r})")


def set_field(config: ml_collections.ConfigDict, name: str, value: Any) -> None:
    """config.<dotted name> = value, with the field's own type (ConfigError if unknown)."""
    *parents, leaf = name.split(".")
    node = config
    for p in parents:
        if p not in node or not isinstance(node[p], ml_collections.ConfigDict):
            raise ConfigError(f"unknown config field {name!r}")
        node = node[p]
    if leaf not in node or isinstance(node[leaf], ml_collections.ConfigDict):
        raise ConfigError(f"unknown config field {name!r}")
    current = node[leaf]
    if isinstance(value, str) and not isinstance(current, str):
        try:
            value = (value.lower() in ("1", "true", "yes") if isinstance(current, bool)
                     else type(current)(value))
        except ValueError as e:
            raise ConfigError(
                f"{name}={value!r} is not a {type(current).__name__}") from e
    node[leaf] = value


def mixture_config(dataset: str) -> ml_collections.ConfigDict:
    """The 2-D mixture experiment (``configs/ring.py``, ``configs/grid.py``).

    The settings of the full method sweep (experiments/sweep.py ``FULL``), chosen in
    results/investigation.md: MLPs of width 128, batch 64, decoder scale σ starting at
    0.03, cosine lr decay for both players, α reaching 0 at step 1,500 of 9,000 (then
    held), which leaves the adversarial phase time to sharpen the samples; and per
    dataset (``MIXTURE_DEPTH``, ``MIXTURE_OVERRIDES``) 3 or 4 hidden layers, an R1 penalty on
    the critic, which keeps the modes that maximum likelihood found through that phase,
    and on the ring a 10× learning rate for the decoder scale σ.
    """
    _choice("dataset", dataset, ("ring", "grid"))
    config = base_config()
    config.data.name = dataset
    config.model.arch = "mlp"
    config.model.latent_dim = 2
    config.model.width = 128
    config.model.depth = MIXTURE_DEPTH[dataset]
    config.model.init_log_scale = math.log(0.03)
    config.num_steps = 9000
    config.batch_size = 64
    config.alpha.schedule = "cosine"
    config.alpha.transition_steps = 1500
    config.generator.lr_schedule = "cosine"
    config.critic.lr_schedule = "cosine"
    for name, value in MIXTURE_OVERRIDES[dataset]:
        set_field(config, name, value)
    return config


def shrink_for_tests(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The ``tiny`` variant: a few steps of a small model, for tests and smoke runs."""
    config.num_steps = 4
    config.alpha.transition_steps = -1  # the schedule spans the 4 steps
    config.batch_size = 16
    config.model.width = 8 if config.model.arch == "dcgan" else 16
    config.model.depth = 1
    config.log_every = 2
    config.sample_every = 4
    config.checkpoint_every = 2
    config.num_final_samples = 64
    config.progress_bar = False
    return config
