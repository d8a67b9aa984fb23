"""The experiment configs (``get_config()`` files for ``--config``).

Installed, this folder is the subpackage ``bridge_jax.configs`` (pyproject.toml maps it
into the wheel), so ``bridge-jax-train --config=ring`` finds ``ring.py`` without a checkout.
"""
