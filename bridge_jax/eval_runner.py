"""Runs a run's configured evaluators on every member (the trainer's edge, no metrics math).

Every ``eval.every`` steps and after the last one, each member draws
``max(evaluator.num_samples)`` samples with one compiled sampler, ``SAMPLE_CHUNK`` at a
time (chunk i from ``fold_in(key, i)``, key = ``fold_in(PRNGKey(EVAL_SEED + seed),
step)``), and every evaluator scores them (:mod:`bridge_jax.evaluators`).
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

import jax
import numpy as np

from bridge_jax import evaluators as evaluators_lib
from bridge_jax import train_step
from bridge_jax.evaluators.base import EvalContext

log = logging.getLogger(__name__)

SAMPLE_CHUNK = 1000  # samples drawn per compiled sampler call
EVAL_SEED = 1234  # evaluation keys: PRNGKey(EVAL_SEED + member seed), folded with the step


def default_classifier_dir() -> str:
    """Where the digit classifier is cached when ``eval.classifier_dir`` is empty:
    ``$BRIDGE_JAX_CACHE/classifier``, else ``~/.cache/bridge_jax/classifier``."""
    from bridge_jax.data.remote import cache_root

    return os.path.join(cache_root(), "classifier")


class EvalRunner:
    """The evaluators of one run, its sampler, and the digit classifier they share."""

    def __init__(self, program):
        self.program = program
        config = program.config
        classifier_dir = config.eval.classifier_dir or default_classifier_dir()
        self.context = EvalContext(
            config=config, dataset=program.dataset,
            step_model=train_step.StepModel(config, program.models),
            digit_classifier=functools.cache(lambda: _load_classifier(classifier_dir)))
        self.evaluators = evaluators_lib.make_evaluators(config, self.context)
        self.num_samples = max([e.num_samples for e in self.evaluators], default=0)
        sampler = train_step.make_sampler(config, program.models, program.example_shape)
        self._sample = jax.jit(lambda p, k: sampler(p, k, SAMPLE_CHUNK))

    @property
    def enabled(self) -> bool:
        return bool(self.evaluators)

    def draw(self, params, key: jax.Array, n: int) -> np.ndarray:
        """``n`` model samples, SAMPLE_CHUNK per call (chunk i from fold_in(key, i))."""
        chunks = [np.asarray(self._sample(params, jax.random.fold_in(key, i)))
                  for i in range(-(-n // SAMPLE_CHUNK))]
        return np.concatenate(chunks)[:n] if chunks else np.zeros((0,))

    def evaluate_member(self, state, m: int, step: int) -> dict[str, Any]:
        """Every evaluator's metrics of member ``m`` at ``step`` (names must not clash)."""
        seed = int(self.program.configs[m].seed)
        params = self.program.member_params(state, m)
        key = jax.random.fold_in(jax.random.PRNGKey(EVAL_SEED + seed), step)
        samples = self.draw(params, key, self.num_samples) if self.num_samples else None
        self.context.alpha_at = lambda s: self.program.alpha_at(m, s, state)
        out: dict[str, Any] = {}
        for e in self.evaluators:
            metrics = e.evaluate(None if samples is None else samples[:e.num_samples],
                                 params, step=step)
            _merge(out, metrics, e.name)
        return out

    def evaluate(self, state, step: int) -> list[dict[str, Any]]:
        """Metrics of every member at ``step``."""
        return [self.evaluate_member(state, m, step) for m in range(self.program.n)]

    def reference(self) -> dict[str, Any]:
        """Real data scored by every evaluator: the floor a perfect model reaches."""
        out: dict[str, Any] = {}
        for e in self.evaluators:
            _merge(out, e.reference(), e.name)
        return out


def _merge(out: dict, metrics: dict, name: str) -> None:
    clash = set(out) & set(metrics)
    if clash:
        raise ValueError(f"evaluator {name!r} returns metric(s) {sorted(clash)} that another "
                         "evaluator of this run also returns")
    out.update(metrics)


def _load_classifier(directory: str):
    from bridge_jax.evaluation import classifier

    log.info("loading (or training, ~1 min on a CPU) the digit classifier in %s", directory)
    return classifier.load_or_train_classifier(directory)


def scalars(metrics: dict[str, Any], prefix: str = "eval/") -> dict[str, float]:
    """The scalar metrics of an evaluation (lists left out), with ``prefix``."""
    return {prefix + k: float(v) for k, v in metrics.items()
            if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)}
