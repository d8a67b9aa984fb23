r"""The grid sweep of the README (every setting in configs/sweeps/mixture.py).

    python -m bridge_jax.main --config=configs/sweeps/grid.py --workdir=runs/sweep_grid
"""

import pathlib

from bridge_jax.configuration import config_from_file

VARIANTS = ("tiny",)  # --config=FILE:tiny: a few steps of a small model, for tests


def get_config(arg: str | None = None):
    return config_from_file(pathlib.Path(__file__).with_name("mixture.py"),
                            "grid" + (f",{arg}" if arg else ""))
