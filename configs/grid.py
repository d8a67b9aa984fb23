r"""α-Bridge on the grid of 25 Gaussians (PacGAN geometry: means {−4,−2,0,2,4}², std 0.05).

    python -m bridge_jax.main --config=configs/grid.py --workdir=/tmp/grid
"""

from bridge_jax.configuration import base_config, shrink_for_tests


def get_config(arg: str | None = None):
    config = base_config()
    config.data.name = "grid"
    config.model.arch = "mlp"
    config.model.latent_dim = 2
    config.model.width = 256
    config.model.depth = 3
    config.num_steps = 5000
    config.batch_size = 256
    if arg == "tiny":
        shrink_for_tests(config)
    return config
