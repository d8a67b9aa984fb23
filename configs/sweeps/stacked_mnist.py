r"""The Stacked MNIST sweep of the README: every method of configs/sweeps/methods.py on
configs/stacked_mnist_experiment.py's experiment at a CPU-sized budget (1,500 steps, 1 seed).

    python -m bridge_jax.main --config=configs/sweeps/stacked_mnist.py --workdir=runs/smnist
    python -m bridge_jax.report runs/smnist --out results/stacked_mnist

The budget of the table: the experiment's settings (R1 γ = 1, α 1 → 0.25 by 1/6 of
training, then held; 26,000 evaluation samples) with 1,500 steps, one hidden block per
network and cosine lr decay for both players.
"""

import pathlib

from bridge_jax.configuration import config_from_file

HERE = pathlib.Path(__file__).parent
VARIANTS = ("tiny",)  # --config=FILE:tiny: a few steps of a small model, for tests


def get_config(arg: str | None = None):
    config = config_from_file(HERE.parent / "stacked_mnist_experiment.py", arg)
    config.sweep.name = "stacked_mnist"
    config.sweep.runs = config_from_file(HERE / "methods.py").runs
    if arg is None:
        config.num_steps = 1500
        config.model.depth = 1
        config.alpha.transition_steps = config.num_steps // 6
        config.generator.lr_schedule = "cosine"
        config.critic.lr_schedule = "cosine"
        config.eval.every = 500
        config.sample_every = config.num_steps
        config.checkpoint_every = 250
    # One member per program: jax.vmap over convolution weights becomes a grouped
    # convolution, which XLA:CPU runs several times slower than the members one by one.
    config.sweep.vmap_members = False
    config.num_final_samples = 64
    return config
