r"""α-Bridge on the grid of 25 Gaussians (PacGAN geometry: means {−4,−2,0,2,4}², std 0.05).

    python -m bridge_jax.main --config=configs/grid.py --workdir=/tmp/grid
"""

import math

from bridge_jax.configuration import base_config, shrink_for_tests


def get_config(arg: str | None = None):
    config = base_config()
    config.data.name = "grid"
    config.model.arch = "mlp"
    config.model.latent_dim = 2
    # The settings of the full method sweep (bridge_jax/experiments/sweep.py FULL), chosen
    # in results/investigation.md: width 128, batch 64, decoder scale σ starting at 0.03,
    # cosine lr decay for both players, and α reaching 0 at 1/6 of training (then held),
    # which left the adversarial phase time to sharpen the samples.
    config.model.width = 128
    config.model.depth = 2
    config.model.init_log_scale = math.log(0.03)
    config.num_steps = 9000
    config.batch_size = 64
    config.alpha.schedule = "cosine"
    config.alpha.transition_steps = 1500
    config.generator.lr_schedule = "cosine"
    config.critic.lr_schedule = "cosine"
    if arg == "tiny":
        shrink_for_tests(config)
    return config
