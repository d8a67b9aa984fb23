"""Tests of bridge_jax.evaluation on constructed inputs with known answers."""

from __future__ import annotations

import math
import os

import jax
import numpy as np
import pytest

from bridge_jax.evaluation import classifier as clf
from bridge_jax.evaluation.discrete import kl_divergence, kl_to_uniform
from bridge_jax.evaluation.frechet import (
    FD_METRIC_NAME,
    fd_mnist_classifier,
    feature_statistics,
    frechet_distance,
    frechet_distance_from_features,
)
from bridge_jax.evaluation.mixtures import (
    GRID_STD,
    PACGAN_NUM_EVAL_SAMPLES,
    RING_STD,
    grid_centers,
    mixture_metrics,
    ring_centers,
)
from bridge_jax.evaluation.precision_recall import (
    knn_radii,
    nearest_neighbors,
    precision_recall,
)
from bridge_jax.evaluation.stacked_mnist import (
    STACKED_MNIST_NUM_EVAL_SAMPLES,
    confusion_matrix,
    digit_balance,
    digits_of_labels,
    kl_decomposition,
    mode_metrics_from_labels,
    predict_triples,
    relative_digit_shares,
    stacked_mnist_metrics,
    triple_histogram,
    triple_labels,
)

TEST_TRAIN_STEPS = 250

# --------------------------------------------------------------------------- discrete KL


def test_kl_divergence_hand_computed():
    p, q = [0.5, 0.5], [0.25, 0.75]
    assert kl_divergence(p, q) == pytest.approx(0.5 * math.log(2) + 0.5 * math.log(2 / 3))
    expected = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    assert kl_divergence([3, 1], [1, 1]) == pytest.approx(expected)
    # 0·log 0 = 0 and 0·log(0/0) = 0; p > 0 where q = 0 gives inf.
    assert kl_divergence([1, 0, 0], [0.5, 0.5, 0]) == pytest.approx(math.log(2))
    assert kl_divergence([0.5, 0.5], [1.0, 0.0]) == math.inf
    assert kl_divergence([0.2, 0.8], [0.2, 0.8]) == 0.0
    assert kl_to_uniform([5, 0, 0, 0]) == pytest.approx(math.log(4))
    assert kl_to_uniform([0, 0]) == math.inf


# --------------------------------------------------------------------------- 2-D mixtures


