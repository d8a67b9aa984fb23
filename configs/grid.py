r"""α-Bridge on the grid of 25 Gaussians (PacGAN geometry: means {−4,−2,0,2,4}², std 0.05).

    python -m bridge_jax.main --config=configs/grid.py --workdir=/tmp/grid
"""

from bridge_jax.configuration import mixture_config, shrink_for_tests


def get_config(arg: str | None = None):
    config = mixture_config("grid")  # the full sweep's settings; see its docstring
    if arg == "tiny":
        shrink_for_tests(config)
    return config
