"""Flax (linen) networks and distribution helpers for the alpha-Bridge.

The model pairs an encoder joint Q_phi(x, z) = q(x) q_phi(z|x) with a decoder joint
P_theta(x, z) = p(z) p_theta(x|z), p(z) = N(0, I). This module only builds networks and
evaluates densities; it knows nothing about losses, data or training.

Networks (chosen by ``ModelConfig.arch`` and the per-example shape):

* ``Encoder(x) -> (mean, log_std)``: q_phi(z|x) = N(mean, diag(exp(log_std))^2).
* ``Decoder(z) -> DecoderOutput(loc, log_scale)``: p_theta(x|z) = N(loc, exp(log_scale)^2)
  with a learned scalar or per-pixel log-scale (gaussian), or Bernoulli(sigmoid(loc)) with
  ``loc`` holding logits and ``log_scale=None`` (bernoulli).
* ``JointCritic(x, z) -> (B,)``: a logit estimating log Q/P (ALI/BiGAN style: an x branch
  and a z branch fused by concatenation, then an MLP).
* ``XCritic(x, z=None) -> (B,)``: an x-only logit for GAN baselines; ``z`` is ignored so the
  trainer can call both critics as ``critic.apply(params, x, z)``.

Architectures: ``"mlp"`` flattens any example shape (meant for 2-D data); ``"dcgan"`` takes
NHWC images of side 28, 32 or 64 with any channel count. No BatchNorm anywhere (per-example
semantics); conv stacks use LayerNorm over (H, W, C) on all but the first layer. Critics use
LeakyReLU(0.2); encoder/decoder MLPs and the generator use ReLU; the conv encoder uses
LeakyReLU(0.2). Computations run in ``cfg.dtype``; parameters and all outputs are float32.

Decoder scale floor (smooth): ``log_scale = min_log_scale + softplus(raw - min_log_scale)``,
so ``log_scale >= min_log_scale`` always; ``raw`` is initialised so that the initial
``log_scale`` equals ``init_log_scale`` exactly (requires ``init_log_scale > min_log_scale``).

All log-density helpers sum over every non-batch axis and return (B,) float32.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

ARCHS = ("mlp", "dcgan")
LIKELIHOODS = ("gaussian", "bernoulli")
SCALES = ("scalar", "per_pixel")
UPSAMPLES = ("subpixel", "transpose")
CRITIC_INPUTS = ("joint", "x")
DCGAN_START_SIDE = {28: 7, 32: 4, 64: 4}  # image side -> generator start side h0
_LOG_2PI = math.log(2.0 * math.pi)
DECODER_SCALE_PARAM = "log_scale_raw"  # the decoder's raw log σ parameter
_F32 = jnp.float32


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; allowed values: {', '.join(allowed)}")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture settings shared by all networks (validated on construction).

    ``depth`` is the number of hidden layers of every MLP (mlp encoder/decoder, the critics'
    z branch and fusion head, the mlp critic x branch). ``width`` is hidden units (mlp) or the
    base channel count (dcgan: convs use width, 2*width, 4*width, capped at 4*width).
    ``dtype`` may be a jnp dtype or its name (e.g. "bfloat16").
    """

    arch: str
    latent_dim: int
    width: int
    depth: int = 2
    likelihood: str = "gaussian"
    scale: str = "scalar"
    init_log_scale: float = math.log(0.1)
    min_log_scale: float = math.log(1e-3)
    upsample: str = "subpixel"
    critic_input: str = "joint"
    dtype: Any = jnp.float32

    def __post_init__(self):
        _check_choice("arch", self.arch, ARCHS)
        _check_choice("likelihood", self.likelihood, LIKELIHOODS)
        _check_choice("scale", self.scale, SCALES)
        _check_choice("upsample", self.upsample, UPSAMPLES)
        _check_choice("critic_input", self.critic_input, CRITIC_INPUTS)
        for name in ("latent_dim", "width", "depth"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if not self.init_log_scale > self.min_log_scale:
            raise ValueError(
                f"init_log_scale ({self.init_log_scale}) must exceed min_log_scale "
                f"({self.min_log_scale})"
            )
        dtype = jnp.dtype(self.dtype)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise ValueError(f"dtype must be a floating dtype, got {dtype}")
        object.__setattr__(self, "dtype", dtype)

    @classmethod
    def from_config(cls, cfg: Any) -> ModelConfig:
        """Builds a ModelConfig from an ml_collections ConfigDict or a mapping.

        Unknown keys raise ValueError (catches typos); missing optional keys take defaults.
        """
        items = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(items) - known)
        if unknown:
            raise ValueError(f"unknown model config keys {unknown}; allowed: {sorted(known)}")
        return cls(**items)


