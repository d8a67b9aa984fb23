"""Evaluators as plug-ins: ``config.eval.evaluators`` names the ones a run uses.

    config.eval.evaluators = "stacked_mnist,fd"
    evaluators = make_evaluators(config, context)   # in that order

=================  ===========================  ========================================
name               data.name                    metrics
=================  ===========================  ========================================
mixture            ring, grid                   PacGAN modes, HQ fraction, reverse KL
stacked_mnist      stacked_mnist                VEEGAN/PacGAN modes of 1000, KL to U
fd                 mnist, stacked_mnist         FD-MNIST-classifier (not FID)
precision_recall   ring, grid, mnist,           improved precision / recall (k = 3)
                   stacked_mnist
diagnostics        any (method bridge, vae or   critic logits, ELBO weights and ESS,
                   adversarial)                 gradient norms of the loss's terms
digit_balance      stacked_mnist (a method      per-digit shares of samples, nearest
                   with an encoder)             codes, reconstructions, posterior samples
=================  ===========================  ========================================

The registry below says which data and methods each one fits, so that
:func:`compatibility_error` (called by config validation) needs no JAX; the evaluator
modules themselves are imported only by :func:`make_evaluators`.
"""

from __future__ import annotations

import dataclasses
import importlib

import ml_collections

from bridge_jax import methods as methods_lib
from bridge_jax.evaluators.base import EvalContext, Evaluator, Metrics

__all__ = ["EVALUATOR_NAMES", "EvalContext", "Evaluator", "Metrics", "compatibility_error",
           "make_evaluators", "parse_names"]


@dataclasses.dataclass(frozen=True)
class _Entry:
    module: str  # bridge_jax.evaluators.<module>
    cls: str  # the Evaluator subclass in it
    datasets: tuple[str, ...] | None  # the data.name values it fits (None: any)
    needs_bridge_terms: bool = False  # needs an encoder (ELBO term) and a joint critic d(x, z)
    needs_encoder: bool = False  # needs an encoder q(z|x)


_REGISTRY: dict[str, _Entry] = {
    "mixture": _Entry("mixture", "MixtureEvaluator", ("ring", "grid")),
    "stacked_mnist": _Entry("stacked_mnist", "StackedMnistEvaluator", ("stacked_mnist",)),
    "fd": _Entry("fd", "FrechetEvaluator", ("mnist", "stacked_mnist")),
    "precision_recall": _Entry("precision_recall", "PrecisionRecallEvaluator",
                               ("ring", "grid", "mnist", "stacked_mnist")),
    "diagnostics": _Entry("diagnostics", "DiagnosticsEvaluator", None,
                          needs_bridge_terms=True),
    "digit_balance": _Entry("digit_balance", "DigitBalanceEvaluator", ("stacked_mnist",),
                            needs_encoder=True),
}
EVALUATOR_NAMES = tuple(_REGISTRY)


def parse_names(names: str) -> list[str]:
    """The evaluator names of a comma-separated string, stripped, empty items dropped
    (``""`` → ``[]``, ``" fd, mixture "`` → ``["fd", "mixture"]``)."""
    return [n.strip() for n in str(names).split(",") if n.strip()]


def _either(values) -> str:
    values = list(values)
    return values[0] if len(values) == 1 else f"{', '.join(values[:-1])} or {values[-1]}"


def _bridge_term_methods() -> tuple[str, ...]:
    return tuple(m.name for m in methods_lib.METHODS.values()
                 if m.encoder and m.critic_input == "joint")


def compatibility_error(names: str, dataset_name: str, method: str) -> str | None:
    """One line naming the first problem of ``names`` for this data and method, else None.

    Problems: an unknown name, a name listed twice, an evaluator that does not fit
    ``dataset_name`` (e.g. mixture on mnist) or ``method`` (diagnostics without an
    encoder and a joint critic).
    """
    seen: set[str] = set()
    for name in parse_names(names):
        entry = _REGISTRY.get(name)
        if entry is None:
            return (f"eval.evaluators: unknown evaluator {name!r}; valid names: "
                    f"{', '.join(EVALUATOR_NAMES)}")
        if name in seen:
            return f"eval.evaluators: {name!r} is listed twice"
        seen.add(name)
        if entry.datasets is not None and dataset_name not in entry.datasets:
            return (f"eval.evaluators: {name!r} needs data.name {_either(entry.datasets)}, "
                    f"got {dataset_name!r}")
        if entry.needs_bridge_terms and method not in _bridge_term_methods():
            return (f"eval.evaluators: {name!r} needs a method with an encoder and a joint "
                    f"critic d(x, z) ({_either(_bridge_term_methods())}), got {method!r}")
        encoder_methods = tuple(m.name for m in methods_lib.METHODS.values() if m.encoder)
        if entry.needs_encoder and method not in encoder_methods:
            return (f"eval.evaluators: {name!r} needs a method with an encoder "
                    f"({_either(encoder_methods)}), got {method!r}")
    return None


def evaluator_class(name: str) -> type[Evaluator]:
    """The Evaluator subclass registered as ``name`` (imports its module)."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown evaluator {name!r}; valid names: {', '.join(EVALUATOR_NAMES)}")
    entry = _REGISTRY[name]
    module = importlib.import_module(f"{__name__}.{entry.module}")
    return getattr(module, entry.cls)


def make_evaluators(config: ml_collections.ConfigDict, context: EvalContext) -> list[Evaluator]:
    """The evaluators named by ``config.eval.evaluators``, in that order, built on ``context``.

    Raises ``configuration.ConfigError`` (a ValueError) with :func:`compatibility_error`'s
    line when a name is unknown, repeated or does not fit config.data.name / config.method.
    """
    names = parse_names(config.eval.evaluators)
    problem = compatibility_error(config.eval.evaluators, config.data.name, config.method)
    if problem is not None:
        from bridge_jax.configuration import ConfigError

        raise ConfigError(problem)
    return [evaluator_class(name)(context) for name in names]
