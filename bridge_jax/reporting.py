"""Side effects of training: metric files and sample pictures (process 0 only).

  metrics.jsonl        one JSON object per logged step: {"step": s, name: value, ...}
  tensorboard/         TensorBoard event files (tensorboardX: no TensorFlow needed)
  samples/step_N.png   a scatter plot (2-D data) or an image grid

The workdir may be a local folder or a ``gs://`` bucket (:mod:`bridge_jax.storage`):
tensorboardX uploads its event files to a bucket itself (google-cloud-storage, the
whole file at each flush), pictures are written through etils.epath.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import math
import time

import numpy as np

from bridge_jax import storage

log = logging.getLogger(__name__)

# Pictures use matplotlib's object API (Figure with its default Agg canvas,
# matplotlib.image), imported on first use: no pyplot state shared between the picture
# thread and a user's own plots, no backend switch, and a run that draws nothing does
# not pay the import (0.5 s with pyplot).

METRICS_FILE = "metrics.jsonl"


class BackgroundWriter:
    """Runs picture writes (matplotlib, PNG encoding, their TensorBoard copies) on one
    worker thread, in submission order, so the training loop does not wait for them.

    Errors are not lost: the first failed write is raised by the next :meth:`submit` or by
    :meth:`wait`, which returns once every submitted write is done."""

    def __init__(self):
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="bridge_jax-pictures")
        self._pending: list[concurrent.futures.Future] = []

    def submit(self, fn, *args) -> None:
        self._raise_finished()
        self._pending.append(self._pool.submit(fn, *args))

    def _raise_finished(self) -> None:
        done = [f for f in self._pending if f.done()]
        self._pending = [f for f in self._pending if not f.done()]
        for f in done:
            f.result()

    def wait(self) -> None:
        pending, self._pending = self._pending, []
        for f in pending:
            f.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._pool.shutdown(wait=True)


class MetricWriter:
    """Writes scalars to metrics.jsonl and TensorBoard; a no-op when disabled.

    On a local disk metrics.jsonl is appended line by line. An object store has no
    append (gcsfs's ``open('a')`` overwrites), so there the writer keeps the file's
    lines and uploads them whole at each :meth:`flush`: every ``FLUSH_S`` seconds, when
    the loop is about to save a checkpoint (so a run resumed from that checkpoint finds
    every line up to its step), and at :meth:`close`.
    """

    FLUSH_S = 60.0

    def __init__(self, workdir: str, enabled: bool = True):
        self.enabled = enabled
        self._tb = None
        self._jsonl = None
        self._path = storage.join(workdir, METRICS_FILE)
        self._remote = storage.is_uri(workdir)
        self._text = ""  # an object store's metrics.jsonl, as it will be uploaded
        self._unflushed = False
        self._flushed_at = time.monotonic()
        if enabled:
            from tensorboardX import SummaryWriter

            if self._remote:
                self._text = (storage.read_text(self._path)
                              if storage.exists(self._path) else "")
            else:
                storage.make_dirs(workdir)
                self._jsonl = open(self._path, "a", buffering=1)
            self._tb = SummaryWriter(storage.join(workdir, "tensorboard"))

    def _write_line(self, record: dict) -> None:
        line = json.dumps(jsonable(record)) + "\n"
        if not self._remote:
            self._jsonl.write(line)
            return
        self._text += line
        self._unflushed = True
        if time.monotonic() - self._flushed_at > self.FLUSH_S:
            self.flush()

    def flush(self) -> None:
        """Makes every line written so far durable (an object store: one upload) and
        flushes TensorBoard's events."""
        if not self.enabled:
            return
        if self._unflushed:
            storage.write_text(self._path, self._text)
            self._unflushed = False
        self._flushed_at = time.monotonic()
        self._tb.flush()

    def write_scalars(self, step: int, scalars: dict[str, float]) -> None:
        if not self.enabled:
            return
        self._write_line({"step": int(step), **{k: float(v) for k, v in scalars.items()}})
        for name, value in scalars.items():
            self._tb.add_scalar(name, float(value), int(step))

    def write_eval(self, step: int, member: int, scalars: dict[str, float],
                   tag: str = "") -> None:
        """One member's evaluation: a metrics.jsonl line {"step", "member", "eval/...": v}
        and TensorBoard scalars ``eval/<tag><metric>`` (tag names the member, or "")."""
        if not self.enabled:
            return
        self._write_line({"step": int(step), "member": int(member),
                          **{k: float(v) for k, v in scalars.items()}})
        for name, value in scalars.items():  # ∞ (e.g. KL with no HQ sample): jsonl only
            if math.isfinite(float(value)):
                self._tb.add_scalar("eval/" + tag + name.removeprefix("eval/"), float(value),
                                    int(step))

    def write_image(self, step: int, name: str, png_path: str) -> None:
        """Adds a saved PNG to TensorBoard as an image."""
        if not self.enabled:
            return
        from matplotlib import image as mpl_image

        with storage.path(png_path).open("rb") as f:
            image = mpl_image.imread(f, format="png")[..., :3]
        self._tb.add_image(name, image, int(step), dataformats="HWC")

    def close(self) -> None:
        if self.enabled:
            self.flush()
            if self._jsonl is not None:
                self._jsonl.close()
            self._tb.close()


def trim_metrics(workdir: str, step: int, *, evals_at_step: bool = True) -> None:
    """Drops from metrics.jsonl every line that a run resuming at ``step`` writes again:
    lines after ``step``, and the evaluations at ``step`` itself unless
    ``evals_at_step`` (the final evaluation of a finished run is redone); also a
    torn last line of a killed run. The file is replaced at once (never half written)."""
    path = storage.join(workdir, METRICS_FILE)
    if not storage.exists(path):
        return
    kept, dropped = [], 0
    for line in storage.read_text(path, errors="replace").splitlines(keepends=True):
        try:
            record = json.loads(line)
            s = int(record["step"])
        except (ValueError, KeyError, TypeError):
            dropped += 1
            continue
        if s < step or (s == step and (evals_at_step or "member" not in record)):
            kept.append(line if line.endswith("\n") else line + "\n")
        else:
            dropped += 1
    if dropped:
        storage.replace_text(path, "".join(kept))
        log.info("metrics.jsonl: dropped %d line(s) that the resumed run writes again",
                 dropped)


def jsonable(x):
    """Values as JSON: non-finite floats as the strings 'inf', '-inf', 'nan' (what
    metrics.jsonl and summary.json hold; ``report_data.from_json`` reads them back)."""
    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else str(float(x))
    return x


def read_metrics(workdir: str, kind: str = "train") -> list[dict]:
    """The records of metrics.jsonl, in order: ``kind="train"`` the training scalars,
    ``"eval"`` the evaluations (one line per member: {"step", "member", "eval/...": v}),
    ``"all"`` both."""
    if kind not in ("train", "eval", "all"):
        raise ValueError(f"kind must be 'train', 'eval' or 'all', got {kind!r}")
    text = storage.read_text(storage.join(workdir, METRICS_FILE))
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    if kind == "all":
        return records
    return [r for r in records if ("member" in r) == (kind == "eval")]


def save_scatter(samples: np.ndarray, path: str, centers: np.ndarray | None = None,
                 title: str = "", limit: float | None = None) -> None:
    """Scatter plot of 2-D samples, with the mixture's centres marked."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 4), dpi=100)
    ax = fig.subplots()
    ax.scatter(samples[:, 0], samples[:, 1], s=2, alpha=0.4, color="tab:blue", linewidths=0)
    if centers is not None:
        ax.scatter(centers[:, 0], centers[:, 1], s=30, marker="x", color="tab:red")
        if limit is None:
            limit = 1.5 * float(np.abs(centers).max())
    if limit is not None:
        ax.set_xlim(-limit, limit)
        ax.set_ylim(-limit, limit)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    # Fixed margins, not tight_layout(): it measured a third of this picture's drawing
    # time (55 of 165 ms), which the training loop shares its cores with.
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.08, top=0.93)
    with storage.path(path).open("wb") as f:
        fig.savefig(f, format="png")


def image_grid(images: np.ndarray, columns: int = 8) -> np.ndarray:
    """Tiles (N, H, W, C) images in [0, 1] into one (rows·H, columns·W, C) array."""
    n, h, w, c = images.shape
    rows = math.ceil(n / columns)
    grid = np.ones((rows * h, columns * w, c), dtype=np.float32)
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        grid[r * h:(r + 1) * h, col * w:(col + 1) * w] = image
    return grid


def save_image_grid(images: np.ndarray, path: str, columns: int = 8) -> None:
    """Saves an image grid as PNG (grey for one channel)."""
    grid = np.clip(image_grid(images, columns), 0.0, 1.0)
    from matplotlib import image as mpl_image

    with storage.path(path).open("wb") as f:
        if grid.shape[-1] == 1:
            mpl_image.imsave(f, grid[..., 0], cmap="gray", vmin=0.0, vmax=1.0, format="png")
        else:
            mpl_image.imsave(f, grid, format="png")
