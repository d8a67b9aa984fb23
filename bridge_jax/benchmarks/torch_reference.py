"""A PyTorch (eager, CPU) reference of the α-Bridge networks and train step.

Imported only when PyTorch is installed (``pip install torch``; it is not a dependency of
bridge_jax). It mirrors :mod:`bridge_jax.models` and :func:`bridge_jax.train_step.make_train_step`
for ``method='bridge'`` with the logistic critic loss, the quadratic mix, a Gaussian decoder
with a scalar learned scale, the joint critic and ``'subpixel'`` upsampling:

  1. one critic update (encoder/decoder frozen) on ``softplus(-d_data) + softplus(d_model)``;
  2. one encoder/decoder update (critic frozen) on the bridge loss
     ``α · mean(sg(w) ℓ) + (1 − α²) · B_α(d_data, d_model)``, w = e^(−(1−α) d_data);
  both with clip-by-global-norm then Adam, as optax.chain(clip_by_global_norm, adam).

Weights are copied from the Flax parameters (:meth:`TorchBridge.load_flax`), translating
layouts: Dense kernels (in, out) -> Linear weights (out, in); conv kernels HWIO -> OIHW;
images NHWC -> NCHW, so Dense layers next to a flatten/reshape get their rows/columns
reordered from (h, w, c) to (c, h, w); the sub-pixel conv's output channels are reordered
from TensorFlow's depth-to-space order ``(i*r + j)*C + c`` to ``torch.nn.PixelShuffle``'s
``c*r*r + i*r + j``. LayerNorm over (H, W, C) with per-channel affine is
``F.group_norm(x, 1, ...)`` with Flax's epsilon 1e-6.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

_LOG_2PI = math.log(2.0 * math.pi)
_LN_EPS = 1e-6  # flax.linen.LayerNorm default
LOGIT_CLIP = 50.0


def _tensor(a: Any) -> torch.Tensor:
    return torch.from_numpy(np.array(a, dtype=np.float32))


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2)


class _Dense(nn.Linear):
    def load(self, p, row_perm: np.ndarray | None = None, col_perm: np.ndarray | None = None):
        kernel, bias = np.asarray(p["kernel"]), np.asarray(p["bias"])
        if row_perm is not None:
            kernel = kernel[row_perm]
        if col_perm is not None:
            kernel, bias = kernel[:, col_perm], bias[col_perm]
        with torch.no_grad():
            self.weight.copy_(_tensor(kernel.T))
            self.bias.copy_(_tensor(bias))


def _hwc_to_chw_perm(h: int, w: int, c: int) -> np.ndarray:
    """perm with flat_hwc[perm] = flat_chw: torch's (c, h, w) flatten order in Flax indices."""
    return np.arange(h * w * c).reshape(h, w, c).transpose(2, 0, 1).reshape(-1)


class _Conv(nn.Conv2d):
    def load(self, p, out_perm: np.ndarray | None = None):
        kernel, bias = np.asarray(p["kernel"]), np.asarray(p["bias"])  # HWIO
        if out_perm is not None:
            kernel, bias = kernel[..., out_perm], bias[out_perm]
        with torch.no_grad():
            self.weight.copy_(_tensor(kernel.transpose(3, 2, 0, 1)))  # OIHW
            self.bias.copy_(_tensor(bias))


