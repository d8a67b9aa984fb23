"""The evaluator interface: what the trainer calls every ``eval.every`` steps.

An evaluator is built once per run from the run's config and an
:class:`EvalContext`, and then scores one member at a time::

    evaluators = make_evaluators(config, context)          # from config.eval.evaluators
    n = max(e.num_samples for e in evaluators)              # the trainer draws n samples once
    for e in evaluators:
        metrics |= e.evaluate(samples[: e.num_samples], params, step=step)

Metric names are unique across evaluators (the trainer refuses a clash), values are
floats or ints, or lists of them (e.g. per-mode counts; kept in summary.json, left
out of TensorBoard). ``reference()`` scores real data under the same protocol: the
floor a perfect generator reaches (the first row of every results table).

The pure metric functions live in :mod:`bridge_jax.evaluation` (numpy/jax, no I/O);
an evaluator only ties one of them to a run: which samples, which real data, which
classifier.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import ml_collections
import numpy as np

Metrics = dict[str, Any]

# Real data comes from the dataset's held-out eval streams (``dataset.eval_arrays(n, seed)``):
REAL_SEED = 0  # the real set that model samples are compared with
REFERENCE_SEED = 1  # other real data, scored like model samples by ``reference()``
DIGIT_IMAGE_SIZE = 28  # the digit classifier's input side


@dataclasses.dataclass
class EvalContext:
    """What every evaluator of one run may use; built once by the trainer.

    config        the run's resolved config (for a run with several members: the
                  first member's; members share every field an evaluator reads)
    dataset       the training data source (``eval_arrays``, ``mode_centers``, ...)
    step_model    :class:`bridge_jax.train_step.StepModel` of the run (forward passes)
    alpha_at      step -> α of the member being evaluated (diagnostics)
    digit_classifier  () -> (params, held-out accuracy) of the project's digit
                  classifier, loaded or trained once per run and shared
    """

    config: ml_collections.ConfigDict
    dataset: Any
    step_model: Any
    digit_classifier: Callable[[], tuple[Any, float]]
    alpha_at: Callable[[int], float] | None = None


class Evaluator(abc.ABC):
    """Scores one member's model; subclasses set ``name`` and ``default_num_samples``."""

    name: ClassVar[str]
    default_num_samples: ClassVar[int] = 0  # model samples it needs (0: none)

    def __init__(self, context: EvalContext):
        self.context = context
        requested = int(context.config.eval.num_samples)
        self.num_samples = (requested or self.default_num_samples
                            if self.default_num_samples else 0)

    @abc.abstractmethod
    def evaluate(self, samples: np.ndarray, params: Any, *, step: int) -> Metrics:
        """Metrics of one member: ``samples`` (num_samples model samples, as
        :func:`bridge_jax.train_step.make_sampler` draws them) and its ``params``."""

    def reference(self) -> Metrics:
        """The metrics of real data scored like model samples ({} when meaningless)."""
        return {}


def check_digit_images(name: str, example_shape: tuple[int, ...]) -> None:
    """Raises ValueError unless examples are 28×28 images, the digit classifier's input
    (an evaluator that reads digits needs data.image_size 0 or 28)."""
    shape = tuple(int(d) for d in example_shape)
    if len(shape) != 3 or shape[:2] != (DIGIT_IMAGE_SIZE, DIGIT_IMAGE_SIZE):
        raise ValueError(
            f"eval.evaluators: {name!r} needs 28x28 digit images (the digit classifier's "
            f"input), got examples of shape {shape}; set data.image_size to 0 or 28")


class RealFeatureEvaluator(Evaluator):
    """An evaluator that compares features of the samples with features of real data:
    subclasses give ``features(x)``, ``compare(real, fake) -> metrics`` and how many real
    examples to read (``num_real``); the real features are computed once, lazily."""

    def __init__(self, context: EvalContext):
        super().__init__(context)
        self._real_features: np.ndarray | None = None

    @property
    def num_real(self) -> int:
        return self.num_samples

    def features(self, x) -> np.ndarray:
        raise NotImplementedError

    def compare(self, real_features: np.ndarray, features: np.ndarray) -> Metrics:
        raise NotImplementedError

    def _real_and_reference(self) -> tuple[np.ndarray, np.ndarray]:
        """(``num_real`` real examples, ``num_samples`` others). A finite dataset of N
        examples is split into disjoint halves of one eval-stream permutation (at most
        N/2 each), so that the reference compares real data with *other* real data; an
        infinite source draws both from eval streams REAL_SEED and REFERENCE_SEED."""
        dataset = self.context.dataset
        total = dataset.num_examples
        if total is None:
            return (dataset.eval_arrays(self.num_real, seed=REAL_SEED)[0],
                    dataset.eval_arrays(self.num_samples, seed=REFERENCE_SEED)[0])
        everything = dataset.eval_arrays(total, seed=REAL_SEED)[0]
        half = total // 2
        return (everything[:min(self.num_real, half)],
                everything[half:half + min(self.num_samples, total - half)])

    def real_features(self) -> np.ndarray:
        """Features of the real examples (see :meth:`_real_and_reference`), cached."""
        if self._real_features is None:
            self._real_features = self.features(self._real_and_reference()[0])
        return self._real_features

    def score(self, x) -> Metrics:
        return self.compare(self.real_features(), self.features(x))

    def evaluate(self, samples: np.ndarray, params, *, step: int) -> Metrics:
        return self.score(samples)

    def reference(self) -> Metrics:
        """The metrics of real examples that are not the compared-against ones."""
        return self.score(self._real_and_reference()[1])