def test_centers_and_constants():
    ring = ring_centers()
    assert ring.shape == (8, 2)
    np.testing.assert_allclose(np.linalg.norm(ring, axis=1), 1.0)
    np.testing.assert_allclose(ring[2], [0.0, 1.0], atol=1e-12)
    grid = grid_centers()
    assert grid.shape == (25, 2)
    assert sorted(set(grid[:, 0].tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0]
    assert len({tuple(c) for c in grid.tolist()}) == 25
    assert (RING_STD, GRID_STD, PACGAN_NUM_EVAL_SAMPLES) == (0.01, 0.05, 2500)


def test_samples_at_ring_centers():
    samples = np.repeat(ring_centers(), 100, axis=0)
    m = mixture_metrics(samples, ring_centers(), RING_STD)
    assert m["modes_covered"] == 8
    assert m["modes_covered_strict"] == 8
    assert m["hq_fraction"] == 1.0
    assert m["reverse_kl"] == pytest.approx(0.0, abs=1e-6)
    assert (m["num_samples"], m["num_modes"]) == (800, 8)
    assert m["mode_counts"] == [100] * 8


def test_samples_from_one_mode():
    rng = np.random.default_rng(0)
    centers = ring_centers()
    samples = centers[3] + RING_STD * np.clip(rng.normal(size=(2500, 2)), -2, 2)
    m = mixture_metrics(samples, centers, RING_STD)
    assert m["modes_covered"] == 1
    assert m["modes_covered_strict"] == 1
    assert m["hq_fraction"] == 1.0
    assert m["reverse_kl"] == pytest.approx(math.log(8))
    assert m["mode_counts"][3] == 2500


def test_uniform_noise_hq_fraction_matches_disc_area():
    # 8 disjoint discs of radius 3·0.01 inside [-3, 3]²: P(HQ) = 8·π·0.03² / 36 ≈ 6.283e-4.
    n = 1_000_000
    rng = np.random.default_rng(1)
    samples = rng.uniform(-3.0, 3.0, size=(n, 2))
    m = mixture_metrics(samples, ring_centers(), RING_STD)
    expected = 8 * math.pi * (3 * RING_STD) ** 2 / 36.0
    assert expected == pytest.approx(6.2832e-4, rel=1e-4)
    sigma = math.sqrt(expected * (1 - expected) / n)
    assert abs(m["hq_fraction"] - expected) < 5 * sigma
    assert m["modes_covered"] == 8  # ~79 HQ samples per mode
    assert m["modes_covered_strict"] == 0  # 79 < 0.1 · 10⁶ / 8


def test_two_modes_three_to_one():
    centers = ring_centers()
    samples = np.concatenate([np.repeat(centers[:1], 30, 0), np.repeat(centers[5:6], 10, 0)])
    m = mixture_metrics(samples, centers, RING_STD)
    # p̂ = (3/4, 1/4) on 2 of 8 modes: KL = 3/4 log(8·3/4) + 1/4 log(8·1/4).
    assert m["reverse_kl"] == pytest.approx(0.75 * math.log(6) + 0.25 * math.log(2), rel=1e-12)
    assert m["modes_covered"] == 2
    assert m["hq_fraction"] == 1.0


def test_strict_coverage_excludes_stray_mode_and_counts_only_hq():
    centers = ring_centers()
    # N = 800 → threshold 0.1·800/8 = 10 HQ samples. Modes 0..6 get 114 each (798),
    # mode 7 one stray HQ sample, and one sample is far from every mode (not HQ).
    samples = np.concatenate(
        [np.repeat(centers[:7], 114, 0), centers[7:8], np.array([[10.0, 10.0]])]
    )
    m = mixture_metrics(samples, centers, RING_STD)
    assert m["num_samples"] == 800
    assert m["modes_covered"] == 8
    assert m["modes_covered_strict"] == 7
    assert m["hq_fraction"] == pytest.approx(799 / 800)
    p = np.array([114] * 7 + [1]) / 799
    assert m["reverse_kl"] == pytest.approx(float(np.sum(p * np.log(8 * p))), rel=1e-12)


def test_hq_radius_and_grid():
    centers = grid_centers()
    # Just inside / just outside 3·std of mode (4, 4).
    samples = np.array([[4.0 + 0.149, 4.0], [4.0 + 0.151, 4.0]])
    m = mixture_metrics(samples, centers, GRID_STD)
    assert m["hq_fraction"] == 0.5
    assert m["modes_covered"] == 1
    no_hq = mixture_metrics(np.array([[1.0, 1.0]]), centers, GRID_STD)
    assert no_hq["reverse_kl"] == math.inf and no_hq["modes_covered"] == 0
    all_modes = mixture_metrics(np.repeat(centers, 4, 0), centers, GRID_STD)
    assert all_modes["modes_covered_strict"] == 25
    assert all_modes["reverse_kl"] == pytest.approx(0.0, abs=1e-12)


# --------------------------------------------------------------------------- Fréchet


def _random_spd(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T + 0.1 * np.eye(d)


def test_frechet_identical_is_zero_and_symmetric():
    rng = np.random.default_rng(0)
    mu, cov = rng.normal(size=6), _random_spd(rng, 6)
    assert frechet_distance(mu, cov, mu, cov) == pytest.approx(0.0, abs=1e-6)
    mu2, cov2 = rng.normal(size=6), _random_spd(rng, 6)
    d12 = frechet_distance(mu, cov, mu2, cov2)
    assert d12 > 0
    assert frechet_distance(mu2, cov2, mu, cov) == pytest.approx(d12, rel=1e-8)


def test_frechet_closed_form_diagonal_and_rotated():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.0])
    a, b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = np.sum((np.sqrt(a) - np.sqrt(b)) ** 2) + np.sum((mu1 - mu2) ** 2)
    assert expected == pytest.approx(4.0 + 1.0 + 0.0 + 5.0)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected)
    # Commuting covariances R diag R^T: same closed form, sqrtm on a non-diagonal matrix.
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(3, 3)))
    got = frechet_distance(mu1, q @ np.diag(a) @ q.T, mu2, q @ np.diag(b) @ q.T)
    assert got == pytest.approx(expected, rel=1e-8)


