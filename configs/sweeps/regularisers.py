r"""Instance noise in place of R1, under the fair test's budget: the shipped α-Bridge and
the two strongest baselines, each at its selected setting, with the critic's R1 penalty
replaced by annealed instance noise (METHOD.md: the bridge's generalisations and the
regularisers of adversarial learning).

    python -m bridge_jax.main --config=configs/sweeps/regularisers.py:ring,tune \
        --workdir=runs/noise_tune_ring
    python -m bridge_jax.fair_report --protocol configs/sweeps/tuning.py \
        --tuning runs/noise_tune_ring                       # σ₀ selected per method
    python -m bridge_jax.main --config=configs/sweeps/regularisers.py:ring,evaluate \
        --workdir=runs/noise_ring
    python -m bridge_jax.fair_report --protocol configs/sweeps/tuning.py ... \
        --probe runs/noise_ring     # paired by seed with each method's evaluated R1 run

Declared on 2026-12-07, before any run of it:

- **Methods** (``METHODS``): the α-Bridge the fair test ships (``SHIPPED`` of
  configs/sweeps/fair.py), f-GAN and NS-GAN: the two baselines with the highest HQ in the
  evaluation on both the ring and the grid.
- **Settings**: σ₀ ∈ ``NOISE_LEVELS`` (0.1, 0.5), falling linearly to 0 at the last step
  (``critic.instance_noise_steps = -1``), with R1 off (γ = 0); every other field is the
  method's selected setting. Two settings per method, the same for every method.
- **Seeds, rule, success**: the dataset's protocol (configs/sweeps/tuning.py): σ₀ is
  selected on the selection seeds by its rule; ``SELECTED_NOISE`` holds the result, and
  ``:<dataset>,evaluate`` trains it on the evaluation seeds, paired with the method's R1
  run of the fair test. These runs never change ``SELECTED`` or the shipped configs.

``:ring,tiny`` is the test variant (the tune arms on the tiny config, one seed).
"""

import pathlib

from bridge_jax.config_files import load_module
from bridge_jax.sweeps import method_key

HERE = pathlib.Path(__file__).parent
FAIR = load_module(HERE / "fair.py")
BASELINES = ("fgan", "nsgan")
NOISE_LEVELS = (0.1, 0.5)
# dataset → method key → the selected run of the tune arm (filled from its records)
SELECTED_NOISE = {
    "ring": {"bridge": "bridge__noise0.1", "fgan": "fgan__noise0.1", "nsgan": "nsgan__noise0.1"},
    "grid": {"adaptive": "adaptive__noise0.5", "fgan": "fgan__noise0.5",
             "nsgan": "nsgan__noise0.5"},
}
VARIANTS = ("ring,tune", "grid,tune", "ring,tiny",
            *(f"{dataset},evaluate" for dataset in SELECTED_NOISE))


def methods(dataset: str) -> dict[str, str]:
    """Method key → its selected grid run (the shipped α-Bridge's key is its own)."""
    shipped = FAIR.SHIPPED[dataset]
    return {method_key(shipped): shipped,
            **{key: FAIR.SELECTED[dataset][key] for key in BASELINES}}


def with_noise(key: str, run: dict, sigma: float) -> dict:
    """``run`` (a declared grid run) with R1 off and instance noise σ₀ = ``sigma``."""
    return {"name": f"{key}__noise{sigma:g}",
            "label": f"{run['label']} + instance noise",
            "set": {**run["set"], "critic.gradient_penalty": 0.0,
                    "critic.instance_noise": sigma, "critic.instance_noise_steps": -1}}


def get_config(arg: str = "ring,tune"):
    dataset, arm = arg.split(",")
    tiny = arm == "tiny"
    tuning = FAIR.TUNE.protocol(dataset)
    config = FAIR.TUNE.experiment(dataset, tiny)
    grid = {r["name"]: r for r in tuning.runs}
    runs = [with_noise(key, grid[name], sigma) for key, name in methods(dataset).items()
            for sigma in NOISE_LEVELS]
    config.sample_every = config.num_steps
    if arm == "evaluate":
        chosen = SELECTED_NOISE[dataset]
        runs = [dict(r, label=f"{r['label']} σ₀={r['set']['critic.instance_noise']:g}, R1 off")
                for r in runs if chosen.get(method_key(r["name"])) == r["name"]]
        config.seed, config.sweep.num_seeds = tuning.evaluation_seeds
    else:
        config.seed, config.sweep.num_seeds = tuning.selection_seeds
    config.sweep.name = f"noise_{arm}_{dataset}"
    config.sweep.runs = tuple(runs)
    if tiny:
        config.sweep.num_seeds = 1
    else:
        config.eval.every = 0
        config.num_final_samples = 2500
    return config
