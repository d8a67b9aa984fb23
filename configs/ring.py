r"""α-Bridge on the ring of 8 Gaussians (PacGAN geometry: radius 1, std 0.01).

    python -m bridge_jax.main --config=configs/ring.py --workdir=/tmp/ring
    python -m bridge_jax.main --config=configs/ring.py:tiny --workdir=/tmp/ring_tiny

The ``tiny`` variant shrinks everything to a few steps for tests.
"""

import math

from bridge_jax.configuration import base_config, shrink_for_tests


def get_config(arg: str | None = None):
    config = base_config()
    config.data.name = "ring"
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
