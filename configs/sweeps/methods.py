r"""The methods every sweep compares (METHOD.md §7), with the same budget and settings.

Not a config to run: ``configs/sweeps/{ring,grid,stacked_mnist}.py`` read ``RUNS`` from
here. Each run's ``set`` changes only what makes the method; everything else is the
experiment's config. The α-Bridge rows keep the experiment's own α path (its
``alpha.end`` and ``alpha.transition_steps``), with the schedule named here.
"""

import ml_collections

from bridge_jax.sweeps import constant_alpha

RUNS = (
    {"name": "vae", "label": "VAE (α≡1)", "set": {"method": "vae"}},
    {"name": "adversarial", "label": "Adversarial (α≡0)", "set": {"method": "adversarial"}},
    {"name": "nsgan", "label": "NS-GAN", "set": {"method": "nsgan"}},
    {"name": "hybrid", "label": "VAE-GAN hybrid", "set": {"method": "hybrid"}},
    {"name": "fgan_0.5", "label": "f-GAN α-family (α=0.5)",
     "set": {"method": "fgan", **constant_alpha(0.5)}},
    {"name": "fixed_0.25", "label": "fixed α=0.25",
     "set": {"method": "bridge", **constant_alpha(0.25)}},
    {"name": "fixed_0.5", "label": "fixed α=0.5",
     "set": {"method": "bridge", **constant_alpha(0.5)}},
    {"name": "fixed_0.75", "label": "fixed α=0.75",
     "set": {"method": "bridge", **constant_alpha(0.75)}},
    {"name": "bridge_cosine", "set": {"method": "bridge", "alpha.schedule": "cosine"}},
    {"name": "bridge_linear", "set": {"method": "bridge", "alpha.schedule": "linear"}},
)


def get_config():
    return ml_collections.ConfigDict({"runs": RUNS})
