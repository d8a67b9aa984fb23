"""Session set-up shared by every test module.

The digit classifier that the image evaluators read (``eval_runner.default_classifier_dir``:
``$BRIDGE_JAX_CACHE/classifier``) is trained for 2,000 steps on first use (about a
minute on 2 cores). Tests point ``BRIDGE_JAX_CACHE`` at a session folder holding one
trained for 100 steps (about 90% held-out accuracy; a few seconds), saved under the
default's file name, so in-process runs and CLI subprocesses (which inherit the
environment) load it instead of training. Tests of the classifier itself pass their own
folders. Under pytest-xdist the workers share one such file, trained by whichever
worker asks first (the same seed and steps give the same classifier in any worker), and
each copies it into its own folder.
"""

from __future__ import annotations

import fcntl
import os
import shutil

import pytest

CHEAP_CLASSIFIER_STEPS = 100


@pytest.fixture(scope="session", autouse=True)
def cheap_digit_classifier_cache(tmp_path_factory):
    from bridge_jax.evaluation import classifier as clf

    root = tmp_path_factory.mktemp("bridge_jax_cache")
    target = clf.cache_path(root / "classifier", steps=clf.DEFAULT_STEPS, seed=0)
    # This session's folder shared by the xdist workers (their basetemps are its children).
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
    trained = shared / f"cheap_classifier_steps{CHEAP_CLASSIFIER_STEPS}.npz"
    with open(shared / "cheap_classifier.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        if not trained.exists():
            images, labels = clf.load_mnist_digits()
            params, accuracy = clf.train_digit_classifier(
                images, labels, steps=CHEAP_CLASSIFIER_STEPS, seed=0)
            clf.save_classifier(trained, params, accuracy)  # atomic (written, then renamed)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.copyfile(trained, target)
    previous = os.environ.get("BRIDGE_JAX_CACHE")
    os.environ["BRIDGE_JAX_CACHE"] = str(root)
    yield root / "classifier"
    if previous is None:
        os.environ.pop("BRIDGE_JAX_CACHE", None)
    else:
        os.environ["BRIDGE_JAX_CACHE"] = previous
