"""The experiment config: defaults, methods, and validation before any compile.

Configs are ``ml_collections.ConfigDict`` objects. ``configs/*.py`` start from
:func:`base_config` and override fields; ``--config.x.y=...`` flags override them again.
:func:`validate_config` checks every field with one clear message per problem, so a typo
or an impossible setting fails in a second, not after a compile or hours of training.
What each method is (critic input, encoder, α, objective) is defined once, in
:mod:`bridge_jax.methods`.
"""

from __future__ import annotations

import math
import os
from typing import Any

import ml_collections

from bridge_jax import methods as methods_lib
from bridge_jax import schedules, step_memory, storage
from bridge_jax.data import DATASET_NAMES
from bridge_jax.data.tfds_source import DEFAULT_IMAGE_SIZES

METHODS = methods_lib.METHOD_NAMES
DATASETS = DATASET_NAMES
TFDS_DEFAULT_IMAGE_SIZE = DEFAULT_IMAGE_SIZES
PARALLEL_MODES = ("jit", "pmap")
NONFINITE_POLICIES = ("stop", "skip")
DTYPES = ("float32", "bfloat16")
MAX_STEPS = 2**31  # the training state's step counter is int32
MAX_CRITIC_STEPS = 100  # unrolled in the compiled step (train_step.critic_updates)


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

    c.data = _data_fields()
    c.model = _model_fields()
    c.alpha = _alpha_fields()
    c.critic = _critic_fields()
    c.generator = _generator_fields()
    c.hybrid_weight = 1.0  # β of the VAE-GAN hybrid
    c.eval = _eval_fields()
    c.sweep = _sweep_fields()

    c.log_every = 50
    c.sample_every = 500
    c.checkpoint_every = 500
    c.keep_checkpoints = 3
    c.num_final_samples = 10_000
    c.progress_bar = True
    return c


def _data_fields() -> ml_collections.ConfigDict:
    d = ml_collections.ConfigDict()
    d.name = "ring"
    d.tfds_name = ""  # for data.name == "tfds": mnist, cifar10, celeb_a, ...
    d.data_dir = ""  # tfds data_dir (prepared offline)
    d.split = "train"
    d.image_size = 0  # 0: the dataset's native/default size
    d.num_workers = 0  # >0: batches computed ahead by this many processes (data/workers.py)
    return d


def _model_fields() -> ml_collections.ConfigDict:
    m = ml_collections.ConfigDict()
    m.arch = "mlp"  # "mlp" (2-D) or "dcgan" (images)
    m.latent_dim = 2
    m.width = 128
    m.depth = 2
    m.likelihood = "gaussian"  # "gaussian" or "bernoulli"
    m.scale = "scalar"  # learned decoder scale: "scalar" or "per_pixel"
    m.init_log_scale = math.log(0.1)
    m.min_log_scale = math.log(1e-3)
    m.upsample = "subpixel"  # "subpixel" or "transpose"
    m.dtype = "float32"  # compute dtype; parameters stay float32
    return m


def _alpha_fields() -> ml_collections.ConfigDict:
    a = ml_collections.ConfigDict()
    a.schedule = "cosine"  # or linear, step, exponential, constant, adaptive (α.adaptive)
    a.start = 1.0
    a.end = 0.0
    a.transition_begin = 0
    a.transition_steps = -1  # -1: num_steps − transition_begin
    a.num_stages = 4
    a.decay_rate = 0.01
    a.mix = "quadratic"  # λ(α) of the bridge loss
    a.self_normalize = False
    # schedule="adaptive": α starts at `start` and a controller in the step moves it by
    # ±rate per step within [end, start] from a signal s in [0, 1] (schedules.adaptive_update)
    a.adaptive = ml_collections.ConfigDict()
    a.adaptive.signal = "ess"  # "ess" of the ELBO weights, or "accuracy": 2·(1 − critic acc.)
    a.adaptive.target_high = 0.8  # smoothed s above: α falls by rate (towards end)
    a.adaptive.target_low = 0.5  # below: α rises by rate (towards start); between: held
    a.adaptive.rate = 1e-3  # the change of α per step
    a.adaptive.smoothing = 0.9  # decay of the signal's moving average (0: each step's own)
    return a


def _critic_fields() -> ml_collections.ConfigDict:
    o = ml_collections.ConfigDict()
    o.loss = "logistic"  # "logistic" or "bound"
    o.steps = 1  # critic updates per generator update
    o.gradient_penalty = 0.0  # γ of the R1 penalty γ·½E_q‖∇_(x,z)d‖² (0: none)
    o.instance_noise = 0.0  # σ₀: the critic sees x + σε on both sides (0: none)
    o.instance_noise_steps = -1  # σ falls linearly from σ₀ to 0 at this step; -1: num_steps
    _add_optimizer_fields(o, learning_rate=1e-3)
    return o


