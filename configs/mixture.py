r"""The 2-D mixture experiments: the α-Bridge on the ring of 8 or the grid of 25 Gaussians.

    python -m bridge_jax.main --config=configs/mixture.py:ring --workdir=/tmp/ring
    (configs/ring.py and configs/grid.py are this file with the dataset chosen)

Settings chosen on 5-seed α-Bridge runs (docs/investigation.md), shared by
every method of the sweeps in configs/sweeps/: MLPs of width 128, batch 64, decoder
scale σ starting at 0.03, cosine lr decay for both players, α reaching 0 at step 1,500
of 9,000 (then held), which leaves the adversarial phase time to sharpen the samples.
Per dataset (``PER_DATASET``):
- model.depth: hidden layers of the three MLPs. A continuous G maps the connected 2-D
  latent onto separated modes; deeper MLPs make its transitions between modes steeper
  (fewer samples between them). Ring: 3 (4 was sharper but less even), grid: 4.
- critic.gradient_penalty: the R1 weight γ, 10·std² on the ring (std 0.01), 40·std² on
  the grid (std 0.05). ‖∇_x d‖² grows as 1/std² for a critic that resolves the modes;
  more γ keeps more modes and costs sharpness.
- generator.scale_lr_multiplier (ring): the decoder σ must fall from the
  maximum-likelihood residual (≈0.04) to below the ring's std 0.01 in the adversarial
  phase; at the networks' lr it had not by the last step. (On the grid it cost modes.)
Evaluation: the PacGAN protocol (modes, strict modes, HQ %, reverse KL) on 2,500
samples every 500 steps. ``:ring,tiny`` shrinks everything to a few steps for tests.
"""

import math

from bridge_jax.configuration import base_config, shrink_for_tests

PER_DATASET = {
    "ring": {"model.depth": 3, "critic.gradient_penalty": 1e-3,
             "generator.scale_lr_multiplier": 10.0},
    "grid": {"model.depth": 4, "critic.gradient_penalty": 0.1},
}


# --config=FILE:ring or :grid chooses the dataset (default ring); ",tiny" shrinks it for tests
VARIANTS = ("ring", "grid", "ring,tiny", "grid,tiny")


def get_config(arg: str = "ring"):
    dataset, *variant = arg.split(",")
    if dataset not in PER_DATASET:
        raise ValueError(f"configs/mixture.py takes 'ring' or 'grid', got {dataset!r}")
    config = base_config()
    config.data.name = dataset
    config.model.arch = "mlp"
    config.model.latent_dim = 2
    config.model.width = 128
    config.model.init_log_scale = math.log(0.03)
    config.num_steps = 9000
    config.batch_size = 64
    config.alpha.schedule = "cosine"
    config.alpha.transition_steps = 1500
    config.generator.lr_schedule = "cosine"
    config.critic.lr_schedule = "cosine"
    config.model.depth = PER_DATASET[dataset]["model.depth"]
    config.critic.gradient_penalty = PER_DATASET[dataset]["critic.gradient_penalty"]
    config.generator.scale_lr_multiplier = PER_DATASET[dataset].get(
        "generator.scale_lr_multiplier", 1.0)
    config.eval.evaluators = "mixture"
    config.eval.every = 500
    if variant == ["tiny"]:
        shrink_for_tests(config)
    return config
