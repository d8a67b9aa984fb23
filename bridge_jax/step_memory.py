"""A lower bound on the memory one training step needs, checked before anything is allocated.

A batch far too large for the machine (``batch_size=10**9``) used to be found by the
operating system's OOM killer after a minute and a half, with no message. Validation
now refuses a config whose *lower bound* exceeds the memory available, naming both.

The bound counts only what a step cannot avoid holding at once:

* the training state on each device: the weights of the encoder, decoder and critic
  (their weight matrices and convolution kernels only: biases, norms, the critic's z
  branch and the decoder's up-sampling are left out) and Adam's two moments, float32;
* per example of the device's share of the batch: the data x, its latent z and the
  generated G(z) in float32, and the activations kept for the generator update's
  backward pass, which always runs through the decoder and at least one of the encoder
  and the critic: one hidden layer of ``model.width`` per MLP layer of two networks, or
  the decoder's first feature map and one strided-conv stack's maps (DCGAN), at the
  compute dtype's size;
* on the host: the process's share of the batch, float32, as the data pipeline builds it
  (on a CPU backend the devices' memory is the host's too); and, checked on their own,
  one member's ``num_final_samples`` or ``eval.num_samples`` samples, float32.

Members trained in one vmapped program multiply the device's part. Everything else
(gradients, the critic's own update, XLA's temporaries) comes on top, so a step needs
several times the bound: a config refused here cannot fit; one accepted may still not.
Available: a GPU/TPU's ``memory_stats()`` limit less what is in use; the host's
``MemAvailable`` plus free swap, and less if a cgroup limit is lower.
"""

from __future__ import annotations

import dataclasses
import math
import os

from bridge_jax.data.tfds_source import DEFAULT_IMAGE_SIZES, base_name

TFDS_CHANNELS = {"mnist": 1, "cifar10": 3, "celeb_a": 3}  # others: 1, a lower bound
ADAM_COPIES = 3  # parameters, first and second moment
F32 = 4


@dataclasses.dataclass(frozen=True)
class StepMemory:
    """Lower bounds in bytes, and what they are made of (for the error message)."""

    per_device: int  # training state + the device's share of the batch, all members
    host_batch: int  # the process's share of the batch
    examples_per_device: int
    bytes_per_example: int
    num_params: int
    members: int

    def explain(self) -> str:
        members = f", × {self.members} members" if self.members > 1 else ""
        return (f"{self.examples_per_device:,} examples × {self.bytes_per_example:,} B "
                f"of data and activations + {self.num_params:,} weights × {ADAM_COPIES} "
                f"(Adam) × {F32} B{members}")


def example_shape(config) -> tuple[int, ...] | None:
    """One example's shape as the data pipeline will build it (None if unknown before
    reading a tfds dataset of no default size)."""
    name, side = config.data.name, config.data.image_size
    if name in ("ring", "grid"):
        return (2,)
    if name in ("mnist", "stacked_mnist"):
        side = side or 28
        return (side, side, 1 if name == "mnist" else 3)
    base = base_name(config.data.tfds_name)
    side = side or DEFAULT_IMAGE_SIZES.get(base)
    return (side, side, TFDS_CHANNELS.get(base, 1)) if side else None


def _mlp_bound(m, e: int) -> tuple[int, int]:
    """(weights, activations per example) of the MLP networks."""
    w, d, latent = m.width, m.depth, m.latent_dim
    hidden = (d - 1) * w * w
    weights = (e * w + hidden + w * 2 * latent  # encoder
               + latent * w + hidden + w * e  # decoder
               + e * w + hidden)  # critic's x branch
    return weights, 2 * d * w


def _dcgan_bound(m, shape: tuple[int, ...]) -> tuple[int, int]:
    """(weights, activations per example) of the DCGAN networks."""
    from bridge_jax.models import dcgan_stages

    h0, n = dcgan_stages(shape)
    w, latent = m.width, m.latent_dim
    channels = [min(w * 2**i, 4 * w) for i in range(n)]
    inputs = [shape[-1], *channels[:-1]]
    kernels = sum(16 * c_in * c_out for c_in, c_out in zip(inputs, channels, strict=True))
    maps = sum((shape[0] >> (i + 1)) ** 2 * c for i, c in enumerate(channels))
    weights = (2 * kernels  # encoder's and critic's conv stacks
               + h0 * h0 * channels[-1] * 2 * latent  # encoder's head
               + latent * h0 * h0 * 4 * w)  # decoder's first dense layer
    return weights, maps + h0 * h0 * 4 * w