def test_frechet_singular_covariances_are_finite():
    cov = np.diag([1.0, 0.0, 0.0])
    assert frechet_distance(np.zeros(3), cov, np.ones(3), cov) == pytest.approx(3.0, abs=1e-4)


def test_frechet_from_features_gaussian_samples():
    rng = np.random.default_rng(2)
    fa = rng.normal(size=(20000, 3))
    fb = 1.0 + 2.0 * rng.normal(size=(20000, 3))
    mu, cov = feature_statistics(fa)
    assert mu.shape == (3,) and cov.shape == (3, 3)
    # ‖Δμ‖² = 3, Σ(√1 − √4)² = 3.
    assert frechet_distance_from_features(fa, fb) == pytest.approx(6.0, abs=0.2)
    assert frechet_distance_from_features(fa, fa) == pytest.approx(0.0, abs=1e-6)


# --------------------------------------------------------------------------- precision/recall


def test_knn_radii_exact():
    x = np.array([0.0, 1.0, 3.0, 6.0, 10.0])[:, None]
    np.testing.assert_allclose(knn_radii(x, k=1), [1, 1, 2, 3, 4])
    np.testing.assert_allclose(knn_radii(x, k=2), [3, 2, 3, 4, 7])
    np.testing.assert_allclose(knn_radii(x, k=2, batch_size=2), [3, 2, 3, 4, 7])


def test_nearest_neighbors_exact():
    reference = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    queries = np.array([[1.0, 1.0], [9.0, -3.0], [-1.0, 7.0], [4.0, 4.0]])
    np.testing.assert_array_equal(nearest_neighbors(queries, reference, batch_size=3),
                                  [0, 1, 2, 0])
    with pytest.raises(ValueError, match="feature dims differ"):
        nearest_neighbors(queries, np.zeros((3, 3)))


def test_precision_recall_identical_and_disjoint():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(300, 5))
    same = precision_recall(real, real.copy())
    assert (same["precision"], same["recall"]) == (1.0, 1.0)
    far = precision_recall(real, real + 100.0)
    assert (far["precision"], far["recall"]) == (0.0, 0.0)
    assert far["k"] == 3 and far["num_real"] == 300


def test_precision_recall_half_of_the_clusters():
    rng = np.random.default_rng(1)
    centers = np.array([[0.0, 0.0], [50.0, 0.0], [0.0, 50.0], [50.0, 50.0]])
    real = np.concatenate([c + rng.normal(size=(200, 2)) for c in centers])
    # Exactly the real points of clusters 0 and 1.
    exact = precision_recall(real, real[:400], batch_size=64)
    assert exact["precision"] == 1.0 and exact["recall"] == 0.5
    # Fresh draws from clusters 0 and 1.
    gen = np.concatenate([c + rng.normal(size=(200, 2)) for c in centers[:2]])
    m = precision_recall(real, gen)
    assert m["precision"] >= 0.95
    assert 0.45 <= m["recall"] <= 0.5


# --------------------------------------------------------------------------- classifier


@pytest.fixture(scope="module")
def digits():
    return clf.load_mnist_digits()


@pytest.fixture(scope="module")
def trained(digits):
    images, labels = digits
    return clf.train_digit_classifier(images, labels, steps=TEST_TRAIN_STEPS, batch_size=64, seed=0)


def test_mnist_digits_and_split(digits):
    images, labels = digits
    assert images.shape == (5000, 28, 28, 1) and images.dtype == np.float32
    assert 0.0 <= images.min() and images.max() == 1.0
    train_idx, held_idx = clf.stratified_split(labels, 0.1, seed=0)
    assert (train_idx.size, held_idx.size) == (4500, 500)
    assert np.intersect1d(train_idx, held_idx).size == 0
    assert np.bincount(labels[held_idx], minlength=10).tolist() == [50] * 10
    np.testing.assert_array_equal(clf.stratified_split(labels, 0.1, seed=0)[1], held_idx)