def dcgan_stages(example_shape: tuple[int, ...]) -> tuple[int, int]:
    """Returns (h0, n) for a dcgan image shape (S, S, C): start side h0, n = log2(S / h0)."""
    shape = tuple(example_shape)
    if len(shape) != 3 or shape[0] != shape[1] or shape[0] not in DCGAN_START_SIDE:
        raise ValueError(
            f"unsupported dcgan example_shape {shape}; expected (S, S, C) with S in "
            f"{sorted(DCGAN_START_SIDE)} and C >= 1"
        )
    if shape[2] < 1:
        raise ValueError(f"unsupported dcgan example_shape {shape}: channels must be >= 1")
    h0 = DCGAN_START_SIDE[shape[0]]
    return h0, (shape[0] // h0).bit_length() - 1


def validate_example_shape(arch: str, example_shape: tuple[int, ...]) -> None:
    """Raises ValueError unless ``example_shape`` (no batch axis) suits ``arch``."""
    _check_choice("arch", arch, ARCHS)
    shape = tuple(example_shape)
    if arch == "dcgan":
        dcgan_stages(shape)
    elif len(shape) < 1 or any(int(d) < 1 for d in shape):
        raise ValueError(f"unsupported mlp example_shape {shape}; need >= 1 positive dims")


def depth_to_space(x: jax.Array, block: int = 2) -> jax.Array:
    """NHWC depth-to-space: (B, H, W, r*r*C) -> (B, H*r, W*r, C) with r = block.

    out[b, h*r + i, w*r + j, c] = x[b, h, w, (i*r + j)*C + c]  (TensorFlow's DCR order).
    """
    b, h, w, d = x.shape
    if d % (block * block):
        raise ValueError(f"channels {d} not divisible by block**2 = {block * block}")
    c = d // (block * block)
    x = x.reshape(b, h, w, block, block, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h * block, w * block, c)


def _lrelu(x: jax.Array) -> jax.Array:
    return nn.leaky_relu(x, negative_slope=0.2)


def _dense(features: int, dtype: Any) -> nn.Dense:
    return nn.Dense(features, dtype=dtype, param_dtype=_F32)


def _image_norm(dtype: Any) -> nn.LayerNorm:
    """LayerNorm over (H, W, C) per example, with per-channel scale and bias."""
    return nn.LayerNorm(reduction_axes=(-3, -2, -1), feature_axes=-1, dtype=dtype,
                        param_dtype=_F32)


class _MLP(nn.Module):
    """h -> act(Dense(f_k)(... act(Dense(f_1)(h))))."""

    features: tuple[int, ...]
    act: Callable[[jax.Array], jax.Array]
    dtype: Any

    @nn.compact
    def __call__(self, h: jax.Array) -> jax.Array:
        for f in self.features:
            h = self.act(_dense(f, self.dtype)(h))
        return h


class _DownStack(nn.Module):
    """n strided 4x4 convs (stride 2, SAME), channels min(width*2^i, 4*width), LayerNorm on
    all but the first, LeakyReLU(0.2); returns the flattened final map (B, h0*h0*C)."""

    width: int
    stages: int
    dtype: Any

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = x
        for i in range(self.stages):
            ch = min(self.width * 2**i, 4 * self.width)
            h = nn.Conv(ch, (4, 4), strides=(2, 2), padding="SAME", dtype=self.dtype,
                        param_dtype=_F32)(h)
            if i > 0:
                h = _image_norm(self.dtype)(h)
            h = _lrelu(h)
        return h.reshape(h.shape[0], -1)


class _Upsample(nn.Module):
    """x2 upsampling to ``features`` channels.

    "subpixel": depth_to_space(Conv3x3(4*features)(h), 2); "transpose": ConvTranspose 4x4,
    stride 2, SAME.
    """

    features: int
    mode: str
    dtype: Any

    @nn.compact
    def __call__(self, h: jax.Array) -> jax.Array:
        if self.mode == "subpixel":
            h = nn.Conv(4 * self.features, (3, 3), padding="SAME", dtype=self.dtype,
                        param_dtype=_F32)(h)
            return depth_to_space(h, 2)
        return nn.ConvTranspose(self.features, (4, 4), strides=(2, 2), padding="SAME",
                                dtype=self.dtype, param_dtype=_F32)(h)


class Encoder(nn.Module):
    """q_phi(z|x) = N(mean(x), diag(exp(log_std(x)))^2); returns (mean, log_std), (B, d_z) f32.

    mlp: flatten, ``depth`` x (Dense(width), ReLU), Dense(2*d_z). dcgan: strided-conv stack,
    flatten, Dense(2*d_z). log_std is unconstrained (linear).
    """

    cfg: ModelConfig
    example_shape: tuple[int, ...]

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        cfg = self.cfg
        if cfg.arch == "mlp":
            h = _MLP((cfg.width,) * cfg.depth, nn.relu, cfg.dtype)(x.reshape(x.shape[0], -1))
        else:
            _, n = dcgan_stages(self.example_shape)
            h = _DownStack(cfg.width, n, cfg.dtype)(x)
        out = _dense(2 * cfg.latent_dim, cfg.dtype)(h).astype(_F32)
        mean, log_std = jnp.split(out, 2, axis=-1)
        return mean, log_std


class DecoderOutput(NamedTuple):
    """p_theta(x|z) parameters: gaussian N(loc, exp(log_scale)^2) with log_scale of shape ()
    or the example shape; bernoulli: ``loc`` holds logits and ``log_scale`` is None."""

    loc: jax.Array
    log_scale: jax.Array | None


def _softplus_inverse(y: float) -> float:
    """softplus^{-1}(y) = log(expm1(y)) for y > 0."""
    return y + math.log(-math.expm1(-y))


class Decoder(nn.Module):
    """Generator G_theta(z) and learned scale sigma_theta; returns DecoderOutput.

    mlp: ``depth`` x (Dense(width), ReLU), linear Dense to the flattened shape (loc is
    unconstrained). dcgan: Dense to (h0, h0, 4*width), LayerNorm, ReLU, then x2 upsampling
    stages (channels 2*width, width, ..., image channels; LayerNorm+ReLU between stages);
    gaussian loc = sigmoid(final), bernoulli logits = final.
    Gaussian log_scale = min_log_scale + softplus(raw - min_log_scale), ``raw`` a parameter of
    shape () ("scalar") or example_shape ("per_pixel") initialised so log_scale = init.
    """

    cfg: ModelConfig
    example_shape: tuple[int, ...]

    @nn.compact
    def __call__(self, z: jax.Array) -> DecoderOutput:
        cfg, shape, b = self.cfg, tuple(self.example_shape), z.shape[0]
        if cfg.arch == "mlp":
            h = _MLP((cfg.width,) * cfg.depth, nn.relu, cfg.dtype)(z)
            loc = _dense(math.prod(shape), cfg.dtype)(h).astype(_F32).reshape((b, *shape))
        else:
            h0, n = dcgan_stages(shape)
            w = cfg.width
            h = _dense(h0 * h0 * 4 * w, cfg.dtype)(z).reshape(b, h0, h0, 4 * w)
            h = nn.relu(_image_norm(cfg.dtype)(h))
            for i in range(n):
                last = i == n - 1
                ch = shape[-1] if last else max(w, (4 * w) >> (i + 1))
                h = _Upsample(ch, cfg.upsample, cfg.dtype)(h)
                if not last:
                    h = nn.relu(_image_norm(cfg.dtype)(h))
            loc = h.astype(_F32)
            if cfg.likelihood == "gaussian":
                loc = jax.nn.sigmoid(loc)
        if cfg.likelihood == "bernoulli":
            return DecoderOutput(loc, None)
        raw0 = cfg.min_log_scale + _softplus_inverse(cfg.init_log_scale - cfg.min_log_scale)
        pshape = () if cfg.scale == "scalar" else shape
        raw = self.param(DECODER_SCALE_PARAM, nn.initializers.constant(raw0), pshape, _F32)
        log_scale = cfg.min_log_scale + jax.nn.softplus(raw - cfg.min_log_scale)
        return DecoderOutput(loc, log_scale)


class _XFeatures(nn.Module):
    """Critic x branch. mlp: ``depth`` x (Dense(width), LeakyReLU). dcgan: strided-conv stack,
    flatten, Dense(4*width), LeakyReLU."""

    cfg: ModelConfig
    example_shape: tuple[int, ...]

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        cfg = self.cfg
        if cfg.arch == "mlp":
            return _MLP((cfg.width,) * cfg.depth, _lrelu, cfg.dtype)(x.reshape(x.shape[0], -1))
        _, n = dcgan_stages(self.example_shape)
        h = _DownStack(cfg.width, n, cfg.dtype)(x)
        return _lrelu(_dense(4 * cfg.width, cfg.dtype)(h))


def _critic_features(cfg: ModelConfig) -> int:
    return cfg.width if cfg.arch == "mlp" else 4 * cfg.width


class JointCritic(nn.Module):
    """d_psi(x, z) = Dense(1)(MLP([f_x(x), f_z(z)])): (B,) float32 logits (ALI/BiGAN).

    f_x is the x branch (_XFeatures), f_z and the fusion head are ``depth`` x (Dense(F),
    LeakyReLU(0.2)) with F = width (mlp) or 4*width (dcgan).
    """

    cfg: ModelConfig
    example_shape: tuple[int, ...]

    @nn.compact
    def __call__(self, x: jax.Array, z: jax.Array) -> jax.Array:
        cfg, f = self.cfg, _critic_features(self.cfg)
        fx = _XFeatures(cfg, self.example_shape)(x)
        fz = _MLP((f,) * cfg.depth, _lrelu, cfg.dtype)(z)
        h = jnp.concatenate([fx, fz.astype(fx.dtype)], axis=-1)
        h = _MLP((f,) * cfg.depth, _lrelu, cfg.dtype)(h)
        return _dense(1, cfg.dtype)(h)[:, 0].astype(_F32)


class XCritic(nn.Module):
    """d_psi(x) = Dense(1)(f_x(x)): (B,) float32 logits; the optional ``z`` is ignored."""

    cfg: ModelConfig
    example_shape: tuple[int, ...]

    @nn.compact
    def __call__(self, x: jax.Array, z: jax.Array | None = None) -> jax.Array:
        del z
        fx = _XFeatures(self.cfg, self.example_shape)(x)
        return _dense(1, self.cfg.dtype)(fx)[:, 0].astype(_F32)


class Models(NamedTuple):
    encoder: Encoder
    decoder: Decoder
    critic: nn.Module


def make_models(cfg: ModelConfig, example_shape: tuple[int, ...]) -> Models:
    """Builds (Encoder, Decoder, JointCritic or XCritic per cfg.critic_input) for one shape."""
    shape = tuple(int(d) for d in example_shape)
    validate_example_shape(cfg.arch, shape)
    critic_cls = JointCritic if cfg.critic_input == "joint" else XCritic
    return Models(Encoder(cfg, shape), Decoder(cfg, shape), critic_cls(cfg, shape))


def init_params(models: Models, rng: jax.Array, example_shape: tuple[int, ...],
                latent_dim: int) -> dict:
    """Initialises {"encoder", "decoder", "critic"} 'params' pytrees (float32) from one key."""
    if latent_dim != models.encoder.cfg.latent_dim:
        raise ValueError(f"latent_dim {latent_dim} != cfg.latent_dim "
                         f"{models.encoder.cfg.latent_dim}")
    k_enc, k_dec, k_crit = jax.random.split(rng, 3)
    x = jnp.zeros((1, *example_shape), _F32)
    z = jnp.zeros((1, latent_dim), _F32)
    return {
        "encoder": models.encoder.init(k_enc, x)["params"],
        "decoder": models.decoder.init(k_dec, z)["params"],
        "critic": models.critic.init(k_crit, x, z)["params"],
    }


def count_params(params: Any) -> int:
    """Total number of scalars in a pytree of arrays."""
    return sum(int(leaf.size) for leaf in jax.tree_util.tree_leaves(params))


# ----------------------------------------------------------------------------------------
# Distribution helpers: pure functions, per-example sums over all non-batch axes -> (B,) f32.


def _sum_per_example(a: jax.Array) -> jax.Array:
    return a.reshape(a.shape[0], -1).sum(axis=1)


def gaussian_log_prob(x: jax.Array, loc: jax.Array, log_scale: jax.Array) -> jax.Array:
    """sum_i [-0.5 ((x_i - loc_i) / sigma_i)^2 - log sigma_i - 0.5 log 2 pi], sigma = e^log_scale.

    ``loc`` and ``log_scale`` broadcast against ``x`` (B, ...).
    """
    x, loc, log_scale = jnp.broadcast_arrays(
        jnp.asarray(x, _F32), jnp.asarray(loc, _F32), jnp.asarray(log_scale, _F32))
    zsc = (x - loc) * jnp.exp(-log_scale)
    return _sum_per_example(-0.5 * zsc**2 - log_scale - 0.5 * _LOG_2PI)


def standard_normal_log_prob(z: jax.Array) -> jax.Array:
    """log N(z; 0, I) = sum_i [-0.5 z_i^2 - 0.5 log 2 pi]."""
    z = jnp.asarray(z, _F32)
    return _sum_per_example(-0.5 * z**2 - 0.5 * _LOG_2PI)


def bernoulli_log_prob(x: jax.Array, logits: jax.Array) -> jax.Array:
    """sum_i [x_i log sigmoid(l_i) + (1 - x_i) log sigmoid(-l_i)] (stable via log_sigmoid)."""
    x, logits = jnp.broadcast_arrays(jnp.asarray(x, _F32), jnp.asarray(logits, _F32))
    lp = x * jax.nn.log_sigmoid(logits) + (1.0 - x) * jax.nn.log_sigmoid(-logits)
    return _sum_per_example(lp)


def decoder_log_prob(out: DecoderOutput, x: jax.Array, likelihood: str) -> jax.Array:
    """log p_theta(x|z): gaussian_log_prob(x, loc, log_scale) or bernoulli_log_prob(x, loc)."""
    _check_choice("likelihood", likelihood, LIKELIHOODS)
    if likelihood == "bernoulli":
        return bernoulli_log_prob(x, out.loc)
    if out.log_scale is None:
        raise ValueError("gaussian likelihood needs DecoderOutput.log_scale, got None")
    return gaussian_log_prob(x, out.loc, out.log_scale)


def encoder_sample(mean: jax.Array, log_std: jax.Array, eps: jax.Array) -> jax.Array:
    """Reparameterised z = mean + exp(log_std) * eps, eps ~ N(0, I)."""
    return mean + jnp.exp(log_std) * eps


def decoder_sample(out: DecoderOutput, eps: jax.Array, likelihood: str) -> jax.Array:
    """Model-side x. gaussian: loc + exp(log_scale) * eps (reparameterised).

    bernoulli: sigmoid(logits), the mean (``eps`` unused). Bernoulli samples are not
    reparameterisable, so the model side uses the mean, a common relaxation.
    """
    _check_choice("likelihood", likelihood, LIKELIHOODS)
    if likelihood == "bernoulli":
        return jax.nn.sigmoid(out.loc)
    return out.loc + jnp.exp(out.log_scale) * eps


def decoder_mean(out: DecoderOutput, likelihood: str) -> jax.Array:
    """E[x|z]: loc (gaussian) or sigmoid(logits) (bernoulli)."""
    _check_choice("likelihood", likelihood, LIKELIHOODS)
    return jax.nn.sigmoid(out.loc) if likelihood == "bernoulli" else out.loc


def negative_elbo_terms(enc_mean: jax.Array, enc_log_std: jax.Array, z: jax.Array,
                        dec_out: DecoderOutput, x: jax.Array, likelihood: str) -> jax.Array:
    """Single-sample l(x, z) = log q_phi(z|x) - log p(z) - log p_theta(x|z), shape (B,)."""
    log_q = gaussian_log_prob(z, enc_mean, enc_log_std)
    return log_q - standard_normal_log_prob(z) - decoder_log_prob(dec_out, x, likelihood)
