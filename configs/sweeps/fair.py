r"""The fair test's evaluation sweep: each method's selected setting on the evaluation
seeds, and the annealing ablation around the selected α-Bridge, paired by seed.

    python -m bridge_jax.main --config=configs/sweeps/fair.py:ring --workdir=runs/fair_ring
    python -m bridge_jax.fair_report --tuning runs/tune_ring --evaluation runs/fair_ring \
        --out docs/results

``SELECTED`` holds what ``bridge_jax.fair_report`` selected from the tuning sweep
(configs/sweeps/tune.py) by the declared rule of the dataset's protocol
(configs/sweeps/tuning.py, tuning_stacked_mnist.py); a test checks
that the stored tuning records select exactly these. The ablation (same lr and knobs as
the selected α-Bridge, transition T = the experiment's ``alpha.transition_steps``):
1 → 0 (cosine), 1 → α_end (the selected bridge itself), constant α_end, an ML warm start
(α = 1 for T steps, then α_end at once: the ``step`` schedule with one stage) and the
adversarial endpoint alone (constant α = 0); variants that coincide are trained once.
"""

import pathlib

from bridge_jax.config_files import load_module
from bridge_jax.configuration import set_field
from bridge_jax.sweeps import constant_alpha

HERE = pathlib.Path(__file__).parent
TUNE = load_module(HERE / "tune.py")  # each dataset's experiment and declared protocol
# Parts that run as sweeps side by side on a 2-core machine (the report reads every
# workdir): ",encoder" / ",no_encoder" (the methods that train an encoder, with the
# ablation, or the others; the ring's split, uneven: 62 vs 11 min), ",bridge" /
# ",baselines" (the α-Bridge with its ablation, or every other method) and ",<method>"
# (that method alone). The grid ran as ",bridge", ",baselines" stopped after its first
# group (VAE and adaptive α), ",adversarial" and ",no_encoder". Stacked MNIST (one member
# costs 20–31 min on a core of the 2-core machine) runs by method: ",<method>".
ENCODER_METHODS = ("vae", "adversarial", "bridge", "adaptive")

# dataset → method key → the selected grid run (run names of the dataset's protocol)
SELECTED = {
    "ring": {"vae": "vae__lr0.003__sigma10", "adversarial": "adversarial__lr0.003__sigma1",
             "bridge": "bridge__lr0.001__end0",
             "adaptive": "adaptive__lr0.001__band0.25-0.5",
             "nsgan": "nsgan__lr0.003__sigma1", "hybrid": "hybrid__lr0.003__beta0.1",
             "fgan": "fgan__lr0.001__alpha0.5"},
    "grid": {"vae": "vae__lr0.003__sigma1", "adversarial": "adversarial__lr0.001__sigma1",
             "bridge": "bridge__lr0.003__end0",
             "adaptive": "adaptive__lr0.003__band0.25-0.5",
             "nsgan": "nsgan__lr0.003__sigma1", "hybrid": "hybrid__lr0.003__beta1",
             "fgan": "fgan__lr0.001__alpha0.5"},
    "stacked_mnist": {"vae": "vae__lr0.0005", "adversarial": "adversarial__lr0.0005",
                      "bridge": "bridge__lr0.0002__end0.25",
                      "adaptive": "adaptive__lr0.0002__band0.5-0.8",
                      "nsgan": "nsgan__lr0.0002", "hybrid": "hybrid__lr0.0002__beta1",
                      "fgan": "fgan__lr0.0002__alpha0.25"},
}
# dataset → the grid run that configs/<dataset>.py carries: fair_report's "shipped α-Bridge
# setting" (of the α-Bridge methods' selected settings, the better one under the rule on
# the selection seeds); a test checks it against the stored tuning records.
SHIPPED = {"ring": "bridge__lr0.001__end0", "grid": "adaptive__lr0.003__band0.25-0.5",
           "stacked_mnist": "adaptive__lr0.0002__band0.5-0.8"}
VARIANTS = ("ring", "ring,encoder", "ring,no_encoder", "ring,tiny",
            "grid", "grid,bridge", "grid,baselines", "grid,adversarial", "grid,no_encoder",
            "grid,tiny", "stacked_mnist", "stacked_mnist,tiny",
            *(f"stacked_mnist,{m}" for m in SELECTED["stacked_mnist"]))


