r"""The ring sweep of the README (every setting in configs/sweeps/mixture.py).

    python -m bridge_jax.main --config=configs/sweeps/ring.py --workdir=runs/sweep_ring
"""

import pathlib

from bridge_jax.configuration import config_from_file

VARIANTS = ("tiny",)  # --config=FILE:tiny: a few steps of a small model, for tests


def get_config(arg: str | None = None):
    return config_from_file(pathlib.Path(__file__).with_name("mixture.py"),
                            "ring" + (f",{arg}" if arg else ""))
