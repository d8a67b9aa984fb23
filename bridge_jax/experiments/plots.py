"""Plots of a method sweep (:mod:`bridge_jax.experiments.sweep`).

- ``coverage_vs_quality_<dataset>.png``: modes covered against HQ %, one point per
  method (mean over seeds, error bars ± std).
- ``bridge_trajectory_<dataset>.png``: α and the metrics along training for the
  α-Bridge runs (VAE and adversarial runs as reference lines).
- ``samples_<dataset>.png``: seed-0 samples of every method side by side.

Stacked MNIST (``kind == "image"``) gets the same three plots with its own
metrics: modes of 1000 against FD-MNIST-classifier, the trajectory of α,
modes, KL and FD, and 8×8 grids of seed-0 decoder means.
"""

from __future__ import annotations

import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from bridge_jax.evaluation.mixtures import grid_centers, ring_centers  # noqa: E402

TRAJECTORY_RUNS = ("bridge_cosine", "bridge_linear", "vae", "adversarial")
CENTERS = {"ring": ring_centers, "grid": grid_centers}


def _mean_std(stat) -> tuple[float, float]:
    m, s = float(stat["mean"]), float(stat["std"])
    return (m if math.isfinite(m) else np.nan), (s if math.isfinite(s) else 0.0)


def _save(fig, path: str, dpi: int) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def _coverage_plot(dataset: str, d: dict, path: str, *, x_key: str, x_scale: float,
                   x_label: str, lower_is_better: bool) -> str:
    """Modes covered (y) against a quality metric (x), one point per run, ± std bars."""
    fig, ax = plt.subplots(figsize=(7, 5))
    cmap = plt.get_cmap("tab10")
    for i, run in enumerate(d["runs"].values()):
        q, q_s = _mean_std(run["summary"][x_key])
        mc, mc_s = _mean_std(run["summary"]["modes_covered"])
        ax.errorbar(x_scale * q, mc, xerr=x_scale * q_s, yerr=mc_s, fmt="o", capsize=3,
                    color=cmap(i % 10), label=run["label"])
    ax.set_xlabel(x_label)
    ax.set_ylabel(f"modes covered (of {d['num_modes']})")
    ax.set_ylim(0, d["num_modes"] + 0.5)
    if lower_is_better:
        ax.invert_xaxis()
    any_run = next(iter(d["runs"].values()))
    ax.set_title(f"{dataset}: coverage vs quality ({len(any_run['seeds'])} seeds, "
                 f"mean ± std)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    return _save(fig, path, 110)


def coverage_vs_quality(dataset: str, d: dict, path: str) -> str:
    return _coverage_plot(dataset, d, path, x_key="hq_fraction", x_scale=100.0,
                          x_label="high-quality samples (%)", lower_is_better=False)


def image_coverage_vs_quality(dataset: str, d: dict, path: str) -> str:
    return _coverage_plot(dataset, d, path, x_key="fd", x_scale=1.0,
                          x_label="FD-MNIST-classifier (lower is better)",
                          lower_is_better=True)


def _trajectory_plot(dataset: str, d: dict, path: str,
                     panels: list[tuple[str, str, float]]) -> str:
    """α and metrics (mean ± std over seeds) along training for the TRAJECTORY_RUNS.

    ``panels``: (metric key or "alpha", title, scale), the second panel being modes.
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(16, 3.8))
    for key in TRAJECTORY_RUNS:
        run = d["runs"].get(key)
        if run is None:
            continue
        traj = run["trajectory"]
        steps = np.array([t["step"] for t in traj])
        style = "-" if key.startswith("bridge") else ":"
        for ax, (name, title, scale) in zip(axes, panels, strict=True):
            if name == "alpha":
                y, e = np.array([t["train_alpha"] for t in traj]), np.zeros(len(traj))
            else:
                ms = [_mean_std(t["summary"][name]) for t in traj]
                y, e = scale * np.array([m for m, _ in ms]), scale * np.array([s for _, s in ms])
            ax.plot(steps, y, style, marker=".", label=run["label"])
            ax.fill_between(steps, y - e, y + e, alpha=0.15)
            ax.set_title(title)
            ax.set_xlabel("step")
    axes[1].set_ylim(0, d["num_modes"] + 0.5)
    if axes[0].get_legend_handles_labels()[0]:  # a sweep without these runs draws no lines
        axes[0].legend(fontsize=7)
    fig.suptitle(f"{dataset}: along training (α: mean over the preceding evaluation interval; "
                 "metrics: mean ± std over seeds)", fontsize=9)
    return _save(fig, path, 110)


def bridge_trajectory(dataset: str, d: dict, path: str) -> str:
    return _trajectory_plot(dataset, d, path, [
        ("alpha", "α", 1.0), ("modes_covered", "modes covered", 1.0),
        ("hq_fraction", "HQ %", 100.0), ("reverse_kl", "reverse KL", 1.0)])


def image_trajectory(dataset: str, d: dict, path: str) -> str:
    return _trajectory_plot(dataset, d, path, [
        ("alpha", "α", 1.0), ("modes_covered", "modes covered", 1.0),
        ("kl_to_uniform", "KL to uniform", 1.0), ("fd", "FD-MNIST-classifier", 1.0)])


def _per_run_grid(d: dict, cell: tuple[float, float], draw) -> tuple:
    """A figure with one axis per run (5 per row); ``draw(ax, run)`` fills each."""
    runs = list(d["runs"].values())
    cols = min(5, len(runs))
    rows = math.ceil(len(runs) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cell[0] * cols, cell[1] * rows),
                             squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, run in zip(axes.ravel(), runs, strict=False):
        draw(ax, run)
    return fig


def samples_grid(dataset: str, d: dict, path: str) -> str:
    centers = CENTERS[dataset]() if dataset in CENTERS else None
    lim = 1.5 if dataset == "ring" else 6.0

    def draw(ax, run):
        x = np.asarray(run["samples_seed0"])
        ax.axis("on")
        ax.scatter(x[:, 0], x[:, 1], s=1, alpha=0.4)
        if centers is not None:
            ax.scatter(centers[:, 0], centers[:, 1], s=12, c="red", marker="x")
        m = run["per_seed"][0]
        ax.set_title(f"{run['label']}\n{m['modes_covered']} modes, "
                     f"HQ {100 * m['hq_fraction']:.0f}%", fontsize=8)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.tick_params(labelsize=6)

    fig = _per_run_grid(d, (3.2, 3.2), draw)
    fig.suptitle(f"{dataset}: samples of seed 0 (red: mode centres)", fontsize=10)
    return _save(fig, path, 100)


def tile_images(images: np.ndarray, cols: int = 8) -> np.ndarray:
    """(N, H, W, C) in [0, 1] → one (rows·H, cols·W, C) mosaic, N ≤ rows·cols."""
    n, h, w, c = images.shape
    rows = math.ceil(n / cols)
    canvas = np.ones((rows * h, cols * w, c), np.float32)
    for i, img in enumerate(images):
        r, q = divmod(i, cols)
        canvas[r * h:(r + 1) * h, q * w:(q + 1) * w] = img
    return canvas


def image_samples_grid(dataset: str, d: dict, path: str) -> str:
    def draw(ax, run):
        mosaic = np.clip(tile_images(np.asarray(run["samples_seed0"], np.float32)), 0, 1)
        ax.imshow(mosaic.squeeze(-1) if mosaic.shape[-1] == 1 else mosaic,
                  cmap="gray", interpolation="nearest")
        m = run["per_seed"][0]
        ax.set_title(f"{run['label']}\n{m['modes_covered']} modes, FD {m['fd']:.1f}",
                     fontsize=8)

    fig = _per_run_grid(d, (3.4, 4.0), draw)  # room for the two-line titles
    fig.suptitle(f"{dataset}: decoder means of seed 0", fontsize=10)
    return _save(fig, path, 100)


def write_all(results: dict, out_dir: str) -> list[str]:
    """Writes every plot of ``results`` into ``out_dir``; returns the file names."""
    names = []
    for dataset, d in results["datasets"].items():
        plots = ((image_coverage_vs_quality, "coverage_vs_quality"),
                 (image_trajectory, "bridge_trajectory"),
                 (image_samples_grid, "samples")) if d.get("kind") == "image" else (
                (coverage_vs_quality, "coverage_vs_quality"),
                (bridge_trajectory, "bridge_trajectory"),
                (samples_grid, "samples"))
        for fn, stem in plots:
            name = f"{stem}_{dataset}.png"
            fn(dataset, d, os.path.join(out_dir, name))
            names.append(name)
    return names
