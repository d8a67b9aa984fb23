"""bridge_jax: the alpha-Bridge between maximum likelihood and adversarial learning.

The loss core (``divergences``, ``losses``, ``schedules``) depends only on jax,
optax and chex, so other projects can import it without Flax or our trainer:

    from bridge_jax import divergences, losses, schedules
"""

__version__ = "0.1.0"