def test_classifier_accuracy_and_shapes(trained, digits):
    params, accuracy = trained
    print(f"held-out accuracy after {TEST_TRAIN_STEPS} steps: {accuracy:.4f}")
    assert accuracy >= 0.9  # chance is 0.1; ~0.97 at 250 steps, 0.98 at 2000
    images = digits[0][:37]
    assert clf.classifier_logits(params, images).shape == (37, 10)
    feats = clf.classifier_features(params, images)
    assert feats.shape == (37, clf.FEATURE_DIM) == (37, 128)
    assert float(feats.min()) >= 0.0  # post-ReLU
    np.testing.assert_allclose(
        clf.batched_features(params, images, batch_size=10), np.asarray(feats), atol=1e-5
    )


def test_params_flatten_roundtrip():
    params = clf.init_params(3)
    flat = clf.flatten_params(params)
    assert set(flat) == {
        "Conv_0/kernel", "Conv_0/bias", "Conv_1/kernel", "Conv_1/bias",
        "Dense_0/kernel", "Dense_0/bias", "Dense_1/kernel", "Dense_1/bias",
    }
    back = clf.unflatten_params(flat, clf.init_params(0))
    leaves = jax.tree_util.tree_leaves
    for x, y in zip(leaves(params), leaves(back), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_load_or_train_caches_and_survives_corruption(tmp_path, monkeypatch, digits):
    calls = []
    monkeypatch.setattr(clf, "load_mnist_digits", lambda: digits)

    def fake_train(images, labels, *, steps, batch_size, seed):
        calls.append(steps)
        assert images.shape == (5000, 28, 28, 1)
        return clf.init_params(seed + len(calls)), 0.5 + 0.1 * len(calls)

    monkeypatch.setattr(clf, "train_digit_classifier", fake_train)
    p1, a1 = clf.load_or_train_classifier(tmp_path, steps=7, seed=0)
    path = clf.cache_path(tmp_path, steps=7, seed=0)
    assert calls == [7] and os.path.exists(path) and a1 == pytest.approx(0.6)

    p2, a2 = clf.load_or_train_classifier(tmp_path, steps=7, seed=0)
    assert calls == [7], "second load must read the cache, not retrain"
    assert a2 == pytest.approx(a1)
    for x, y in zip(jax.tree_util.tree_leaves(p1), jax.tree_util.tree_leaves(p2), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))

    with open(path, "wb") as f:
        f.write(b"this is not an npz file")
    p3, a3 = clf.load_or_train_classifier(tmp_path, steps=7, seed=0)
    assert len(calls) == 2 and a3 == pytest.approx(0.7)
    assert clf.load_classifier(path)[1] == pytest.approx(0.7)  # cache rewritten

    np.savez(path, unrelated=np.zeros(3))  # readable, but wrong keys
    clf.load_or_train_classifier(tmp_path, steps=7, seed=0)
    assert len(calls) == 3


# --------------------------------------------------------------------------- Stacked MNIST


def test_triple_labels_and_histogram_exact():
    assert triple_labels([[1, 2, 3], [0, 0, 0], [9, 9, 9]]).tolist() == [123, 0, 999]
    hist = triple_histogram([123, 123, 5])
    assert hist.shape == (1000,) and hist[123] == 2 and hist[5] == 1 and hist.sum() == 3
    assert STACKED_MNIST_NUM_EVAL_SAMPLES == 26000