class _Norm(nn.Module):
    """LayerNorm over (C, H, W) per example with per-channel scale/bias."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        return F.group_norm(x, 1, self.weight, self.bias, _LN_EPS)

    def load(self, p):
        with torch.no_grad():
            self.weight.copy_(_tensor(p["scale"]))
            self.bias.copy_(_tensor(p["bias"]))


class _MLP(nn.Module):
    def __init__(self, d_in: int, features: tuple[int, ...], act):
        super().__init__()
        dims = (d_in, *features)
        self.layers = nn.ModuleList(_Dense(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))
        self.act = act

    def forward(self, h):
        for layer in self.layers:
            h = self.act(layer(h))
        return h

    def load(self, p):
        for i, layer in enumerate(self.layers):
            layer.load(p[f"Dense_{i}"])


def _stages(shape) -> tuple[int, int]:
    from bridge_jax.models import dcgan_stages

    return dcgan_stages(tuple(shape))


class _DownStack(nn.Module):
    def __init__(self, channels: int, width: int, stages: int):
        super().__init__()
        chans = [channels] + [min(width * 2**i, 4 * width) for i in range(stages)]
        self.convs = nn.ModuleList(_Conv(a, b, 4, stride=2, padding=1)
                                   for a, b in zip(chans[:-1], chans[1:], strict=True))
        self.norms = nn.ModuleList(_Norm(c) for c in chans[2:])
        self.out_channels = chans[-1]

    def forward(self, x):
        h = _lrelu(self.convs[0](x))
        for conv, norm in zip(self.convs[1:], self.norms, strict=True):
            h = _lrelu(norm(conv(h)))
        return h.flatten(1)

    def load(self, p):
        for i, conv in enumerate(self.convs):
            conv.load(p[f"Conv_{i}"])
        for i, norm in enumerate(self.norms):
            norm.load(p[f"LayerNorm_{i}"])


class Encoder(nn.Module):
    def __init__(self, cfg, shape):
        super().__init__()
        self.arch = cfg.arch
        if cfg.arch == "mlp":
            self.body = _MLP(math.prod(shape), (cfg.width,) * cfg.depth, F.relu)
            feat = cfg.width
        else:
            h0, n = _stages(shape)
            self.body = _DownStack(shape[-1], cfg.width, n)
            self.flat_perm = _hwc_to_chw_perm(h0, h0, self.body.out_channels)
            feat = h0 * h0 * self.body.out_channels
        self.head = _Dense(feat, 2 * cfg.latent_dim)

    def forward(self, x):
        h = self.body(x.flatten(1) if self.arch == "mlp" else x)
        return self.head(h).chunk(2, dim=-1)

    def load(self, p):
        if self.arch == "mlp":
            self.body.load(p["_MLP_0"])
            self.head.load(p["Dense_0"])
        else:
            self.body.load(p["_DownStack_0"])
            self.head.load(p["Dense_0"], row_perm=self.flat_perm)


class Decoder(nn.Module):
    """Returns (loc, log_scale): loc NCHW (images) or (B, *shape); log_scale a scalar."""

    def __init__(self, cfg, shape):
        super().__init__()
        self.arch, self.shape, self.cfg = cfg.arch, tuple(shape), cfg
        self.log_scale_raw = nn.Parameter(torch.zeros(()))
        if cfg.arch == "mlp":
            self.body = _MLP(cfg.latent_dim, (cfg.width,) * cfg.depth, F.relu)
            self.head = _Dense(cfg.width, math.prod(shape))
            return
        h0, n = _stages(shape)
        w = cfg.width
        self.h0, self.c0 = h0, 4 * w
        self.head = _Dense(cfg.latent_dim, h0 * h0 * 4 * w)
        self.flat_perm = _hwc_to_chw_perm(h0, h0, 4 * w)
        self.norms = nn.ModuleList([_Norm(4 * w)])
        self.convs = nn.ModuleList()
        self.out_perms = []
        ch_in = 4 * w
        for i in range(n):
            last = i == n - 1
            ch = shape[-1] if last else max(w, (4 * w) >> (i + 1))
            self.convs.append(_Conv(ch_in, 4 * ch, 3, padding=1))
            # torch PixelShuffle channel c*4 + k  <-  Flax depth-to-space channel k*ch + c
            self.out_perms.append(np.arange(4 * ch).reshape(4, ch).T.reshape(-1))
            if not last:
                self.norms.append(_Norm(ch))
            ch_in = ch

    def forward(self, z):
        cfg = self.cfg
        if self.arch == "mlp":
            loc = self.head(self.body(z)).reshape(z.shape[0], *self.shape)
        else:
            h = self.head(z).reshape(z.shape[0], self.c0, self.h0, self.h0)
            h = F.relu(self.norms[0](h))
            for i, conv in enumerate(self.convs):
                h = F.pixel_shuffle(conv(h), 2)
                if i + 1 < len(self.convs):
                    h = F.relu(self.norms[i + 1](h))
            loc = torch.sigmoid(h)
        log_scale = cfg.min_log_scale + F.softplus(self.log_scale_raw - cfg.min_log_scale)
        return loc, log_scale

    def load(self, p):
        with torch.no_grad():
            self.log_scale_raw.copy_(_tensor(p["log_scale_raw"]))
        if self.arch == "mlp":
            self.body.load(p["_MLP_0"])
            self.head.load(p["Dense_0"])
            return
        self.head.load(p["Dense_0"], col_perm=self.flat_perm)
        for i, norm in enumerate(self.norms):
            norm.load(p[f"LayerNorm_{i}"])
        for i, conv in enumerate(self.convs):
            conv.load(p[f"_Upsample_{i}"]["Conv_0"], out_perm=self.out_perms[i])


class JointCritic(nn.Module):
    def __init__(self, cfg, shape):
        super().__init__()
        self.arch = cfg.arch
        f = cfg.width if cfg.arch == "mlp" else 4 * cfg.width
        if cfg.arch == "mlp":
            self.x_body = _MLP(math.prod(shape), (f,) * cfg.depth, _lrelu)
        else:
            h0, n = _stages(shape)
            self.x_body = _DownStack(shape[-1], cfg.width, n)
            self.flat_perm = _hwc_to_chw_perm(h0, h0, self.x_body.out_channels)
            self.x_head = _Dense(h0 * h0 * self.x_body.out_channels, f)
        self.z_body = _MLP(cfg.latent_dim, (f,) * cfg.depth, _lrelu)
        self.fusion = _MLP(2 * f, (f,) * cfg.depth, _lrelu)
        self.out = _Dense(f, 1)

    def forward(self, x, z):
        if self.arch == "mlp":
            fx = self.x_body(x.flatten(1))
        else:
            fx = _lrelu(self.x_head(self.x_body(x)))
        h = self.fusion(torch.cat([fx, self.z_body(z)], dim=-1))
        return self.out(h)[:, 0]

    def load(self, p):
        px = p["_XFeatures_0"]
        if self.arch == "mlp":
            self.x_body.load(px["_MLP_0"])
        else:
            self.x_body.load(px["_DownStack_0"])
            self.x_head.load(px["Dense_0"], row_perm=self.flat_perm)
        self.z_body.load(p["_MLP_0"])
        self.fusion.load(p["_MLP_1"])
        self.out.load(p["Dense_0"])


def _sum_per_example(a):
    return a.flatten(1).sum(1)


def gaussian_log_prob(x, loc, log_scale):
    zsc = (x - loc) * torch.exp(-log_scale)
    return _sum_per_example(-0.5 * zsc**2 - log_scale - 0.5 * _LOG_2PI)


def _data_term(d, alpha: float):
    d = d.clamp(-LOGIT_CLIP, LOGIT_CLIP)
    c = 1.0 - alpha
    return d if c == 0 else -torch.expm1(-c * d) / c


def _model_term(d, alpha: float):
    d = d.clamp(-LOGIT_CLIP, LOGIT_CLIP)
    return d if alpha == 0 else torch.expm1(alpha * d) / alpha


def alpha_bound(d_data, d_model, alpha: float):
    return _data_term(d_data, alpha).mean() - _model_term(d_model, alpha).mean()


class TorchBridge:
    """Networks, optimizers and the α-Bridge step (``method='bridge'``) in PyTorch eager.

    ``cfg`` is a :class:`bridge_jax.models.ModelConfig`; ``opt`` maps "critic" and
    "generator" to (learning_rate, b1, b2, clip_norm). Inputs are NHWC numpy/torch arrays
    (converted to NCHW once per step, as a PyTorch user would store them NCHW anyway).
    """

    def __init__(self, cfg, example_shape, flax_params, opt: dict[str, tuple], *,
                 channels_last: bool = False):
        if cfg.arch == "dcgan" and cfg.upsample != "subpixel":
            raise NotImplementedError("the PyTorch reference implements upsample='subpixel'")
        if cfg.likelihood != "gaussian" or cfg.scale != "scalar":
            raise NotImplementedError("the PyTorch reference implements gaussian/scalar only")
        self.cfg, self.shape, self.opt_settings = cfg, tuple(example_shape), dict(opt)
        self.is_image = cfg.arch == "dcgan"
        self.encoder = Encoder(cfg, self.shape)
        self.decoder = Decoder(cfg, self.shape)
        self.critic = JointCritic(cfg, self.shape)
        self.load_flax(flax_params)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last and self.is_image:
            for m in (self.encoder, self.decoder, self.critic):
                m.to(memory_format=torch.channels_last)
        self.gen_params = list(self.encoder.parameters()) + list(self.decoder.parameters())
        self.critic_params = list(self.critic.parameters())

        def adam(params, lr, b1, b2, _clip):
            return torch.optim.Adam(params, lr=lr, betas=(b1, b2), eps=1e-8, foreach=True)

        self.critic_opt = adam(self.critic_params, *opt["critic"])
        self.gen_opt = adam(self.gen_params, *opt["generator"])
        self.critic_clip, self.gen_clip = opt["critic"][3], opt["generator"][3]

    def load_flax(self, params) -> None:
        self.encoder.load(params["encoder"])
        self.decoder.load(params["decoder"])
        self.critic.load(params["critic"])

    def to_torch_batch(self, x) -> torch.Tensor:
        """NHWC numpy -> NCHW tensor (images); 2-D data unchanged."""
        t = torch.from_numpy(np.array(x, dtype=np.float32))
        if self.is_image:
            t = t.permute(0, 3, 1, 2).contiguous(memory_format=self.memory_format)
        return t

    def _noise(self, b: int) -> dict[str, torch.Tensor]:
        d = self.cfg.latent_dim
        eps_shape = (b, self.shape[-1], *self.shape[:-1]) if self.is_image else (b, *self.shape)
        return {"eps_enc": torch.randn(b, d), "z_prior": torch.randn(b, d),
                "eps_dec": torch.randn(eps_shape)}

    def _sides(self, x, noise, with_nll: bool):
        return sides(self.encoder, self.decoder, x, noise, with_nll)

    def step(self, x: torch.Tensor, alpha: float, noise: tuple | None = None):
        """One critic update then one encoder/decoder update; returns (critic, gen) losses.

        ``noise``: optional (critic_noise, generator_noise) dicts of eps_enc, z_prior,
        eps_dec (eps_dec NCHW for images); drawn with torch.randn when None.
        """
        b = x.shape[0]
        c_noise, g_noise = noise if noise is not None else (self._noise(b), self._noise(b))
        # 1. critic update, encoder/decoder frozen.
        with torch.no_grad():
            c_sides = self._sides(x, c_noise, with_nll=False)
        c_loss = critic_objective(self.critic, x, c_sides)
        self.critic_opt.zero_grad(set_to_none=True)
        c_loss.backward()
        torch.nn.utils.clip_grad_norm_(self.critic_params, self.critic_clip, foreach=True)
        self.critic_opt.step()
        # 2. encoder/decoder update, critic frozen.
        for p in self.critic_params:
            p.requires_grad_(False)
        g_loss = generator_objective(self.critic, x, self._sides(x, g_noise, with_nll=True),
                                     alpha)
        self.gen_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        torch.nn.utils.clip_grad_norm_(self.gen_params, self.gen_clip, foreach=True)
        self.gen_opt.step()
        for p in self.critic_params:
            p.requires_grad_(True)
        return c_loss.detach(), g_loss.detach()


def sides(encoder, decoder, x, noise, with_nll: bool) -> dict[str, torch.Tensor]:
    """Both sides of the joint critic: data (x, z ~ q(z|x)) and model (G(z) + σε, z ~ p).

    ``encoder(x) -> (mean, log_std)`` and ``decoder(z) -> (loc, log_scale)`` are the
    networks (modules, or functional calls of them); with ``with_nll``, also the
    per-example −log p(x|z) + log q(z|x) − log p(z) of the data side.
    """
    mean, log_std = encoder(x)
    z_data = mean + torch.exp(log_std) * noise["eps_enc"]
    out = {"z_data": z_data, "z_model": noise["z_prior"]}
    if with_nll:
        loc, log_scale = decoder(z_data)
        out["nll"] = (gaussian_log_prob(z_data, mean, log_std)
                      - _sum_per_example(-0.5 * z_data**2 - 0.5 * _LOG_2PI)
                      - gaussian_log_prob(x, loc, log_scale))
    loc, log_scale = decoder(noise["z_prior"])
    out["x_model"] = loc + torch.exp(log_scale) * noise["eps_dec"]
    return out


def critic_objective(critic, x, s: dict[str, torch.Tensor]) -> torch.Tensor:
    """The logistic critic loss softplus(−d(x, z_data)) + softplus(d(x_model, z_model))."""
    d_data = critic(x, s["z_data"])
    d_model = critic(s["x_model"], s["z_model"])
    return F.softplus(-d_data).mean() + F.softplus(d_model).mean()


def generator_objective(critic, x, s: dict[str, torch.Tensor], alpha: float) -> torch.Tensor:
    """The bridge loss α · mean(sg(w) · nll) + (1 − α²) · B_α(d_data, d_model),
    w = exp(−(1 − α) · d_data)."""
    d_data = critic(x, s["z_data"])
    d_model = critic(s["x_model"], s["z_model"])
    w = torch.exp(-(1.0 - alpha) * d_data.detach().clamp(-LOGIT_CLIP, LOGIT_CLIP))
    return (alpha * (w * s["nll"]).mean()
            + (1.0 - alpha * alpha) * alpha_bound(d_data, d_model, alpha))
