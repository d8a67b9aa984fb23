"""bridge_jax: the alpha-Bridge between maximum likelihood and adversarial learning.

The loss core (``divergences``, ``losses``, ``schedules``) depends only on jax,
optax and chex, so other projects can import it without Flax or our trainer:

    from bridge_jax import divergences, losses, schedules

Everything else (the trainer, data, evaluation, the ``bridge-jax-train`` command)
needs the ``train`` extra: ``pip install 'bridge_jax[train]'``; importing it without
the extra raises an ImportError that says so (``bridge_jax.extras``).
"""

from bridge_jax import extras as _extras

__version__ = "0.1.0"

_extras.install()
