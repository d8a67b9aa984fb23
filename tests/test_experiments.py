"""The method sweep's machinery at a tiny size: vmapped seeds, tables, plots."""

from __future__ import annotations

import dataclasses
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bridge_jax import train, train_step
from bridge_jax.experiments import sweep

# Two compiled programs: the α family (VAE, fixed α, α-Bridge) and NS-GAN.
RUN_KEYS = ["vae", "fixed_0.5", "bridge_cosine", "nsgan"]


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    size = dataclasses.replace(sweep.TINY, num_steps={"ring": 4, "grid": 4}, eval_every=2)
    results = sweep.run_sweep(size, str(out), datasets=("ring",), run_keys=RUN_KEYS,
                              size_name="tiny", log=lambda *a: None)
    return out, results


def test_table_has_one_row_per_method_with_mean_std(tiny_results):
    out, results = tiny_results
    md = (out / "results.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    for key in RUN_KEYS:
        label = sweep.RUNS_BY_KEY[key].label
        mine = [r for r in rows if r.startswith(f"| {label} |")]
        assert len(mine) == 1, (label, mine)
        assert "±" in mine[0] or "∞" in mine[0]
    assert "PacGAN4" in md and "Lin" in md and "200 samples" in md
    assert "Wall time" in md
    runs = results["datasets"]["ring"]["runs"]
    assert list(runs) == RUN_KEYS
    for run in runs.values():
        assert run["seeds"] == [0, 1] and len(run["per_seed"]) == 2
        assert [t["step"] for t in run["trajectory"]] == [2, 4]


def test_values_within_valid_ranges(tiny_results):
    out, results = tiny_results
    for run in results["datasets"]["ring"]["runs"].values():
        for m in run["per_seed"]:
            assert 0 <= m["modes_covered_strict"] <= m["modes_covered"] <= 8
            assert 0.0 <= m["hq_fraction"] <= 1.0
            assert m["reverse_kl"] >= 0.0  # may be inf with no HQ sample
            assert m["num_samples"] == 200 and sum(m["mode_counts"]) <= 200
        s = run["summary"]
        assert s["hq_fraction"]["std"] >= 0 and 0 <= s["modes_covered"]["mean"] <= 8
        alphas = [t["train_alpha"] for t in run["trajectory"]]
        assert all(0.0 <= a <= 1.0 for a in alphas)
    runs = results["datasets"]["ring"]["runs"]
    assert runs["vae"]["trajectory"][-1]["train_alpha"] == pytest.approx(1.0)
    assert runs["fixed_0.5"]["trajectory"][-1]["train_alpha"] == pytest.approx(0.5)
    bridge = [t["train_alpha"] for t in runs["bridge_cosine"]["trajectory"]]
    assert bridge[0] > bridge[-1]  # α goes down along the α-Bridge
    data = json.loads((out / "results.json").read_text())  # valid JSON, inf as a string
    assert set(data["datasets"]["ring"]["runs"]) == set(RUN_KEYS)


def test_plots_written(tiny_results):
    out, _ = tiny_results
    for stem in ("coverage_vs_quality", "bridge_trajectory", "samples"):
        path = out / f"{stem}_ring.png"
        assert path.exists() and os.path.getsize(path) > 1000


def test_alpha_table_matches_the_configured_schedule():
    size = sweep.TINY
    for key, first, last in (("vae", 1.0, 1.0), ("adversarial", 0.0, 0.0),
                             ("bridge_linear", 1.0, 0.0), ("fixed_0.25", 0.25, 0.25)):
        cfg = sweep.run_config("ring", sweep.RUNS_BY_KEY[key], size)
        table = sweep.alpha_table(cfg)
        assert table.shape == (size.num_steps["ring"],)
        assert table[0] == pytest.approx(first)
        assert table[-1] == pytest.approx(last, abs=1 / size.num_steps["ring"] + 1e-6)


def test_vmapped_step_matches_single_seed_step():
    """Seed s of a vmapped (state, batch) step equals the plain step run on seed s alone."""
    size = sweep.TINY
    run = sweep.RUNS_BY_KEY["bridge_cosine"]
    cfgs = [sweep.run_config("ring", run, size, seed=s) for s in (0, 1)]
    datasets = [train.make_dataset(c) for c in cfgs]
    shape = datasets[0].example_shape
    built = [train.build(c, shape) for c in cfgs]
    models = built[0][0]
    states = [st.replace(gen_tx=built[0][1].gen_tx, critic_tx=built[0][1].critic_tx)
              for _, st in built]
    step = train_step.make_train_step(cfgs[0], models, shape)
    stacked = jax.tree.map(lambda *a: jnp.stack(a), *states)
    batches = jnp.stack([d.get_batch(0) for d in datasets])
    v_state, v_metrics = jax.jit(jax.vmap(step))(stacked, batches)
    for s in (0, 1):
        one_state, one_metrics = jax.jit(step)(states[s], datasets[s].get_batch(0))
        np.testing.assert_allclose(v_metrics["generator_loss"][s],
                                   one_metrics["generator_loss"], rtol=1e-4, atol=1e-5)
        for a, b in zip(jax.tree.leaves(v_state.params), jax.tree.leaves(one_state.params),
                        strict=True):
            np.testing.assert_allclose(a[s], b, rtol=1e-4, atol=1e-5)
    assert not math.isclose(float(v_metrics["generator_loss"][0]),
                            float(v_metrics["generator_loss"][1]))
