r"""α-Bridge on the ring of 8 Gaussians (PacGAN geometry: radius 1, std 0.01).

    python -m bridge_jax.main --config=configs/ring.py --workdir=/tmp/ring
    python -m bridge_jax.main --config=configs/ring.py:tiny --workdir=/tmp/ring_tiny

The ``tiny`` variant shrinks everything to a few steps for tests.
"""

from bridge_jax.configuration import base_config, shrink_for_tests


def get_config(arg: str | None = None):
    config = base_config()
    config.data.name = "ring"
    config.model.arch = "mlp"
    config.model.latent_dim = 2
    config.model.width = 128
    config.model.depth = 2
    config.num_steps = 3000
    config.batch_size = 256
    if arg == "tiny":
        shrink_for_tests(config)
    return config