def _generator_fields() -> ml_collections.ConfigDict:
    o = ml_collections.ConfigDict()
    _add_optimizer_fields(o, learning_rate=1e-3)
    o.scale_lr_multiplier = 1.0  # × the decoder log σ's update (train_state)
    return o


def _add_optimizer_fields(o: ml_collections.ConfigDict, learning_rate: float) -> None:
    """The Adam optimizer fields shared by ``critic`` and ``generator``."""
    o.learning_rate = learning_rate
    o.b1 = 0.5
    o.b2 = 0.999
    o.clip_norm = 10.0
    o.lr_schedule = "constant"  # "constant" or "cosine" (decay over training)
    o.final_lr_fraction = 0.0  # cosine: final lr = fraction × learning_rate
    o.lr_decay_steps = -1  # cosine horizon in steps; -1: num_steps


def _eval_fields() -> ml_collections.ConfigDict:
    e = ml_collections.ConfigDict()
    e.evaluators = ""  # comma-separated bridge_jax.evaluators names ("": none)
    e.every = 0  # steps between evaluations (0: only after the last step)
    e.num_samples = 0  # model samples per evaluation (0: each evaluator's protocol)
    e.classifier_dir = ""  # digit classifier cache ("": ~/.cache/bridge_jax/classifier)
    return e


def _sweep_fields() -> ml_collections.ConfigDict:
    # Members and sweeps (bridge_jax.sweeps): every run trains num_seeds seeds (seed,
    # seed+1, ...) as members of one compiled program; a sweep lists runs, each a dict
    # {"name": ..., "label": ..., "set": {"field.name": value, ...}} applied to this config.
    s = ml_collections.ConfigDict()
    s.name = ""
    s.num_seeds = 1
    s.runs = ()
    s.vmap_members = True  # False: every member its own program (one after another)
    return s


def effective_alpha_schedule(config: ml_collections.ConfigDict) -> schedules.Schedule:
    """The α schedule the method uses (constant for vae ≡ 1 and adversarial ≡ 0)."""
    fixed = methods_lib.get(config.method).fixed_alpha
    if fixed is not None:
        return schedules.constant(fixed)
    a = config.alpha
    steps = a.transition_steps if a.transition_steps > 0 else config.num_steps - a.transition_begin
    return schedules.make_alpha_schedule(
        a.schedule, alpha_start=float(a.start), alpha_end=float(a.end),
        transition_steps=max(int(steps), 1), transition_begin=int(a.transition_begin),
        num_stages=int(a.num_stages), decay_rate=float(a.decay_rate))


def adaptive_alpha(config: ml_collections.ConfigDict) -> schedules.AdaptiveAlpha | None:
    """The α controller's settings; None where α follows a schedule (also for methods
    that fix α, vae and adversarial, or ignore it, nsgan and hybrid)."""
    m = methods_lib.get(config.method)
    adaptive = config.alpha.schedule == schedules.ADAPTIVE and m.fixed_alpha is None
    return schedules.adaptive_settings(config.alpha) if adaptive and m.uses_alpha else None


def critic_input(config: ml_collections.ConfigDict) -> str:
    """'joint' for d(x, z) (bridge, vae, adversarial), else 'x'."""
    return methods_lib.get(config.method).critic_input


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
    _validate_field_names(config)
    _validate_run(config, num_devices, process_count)
    _validate_data(config)
    _validate_model(config)
    _validate_alpha(config)
    _validate_critic(config)
    _validate_optimizers(config)
    _validate_logging(config)
    _validate_eval(config)
    _validate_sweep(config)
    _validate_image_size(config)
    _require_fits_in_memory(config, num_devices, process_count)
    if workdir is not None:
        _validate_workdir(workdir)


def _validate_field_names(c: ml_collections.ConfigDict) -> None:
    problem = field_name_problem(c)
    _require(problem is None, str(problem))


def field_name_problem(config: ml_collections.ConfigDict) -> str | None:
    """What is wrong with the field names of ``config`` (unknown or missing fields against
    :func:`base_config`), or None if they are exactly the expected ones."""
    known, given = _field_names(base_config()), _field_names(config)
    if given - known:
        return (f"unknown config field(s) {_name_list(given - known)} "
                "(a typo? the fields are those of configuration.base_config())")
    if known - given:
        return (f"config field(s) {_name_list(known - given)} missing; "
                "start the config from configuration.base_config()")
    return None


