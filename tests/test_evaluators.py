"""Tests of bridge_jax.evaluators: the registry and every evaluator on known inputs."""

from __future__ import annotations

import math
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from bridge_jax import configuration, data, train_state, train_step
from bridge_jax import models as models_lib
from bridge_jax.evaluators import (
    EVALUATOR_NAMES,
    EvalContext,
    compatibility_error,
    evaluator_class,
    make_evaluators,
    parse_names,
)

HQ_EXPECTED = 1.0 - math.exp(-4.5)  # P(‖ε‖ < 3σ) for a 2-D Gaussian ≈ 0.98889


def _no_classifier():
    raise AssertionError("this evaluator must not need the digit classifier")


def make_config(dataset: str = "ring", method: str = "bridge", evaluators: str = "",
                num_samples: int = 0) -> ml_collections.ConfigDict:
    config = configuration.shrink_for_tests(configuration.base_config())
    config.data.name, config.method = dataset, method
    if "eval" not in config:
        config.eval = ml_collections.ConfigDict(
            {"evaluators": "", "every": 0, "num_samples": 0, "classifier_dir": ""})
    config.eval.evaluators, config.eval.num_samples = evaluators, num_samples
    return config


def make_context(config, *, classifier=_no_classifier, step_model=None, alpha_at=None):
    dataset = data.make_dataset(config.data.name, seed=0, global_batch_size=8)
    return EvalContext(config=config, dataset=dataset, step_model=step_model,
                       digit_classifier=classifier, alpha_at=alpha_at)


def build_one(config, name: str):
    (evaluator,) = make_evaluators(config, make_context(config))
    assert evaluator.name == name
    return evaluator


@pytest.fixture(scope="module")
def digit_classifier(cheap_digit_classifier_cache):
    """The session's cheaply trained digit classifier (tests/conftest.py: 100 steps,
    about 90% held-out accuracy, saved under the default's name):
    () -> (params, held-out accuracy)."""
    from bridge_jax.evaluation import classifier as clf

    params, accuracy = clf.load_classifier(clf.cache_path(
        cheap_digit_classifier_cache, steps=clf.DEFAULT_STEPS, seed=0))
    assert accuracy > 0.8
    return lambda: (params, accuracy)


# ----------------------------------------------------------------------------- registry


def test_parse_names_and_make_evaluators_order():
    assert parse_names("") == [] and parse_names(" , ") == []
    assert parse_names(" precision_recall ,mixture,") == ["precision_recall", "mixture"]
    config = make_config(evaluators=" precision_recall ,mixture")
    evaluators = make_evaluators(config, make_context(config))
    assert [e.name for e in evaluators] == ["precision_recall", "mixture"]
    assert [e.num_samples for e in evaluators] == [5000, 2500]  # each protocol's default
    config.eval.num_samples = 300
    assert [e.num_samples for e in make_evaluators(config, make_context(config))] == [300, 300]
    config.eval.evaluators = ""
    assert make_evaluators(config, make_context(config)) == []
    for name in EVALUATOR_NAMES:
        assert evaluator_class(name).name == name


def test_compatibility_errors():
    assert compatibility_error("", "mnist", "fgan") is None
    assert compatibility_error("stacked_mnist, fd,precision_recall,diagnostics",
                               "stacked_mnist", "bridge") is None
    assert compatibility_error("diagnostics", "tfds", "adversarial") is None
    assert compatibility_error("mixture", "mnist", "bridge") == (
        "eval.evaluators: 'mixture' needs data.name ring or grid, got 'mnist'")
    assert compatibility_error("fd", "ring", "vae") == (
        "eval.evaluators: 'fd' needs data.name mnist or stacked_mnist, got 'ring'")
    unknown = compatibility_error("mixture,fid", "ring", "bridge")
    assert unknown.startswith("eval.evaluators: unknown evaluator 'fid'; valid names: mixture")
    assert compatibility_error("mixture, mixture", "ring", "bridge") == (
        "eval.evaluators: 'mixture' is listed twice")
    for method in ("fgan", "nsgan", "hybrid"):
        assert compatibility_error("diagnostics", "ring", method) == (
            "eval.evaluators: 'diagnostics' needs a method with an encoder and a joint critic "
            f"d(x, z) (bridge, vae or adversarial), got '{method}'")
    config = make_config(dataset="ring", evaluators="stacked_mnist")
    with pytest.raises(configuration.ConfigError, match="'stacked_mnist' needs data.name "
                                                         "stacked_mnist, got 'ring'"):
        make_evaluators(config, make_context(config))


