"""The ``train`` extra: importing the training side without it names the extra to install.

The loss core (``divergences``, ``losses``, ``schedules``) needs only jax, optax, chex
and numpy (``pip install bridge_jax``). Every other module is the training side (the
trainer, data, evaluation, CLI, configs) and needs the ``train`` extra of
``pyproject.toml``. Without it, ``import bridge_jax.train`` would fail deep inside, with
a bare "No module named 'flax'". ``bridge_jax/__init__.py`` installs
:class:`TrainExtraCheck` on ``sys.meta_path`` instead: before a training module is
loaded it looks for the extra's modules (without importing them) and, if any is missing,
raises one ImportError::

    bridge_jax.train needs the training extra (not installed: flax, orbax-checkpoint):
    pip install 'bridge_jax[train]'
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.util
import sys

PACKAGE = "bridge_jax"
# The modules that need no extra: the loss core, and this module.
CORE_MODULES = frozenset({"divergences", "losses", "schedules", "extras"})
# The train extra of pyproject.toml: distribution name -> the module it provides.
TRAIN_EXTRA = {
    "flax": "flax",
    "orbax-checkpoint": "orbax.checkpoint",
    "ml_collections": "ml_collections",
    "absl-py": "absl",
    "tensorflow-datasets": "tensorflow_datasets",
    "array_record": "array_record",
    "etils": "etils",
    "mlxtend": "mlxtend",
    "matplotlib": "matplotlib",
    "tqdm": "tqdm",
    "tensorboardX": "tensorboardX",
    "scipy": "scipy",
}


@functools.cache
def missing_train_dependencies() -> tuple[str, ...]:
    """The distributions of the train extra whose module cannot be found."""
    missing = []
    for distribution, module in TRAIN_EXTRA.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:  # the parent of a dotted module is missing
            found = False
        if not found:
            missing.append(distribution)
    return tuple(missing)


def needs_train_extra(fullname: str) -> bool:
    """Whether the module ``fullname`` of this package is on the training side."""
    package, dot, rest = fullname.partition(".")
    return package == PACKAGE and bool(dot) and rest.split(".")[0] not in CORE_MODULES


class TrainExtraCheck(importlib.abc.MetaPathFinder):
    """A meta-path finder that finds nothing: it raises the ImportError that names the
    ``train`` extra when a training module is imported without it, and otherwise leaves
    the import to the usual finders."""

    def find_spec(self, fullname, path, target=None):
        if needs_train_extra(fullname) and missing_train_dependencies():
            raise ImportError(
                f"{fullname} needs the training extra (not installed: "
                f"{', '.join(missing_train_dependencies())}): "
                f"pip install '{PACKAGE}[train]'", name=fullname)
        return None


def install() -> None:
    """Puts :class:`TrainExtraCheck` first on ``sys.meta_path`` (once)."""
    if not any(type(f).__name__ == TrainExtraCheck.__name__ for f in sys.meta_path):
        sys.meta_path.insert(0, TrainExtraCheck())