def test_mode_metrics_from_labels_exact():
    every = mode_metrics_from_labels(np.arange(1000).repeat(3))
    assert every["modes_covered"] == 1000
    assert every["kl_to_uniform"] == pytest.approx(0.0, abs=1e-12)
    ten = mode_metrics_from_labels(np.repeat(np.arange(0, 1000, 100), 5))
    assert ten["modes_covered"] == 10 and ten["num_samples"] == 50
    assert ten["kl_to_uniform"] == pytest.approx(math.log(100))
    skew = mode_metrics_from_labels([5, 5, 5, 7])
    assert skew["kl_to_uniform"] == pytest.approx(0.75 * math.log(750) + 0.25 * math.log(250))
    empty = mode_metrics_from_labels([])
    assert empty["modes_covered"] == 0 and empty["kl_to_uniform"] == math.inf


def test_kl_decomposition_exact():
    every = np.array([[a, b, c] for a in range(10) for b in range(10) for c in range(10)])
    d = kl_decomposition(every)  # every triple once: uniform marginals, independent
    assert d["kl_channel_marginals"] == pytest.approx([0.0, 0.0, 0.0], abs=1e-12)
    assert d["kl_dependence"] == pytest.approx(0.0, abs=1e-12)
    copies = np.repeat(np.arange(10), 3).reshape(10, 3)  # (k, k, k): uniform, dependent
    d = kl_decomposition(copies)
    assert d["kl_channel_marginals"] == pytest.approx([0.0, 0.0, 0.0], abs=1e-12)
    assert d["kl_dependence"] == pytest.approx(2 * math.log(10))  # H(R)+H(G)+H(B)−H(RGB)
    red_const = every.copy()
    red_const[:, 0] = 4  # channel R always 4, G and B uniform and independent
    d = kl_decomposition(red_const)
    assert d["kl_channel_marginals"] == pytest.approx([math.log(10), 0.0, 0.0], abs=1e-12)
    assert d["kl_dependence"] == pytest.approx(0.0, abs=1e-12)
    # The identity KL(p̂ ‖ U_1000) = Σ_c KL(p̂_c ‖ U_10) + dependence, on skewed random digits.
    rng = np.random.default_rng(0)
    skewed = np.stack([rng.choice(10, 500, p=np.arange(1, 11) / 55) for _ in range(3)], 1)
    skewed[:, 2] = np.where(rng.random(500) < 0.3, skewed[:, 0], skewed[:, 2])
    d = kl_decomposition(skewed)
    total = mode_metrics_from_labels(triple_labels(skewed))["kl_to_uniform"]
    assert sum(d["kl_channel_marginals"]) + d["kl_dependence"] == pytest.approx(total, rel=1e-9)
    assert d["kl_dependence"] > 0.1 and min(d["kl_channel_marginals"]) > 0.05
    with pytest.raises(ValueError, match="at least one"):
        kl_decomposition(np.zeros((0, 3), int))


def test_digit_shares_and_confusion_exact():
    labels = np.array([123, 907, 0, 999])
    np.testing.assert_array_equal(digits_of_labels(labels),
                                  [[1, 2, 3], [9, 0, 7], [0, 0, 0], [9, 9, 9]])
    np.testing.assert_array_equal(triple_labels(digits_of_labels(np.arange(1000))),
                                  np.arange(1000))
    every = digits_of_labels(np.arange(1000))
    np.testing.assert_allclose(relative_digit_shares(every), np.ones(10))
    shares = relative_digit_shares([[1, 1, 2], [1, 3, 3]])  # six channels: 1 ×3, 2 ×1, 3 ×2
    np.testing.assert_allclose(shares, [0, 5, 10 / 6, 10 / 3, 0, 0, 0, 0, 0, 0])
    true, pred = np.array([1, 1, 1, 1, 7]), np.array([1, 1, 1, 7, 7])
    c = confusion_matrix(true, pred)
    assert c[1, 1] == 0.75 and c[1, 7] == 0.25 and c[7, 7] == 1.0
    assert c.sum() == 2.0 and not c[0].any()  # rows of absent digits stay zero
    with pytest.raises(ValueError, match="differ in size"):
        confusion_matrix(true, pred[:4])
    with pytest.raises(ValueError, match="0..999"):
        digits_of_labels([1000])


