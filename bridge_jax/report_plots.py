"""The plots of :mod:`bridge_jax.report`, per dataset, from the runs' workdirs (PNG, Agg).

- ``coverage_vs_quality_<dataset>.png``: modes covered against a quality metric (2-D
  mixtures: HQ %; images: FD-MNIST-classifier, else KL to uniform; without modes:
  recall against precision), one point per run at the mean over its seeds with ± std
  error bars, the training data as a star.
- ``samples_<dataset>.png``: the final samples of each run's first member: a 2-D
  scatter with the mode centres, or an 8×8 tile of images.
- ``trajectory_<dataset>.png``: the evaluation metrics along training (metrics.jsonl
  evaluation lines), the mean over each run's members at every evaluated step.
"""

from __future__ import annotations

import math
import os
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from bridge_jax.data.mixtures import grid_centers, ring_centers  # noqa: E402
from bridge_jax.report_data import (  # noqa: E402
    Member,
    Run,
    groups_of,
    is_scalar,
    metric_stat,
    num_modes,
)

CENTERS = {"ring": ring_centers, "grid": grid_centers}
LIMITS = {"ring": 1.5, "grid": 6.0}
# (metric, title, scale) of the trajectory panels, in order; at most MAX_PANELS shown.
TRAJECTORY_METRICS = (("modes_covered", "modes covered", 1.0),
                      ("hq_fraction", "HQ %", 100.0), ("reverse_kl", "reverse KL", 1.0),
                      ("kl_to_uniform", "KL to uniform", 1.0),
                      ("fd", "FD-MNIST-classifier", 1.0),
                      ("precision", "precision", 1.0), ("recall", "recall", 1.0))
MAX_PANELS = 4
TILE = 8  # images per side of a samples tile
MAX_POINTS = 2500  # samples read per member for a scatter


def file_stem(dataset: str) -> str:
    """A dataset name usable in a file name (``tfds:mnist`` → ``tfds_mnist``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", dataset)


def _save(fig, path: str, dpi: int = 100) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def _axes_of(evals: list[dict]) -> tuple[tuple[str, str, float], tuple[str, str], bool] | None:
    """((x metric, x label, x scale), (y metric, y label), lower x is better) of the
    coverage-vs-quality plot for the metrics present; None when it has no axes."""
    present = {k for e in evals for k in e}
    if "modes_covered" in present:
        for key, label, scale, lower in (("hq_fraction", "high-quality samples (%)", 100., False),
                                         ("fd", "FD-MNIST-classifier (lower is better)", 1.,
                                          True),
                                         ("kl_to_uniform", "KL to uniform (lower is better)",
                                          1., True)):
            if key in present:
                return (key, label, scale), ("modes_covered", "modes covered"), lower
        return None
    if {"precision", "recall"} <= present:
        return ("precision", "precision", 1.0), ("recall", "recall"), False
    return None


def _finite(x: float) -> float:
    return x if math.isfinite(x) else 0.0


def coverage_vs_quality(dataset: str, runs: list[Run], path: str) -> str | None:
    """One point per run (mean over seeds, ± std bars) and the training data's star."""
    axes = _axes_of([m.evals for r in runs for m in r.members])
    if axes is None:
        return None
    (x_key, x_label, scale), (y_key, y_label), lower_is_better = axes
    fig, ax = plt.subplots(figsize=(7, 5))
    cmap = plt.get_cmap("tab10")
    for i, run in enumerate(runs):
        evals = [m.evals for m in run.members]
        x, y = metric_stat(evals, x_key), metric_stat(evals, y_key)
        if x is None or y is None or not (x.count and y.count):
            continue
        ax.errorbar(scale * x.mean, y.mean, xerr=scale * _finite(x.std), yerr=_finite(y.std),
                    fmt="o", capsize=3, color=cmap(i % 10), label=run.label)
    references = [g.reference for g in groups_of(runs)]
    x, y = metric_stat(references, x_key), metric_stat(references, y_key)
    if x is not None and y is not None and x.count and y.count:
        ax.plot(scale * x.mean, y.mean, "k*", markersize=12, label="training data")
    k = num_modes([m.evals for r in runs for m in r.members])
    if y_key == "modes_covered" and k:
        y_label += f" (of {k})"
        ax.set_ylim(0, k * 1.05)
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    if lower_is_better:
        ax.invert_xaxis()
    ax.set_title(f"{dataset}: coverage vs quality (mean ± std over seeds)")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="best")
    return _save(fig, path, 110)


def tile_images(images: np.ndarray, cols: int = TILE) -> np.ndarray:
    """(N, H, W, C) in [0, 1] → one (rows·H, cols·W, C) mosaic, rows = ⌈N / cols⌉."""
    n, h, w, c = images.shape
    rows = max(1, math.ceil(n / cols))
    canvas = np.ones((rows * h, cols * w, c), np.float32)
    for i, img in enumerate(images):
        r, q = divmod(i, cols)
        canvas[r * h:(r + 1) * h, q * w:(q + 1) * w] = img
    return canvas


