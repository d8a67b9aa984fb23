r"""The fair test's tuning sweep: every method's settings (the declared grid) on the
selection seeds, evaluated once after the last step (the rule reads only final scores).

    python -m bridge_jax.main --config=configs/sweeps/tune.py:ring --workdir=runs/tune_ring
    python -m bridge_jax.fair_report --protocol configs/sweeps/tuning.py \
        --tuning runs/tune_ring                         # applies the declared rule

- ``:ring`` / ``:grid``: configs/sweeps/tuning.py's 4 settings × 3 selection seeds per
  method, 84 members in 14 compiled programs. ``:grid,lr0.001`` and ``:grid,lr0.003``
  hold the grid points of one learning rate each: the two halves of the grid, of equal
  cost, run as two sweeps side by side on a 2-core machine (the selection reads both
  workdirs).
- ``:stacked_mnist``: configs/sweeps/tuning_stacked_mnist.py's 2 settings × 1 selection
  seed per method on configs/sweeps/stacked_mnist.py's budget, 14 members one program
  each; ``:stacked_mnist,half0`` / ``,half1`` hold every method's first or second
  setting, the halves run side by side. ``:stacked_mnist,half1,<method key>`` is that
  half's member of one method, in a sweep named as the half (so its members.json is the
  half's): when one half finishes first, its core takes the other half's last member in a
  workdir of its own, and the finished group is moved into the half's workdir under the
  half's directory name for it (``g<position>_<run>``), where the half's sweep skips it.

The selected settings go to configs/sweeps/fair.py, which trains them on the evaluation
seeds. ``,tiny`` is the test variant (one seed of the tiny config).
"""

import pathlib

from bridge_jax.configuration import config_from_file
from bridge_jax.sweeps import method_key

HERE = pathlib.Path(__file__).parent
PROTOCOLS = {"ring": "tuning.py", "grid": "tuning.py",
             "stacked_mnist": "tuning_stacked_mnist.py"}
VARIANTS = ("ring", "grid", "ring,tiny", "grid,tiny", "grid,lr0.001", "grid,lr0.003",
            "stacked_mnist", "stacked_mnist,tiny", "stacked_mnist,half0",
            "stacked_mnist,half1",
            *(f"stacked_mnist,half{i},{key}" for i in (0, 1) for key in config_from_file(
                HERE / PROTOCOLS["stacked_mnist"]).methods))


def experiment(dataset: str, tiny: bool):
    """The experiment every run of ``dataset``'s protocol starts from."""
    if dataset == "stacked_mnist":
        return config_from_file(HERE / "stacked_mnist.py", "tiny" if tiny else None)
    return config_from_file(HERE.parent / "mixture.py", dataset + (",tiny" if tiny else ""))


def protocol(dataset: str):
    """``dataset``'s declared protocol (grid, seeds, rule, success)."""
    return config_from_file(HERE / PROTOCOLS[dataset])


def _part(runs, part: str, key: str | None = None):
    """The grid points of one part: ``lr<value>`` (that learning rate) or ``half<i>``
    (every method's i-th setting, in declared order); of the method ``key`` only, if
    given."""
    if key is not None:
        return tuple(r for r in _part(runs, part) if method_key(r["name"]) == key)
    if part.startswith("lr"):
        return tuple(r for r in runs if f"__{part}__" in r["name"])
    index, seen = int(part[len("half"):]), {}
    picked = []
    for run in runs:
        key = method_key(run["name"])
        if seen.get(key, 0) == index:
            picked.append(run)
        seen[key] = seen.get(key, 0) + 1
    return tuple(picked)


def get_config(arg: str = "ring"):
    dataset, *variant = arg.split(",")
    tiny = variant == ["tiny"]
    config = experiment(dataset, tiny)
    tuning = protocol(dataset)
    config.sweep.name = "_".join(["tune", dataset, *([] if tiny else variant[:1])])
    config.seed, config.sweep.num_seeds = tuning.selection_seeds
    config.sweep.runs = _part(tuning.runs, *variant) if variant and not tiny else tuning.runs
    config.sample_every = config.num_steps
    if tiny:
        config.sweep.num_seeds = 1
    else:
        config.eval.every = 0
        if dataset != "stacked_mnist":
            config.num_final_samples = 2500
    return config