def test_package_import_does_not_load_jax():
    code = ("import sys, bridge_jax.evaluators as e; "
            "print(sorted(m for m in ('jax', 'flax', 'optax', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


# ----------------------------------------------------------------------------- mixture


def test_mixture_on_ring_centres_and_real_data():
    e = build_one(make_config(evaluators="mixture"), "mixture")
    centres = e.context.dataset.mode_centers
    m = e.evaluate(np.repeat(centres, 50, axis=0), None, step=0)
    assert set(m) == {"modes_covered", "modes_covered_strict", "hq_fraction", "reverse_kl",
                      "num_modes", "mode_counts"}
    assert (m["modes_covered"], m["modes_covered_strict"], m["num_modes"]) == (8, 8, 8)
    assert m["hq_fraction"] == 1.0 and m["reverse_kl"] == pytest.approx(0.0, abs=1e-12)
    assert m["mode_counts"] == [50] * 8
    one = e.evaluate(np.repeat(centres[5:6], 400, axis=0), None, step=0)
    assert one["modes_covered"] == 1 and one["mode_counts"][5] == 400
    assert one["reverse_kl"] == pytest.approx(math.log(8), rel=1e-12)
    ref = e.reference()  # 2500 real samples: σ(HQ fraction) ≈ 0.002
    assert abs(ref["hq_fraction"] - HQ_EXPECTED) < 0.01
    assert ref["modes_covered_strict"] == 8 and ref["reverse_kl"] < 0.01
    assert sum(ref["mode_counts"]) == round(ref["hq_fraction"] * 2500)


def test_mixture_on_grid_reference():
    ref = build_one(make_config("grid", evaluators="mixture"), "mixture").reference()
    assert (ref["modes_covered"], ref["num_modes"]) == (25, 25)
    assert abs(ref["hq_fraction"] - HQ_EXPECTED) < 0.01


# ----------------------------------------------------------------------------- digits


def test_stacked_mnist_real_digits_vs_noise(digit_classifier):
    config = make_config("stacked_mnist", evaluators="stacked_mnist", num_samples=1000)
    (e,) = make_evaluators(config, make_context(config, classifier=digit_classifier))
    ref = e.reference()
    # 1000 uniform draws of 1000 triples hit 1000·(1 − (1 − 1/1000)^1000) ≈ 632 modes;
    # the classifier's errors move some triples elsewhere, still about uniformly.
    assert 560 <= ref["modes_covered"] <= 720
    assert ref["kl_to_uniform"] < 0.7
    assert ref["classifier_accuracy"] == digit_classifier()[1]
    noise = np.random.default_rng(0).uniform(size=(1000, 28, 28, 3)).astype(np.float32)
    m = e.evaluate(noise, None, step=0)
    assert m["modes_covered"] < 100 and m["kl_to_uniform"] > 3.0
    for metrics in (ref, m):  # KL(p̂ ‖ U_1000) = Σ_c KL(p̂_c ‖ U_10) + multi-information
        assert len(metrics["kl_channel_marginals"]) == 3
        assert (sum(metrics["kl_channel_marginals"]) + metrics["kl_dependence"]
                == pytest.approx(metrics["kl_to_uniform"], rel=1e-9))


@pytest.mark.parametrize("dataset,channels", [("mnist", 1), ("stacked_mnist", 3)])
def test_fd_real_digits_vs_noise(digit_classifier, dataset, channels):
    config = make_config(dataset, evaluators="fd", num_samples=600)
    (e,) = make_evaluators(config, make_context(config, classifier=digit_classifier))
    real_set = e.context.dataset.eval_arrays(600, seed=0)[0]
    same = e.evaluate(real_set, None, step=0)["fd"]  # the real set itself: FD 0
    assert e.real_features().shape == (channels * 600, 128)
    ref = e.reference()["fd"]
    noise = np.random.default_rng(1).uniform(size=real_set.shape).astype(np.float32)
    far = e.evaluate(noise, None, step=0)["fd"]
    assert same == pytest.approx(0.0, abs=1e-3 * far)
    assert 0.0 < ref < 0.1 * far


def test_image_features_put_each_images_channels_side_by_side(digit_classifier):
    from bridge_jax.evaluation.classifier import batched_features, image_features

    params, _ = digit_classifier()
    images = data.make_dataset("stacked_mnist", seed=0, global_batch_size=8).eval_arrays(
        5, seed=0)[0]
    feats = image_features(params, images)
    assert feats.shape == (5, 3 * 128)
    for c in range(3):
        np.testing.assert_allclose(feats[:, 128 * c:128 * (c + 1)],
                                   batched_features(params, images[..., c:c + 1]), rtol=1e-6)


def test_precision_recall_of_digit_features(digit_classifier):
    config = make_config("stacked_mnist", evaluators="precision_recall", num_samples=500)
    (e,) = make_evaluators(config, make_context(config, classifier=digit_classifier))
    ref = e.reference()
    assert ref["precision"] > 0.7 and ref["recall"] > 0.7
    noise = np.random.default_rng(2).uniform(size=(500, 28, 28, 3)).astype(np.float32)
    m = e.evaluate(noise, None, step=0)
    assert m["precision"] < 0.05 and m["recall"] < 0.05


# ----------------------------------------------------------------------------- 2-D P/R


def test_precision_recall_on_the_ring():
    config = make_config(evaluators="precision_recall", num_samples=2000)
    e = build_one(config, "precision_recall")
    ref = e.reference()
    assert ref["precision"] > 0.9 and ref["recall"] > 0.9
    x, modes = e.context.dataset.eval_arrays(4000, seed=1)
    half = x[modes < 4][:2000]  # modes 0..3 only: every sample is real, half the data is missed
    dropped = e.evaluate(half, None, step=0)
    assert dropped["precision"] > 0.9 and 0.4 < dropped["recall"] < 0.55
    shifted = e.evaluate(x[:2000] + np.array([0.5, 0.0], np.float32), None, step=0)
    assert shifted["precision"] < 0.01 and shifted["recall"] < 0.01


# ----------------------------------------------------------------------------- diagnostics


@pytest.fixture(scope="module")
def bridge_model():
    config = make_config(evaluators="diagnostics", num_samples=100)
    shape = (2,)
    models = models_lib.make_models(train_state.model_config(config), shape)
    state = train_state.create_train_state(config, models, shape, jax.random.PRNGKey(0))
    return config, train_step.StepModel(config, models), state.params


def test_diagnostics_at_alpha_one_and_below(bridge_model):
    config, model, params = bridge_model
    alphas = {0: 1.0, 1: 0.5}
    context = make_context(config, step_model=model, alpha_at=alphas.__getitem__)
    (e,) = make_evaluators(config, context)
    assert e.num_samples == 0  # needs no model samples, whatever eval.num_samples says
    at_one = e.evaluate(None, params, step=0)
    assert at_one["alpha"] == 1.0
    # w = e^(−(1−α)d) ≡ 1 at α = 1, whatever the critic says.
    assert at_one["weight_mean"] == 1.0 and at_one["weight_ess"] == 1.0
    # At α = 1 the loss is the negative ELBO: the bound term's coefficient 1 − α² is 0.
    assert at_one["grad_norm_bound_term"] == 0.0
    assert 0.0 < at_one["grad_norm_negative_elbo"] < math.inf
    assert at_one["grad_norm_elbo_term"] == pytest.approx(at_one["grad_norm_negative_elbo"],
                                                          rel=1e-6)
    assert at_one["d_data_std"] > 0.0 and at_one["d_model_std"] > 0.0
    half = e.evaluate(None, params, step=1)
    assert half["alpha"] == 0.5 and half["weight_ess"] < 1.0
    assert 0.0 < half["grad_norm_bound_term"] < math.inf
    # Same batch, same noise: the critic's logits do not depend on α.
    assert half["d_data_mean"] == at_one["d_data_mean"]
    assert e.evaluate(None, params, step=1) == half


def test_diagnostics_follow_the_config_schedule_without_alpha_at(bridge_model):
    config, model, params = bridge_model
    (e,) = make_evaluators(config, make_context(config, step_model=model))
    start, end = (e.evaluate(None, params, step=s) for s in (0, int(config.num_steps)))
    assert start["alpha"] == 1.0 and end["alpha"] == 0.0  # cosine from 1 to 0
    # At α = 0 the weighted-ELBO term's coefficient λ(α)/α = α vanishes.
    assert end["grad_norm_elbo_term"] == 0.0 and end["grad_norm_bound_term"] > 0.0


# ----------------------------------------------------------------------------- digit balance


class _PrototypeModel:
    """A hand-built encoder/decoder on Stacked MNIST with a 3-D latent: the decoder draws,
    in channel c, the real prototype image of digit clip(round(z_c), 0, 9); the encoder
    codes each channel as the digit of its nearest prototype (+ the noise's draw)."""

    latent_dim = 3
    likelihood = "bernoulli"

    def __init__(self, prototypes):
        self.prototypes = jnp.asarray(prototypes)  # (10, 28, 28)

    def encode(self, params, x, eps):
        channels = jnp.moveaxis(x, -1, 1)  # (N, 3, 28, 28)
        d = jnp.sum((channels[:, :, None] - self.prototypes[None, None]) ** 2, axis=(-2, -1))
        mean = jnp.argmin(d, axis=-1).astype(jnp.float32)
        return mean, jnp.zeros_like(mean), mean + eps

    def decode(self, params, z):
        digits = jnp.clip(jnp.round(z), 0, 9).astype(jnp.int32)
        images = jnp.moveaxis(self.prototypes[digits], 1, -1)  # (N, 28, 28, 3)
        logits = jnp.log(images + 1e-4) - jnp.log1p(-images + 1e-4)
        return models_lib.DecoderOutput(logits, None)


def test_digit_balance_tells_the_priors_allocation_from_the_rendering(digit_classifier):
    from bridge_jax.evaluation import classifier as clf

    images, labels = clf.load_mnist_digits()
    prototypes = np.stack([images[labels == k].mean(axis=0)[..., 0] for k in range(10)])
    config = make_config("stacked_mnist", evaluators="digit_balance", num_samples=1000)
    context = make_context(config, classifier=digit_classifier,
                           step_model=_PrototypeModel(prototypes))
    (e,) = make_evaluators(config, context)
    m = e.evaluate(None, {"encoder": {}, "decoder": {}}, step=0)
    samples = np.asarray(m["digit_balance_samples"])
    posterior = np.asarray(m["digit_balance_posterior_samples"])
    real = np.asarray(m["digit_balance_real"])
    # z ~ N(0, 1) rounds to digits 0 and 1 (and −1 → 0) nearly always: the prior puts
    # its mass on two classes of codes ...
    assert samples[0] + samples[1] > 8.0 and samples[5:].max() < 0.1
    # ... while codes of the aggregate posterior (the data's own digits, ±N(0,1) noise)
    # and the real images cover every class.
    assert posterior.min() > 0.2 and real.min() > 0.5
    # Reconstructions: the nearest-prototype code of a digit, drawn and read back.
    assert 0.5 < m["digit_balance_reconstruction_accuracy"] <= 1.0
    confusion = np.asarray(m["digit_balance_reconstruction_confusion"])
    np.testing.assert_allclose(confusion.sum(axis=1), 1.0, rtol=1e-9)
    assert all(len(m[f"digit_balance_{k}"]) == 10 for k in ("samples", "latent_nearest",
                                                           "reconstructions", "real"))


def test_on_finite_data_the_reference_is_other_real_data(digit_classifier):
    """MNIST has 5,000 digits: 5,000 'real' and 5,000 'reference' examples would be the
    same set (FD 0, precision and recall 1). They are disjoint halves instead."""
    config = make_config("mnist", evaluators="fd", num_samples=5000)
    (e,) = make_evaluators(config, make_context(config, classifier=digit_classifier))
    real, other = e._real_and_reference()
    assert len(real) == len(other) == 2500
    flat = lambda a: {row.tobytes() for row in a.reshape(len(a), -1)}  # noqa: E731
    assert not flat(real) & flat(other)
    assert e.reference()["fd"] > 0.05  # two different samples of real digits