def lower_bound(config, num_devices: int = 1, process_count: int = 1) -> StepMemory | None:
    """The bound for a validated config (None if the example shape is not known yet)."""
    shape = example_shape(config)
    if shape is None:
        return None
    m, e = config.model, math.prod(shape)
    weights, activations = (_mlp_bound(m, e) if m.arch == "mlp" else _dcgan_bound(m, shape))
    act_bytes = 2 if m.dtype == "bfloat16" else F32
    per_example = (2 * e + m.latent_dim) * F32 + activations * act_bytes
    members = int(config.sweep.num_seeds) if config.sweep.vmap_members else 1
    per_device_batch = config.batch_size // num_devices
    per_device = members * (per_device_batch * per_example + weights * ADAM_COPIES * F32)
    host_batch = config.batch_size // process_count * e * F32
    return StepMemory(per_device, host_batch, per_device_batch, per_example, weights, members)


def problem(config, num_devices: int = 1, process_count: int = 1) -> str | None:
    """Why ``config`` cannot fit in this machine's memory (a training step, or the samples
    drawn for evaluation and at the end), or None if it may."""
    import jax

    bound = lower_bound(config, num_devices, process_count)
    if bound is None:
        return None
    device = jax.local_devices()[0]
    device_free = device_available_bytes(device)
    if device_free is not None and bound.per_device > device_free:
        return _message(config, bound, bound.per_device, f"on each {device.platform} device",
                        device_free)
    host_need = bound.host_batch
    if device_free is None:  # the devices' memory is the host's
        host_need += max(num_devices // process_count, 1) * bound.per_device
    host_free = host_available_bytes()
    if host_free is None:
        return None
    if host_need > host_free:
        return _message(config, bound, host_need, "of host memory", host_free)
    return _samples_problem(config, host_free)


def _samples_problem(config, host_free: int) -> str | None:
    """The samples of one member, float32 on the host, must fit at least."""
    floats = math.prod(example_shape(config))
    for name, n in (("num_final_samples", config.num_final_samples),
                    ("eval.num_samples", config.eval.num_samples)):
        if n * floats * F32 > host_free:
            return (f"{name}={n} cannot fit: the samples alone need "
                    f"{format_bytes(n * floats * F32)} of host memory ({n:,} × {floats:,} "
                    f"floats × {F32} B), but {format_bytes(host_free)} is available")
    return None


def _message(config, bound: StepMemory, need: int, where: str, free: int) -> str:
    return (f"batch_size={config.batch_size} cannot fit: one training step needs at least "
            f"{format_bytes(need)} {where} ({bound.explain()}), but {format_bytes(free)} is "
            "available; use a smaller batch_size (or model.width), or more devices")


def host_available_bytes() -> int | None:
    """MemAvailable + SwapFree, or a lower cgroup limit's headroom (None if unknown)."""
    found = []
    meminfo = _read("/proc/meminfo")
    if meminfo:
        fields = dict(line.split(":", 1) for line in meminfo.splitlines() if ":" in line)
        kib = [int(fields[k].split()[0]) for k in ("MemAvailable", "SwapFree") if k in fields]
        if kib:
            found.append(sum(kib) * 1024)
    for limit, usage in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                         ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                          "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        limit_text, usage_text = _read(limit), _read(usage)
        if limit_text and usage_text and limit_text.strip().isdigit():
            found.append(int(limit_text) - int(usage_text))
    if not found and hasattr(os, "sysconf"):
        try:
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError):
            pass
    return min(found) if found else None


def device_available_bytes(device) -> int | None:
    """An accelerator's memory limit less what is in use (None on CPU or if unreported)."""
    if device.platform == "cpu":
        return None
    try:
        stats = device.memory_stats()
    except Exception:  # noqa: BLE001 - a backend without memory statistics
        return None
    if not stats or "bytes_limit" not in stats:
        return None
    return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))


def format_bytes(n: int) -> str:
    """``3.1 TiB``, ``512.0 MiB``, ``12 B``."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None
