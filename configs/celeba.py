r"""α-Bridge on CelebA at 64×64×3 from tensorflow-datasets (``celeb_a``), read offline.

    pip install tensorflow && tfds build celeb_a --data_dir=$HOME/tensorflow_datasets
    python -m bridge_jax.main --config=configs/celeba.py --workdir=/tmp/celeba \
        --config.data.data_dir=$HOME/tensorflow_datasets
"""

import os

from bridge_jax.configuration import base_config, shrink_for_tests

VARIANTS = ("tiny",)  # --config=FILE:tiny: a few steps of a small model, for tests


def get_config(arg: str | None = None):
    config = base_config()
    config.data.name = "tfds"
    config.data.tfds_name = "celeb_a"
    config.data.data_dir = os.path.expanduser("~/tensorflow_datasets")
    config.data.image_size = 64
    config.model.arch = "dcgan"
    config.model.latent_dim = 128
    config.model.width = 64
    config.num_steps = 100_000
    config.batch_size = 128
    config.critic.learning_rate = 2e-4
    config.generator.learning_rate = 2e-4
    config.sample_every = 2000
    config.checkpoint_every = 5000
    config.eval.evaluators = "diagnostics"
    if arg == "tiny":
        shrink_for_tests(config)
    return config
