r"""The α-Bridge on Stacked MNIST (3 channels, each a bundled MNIST digit: 1000 modes).

    python -m bridge_jax.main --config=configs/stacked_mnist.py --workdir=/tmp/smnist

The experiment is configs/stacked_mnist_experiment.py (data, networks, R1, evaluation,
shared with every sweep); on it this file sets the α-Bridge setting that the fair test
ships (``SHIPPED`` in configs/sweeps/fair.py: a grid point of
configs/sweeps/tuning_stacked_mnist.py, docs/results/fair_stacked_mnist.md): adaptive α,
ESS band 0.5–0.8, lr 2e-4. On the selection seed the ELBO weights' ESS never left the top
of its band, so the controller lowered α at its full rate: 1 → 0 linearly over the first
1,000 steps, then α = 0. Ends by printing the VEEGAN/PacGAN scores (modes of 1000 and KL
to uniform from 26,000 decoder means) and FD-MNIST-classifier (not FID).
"""

import pathlib

from bridge_jax.config_files import load_module
from bridge_jax.configuration import config_from_file

HERE = pathlib.Path(__file__).parent

VARIANTS = ("tiny",)  # --config=FILE:tiny: a few steps of a small model, for tests


def get_config(arg: str | None = None):
    return load_module(HERE / "sweeps" / "fair.py").with_shipped_setting(
        config_from_file(HERE / "stacked_mnist_experiment.py", arg), "stacked_mnist")
