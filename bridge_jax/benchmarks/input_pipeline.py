r"""The image input path at pod scale: how many examples/s one host's TFDS reader serves,
in this process and with N worker processes (``data.num_workers``), against what the
accelerator step consumes.

    python -m bridge_jax.benchmarks.input_pipeline \
        --out results/benchmarks/input_pipeline_cpu_2core.json

Builds offline, in a temporary directory, a TFDS dataset (ArrayRecord, no TensorFlow) of
JPEG-encoded RGB images for each stored shape: 32×32, 64×64 and CelebA's 218×178, the
last served center-cropped and resized to 64×64 as ``configs/celeba.py`` reads celeb_a.
The images are smooth colour fields with pixel noise, so their JPEG sizes are those of
photographs rather than of flat or random images. Each case times ``get_batch`` at a
per-host batch of 256 (in-process), then the worker-process prefetcher after its start-up.

The yardstick is the JAX step's examples/s on one H200 at the ``--quick`` size
(``results/benchmarks/gpu_h200_quick.json``: 32×32 at batch 32, 64×64 at batch 16), the
only accelerator figure the project has; a step at batch 256 would consume more, so the
headroom is an upper bound. "Workers for 10×" assumes the per-worker rate measured here
holds as workers are added (one core each), which only a machine with more cores can show.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import sys
import tempfile

import numpy as np

from bridge_jax.benchmarks.measurement import examples_per_second
from bridge_jax.benchmarks.rendering import format_table

# (name, stored image shape, served image size, the model size whose step it feeds)
CASES = (("32x32", (32, 32), 32, "32x32"), ("64x64", (64, 64), 64, "64x64"),
         ("218x178->64", (218, 178), 64, "64x64"))
YARDSTICK_FILE = os.path.join("results", "benchmarks", "gpu_h200_quick.json")
BATCH = 256
TARGET_HEADROOM = 10.0


def photo_like(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A uint8 (H, W, 3) image: a smooth colour field plus pixel noise."""
    y, x = np.meshgrid(np.linspace(0, 1, height), np.linspace(0, 1, width), indexing="ij")
    a = rng.uniform(0.5, 4.0, (3, 4))
    field = 128 + 60 * np.sin(a[:, 0, None, None] * np.pi * x + a[:, 1, None, None]) * (
        np.cos(a[:, 2, None, None] * np.pi * y + a[:, 3, None, None]))
    image = np.moveaxis(field, 0, -1) + rng.normal(0, 12, (height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def jpeg_bytes(image: np.ndarray, quality: int = 90) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def build_jpeg_dataset(data_dir: str, shape: tuple[int, int], num_examples: int) -> str:
    """Prepares ``bench_jpeg`` (``num_examples`` JPEG images of ``shape``, seed 0) as
    ArrayRecord in ``data_dir``; returns ``data_dir``."""
    import tensorflow_datasets as tfds

    height, width = shape

    class BenchJpeg(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        VERSION = tfds.core.Version("1.0.0")
        # A one-part module name, as for a script: TFDS then skips looking up this class's
        # source file through its package, which needs importlib_resources (not installed).
        __module__ = "bench_jpeg"

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(
                {"image": tfds.features.Image(shape=(height, width, 3),
                                              encoding_format="jpeg")}))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples()}

        def _generate_examples(self):
            rng = np.random.default_rng(0)
            for i in range(num_examples):
                yield i, {"image": jpeg_bytes(photo_like(rng, height, width))}

    BenchJpeg(data_dir=data_dir, file_format="array_record").download_and_prepare()
    return data_dir


def stream(data_dir: str, image_size: int | None, batch: int = BATCH) -> dict:
    """``data.make_dataset`` keyword arguments of the benchmark dataset in ``data_dir``."""
    return dict(name="tfds", seed=0, global_batch_size=batch, tfds_name="bench_jpeg",
                data_dir=data_dir, image_size=image_size)


def rate(kwargs: dict, workers: int, seconds: float) -> float:
    """Examples/s of the batches of ``kwargs``: in-process ``get_batch`` (``workers`` 0)
    or from ``workers`` worker processes, after a warm-up."""
    from bridge_jax import data
    from bridge_jax.data import workers as workers_lib

    batch = kwargs["global_batch_size"]
    if workers == 0:
        ds = data.make_dataset(**kwargs)
        ds.get_batch(0)
        return examples_per_second(ds.get_batch, batch, seconds)
    recipe = workers_lib.BatchRecipe((kwargs,))
    with workers_lib.prefetch_in_processes(recipe, 0, None, workers) as batches:
        for _ in range(2 * workers):  # start-up: imports and the readers' first batches
            next(batches)
        return examples_per_second(lambda _: next(batches), batch, seconds)


def yardsticks(path: str = YARDSTICK_FILE) -> dict[str, float]:
    """The H200 quick run's JAX examples/s per model size."""
    with open(path) as f:
        return {r["size"]: float(r["jax_examples_per_s"]) for r in json.load(f)["throughput"]}


def measure(worker_counts: list[int], seconds: float, num_examples: int,
            cases=CASES, root: str | None = None) -> dict:
    """One row per (case, worker count), with the yardstick and headroom."""
    steps = yardsticks()
    rows = []
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        for name, shape, size, model_size in cases:
            data_dir = build_jpeg_dataset(os.path.join(tmp, name), shape, num_examples)
            for workers in worker_counts:
                ex_s = rate(stream(data_dir, size), workers, seconds)
                consumes = steps[model_size]
                per_worker = ex_s / max(workers, 1)
                rows.append({"case": name, "workers": workers, "examples_per_s": ex_s,
                             "per_worker": per_worker, "step_consumes": consumes,
                             "headroom": ex_s / consumes,
                             "workers_for_target": math.ceil(TARGET_HEADROOM * consumes
                                                             / per_worker)})
    return {"batch": BATCH, "num_examples": num_examples, "seconds": seconds,
            "decoder": decoder(),
            "cpu_count": os.cpu_count(), "load_avg": list(os.getloadavg()), "rows": rows}


def decoder() -> str:
    """The JPEG decoder TFDS uses here: OpenCV when it is installed, else PIL."""
    import importlib.util

    return "OpenCV" if importlib.util.find_spec("cv2") else "PIL"


def render(record: dict) -> str:
    rows = [[r["case"], str(r["workers"]) if r["workers"] else "0 (in-process)",
             f"{r['examples_per_s']:,.0f}", f"{r['per_worker']:,.0f}",
             f"{r['step_consumes']:,.0f}", f"{r['headroom']:.2f}",
             str(r["workers_for_target"])] for r in record["rows"]]
    head = (f"TFDS JPEG reader, per-host batch {record['batch']}, {record['num_examples']} "
            f"examples, decoded by {record.get('decoder', 'PIL')}, {record['cpu_count']} CPUs, "
            "load avg "
            f"{' '.join(f'{v:.1f}' for v in record['load_avg'])}")
    return "\n".join([head, format_table(
        ["case", "workers", "ex/s", "ex/s per worker", "H200 step ex/s", "headroom",
         f"workers for {TARGET_HEADROOM:g}x"], rows)])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", default="0,1,2", help="worker counts (default %(default)s)")
    p.add_argument("--seconds", type=float, default=8.0, help="timed seconds per row")
    p.add_argument("--examples", type=int, default=2048, help="examples per dataset")
    p.add_argument("--out", default=None, help="write the record as JSON here (and .txt)")
    args = p.parse_args(argv)
    record = measure([int(v) for v in args.workers.split(",")], args.seconds, args.examples)
    text = render(record)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(record, f, indent=2)
        with open(os.path.splitext(args.out)[0] + ".txt", "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