def test_digit_balance_separates_latent_allocation_from_rendering():
    """A toy 'model' whose code is the image's digits: G draws the nearest integer digits,
    except that it renders every 1 as a 7. The prior puts a quarter of its mass near 1s."""
    def image_of(digits):  # the digits written into pixel (0, 0) of each channel
        out = np.zeros((len(digits), 28, 28, 3), np.float32)
        out[:, 0, 0, :] = digits
        return out

    def classify(images):
        return np.rint(images[:, 0, 0, :]).astype(np.int64)

    def decode_mean(z):
        d = np.clip(np.rint(z), 0, 9)
        return image_of(np.where(d == 1, 7, d))

    rng = np.random.default_rng(0)
    labels = np.arange(1000)  # every triple once: balanced real data
    real = image_of(digits_of_labels(labels))
    prior_digits = rng.choice(10, size=(4000, 3), p=[0.75 / 9] + [0.25] + [0.75 / 9] * 8)
    prior_z = prior_digits + rng.uniform(-0.3, 0.3, size=prior_digits.shape)
    b = digit_balance(real_images=real, real_labels=labels, prior_z=prior_z,
                      encode_mean=lambda x: x[:, 0, 0, :], decode_mean=decode_mean,
                      classify=classify,
                      encode_sample=lambda x: x[:, 0, 0, :] + rng.uniform(-0.4, 0.4, (len(x), 3)))
    np.testing.assert_allclose(b["real"], np.ones(10))
    expected_latent = relative_digit_shares(prior_digits)
    np.testing.assert_allclose(b["latent_nearest"], expected_latent)
    assert b["latent_nearest"][1] == pytest.approx(2.5, abs=0.15)
    # Samples: the prior's 1s are drawn as 7s.
    expected_samples = expected_latent.copy()
    expected_samples[7] += expected_samples[1]
    expected_samples[1] = 0.0
    np.testing.assert_allclose(b["samples"], expected_samples)
    assert b["latent_sample_agreement"] == pytest.approx(1 - expected_latent[1] / 10)
    # Reconstructions: balanced data, every 1 read as 7.
    np.testing.assert_allclose(b["reconstructions"],
                               [1, 0, 1, 1, 1, 1, 1, 2, 1, 1])
    # Codes drawn from the aggregate posterior decode like the reconstructions, unlike
    # the prior's samples: the toy prior's excess of 1s is a prior/posterior mismatch.
    np.testing.assert_allclose(b["posterior_samples"], b["reconstructions"])
    assert b["reconstruction_accuracy"] == pytest.approx(0.9)
    confusion = np.array(b["reconstruction_confusion"])
    assert confusion[1, 7] == 1.0 and confusion[1, 1] == 0.0
    np.testing.assert_allclose(np.diag(confusion), [1, 0, 1, 1, 1, 1, 1, 1, 1, 1])
    # Distance bins: nearest quarter first; together they are the samples.
    edges = b["code_distance_bin_edges"]
    assert len(edges) == 5 and edges == sorted(edges)
    assert 0.0 <= edges[0] and edges[-1] <= 0.3 * math.sqrt(3) + 1e-9
    np.testing.assert_allclose(np.mean(b["samples_by_code_distance"], axis=0),
                               expected_samples)
    assert np.mean(b["agreement_by_code_distance"]) == pytest.approx(
        b["latent_sample_agreement"])
    # 1,000 prior samples in a hole between the codes (0.87 from the nearest) are the
    # farthest fifth, and there G draws (4, 4, 4).
    holes = np.full((1000, 3), 4.5)
    b = digit_balance(real_images=real, real_labels=labels,
                      prior_z=np.concatenate([prior_z, holes]),
                      encode_mean=lambda x: x[:, 0, 0, :], decode_mean=decode_mean,
                      classify=classify, num_distance_bins=5)
    assert b["samples_by_code_distance"][-1] == pytest.approx(np.eye(10)[4] * 10)
    np.testing.assert_allclose(np.mean(b["samples_by_code_distance"][:4], axis=0),
                               expected_samples)
    assert b["code_distance_bin_edges"][-2:] == pytest.approx([0.5 * math.sqrt(3)] * 2)


