r"""α-Bridge on the ring of 8 Gaussians (PacGAN geometry: radius 1, std 0.01).

    python -m bridge_jax.main --config=configs/ring.py --workdir=/tmp/ring
    python -m bridge_jax.main --config=configs/ring.py:tiny --workdir=/tmp/ring_tiny

The ``tiny`` variant shrinks everything to a few steps for tests.
"""

from bridge_jax.configuration import mixture_config, shrink_for_tests


def get_config(arg: str | None = None):
    config = mixture_config("ring")  # the full sweep's settings; see its docstring
    if arg == "tiny":
        shrink_for_tests(config)
    return config
