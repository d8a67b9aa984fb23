r"""The grid sweep of the README: every method of configs/sweeps/methods.py, 10 seeds each,
on configs/grid.py's experiment (same settings and budget for every method).

    python -m bridge_jax.main --config=configs/sweeps/grid.py --workdir=runs/sweep_grid
    python -m bridge_jax.report runs/sweep_grid --out results/sweep_grid

Runs that share a compiled step (VAE, adversarial, fixed α, both α-Bridge paths: one
step, α from a per-member table) train as vmapped members of one program; NS-GAN, the
hybrid and f-GAN are groups of their own. Kill it and rerun the same command: finished
groups are skipped, the current one resumes from its checkpoint.
"""

import pathlib

from bridge_jax.configuration import config_from_file

HERE = pathlib.Path(__file__).parent


def get_config(arg: str | None = None):
    config = config_from_file(HERE.parent / "grid.py", arg)  # arg "tiny": the test variant
    config.sweep.name = "grid"
    config.sweep.num_seeds = 10 if arg is None else 2
    config.sweep.runs = config_from_file(HERE / "methods.py").runs
    config.sample_every = config.num_steps  # one picture per member, at the end
    config.num_final_samples = 2500
    return config
