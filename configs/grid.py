r"""The α-Bridge on the grid of 25 Gaussians (PacGAN geometry: means {−4,−2,0,2,4}², std 0.05).

    python -m bridge_jax.main --config=configs/grid.py --workdir=/tmp/grid
    python -m bridge_jax.main --config=configs/grid.py:tiny --workdir=/tmp/grid_tiny

The experiment is configs/mixture.py (shared with the other mixture and every sweep);
on it this file sets the α-Bridge setting that the fair test ships for the grid
(``SHIPPED`` in configs/sweeps/fair.py: a grid point of configs/sweeps/tuning.py,
docs/results/fair_grid.md): adaptive α, ESS band 0.25–0.5, lr 3e-3. On evaluation seeds
0–9 it stopped on a non-finite loss in 4 of 10 (the rule's 3 selection seeds showed
none); the 6 that finished reached 84.4 % HQ. It ends by printing the PacGAN scores
(modes, strict modes, HQ %, reverse KL).
"""

import pathlib

from bridge_jax.config_files import load_module
from bridge_jax.configuration import config_from_file

HERE = pathlib.Path(__file__).parent

VARIANTS = ("tiny",)  # --config=FILE:tiny: a few steps of a small model, for tests


def get_config(arg: str | None = None):
    return load_module(HERE / "sweeps" / "fair.py").with_shipped_setting(
        config_from_file(HERE / "mixture.py", "grid" + (f",{arg}" if arg else "")), "grid")
