"""The PyTorch side of the sweep benchmark: N runs of the reference step
(:class:`~bridge_jax.benchmarks.torch_reference.TorchBridge`), one after another or as one
``torch.func.vmap`` program (:class:`VmappedBridge`).

Imported only when PyTorch is installed (it is not a dependency of bridge_jax).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.func import functional_call, grad, stack_module_state, vmap

from bridge_jax.benchmarks import torch_reference as ref_lib

NETWORKS = ("encoder", "decoder", "critic")


class VmappedBridge:
    """The step of N :class:`TorchBridge` runs as one program: ``torch.func.vmap`` over
    their parameters stacked on a leading member axis (``stack_module_state``).

    Per member m, with its own batch x[m] and noise:
      g_m = ∇ loss_m (``torch.func.grad`` of the reference's critic or bridge loss),
      g_m ← g_m · min(1, c / (‖g_m‖ + 1e-6)), ‖·‖ the member's global norm over all its
      tensors (``clip_grad_norm_``'s formula), then Adam on the stacked tensors: Adam is
      elementwise with a step count shared by all members, so this is N separate Adams.
    """

    def __init__(self, refs: Sequence[ref_lib.TorchBridge]):
        base = refs[0]
        self.n, self.cfg, self.shape, self.is_image = len(refs), base.cfg, base.shape, \
            base.is_image
        self.modules = {name: getattr(base, name) for name in NETWORKS}
        self.params = {}
        for name in NETWORKS:
            stacked, _ = stack_module_state([getattr(r, name) for r in refs])
            self.params[name] = {k: v.detach().requires_grad_(False) for k, v in stacked.items()}
        self.gen_tensors = [*self.params["encoder"].values(), *self.params["decoder"].values()]
        self.critic_tensors = list(self.params["critic"].values())
        (c_lr, c_b1, c_b2, self.critic_clip), (g_lr, g_b1, g_b2, self.gen_clip) = (
            base.opt_settings["critic"], base.opt_settings["generator"])
        self.critic_opt = torch.optim.Adam(self.critic_tensors, lr=c_lr, betas=(c_b1, c_b2),
                                           eps=1e-8, foreach=True)
        self.gen_opt = torch.optim.Adam(self.gen_tensors, lr=g_lr, betas=(g_b1, g_b2),
                                        eps=1e-8, foreach=True)
        self._critic_grad = vmap(grad(self._critic_loss, has_aux=True))
        self._gen_grad = vmap(grad(self._gen_loss, argnums=1, has_aux=True),
                              in_dims=(0, 0, 0, 0, None))

    def _net(self, name: str, params: dict) -> Callable:
        return functools.partial(functional_call, self.modules[name], params)

    def _sides(self, gp: dict, x, noise, with_nll: bool) -> dict:
        enc, dec = self._net("encoder", gp["encoder"]), self._net("decoder", gp["decoder"])
        return ref_lib.sides(lambda a: enc((a,)), lambda z: dec((z,)), x, noise, with_nll)

    def _critic_fn(self, cp: dict) -> Callable:
        crit = self._net("critic", cp)
        return lambda x, z: crit((x, z))

    def _critic_loss(self, cp, gp, x, noise):
        with torch.no_grad():  # encoder/decoder frozen (torch.func.grad respects no_grad)
            s = self._sides(gp, x, noise, with_nll=False)
        loss = ref_lib.critic_objective(self._critic_fn(cp), x, s)
        return loss, loss.detach()

    def _gen_loss(self, cp, gp, x, noise, alpha):
        s = self._sides(gp, x, noise, with_nll=True)
        loss = ref_lib.generator_objective(self._critic_fn(cp), x, s, alpha)
        return loss, loss.detach()

    def noise(self, b: int) -> dict[str, torch.Tensor]:
        """Fresh noise of every member: (N, b, ...) tensors (eps_dec NCHW for images)."""
        d = self.cfg.latent_dim
        eps = (b, self.shape[-1], *self.shape[:-1]) if self.is_image else (b, *self.shape)
        return {"eps_enc": torch.randn(self.n, b, d), "z_prior": torch.randn(self.n, b, d),
                "eps_dec": torch.randn(self.n, *eps)}

    def _apply(self, opt, tensors: list, grads: list, clip: float) -> None:
        sq = sum(g.reshape(self.n, -1).pow(2).sum(1) for g in grads)
        coef = (clip / (sq.sqrt() + 1e-6)).clamp(max=1.0)
        for t, g in zip(tensors, grads, strict=True):
            t.grad = g * coef.view(-1, *([1] * (g.dim() - 1)))
        opt.step()

    def step(self, xs: torch.Tensor, alpha: float, noise: tuple | None = None):
        """One critic update then one encoder/decoder update of every member, on its own
        batch ``xs[m]``; returns the (critic, gen) losses, each of shape (N,)."""
        b = xs.shape[1]
        c_noise, g_noise = noise if noise is not None else (self.noise(b), self.noise(b))
        gp = {"encoder": self.params["encoder"], "decoder": self.params["decoder"]}
        c_grads, c_loss = self._critic_grad(self.params["critic"], gp, xs, c_noise)
        self._apply(self.critic_opt, self.critic_tensors,
                    [c_grads[k] for k in self.params["critic"]], self.critic_clip)
        g_grads, g_loss = self._gen_grad(self.params["critic"], gp, xs, g_noise, alpha)
        self._apply(self.gen_opt, self.gen_tensors,
                    [*(g_grads["encoder"][k] for k in self.params["encoder"]),
                     *(g_grads["decoder"][k] for k in self.params["decoder"])], self.gen_clip)
        return c_loss, g_loss


def sequential_runner(refs: Sequence[ref_lib.TorchBridge], batches: Sequence[np.ndarray],
                      alpha: float) -> Callable[[int], None]:
    """run(k): each run in turn takes k steps on its own batch (N·k runs·steps)."""
    xs = [r.to_torch_batch(b) for r, b in zip(refs, batches, strict=True)]

    def run(k: int) -> None:
        for r, x in zip(refs, xs, strict=True):
            for _ in range(k):
                r.step(x, alpha)

    return run


def vmap_runner(refs: Sequence[ref_lib.TorchBridge], batches: Sequence[np.ndarray],
                alpha: float) -> Callable[[int], None]:
    """run(k): k steps of every run at once (torch.func.vmap; N·k runs·steps)."""
    program = VmappedBridge(refs)
    xs = torch.stack([r.to_torch_batch(b) for r, b in zip(refs, batches, strict=True)])

    def run(k: int) -> None:
        for _ in range(k):
            program.step(xs, alpha)

    return run


def vmap_agreement(make_refs: Callable[[], list], batches: Sequence[np.ndarray],
                   alpha: float, steps: int = 2) -> float:
    """Largest relative gap between the losses of N runs stepped one by one and the same
    runs stepped by :class:`VmappedBridge`, from the same weights, batches and noise."""
    refs, program = make_refs(), VmappedBridge(make_refs())
    xs = [r.to_torch_batch(b) for r, b in zip(refs, batches, strict=True)]
    worst = 0.0
    for _ in range(steps):
        noise = (program.noise(xs[0].shape[0]), program.noise(xs[0].shape[0]))
        c_v, g_v = program.step(torch.stack(xs), alpha, noise=noise)
        for m, (r, x) in enumerate(zip(refs, xs, strict=True)):
            own = tuple({k: v[m] for k, v in n.items()} for n in noise)
            for a, b in zip(r.step(x, alpha, noise=own), (c_v[m], g_v[m]), strict=True):
                worst = max(worst, abs(float(a) - float(b)) / max(abs(float(a)), 1e-6))
    return worst
