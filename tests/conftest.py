"""Session set-up shared by every test module.

The digit classifier that the image evaluators read (``eval_runner.default_classifier_dir``:
``$BRIDGE_JAX_CACHE/classifier``) is trained for 2,000 steps on first use (about a
minute on 2 cores). Tests point ``BRIDGE_JAX_CACHE`` at a session folder holding one
trained for 100 steps (about 90% held-out accuracy; a few seconds), saved under the
default's file name, so in-process runs and CLI subprocesses (which inherit the
environment) load it instead of training. Tests of the classifier itself pass their own
folders.
"""

from __future__ import annotations

import os

import pytest

CHEAP_CLASSIFIER_STEPS = 100


@pytest.fixture(scope="session", autouse=True)
def cheap_digit_classifier_cache(tmp_path_factory):
    from bridge_jax.evaluation import classifier as clf

    root = tmp_path_factory.mktemp("bridge_jax_cache")
    images, labels = clf.load_mnist_digits()
    params, accuracy = clf.train_digit_classifier(images, labels,
                                                  steps=CHEAP_CLASSIFIER_STEPS, seed=0)
    clf.save_classifier(clf.cache_path(root / "classifier", steps=clf.DEFAULT_STEPS, seed=0),
                        params, accuracy)
    previous = os.environ.get("BRIDGE_JAX_CACHE")
    os.environ["BRIDGE_JAX_CACHE"] = str(root)
    yield root / "classifier"
    if previous is None:
        os.environ.pop("BRIDGE_JAX_CACHE", None)
    else:
        os.environ["BRIDGE_JAX_CACHE"] = previous