TRIPLES = np.array(
    [[1, 2, 3], [3, 2, 1], [0, 0, 0], [9, 8, 7], [4, 4, 5],
     [5, 6, 7], [7, 0, 2], [2, 9, 4], [6, 1, 8], [8, 3, 6]]
)


def _stack(images, labels, triples, per_triple, rng):
    by_digit = [np.flatnonzero(labels == d) for d in range(10)]
    out, truth = [], []
    for t in triples:
        for _ in range(per_triple):
            chans = [images[rng.choice(by_digit[d]), :, :, 0] for d in t]
            out.append(np.stack(chans, axis=-1))
            truth.append(t)
    return np.stack(out), np.array(truth)


def test_stacked_mnist_metrics_with_trained_classifier(trained, digits):
    params, _ = trained
    images, labels = digits
    samples, truth = _stack(images, labels, TRIPLES, 20, np.random.default_rng(0))
    m = stacked_mnist_metrics(samples, params, batch_size=64)
    # Independent per-channel predictions on the grayscale digits.
    pred = np.stack(
        [clf.predict_digits(params, samples[..., c : c + 1]) for c in range(3)], axis=1
    )
    pred_labels = triple_labels(pred)
    independent = mode_metrics_from_labels(pred_labels)
    assert m["num_samples"] == 200
    assert m["modes_covered"] == len(set(pred_labels.tolist())) == independent["modes_covered"]
    assert m["kl_to_uniform"] == pytest.approx(independent["kl_to_uniform"])
    # ≈ 10 modes, up to the classifier's errors: every true triple is found, and each
    # extra mode needs at least one sample with a misclassified channel.
    num_wrong = int(np.sum(np.any(pred != truth, axis=1)))
    assert num_wrong <= 0.2 * len(truth)  # per-digit accuracy ~0.97 → ~9% wrong triples
    assert set(triple_labels(TRIPLES).tolist()) <= set(pred_labels.tolist())
    assert 10 <= m["modes_covered"] <= 10 + num_wrong
    # KL(p̂ ‖ U) = log(1000/10) for a perfect classifier; errors spread mass, lowering it.
    assert math.log(100) - 0.6 < m["kl_to_uniform"] <= math.log(100) + 1e-9
    print("stacked MNIST (200 samples, 10 triples):", m, "wrong triples:", num_wrong)


def test_stacked_mnist_exact_on_correctly_classified_digits(trained, digits):
    params, _ = trained
    images, labels = digits
    ok = clf.predict_digits(params, images) == labels
    samples, truth = _stack(images[ok], labels[ok], TRIPLES, 5, np.random.default_rng(1))
    np.testing.assert_array_equal(predict_triples(samples, params, batch_size=8), truth)
    m = stacked_mnist_metrics(samples, params, batch_size=8)
    # Channel R of TRIPLES holds every digit once; G and B repeat some (2, 0 in G; 7 in B).
    marginal_kl = [kl_to_uniform(np.bincount(TRIPLES[:, c], minlength=10)) for c in range(3)]
    assert marginal_kl[0] == pytest.approx(0.0, abs=1e-12) and min(marginal_kl[1:]) > 0
    assert m == {"modes_covered": 10, "kl_to_uniform": pytest.approx(math.log(100)),
                 "num_samples": 50, "kl_channel_marginals": pytest.approx(marginal_kl),
                 "kl_dependence": pytest.approx(math.log(100) - sum(marginal_kl))}


def test_fd_mnist_classifier(trained, digits):
    params, _ = trained
    images, labels = digits
    assert FD_METRIC_NAME == "FD-MNIST-classifier"
    rng = np.random.default_rng(0)
    perm = rng.permutation(5000)
    a, b = images[perm[:1000]], images[perm[1000:2000]]
    same = fd_mnist_classifier(params, a, a)
    halves = fd_mnist_classifier(params, a, b)
    ones_vs_zeros = fd_mnist_classifier(params, images[labels == 1], images[labels == 0])
    assert same == pytest.approx(0.0, abs=1e-3)
    assert 0.0 < halves < ones_vs_zeros