def with_shipped_setting(config, dataset: str):
    """``config`` with every field of ``SHIPPED[dataset]`` (its ``set`` in the declared
    grid) set on it: what configs/ring.py, grid.py and stacked_mnist.py ship."""
    tuning = TUNE.protocol(dataset)
    fields = next(r for r in tuning.runs if r["name"] == SHIPPED[dataset])["set"]
    for name, value in fields.items():
        set_field(config, name, value)
    return config


def ablation_runs(bridge: dict, transition_steps: int) -> list[dict]:
    """The annealing variants of the selected α-Bridge run ``bridge`` (its ``set``), each
    as a sweep run; those equal to the bridge or to an earlier variant are left out."""
    end = float(bridge["set"]["alpha.end"])
    base = {k: v for k, v in bridge["set"].items() if not k.startswith("alpha.")}
    variants = [
        ("anneal_1to0", "ablation: 1→0 (cosine)",
         {"alpha.schedule": "cosine", "alpha.start": 1.0, "alpha.end": 0.0}),
        ("constant_end", f"ablation: constant α={end:g}"
         + (" (the endpoint alone)" if end == 0 else ""), constant_alpha(end)),
        ("warm_start", f"ablation: α=1 for {transition_steps} steps, then {end:g}",
         {"alpha.schedule": "step", "alpha.num_stages": 1, "alpha.start": 1.0,
          "alpha.end": end}),
        ("endpoint_0", "ablation: constant α=0 (the endpoint alone)", constant_alpha(0.0)),
    ]
    seen = [_alpha_path(bridge["set"])]
    runs = []
    for name, label, alpha in variants:
        path = _alpha_path(alpha)
        if path not in seen:
            seen.append(path)
            runs.append({"name": name, "label": label, "set": {**base, **alpha}})
    return runs


def _alpha_path(fields: dict) -> tuple:
    """What determines α(step): the schedule kind and its endpoints (constant: one value)."""
    kind = fields.get("alpha.schedule", "cosine")
    start = float(fields.get("alpha.start", 1.0))
    end = float(fields.get("alpha.end", 0.0))
    if kind == "constant" or start == end:
        return ("constant", end)
    return (kind, start, end, int(fields.get("alpha.num_stages", 4)))


def _methods_of(variant: list[str], all_methods: list[str]) -> list[str]:
    if variant == ["encoder"]:
        return [m for m in all_methods if m in ENCODER_METHODS]
    if variant == ["no_encoder"]:
        return [m for m in all_methods if m not in ENCODER_METHODS]
    if len(variant) == 1 and variant[0] in all_methods:  # one method (bridge: + ablation)
        return list(variant)
    if variant == ["baselines"]:
        return [m for m in all_methods if m != "bridge"]
    return list(all_methods)


def get_config(arg: str = "ring"):
    dataset, *variant = arg.split(",")
    config = TUNE.experiment(dataset, variant == ["tiny"])
    tuning = TUNE.protocol(dataset)
    grid = {r["name"]: r for r in tuning.runs}
    selected = dict(SELECTED.get(dataset) or {})
    if variant == ["tiny"]:  # the test variant: the first grid point of every method
        selected = {key: next(n for n in grid if n.startswith(key + "__"))
                    for key in tuning.methods}
    methods = _methods_of(variant, tuning.methods)
    missing = [m for m in methods if m not in selected]
    if missing:
        raise ValueError(f"configs/sweeps/fair.py: no selection for {missing} on {dataset!r} "
                         "(run configs/sweeps/tune.py, then bridge_jax.fair_report)")
    runs = [{"name": key, "label": f"{grid[selected[key]]['label']} [{selected[key]}]",
             "set": grid[selected[key]]["set"]} for key in methods]
    if "bridge" in methods:
        steps = int(config.alpha.transition_steps)
        runs += ablation_runs(runs[methods.index("bridge")],
                              steps if steps > 0 else int(config.num_steps))
    config.sweep.name = "_".join(["fair", dataset, *[v for v in variant if v != "tiny"]])
    config.seed, config.sweep.num_seeds = tuning.evaluation_seeds
    config.sweep.runs = tuple(runs)
    config.sample_every = config.num_steps
    if variant == ["tiny"]:
        config.sweep.num_seeds = 2
    else:
        config.eval.every = 0
        if dataset != "stacked_mnist":
            config.num_final_samples = 2500
    return config
