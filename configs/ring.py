r"""The α-Bridge on the ring of 8 Gaussians (PacGAN geometry: radius 1, std 0.01).

    python -m bridge_jax.main --config=configs/ring.py --workdir=/tmp/ring
    python -m bridge_jax.main --config=configs/ring.py:tiny --workdir=/tmp/ring_tiny

The experiment is configs/mixture.py (shared with the other mixture and every sweep);
on it this file sets the α-Bridge setting that the fair test ships for the ring
(``SHIPPED`` in configs/sweeps/fair.py: a grid point of configs/sweeps/tuning.py,
docs/results/fair_ring.md). It ends by printing the PacGAN scores (modes, strict modes,
HQ %, reverse KL).
"""

import pathlib

from bridge_jax.config_files import load_module
from bridge_jax.configuration import config_from_file

HERE = pathlib.Path(__file__).parent

VARIANTS = ("tiny",)  # --config=FILE:tiny: a few steps of a small model, for tests


def get_config(arg: str | None = None):
    return load_module(HERE / "sweeps" / "fair.py").with_shipped_setting(
        config_from_file(HERE / "mixture.py", "ring" + (f",{arg}" if arg else "")), "ring")
