r"""Diagnostic arms run after the fair test's evaluation, on the same evaluation seeds:
why did the selected α-Bridge diverge on some seeds where no baseline did?

    python -m bridge_jax.main --config=configs/sweeps/probe.py:grid,lr \
        --workdir=results/fair/probe_grid_lr
    python -m bridge_jax.main --config=configs/sweeps/probe.py:grid,skip \
        --workdir=results/fair/probe_grid_skip

- ``,lr``: both α-Bridge methods (cosine and adaptive) at their selected knob but the
  *other* learning rate of the declared grid: is the divergence a learning-rate effect?
- ``,skip``: the shipped α-Bridge (``SHIPPED``) with ``nonfinite_policy = "skip"``: does
  skipping the non-finite updates let those seeds finish, and how well?

These arms are not part of the selection: they change neither ``SELECTED`` nor the shipped
configs (choosing the setting from evaluation seeds would break the protocol); they are
reported beside the evaluation, paired by seed (``bridge_jax.fair_report --probe``).
``:grid,tiny`` is the test variant.
"""

import pathlib

from bridge_jax.config_files import load_module
from bridge_jax.configuration import config_from_file

HERE = pathlib.Path(__file__).parent
VARIANTS = ("ring,lr", "ring,skip", "grid,lr", "grid,skip", "grid,tiny")
BRIDGE_METHODS = ("bridge", "adaptive")


def _at_other_lr(run: dict, learning_rates: tuple) -> dict:
    lr = run["set"]["generator.learning_rate"]
    (other,) = [x for x in learning_rates if x != lr]
    return {"name": run["name"].replace(f"__lr{lr:g}__", f"__lr{other:g}__"),
            "label": f"{run['label']} at lr {other:g} (probe)",
            "set": {**run["set"], "generator.learning_rate": other,
                    "critic.learning_rate": other}}


def _with_skip(run: dict) -> dict:
    return {"name": run["name"] + "__skip",
            "label": f"{run['label']}, non-finite updates skipped (probe)",
            "set": {**run["set"], "nonfinite_policy": "skip"}}


def get_config(arg: str = "grid,lr"):
    dataset, arm = arg.split(",")
    fair_module = load_module(HERE / "fair.py")
    fair = config_from_file(HERE / "fair.py", dataset + (",tiny" if arm == "tiny" else ""))
    tuning = load_module(HERE / "tuning.py")
    grid = {r["name"]: r for r in tuning.grid_runs()}
    if arm == "skip":
        runs = [_with_skip(grid[fair_module.SHIPPED[dataset]])]
    else:  # "lr" (and "tiny": the same arms on the tiny config)
        runs = [_at_other_lr(grid[fair_module.SELECTED[dataset][key]], tuning.LEARNING_RATES)
                for key in BRIDGE_METHODS]
    fair.sweep.name = f"probe_{dataset}_{arm}"
    fair.sweep.runs = tuple(runs)
    return fair
