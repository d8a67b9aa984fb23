r"""The 2-D mixture sweeps of the README: every method of configs/sweeps/methods.py,
10 seeds each, on configs/mixture.py's experiment (same settings and budget for every
method). ``configs/sweeps/ring.py`` and ``grid.py`` choose the dataset:

    python -m bridge_jax.main --config=configs/sweeps/ring.py --workdir=runs/sweep_ring
    python -m bridge_jax.report runs/sweep_ring --save-records results/records/sweep_ring \
        --out /tmp/ring_report

Runs that share a compiled step (VAE, adversarial, fixed α, both α-Bridge paths: one
step, α from a per-member table) train as vmapped members of one program; NS-GAN, the
hybrid and f-GAN are groups of their own. Kill it and rerun the same command: finished
groups are skipped, the current one resumes from its checkpoint. ``:ring,tiny`` is the
test variant (2 seeds of the tiny config).
"""

import pathlib

from bridge_jax.configuration import config_from_file

HERE = pathlib.Path(__file__).parent


# --config=FILE:ring or :grid chooses the dataset (default ring); ",tiny" shrinks it for tests
VARIANTS = ("ring", "grid", "ring,tiny", "grid,tiny")


def get_config(arg: str = "ring"):
    dataset, *variant = arg.split(",")
    config = config_from_file(HERE.parent / "mixture.py", arg)
    config.sweep.name = dataset
    config.sweep.num_seeds = 2 if variant else 10
    config.sweep.runs = config_from_file(HERE / "methods.py").runs
    config.sample_every = config.num_steps  # one picture per member, at the end
    config.num_final_samples = 2500
    return config
