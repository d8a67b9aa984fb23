r"""The fair test's declared tuning budget: the same grid size for every method.

Not a config to run: ``configs/sweeps/tune.py`` (the tuning sweep, on the selection
seeds) and ``configs/sweeps/fair.py`` (the selected settings on the evaluation seeds)
read it. Declared before any run of the protocol was made.

- **Grid.** Every method gets 4 settings: both players' learning rate in
  ``LEARNING_RATES`` × two values of the method's own knob (``METHODS``). A method
  without an α knob (VAE, α≡0, NS-GAN) gets the decoder σ's lr multiplier as its knob,
  the setting that was chosen for the α-Bridge on the ring and breaks α≡0 and NS-GAN
  there. Everything else is the dataset's experiment (configs/mixture.py).
- **Seeds.** Settings are selected on ``SELECTION_SEEDS`` (100, 101, 102) and reported on
  ``EVALUATION_SEEDS`` (0 … 9): disjoint.
- **Rule** (``RULE``, applied by ``bridge_jax.selection``): the setting with the most
  strict modes (mean over the selection seeds), ties broken by the higher HQ fraction,
  then the lower reverse KL; a member whose training stopped on a non-finite value
  scores 0 modes, 0 % and KL ∞.
- **Success** (``SUCCESS``, the stability measure): every mode strict and HQ ≥ 90 %;
  divergence: the member stopped on a non-finite value.
"""

import ml_collections

from bridge_jax.sweeps import constant_alpha, grid_run

LEARNING_RATES = (1e-3, 3e-3)
SELECTION_SEEDS = (100, 3)  # (first seed, how many)
EVALUATION_SEEDS = (0, 10)
# (metric, direction), compared lexicographically on the means over the selection seeds
RULE = (("modes_covered_strict", "max"), ("hq_fraction", "max"), ("reverse_kl", "min"))
SUCCESS = (("modes_covered_strict", ">=", "num_modes"), ("hq_fraction", ">=", 0.9))



def _sigma_lr(multiplier: float) -> tuple[str, dict]:
    return f"sigma{multiplier:g}", {"generator.scale_lr_multiplier": multiplier}


# (key, label, what makes the method, its two knob values as (short name, fields))
METHODS = (
    ("vae", "VAE (α≡1)", {"method": "vae"}, (_sigma_lr(1.0), _sigma_lr(10.0))),
    ("adversarial", "Adversarial (α≡0)", {"method": "adversarial"},
     (_sigma_lr(1.0), _sigma_lr(10.0))),
    ("nsgan", "NS-GAN", {"method": "nsgan"}, (_sigma_lr(1.0), _sigma_lr(10.0))),
    ("hybrid", "VAE-GAN hybrid", {"method": "hybrid"},
     (("beta0.1", {"hybrid_weight": 0.1}), ("beta1", {"hybrid_weight": 1.0}))),
    ("fgan", "f-GAN α-family", {"method": "fgan"},
     (("alpha0.25", constant_alpha(0.25)), ("alpha0.5", constant_alpha(0.5)))),
    ("bridge", "α-Bridge (cosine 1→α_end)", {"method": "bridge", "alpha.schedule": "cosine"},
     (("end0", {"alpha.end": 0.0}), ("end0.25", {"alpha.end": 0.25}))),
    ("adaptive", "α-Bridge, adaptive α", {"method": "bridge", "alpha.schedule": "adaptive",
                                          "alpha.end": 0.0},
     (("band0.5-0.8", {"alpha.adaptive.target_low": 0.5, "alpha.adaptive.target_high": 0.8}),
      ("band0.25-0.5", {"alpha.adaptive.target_low": 0.25,
                        "alpha.adaptive.target_high": 0.5}))),
)


def grid_runs() -> tuple[dict, ...]:
    """Every (method, setting) of the grid as a sweep run, e.g. ``bridge__lr0.001__end0``;
    the label names the method, so the report and the selection group a method's
    settings by it."""
    return tuple(grid_run(key, label, lr, knob, {**method_fields, **fields})
                 for key, label, method_fields, knobs in METHODS
                 for lr in LEARNING_RATES for knob, fields in knobs)


def get_config():
    return ml_collections.ConfigDict({
        "runs": grid_runs(), "selection_seeds": SELECTION_SEEDS,
        "evaluation_seeds": EVALUATION_SEEDS, "methods": [m[0] for m in METHODS],
        "rule": RULE, "success": SUCCESS})
