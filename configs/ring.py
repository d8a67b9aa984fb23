r"""The α-Bridge on the ring of 8 Gaussians (PacGAN geometry: radius 1, std 0.01).

    python -m bridge_jax.main --config=configs/ring.py --workdir=/tmp/ring
    python -m bridge_jax.main --config=configs/ring.py:tiny --workdir=/tmp/ring_tiny

Every setting is in configs/mixture.py (shared with the other mixture); it ends by
printing the PacGAN scores (modes, strict modes, HQ %, reverse KL).
"""

import pathlib

from bridge_jax.configuration import config_from_file

VARIANTS = ("tiny",)  # --config=FILE:tiny: a few steps of a small model, for tests


def get_config(arg: str | None = None):
    return config_from_file(pathlib.Path(__file__).with_name("mixture.py"),
                            "ring" + (f",{arg}" if arg else ""))