def _panel_title(run: Run, member: Member) -> str:
    """The run's label and its first member's headline metrics."""
    e = member.evals
    parts = []
    if is_scalar(e.get("modes_covered")):
        parts.append(f"{e['modes_covered']:g} modes")
    if is_scalar(e.get("hq_fraction")):
        parts.append(f"HQ {100 * e['hq_fraction']:.0f}%")
    elif is_scalar(e.get("fd")):
        parts.append(f"FD {e['fd']:.1f}")
    return f"{run.label}\nseed {member.seed}" + (": " + ", ".join(parts) if parts else "")


def _draw_samples(ax, dataset: str, x: np.ndarray | None) -> bool:
    """Draws one member's samples; False when they are neither 2-D points nor images."""
    if x is not None and x.ndim == 2 and x.shape[1] == 2:
        ax.scatter(x[:, 0], x[:, 1], s=1, alpha=0.4)
        if dataset in CENTERS:
            c = CENTERS[dataset]()
            ax.scatter(c[:, 0], c[:, 1], s=12, c="red", marker="x")
            lim = LIMITS[dataset]
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.tick_params(labelsize=6)
        return True
    if x is not None and x.ndim == 4:
        mosaic = np.clip(tile_images(np.asarray(x[:TILE * TILE], np.float32)), 0, 1)
        ax.imshow(mosaic.squeeze(-1) if mosaic.shape[-1] == 1 else mosaic, cmap="gray",
                  interpolation="nearest")
        ax.axis("off")
        return True
    return False


def samples_figure(dataset: str, runs: list[Run], path: str) -> str | None:
    """The final samples of each run's first member (5 runs per row); None without any."""
    cols = min(5, len(runs))
    rows = math.ceil(len(runs) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(max(3.3 * cols, 7.0), 3.6 * rows),
                             squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    drawn = 0
    for ax, run in zip(axes.ravel(), runs, strict=False):
        member = run.members[0]
        ax.axis("on")
        if _draw_samples(ax, dataset, member.samples(limit=MAX_POINTS)):
            drawn += 1
            ax.set_title(_panel_title(run, member), fontsize=8)
        else:
            ax.axis("off")
    if not drawn:
        plt.close(fig)
        return None
    fig.suptitle(f"{dataset}: final samples of each run's first member"
                 + (" (red: mode centres)" if dataset in CENTERS else ""), fontsize=10)
    return _save(fig, path)


def run_trajectory(run: Run, cache: dict[int, list[dict]]) -> dict[str, tuple]:
    """{metric: (steps, mean over the run's members)} from the eval lines of metrics.jsonl
    (non-finite values left out of the mean); ``cache``: eval lines per group."""
    per_metric: dict[str, dict[int, list[float]]] = {}
    for m in run.members:
        lines = cache.setdefault(id(m.group), m.group.eval_lines())
        for line in lines:
            if line.get("member") != m.index:
                continue
            for key, value in line.items():
                if key.startswith("eval/") and is_scalar(value):
                    per_metric.setdefault(key[5:], {}).setdefault(int(line["step"]), []).append(
                        float(value))
    out = {}
    for metric, by_step in per_metric.items():
        steps = np.array(sorted(by_step))
        means = []
        for s in steps:
            v = np.asarray(by_step[s])
            means.append(v[np.isfinite(v)].mean() if np.isfinite(v).any() else np.nan)
        out[metric] = (steps, np.asarray(means))
    return out


def trajectory_figure(dataset: str, runs: list[Run], path: str) -> str | None:
    """Eval metrics over steps, one line per run (mean over members); None without lines."""
    cache: dict[int, list[dict]] = {}
    trajectories = [run_trajectory(r, cache) for r in runs]
    present = {k for t in trajectories for k in t}
    panels = [p for p in TRAJECTORY_METRICS if p[0] in present][:MAX_PANELS]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.8), squeeze=False)
    cmap = plt.get_cmap("tab10")
    for i, (run, traj) in enumerate(zip(runs, trajectories, strict=True)):
        for ax, (key, title, scale) in zip(axes[0], panels, strict=True):
            if key in traj:
                steps, y = traj[key]
                ax.plot(steps, scale * y, "-", marker=".", color=cmap(i % 10), label=run.label)
            ax.set_title(title)
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
    if axes[0, 0].get_legend_handles_labels()[0]:
        axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"{dataset}: evaluations along training (mean over each run's seeds)",
                 fontsize=9)
    return _save(fig, path, 110)


def write_plots(by_dataset: dict[str, list[Run]], out_dir: str) -> list[str]:
    """Every plot of every dataset into ``out_dir``; returns the file names written."""
    names = []
    for dataset, runs in by_dataset.items():
        stem = file_stem(dataset)
        for fn, prefix in ((coverage_vs_quality, "coverage_vs_quality"),
                           (samples_figure, "samples"), (trajectory_figure, "trajectory")):
            name = f"{prefix}_{stem}.png"
            if fn(dataset, runs, os.path.join(out_dir, name)):
                names.append(name)
    return names
