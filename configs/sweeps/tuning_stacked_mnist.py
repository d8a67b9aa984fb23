r"""The fair test's declared tuning budget on Stacked MNIST: 2 settings for every method.

Not a config to run: ``configs/sweeps/tune.py:stacked_mnist`` (the tuning sweep, on the
selection seed) and ``configs/sweeps/fair.py:stacked_mnist`` (the selected settings on the
evaluation seeds) read it. Declared before any run of it was made (2026-12-07). The
mixtures' protocol is ``configs/sweeps/tuning.py``; this one is smaller because one image
member costs what ~100 mixture members do (1,500 steps of the DCGANs: 5–13 min on a CPU
core).

- **Experiment.** ``configs/sweeps/stacked_mnist.py``'s budget for every method: 1,500
  steps, one hidden block per network, cosine lr decay for both players, R1 γ = 1, batch
  64, evaluation on 26,000 decoder means.
- **Grid.** Every method gets 2 settings. A method with a knob of its own (the hybrid's
  β, f-GAN's α, the α-Bridge's α_end, the adaptive α's band) tries two values of it at the
  image learning rate 2e-4 (DCGAN's); a method without one (VAE, α≡0, NS-GAN; the
  decoder is Bernoulli, so there is no σ to tune as on the mixtures) tries two learning
  rates for both players, 2e-4 and 5e-4.
- **Seeds.** Selection on ``SELECTION_SEEDS`` (seed 100); evaluation on
  ``EVALUATION_SEEDS`` (10, 11, 12): disjoint from each other and from seeds 0–2, on
  which the investigation chose the experiment's shared settings (R1 γ, the α path).
- **Rule** (``RULE``): the most modes (of 1,000), ties broken by the lower KL to uniform,
  then the lower FD-MNIST-classifier; a member stopped by a non-finite value scores 0
  modes and KL and FD ∞.
- **Success** (``SUCCESS``): ≥ 990 modes and KL ≤ 0.5; divergence: the member stopped on
  a non-finite value.
- **Claims** (``CLAIM_METRICS``): coverage is read from the modes, sharpness from
  FD-MNIST-classifier (the mixtures read HQ %).
"""

import ml_collections

from bridge_jax.sweeps import constant_alpha, grid_run

IMAGE_LR = 2e-4
SELECTION_SEEDS = (100, 1)  # (first seed, how many)
EVALUATION_SEEDS = (10, 3)
RULE = (("modes_covered", "max"), ("kl_to_uniform", "min"), ("fd", "min"))
SUCCESS = (("modes_covered", ">=", 990), ("kl_to_uniform", "<=", 0.5))
# (metric, column title, scale, direction) of the report's tables
METRICS = (("modes_covered", "modes", 1.0, "max"), ("kl_to_uniform", "KL", 1.0, "min"),
           ("fd", "FD-MNIST-classifier", 1.0, "min"))
# the claims' coverage (keeps ML's modes) and quality (as sharp) metrics: the sharpness of
# images is read from FD-MNIST-classifier (lower is better)
CLAIM_METRICS = {"coverage": METRICS[0], "quality": METRICS[2]}


def _learning_rate(lr: float) -> tuple[float, str, dict]:
    return lr, "", {}


def _knob(name: str, fields: dict) -> tuple[float, str, dict]:
    return IMAGE_LR, name, fields


# (key, label, what makes the method, its two settings as (lr, knob name, fields))
METHODS = (
    ("vae", "VAE (α≡1)", {"method": "vae"}, (_learning_rate(2e-4), _learning_rate(5e-4))),
    ("adversarial", "Adversarial (α≡0)", {"method": "adversarial"},
     (_learning_rate(2e-4), _learning_rate(5e-4))),
    ("nsgan", "NS-GAN", {"method": "nsgan"}, (_learning_rate(2e-4), _learning_rate(5e-4))),
    ("hybrid", "VAE-GAN hybrid", {"method": "hybrid"},
     (_knob("beta0.1", {"hybrid_weight": 0.1}), _knob("beta1", {"hybrid_weight": 1.0}))),
    ("fgan", "f-GAN α-family", {"method": "fgan"},
     (_knob("alpha0.25", constant_alpha(0.25)), _knob("alpha0.5", constant_alpha(0.5)))),
    ("bridge", "α-Bridge (cosine 1→α_end)", {"method": "bridge", "alpha.schedule": "cosine"},
     (_knob("end0", {"alpha.end": 0.0}), _knob("end0.25", {"alpha.end": 0.25}))),
    ("adaptive", "α-Bridge, adaptive α", {"method": "bridge", "alpha.schedule": "adaptive",
                                          "alpha.end": 0.0},
     (_knob("band0.5-0.8", {"alpha.adaptive.target_low": 0.5,
                            "alpha.adaptive.target_high": 0.8}),
      _knob("band0.25-0.5", {"alpha.adaptive.target_low": 0.25,
                             "alpha.adaptive.target_high": 0.5}))),
)


def grid_runs() -> tuple[dict, ...]:
    """Every (method, setting) as a sweep run, e.g. ``vae__lr0.0005`` or
    ``bridge__lr0.0002__end0``; the label names the method."""
    return tuple(grid_run(key, label, lr, knob, {**method_fields, **fields})
                 for key, label, method_fields, settings in METHODS
                 for lr, knob, fields in settings)


def get_config():
    return ml_collections.ConfigDict({
        "runs": grid_runs(), "selection_seeds": SELECTION_SEEDS,
        "evaluation_seeds": EVALUATION_SEEDS, "methods": [m[0] for m in METHODS],
        "rule": RULE, "success": SUCCESS, "metrics": METRICS,
        "claim_metrics": CLAIM_METRICS})
