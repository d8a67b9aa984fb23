r"""The α-Bridge on the grid of 25 Gaussians (PacGAN geometry: means {−4,−2,0,2,4}², std 0.05).

    python -m bridge_jax.main --config=configs/grid.py --workdir=/tmp/grid
    python -m bridge_jax.main --config=configs/grid.py:tiny --workdir=/tmp/grid_tiny

Every setting is in configs/mixture.py (shared with the other mixture); it ends by
printing the PacGAN scores (modes, strict modes, HQ %, reverse KL).
"""

import pathlib

from bridge_jax.configuration import config_from_file

VARIANTS = ("tiny",)  # --config=FILE:tiny: a few steps of a small model, for tests


def get_config(arg: str | None = None):
    return config_from_file(pathlib.Path(__file__).with_name("mixture.py"),
                            "grid" + (f",{arg}" if arg else ""))
