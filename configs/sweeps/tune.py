r"""The fair test's tuning sweep: every method's 4 settings (configs/sweeps/tuning.py) on
the 3 selection seeds of a 2-D mixture, 84 members in 14 compiled programs.

    python -m bridge_jax.main --config=configs/sweeps/tune.py:ring --workdir=runs/tune_ring
    python -m bridge_jax.selection runs/tune_ring       # applies the declared rule

The selected settings go to configs/sweeps/fair.py, which trains them on the evaluation
seeds. Evaluated once, after the last step (the rule reads only the final scores).
``:ring,tiny`` is the test variant (one seed of the tiny config). ``:grid,lr0.001`` and
``:grid,lr0.003`` hold the grid points of one learning rate each: the two halves of the
grid, of equal cost, run as two sweeps side by side on a 2-core machine (the selection
reads both workdirs).
"""

import pathlib

from bridge_jax.configuration import config_from_file

HERE = pathlib.Path(__file__).parent
VARIANTS = ("ring", "grid", "ring,tiny", "grid,tiny", "grid,lr0.001", "grid,lr0.003")


def get_config(arg: str = "ring"):
    dataset, *variant = arg.split(",")
    split = bool(variant) and variant[0].startswith("lr")
    config = config_from_file(HERE.parent / "mixture.py", dataset if split else arg)
    tuning = config_from_file(HERE / "tuning.py")
    config.sweep.name = "_".join(["tune", dataset, *(variant if split else [])])
    config.seed, config.sweep.num_seeds = tuning.selection_seeds
    config.sweep.runs = tuning.runs
    if split:
        config.sweep.runs = tuple(r for r in tuning.runs if f"__{variant[0]}__" in r["name"])
    config.sample_every = config.num_steps
    if not variant or split:
        config.eval.every = 0
        config.num_final_samples = 2500
    else:
        config.sweep.num_seeds = 1
    return config