def _name_list(names: set[str], most: int = 8) -> str:
    """Sorted, comma-separated; beyond ``most`` names, their count."""
    names = sorted(names)
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(names[:most]) + more


def _validate_run(c: ml_collections.ConfigDict, num_devices: int, process_count: int) -> None:
    _choice("method", c.method, METHODS)
    _require(_is_int(c.seed) and 0 <= c.seed < 2**32,
             f"seed must be an integer in [0, 2**32), got {c.seed!r}")
    _positive_int("num_steps", c.num_steps)
    _require(c.num_steps < MAX_STEPS,
             f"num_steps={c.num_steps} is more than the step counter holds: the training "
             f"state's step is int32, so num_steps must be below 2**31 = {MAX_STEPS}")
    _positive_int("batch_size", c.batch_size)
    _choice("parallel", c.parallel, PARALLEL_MODES)
    _choice("nonfinite_policy", c.nonfinite_policy, NONFINITE_POLICIES)
    _require(c.batch_size % process_count == 0,
             f"batch_size={c.batch_size} is not divisible by the {process_count} hosts")
    _require(c.batch_size % num_devices == 0,
             f"batch_size={c.batch_size} is not divisible by the {num_devices} devices; "
             f"use a multiple of {num_devices}")


def _validate_data(c: ml_collections.ConfigDict) -> None:
    _choice("data.name", c.data.name, DATASETS)
    if c.data.name == "tfds":
        _require(bool(c.data.tfds_name), "data.tfds_name is required when data.name='tfds' "
                 f"(e.g. one of {tuple(TFDS_DEFAULT_IMAGE_SIZE)})")
        _require(bool(c.data.data_dir), "data.data_dir is required when data.name='tfds': "
                 "datasets are read offline from a prepared tfds data_dir")
        problem = storage.data_dir_problem(c.data.data_dir)
        _require(problem is None, str(problem))
        _require(isinstance(c.data.split, str) and bool(c.data.split),
                 f"data.split must be a non-empty string such as 'train', got {c.data.split!r}")
    for name in ("image_size", "num_workers"):
        _require(_is_int(c.data[name]) and c.data[name] >= 0,
                 f"data.{name} must be a non-negative integer, got {c.data[name]!r}")
    _require(c.data.name not in ("ring", "grid") or c.data.image_size == 0,
             f"data.image_size must be 0 for the 2-D dataset {c.data.name!r}, "
             f"got {c.data.image_size!r}")


def _validate_model(c: ml_collections.ConfigDict) -> None:
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


def _validate_alpha(c: ml_collections.ConfigDict) -> None:
    a = c.alpha
    _choice("alpha.schedule", a.schedule, schedules.KINDS)
    for name in ("start", "end"):
        v = a[name]
        _require(_is_number(v) and 0.0 <= v <= 1.0, f"alpha.{name} must lie in [0, 1], got {v!r}")
    _require(_is_int(a.transition_begin) and 0 <= a.transition_begin < c.num_steps,
             f"alpha.transition_begin must be in [0, num_steps), got {a.transition_begin!r}")
    _require(_is_int(a.transition_steps) and (a.transition_steps > 0 or a.transition_steps == -1),
             f"alpha.transition_steps must be positive or -1, got {a.transition_steps!r}")
    _require(a.transition_steps < MAX_STEPS,
             f"alpha.transition_steps={a.transition_steps} must be below 2**31 = {MAX_STEPS}: "
             "the schedule counts steps in int32")
    _positive_int("alpha.num_stages", a.num_stages)
    _require(_is_number(a.decay_rate) and 0 < a.decay_rate < 1,
             f"alpha.decay_rate must lie in (0, 1), got {a.decay_rate!r}")
    _choice("alpha.mix", a.mix, ("quadratic", "smoothstep"))
    _require(isinstance(a.self_normalize, bool), "alpha.self_normalize must be true or false")
    problem = schedules.adaptive_config_problem(a)
    _require(problem is None, str(problem))


def _validate_critic(c: ml_collections.ConfigDict) -> None:
    _choice("critic.loss", c.critic.loss, ("logistic", "bound"))
    _positive_int("critic.steps", c.critic.steps)
    _require(c.critic.steps <= MAX_CRITIC_STEPS,
             f"critic.steps={c.critic.steps} is above {MAX_CRITIC_STEPS}: the critic updates "
             "are unrolled in the compiled step, whose size grows with their number")
    _require(_is_number(c.critic.gradient_penalty) and c.critic.gradient_penalty >= 0,
             f"critic.gradient_penalty must be >= 0, got {c.critic.gradient_penalty!r}")
    _require(_is_number(c.critic.instance_noise) and c.critic.instance_noise >= 0,
             f"critic.instance_noise must be a number >= 0, got {c.critic.instance_noise!r}")
    steps = c.critic.instance_noise_steps
    _require(_is_int(steps) and (steps > 0 or steps == -1) and steps < MAX_STEPS,
             f"critic.instance_noise_steps must be positive (below 2**31) or -1, got {steps!r}")


def _validate_optimizers(c: ml_collections.ConfigDict) -> None:
    """Both optimizers, the decoder-scale lr multiplier, and the hybrid's β."""
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


def _validate_logging(c: ml_collections.ConfigDict) -> None:
    for name in ("log_every", "sample_every", "checkpoint_every", "keep_checkpoints"):
        _positive_int(name, c[name])
    _require(_is_int(c.num_final_samples) and c.num_final_samples >= 0,
             f"num_final_samples must be a non-negative integer, got {c.num_final_samples!r}")
    _require(isinstance(c.progress_bar, bool),
             f"progress_bar must be true or false, got {c.progress_bar!r}")


def _validate_sweep(c: ml_collections.ConfigDict) -> None:
    _positive_int("sweep.num_seeds", c.sweep.num_seeds)
    _require(isinstance(c.sweep.vmap_members, bool),
             f"sweep.vmap_members must be true or false, got {c.sweep.vmap_members!r}")
    _require(isinstance(c.sweep.runs, tuple | list),
             f"sweep.runs must be a tuple of run dicts, got {c.sweep.runs!r}")
    _require(c.sweep.num_seeds == 1 or c.parallel == "jit",
             f"sweep.num_seeds={c.sweep.num_seeds} trains members with jax.vmap under "
             "parallel='jit'; parallel='pmap' runs one member")


def _validate_image_size(c: ml_collections.ConfigDict) -> None:
    """The DCGAN takes square images of the sides in models.DCGAN_START_SIDE only."""
    from bridge_jax.models import DCGAN_START_SIDE

    shape = step_memory.example_shape(c)
    if c.model.arch != "dcgan" or shape is None:
        return
    sides = ", ".join(str(s) for s in sorted(DCGAN_START_SIDE))
    native = "" if c.data.image_size else f" (0: the dataset's own {shape[0]})"
    _require(shape[0] in DCGAN_START_SIDE,
             f"data.image_size={c.data.image_size}{native} does not fit model.arch='dcgan', "
             f"which takes images of side {sides} (or 0: the dataset's own size, if one "
             "of these)")


def _require_fits_in_memory(c: ml_collections.ConfigDict, num_devices: int,
                            process_count: int) -> None:
    """Refuses a batch that cannot fit, by a lower bound (see bridge_jax.step_memory)."""
    problem = step_memory.problem(c, num_devices, process_count)
    _require(problem is None, str(problem))


def _validate_workdir(workdir: str) -> None:
    """The workdir is named and writable: a local folder, or a gs:// bucket
    (:func:`bridge_jax.storage.workdir_problem`; refused runs leave nothing behind)."""
    problem = storage.workdir_problem(workdir)
    _require(problem is None, str(problem))


def _validate_eval(c: ml_collections.ConfigDict) -> None:
    from bridge_jax import evaluators

    _require(isinstance(c.eval.evaluators, str),
             f"eval.evaluators must be a comma-separated string, got {c.eval.evaluators!r}")
    problem = evaluators.compatibility_error(c.eval.evaluators, c.data.name, c.method)
    _require(problem is None, str(problem))
    _require(_is_int(c.eval.every) and c.eval.every >= 0,
             f"eval.every must be a non-negative integer, got {c.eval.every!r}")
    _require(_is_int(c.eval.num_samples) and c.eval.num_samples >= 0,
             f"eval.num_samples must be a non-negative integer, got {c.eval.num_samples!r}")
    _require(isinstance(c.eval.classifier_dir, str) and "://" not in c.eval.classifier_dir,
             "eval.classifier_dir must be a local directory (a cache), got "
             f"{c.eval.classifier_dir!r}")


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


def config_from_file(path: str | os.PathLike, arg: str | None = None) -> ml_collections.ConfigDict:
    """``get_config(arg)`` of the config file at ``path`` (how configs build on each other:
    a sweep on its experiment, ``configs/ring.py`` on ``configs/mixture.py``); ``arg`` must
    be one of the file's ``VARIANTS`` (see :mod:`bridge_jax.config_files`)."""
    from bridge_jax import config_files

    return config_files.load_config(path, arg)


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
    config.eval.num_samples = 200
    config.eval.every = 2
    return config
