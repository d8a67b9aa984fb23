"""The method sweep's machinery at a tiny size: vmapped seeds, tables, plots."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bridge_jax import train, train_step
from bridge_jax.experiments import sweep
from tests.train_helpers import PoisonedDataset, load_config

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


def test_data_reference_row_scores_the_true_mixture(tiny_results):
    """The table's first row is the mixture's own samples under the same protocol: every
    mode, and HQ near its expectation 1 − e^(−9/2) = 98.9% (2-D Gaussian within 3 std)."""
    out, results = tiny_results
    ref = results["datasets"]["ring"]["data_reference"]
    assert ref["modes_covered"]["mean"] == 8 and ref["modes_covered_strict"]["mean"] == 8
    assert abs(ref["hq_fraction"]["mean"] - (1 - math.exp(-4.5))) < 0.02  # 200 samples × 2
    assert 0 <= ref["reverse_kl"]["mean"] < 0.1
    rows = [line for line in (out / "results.md").read_text().splitlines()
            if line.startswith("| ")]
    assert rows[1].startswith(f"| *{sweep.DATA_REFERENCE_LABEL}* | 8.00 ± 0.00 | 8.00 ± 0.00 |")


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


# --------------------------------------------------------------------------- config overrides


def test_set_field_casts_to_the_field_type_and_rejects_unknown_fields():
    size = dataclasses.replace(sweep.TINY, overrides=sweep.parse_overrides(
        ["critic.steps=3", "alpha.transition_steps=2", "generator.lr_schedule=cosine",
         "alpha.self_normalize=true"]))
    c = sweep.run_config("ring", sweep.RUNS_BY_KEY["bridge_cosine"], size)
    assert c.critic.steps == 3 and isinstance(c.critic.steps, int)
    assert c.alpha.transition_steps == 2 and c.generator.lr_schedule == "cosine"
    assert c.alpha.self_normalize is True
    table = sweep.alpha_table(c)  # cosine 1→0 over 2 steps, then held at 0
    np.testing.assert_allclose(table, [1.0, 0.5, 0.0, 0.0], atol=1e-6)
    # dataset_overrides reach their dataset's runs only; command-line overrides come after.
    size = dataclasses.replace(size, dataset_overrides={
        "stacked_mnist": (("critic.gradient_penalty", 2.0), ("critic.steps", 5)),
        "grid": (("critic.gradient_penalty", 0.5),)})
    ring = sweep.run_config("ring", sweep.RUNS_BY_KEY["vae"], size)
    grid = sweep.run_config("grid", sweep.RUNS_BY_KEY["vae"], size)
    image = sweep.run_config("stacked_mnist", sweep.RUNS_BY_KEY["vae"], size)
    assert ring.critic.gradient_penalty == 0.0 and image.critic.gradient_penalty == 2.0
    assert grid.critic.gradient_penalty == 0.5
    assert ring.critic.steps == grid.critic.steps == image.critic.steps == 3
    with pytest.raises(sweep.configuration.ConfigError, match="critic.stepz"):
        sweep.set_field(c, "critic.stepz", "1")
    with pytest.raises(sweep.configuration.ConfigError, match="is not a int"):
        sweep.set_field(c, "critic.steps", "two")
    with pytest.raises(sweep.configuration.ConfigError, match="field=value"):
        sweep.parse_overrides(["critic.steps"])
    with pytest.raises(SystemExit):  # the CLI names the bad override and exits 2
        sweep.main(["--tiny", "--datasets", "ring", "--set", "nope=1", "--out", "/nonexistent"])


# --------------------------------------------------------------------------- Stacked MNIST


@pytest.fixture(scope="module")
def cheap_classifier_cache(tmp_path_factory):
    """A classifier trained for 250 steps, cached where the sweep looks for the default one."""
    from bridge_jax.evaluation import classifier as clf

    cache = tmp_path_factory.mktemp("classifier")
    images, labels = clf.load_mnist_digits()
    params, accuracy = clf.train_digit_classifier(images, labels, steps=250, batch_size=64,
                                                  seed=0)
    clf.save_classifier(clf.cache_path(cache, steps=clf.DEFAULT_STEPS, seed=0), params,
                        accuracy)
    return str(cache), params, accuracy


def test_image_metrics_real_digits_vs_noise(cheap_classifier_cache):
    from bridge_jax import data
    from bridge_jax.experiments import stacked_mnist as sm

    _, params, _ = cheap_classifier_cache
    source = data.make_dataset("stacked_mnist", seed=0, global_batch_size=8)
    real_a, _ = source.eval_arrays(3000, seed=0)
    real_b, _ = source.eval_arrays(1000, seed=1)
    feats = sm.channel_features(params, real_a)
    assert feats.shape[0] == 3 * 3000 and feats.ndim == 2
    real = sm.image_metrics(real_b, params, feats)
    noise = sm.image_metrics(np.random.default_rng(0).uniform(size=real_b.shape)
                             .astype(np.float32), params, feats)
    # 1000 uniform triples hit 1000·(1 − e^−1) ≈ 632 modes; classifier errors add a few.
    assert 560 <= real["modes_covered"] <= 720
    assert real["kl_to_uniform"] < 0.6  # finite-sample KL of 1000 draws ≈ 0.45
    assert real["fd"] < 0.1 * noise["fd"]
    assert noise["modes_covered"] < 100 and noise["kl_to_uniform"] > 3.0


def test_gradient_probe_digit_balance_on_stacked_mnist(cheap_classifier_cache):
    from bridge_jax import data
    from bridge_jax.evaluation import stacked_mnist as sm_eval
    from bridge_jax.experiments import gradient_probe

    cache, params, _ = cheap_classifier_cache
    records = list(gradient_probe.probe_run(
        "stacked_mnist", "bridge_cosine", 2, every=2, eval_every=2, eval_samples=100,
        classifier_cache=cache, size=sweep.TINY, digit_balance=300))
    b = records[-1]["digit_balance"]
    assert records[-1]["step"] == 2
    for key in ("samples", "latent_nearest", "reconstructions", "posterior_samples", "real"):
        assert len(b[key]) == 10 and sum(b[key]) == pytest.approx(10.0)
    # The real images are the held-out eval stream (seed 2), read by the sweep's classifier.
    real, labels = data.make_dataset("stacked_mnist", seed=0,
                                     global_batch_size=8).eval_arrays(300, seed=2)
    np.testing.assert_allclose(
        b["real"], sm_eval.relative_digit_shares(sm_eval.predict_triples(real, params)))
    # Reconstruction accuracy is the confusion matrix's diagonal weighted by the true shares.
    true_shares = sm_eval.relative_digit_shares(sm_eval.digits_of_labels(labels)) / 10
    assert b["reconstruction_accuracy"] == pytest.approx(
        float(np.diag(np.array(b["reconstruction_confusion"])) @ true_shares))
    with pytest.raises(sweep.configuration.ConfigError, match="--digit-balance needs"):
        next(gradient_probe.probe_run("ring", "vae", 1, size=sweep.TINY, digit_balance=10))


def test_tiny_stacked_mnist_sweep(tmp_path, cheap_classifier_cache):
    cache, _, accuracy = cheap_classifier_cache
    keys = ["vae", "bridge_cosine", "nsgan"]
    results = sweep.run_sweep(sweep.TINY, str(tmp_path), datasets=("stacked_mnist",),
                              run_keys=keys, size_name="tiny", classifier_cache=cache,
                              log=lambda *a: None)
    d = results["datasets"]["stacked_mnist"]
    assert d["kind"] == "image" and d["num_modes"] == 1000 and list(d["runs"]) == keys
    for run in d["runs"].values():
        assert run["seeds"] == [0, 1] and [t["step"] for t in run["trajectory"]] == [2, 4]
        assert run["classifier_accuracy"] == pytest.approx(accuracy)
        assert np.asarray(run["samples_seed0"]).shape == (64, 28, 28, 3)
        assert run["nonfinite_updates"] == [0, 0] and run["first_nonfinite"] == [None, None]
        for m in run["per_seed"]:
            assert m["num_samples"] == 300
            assert 1 <= m["modes_covered"] <= 300
            assert 0.0 <= m["kl_to_uniform"] <= math.log(1000) + 1e-9 and m["fd"] > 0
    alphas = [t["train_alpha"] for t in d["runs"]["bridge_cosine"]["trajectory"]]
    assert alphas[0] > alphas[-1]
    ref = d["data_reference"]  # 300 real images scored like a run's samples
    assert ref["fd"]["mean"] < 0.1 * min(r["summary"]["fd"]["mean"] for r in d["runs"].values())
    assert 200 <= ref["modes_covered"]["mean"] <= 300  # 300 draws of 1000 triples: ~259
    md = (tmp_path / "results.md").read_text()
    assert f"| *{sweep.DATA_REFERENCE_LABEL}* | {ref['modes_covered']['mean']:.1f} ± 0.0 |" in md
    assert "PacDCGAN2" in md and "FD-MNIST-classifier" in md and "300 decoder means" in md
    assert "non-finite update:" not in md  # the note appears only when a member had one
    split = d["data_reference_split"]  # real triples: near-uniform digits, independent channels
    assert max(split["kl_channel_marginals"]) < 0.1 and 0 <= split["kl_dependence"]
    for run in d["runs"].values():
        for m in run["per_seed"]:
            assert sum(m["kl_channel_marginals"]) + m["kl_dependence"] == pytest.approx(
                m["kl_to_uniform"], rel=1e-9)
    split_line = next(line for line in md.splitlines() if line.startswith("KL to uniform split"))
    vae = d["runs"]["vae"]["per_seed"]
    assert (f"VAE (α≡1) {np.mean([sum(m['kl_channel_marginals']) for m in vae]):.3f} + "
            f"{np.mean([m['kl_dependence'] for m in vae]):.3f}") in split_line
    assert split_line.count(" + ") == 4  # the data reference and the three runs
    for label in ("VAE (α≡1)", "NS-GAN", "α-Bridge 1→0 (cosine)"):
        assert sum(line.startswith(f"| {label} |") for line in md.splitlines()) == 1
    for stem in ("coverage_vs_quality", "bridge_trajectory", "samples"):
        assert os.path.getsize(tmp_path / f"{stem}_stacked_mnist.png") > 1000
    json.loads((tmp_path / "results.json").read_text())


def test_render_rewrites_the_same_markdown_and_plots_from_json(tiny_results):
    out, results = tiny_results
    before = (out / "results.md").read_text()
    (out / "results.md").write_text("stale")
    samples_png = out / "samples_ring.png"
    samples_png.unlink()
    assert sweep.render(str(out)) == before == (out / "results.md").read_text()
    assert samples_png.stat().st_size > 1000  # redrawn from samples_seed0.npz
    with np.load(out / sweep.SAMPLES_FILE) as saved:
        np.testing.assert_allclose(saved["ring.vae"],
                                   results["datasets"]["ring"]["runs"]["vae"]["samples_seed0"],
                                   rtol=1e-3, atol=1e-3)  # float16
    (out / sweep.SAMPLES_FILE).unlink()  # a sweep written before the samples were kept
    (out / "results.md").write_text("stale")
    assert sweep.render(str(out)) == before
    # ... and one written before the data reference rows: render computes the same row.
    saved = json.loads((out / "results.json").read_text())
    del saved["datasets"]["ring"]["data_reference"]
    (out / "results.json").write_text(json.dumps(saved))
    assert sweep.render(str(out), log=lambda *a: None) == before
    assert "data_reference" in json.loads((out / "results.json").read_text())["datasets"]["ring"]


def test_sweep_records_each_members_first_nonfinite_update(tmp_path, monkeypatch):
    """A NaN batch at step 2 for seed 1 only: that member (of every run in the group) stops
    there under the default policy and the results name the step and the quantities; the
    other seed trains on."""
    bad_seed, bad_step = 1, 2
    real = train.make_dataset
    monkeypatch.setattr(train, "make_dataset", lambda config, *, seed=None: (
        PoisonedDataset(real(config, seed=seed), [bad_step]) if seed == bad_seed
        else real(config, seed=seed)))
    size = dataclasses.replace(sweep.TINY, num_steps={"ring": 4}, eval_every=2)
    results = sweep.run_sweep(size, str(tmp_path), datasets=("ring",),
                              run_keys=["vae", "bridge_cosine"], size_name="tiny",
                              log=lambda *a: None)
    for run in results["datasets"]["ring"]["runs"].values():
        assert run["nonfinite_updates"] == [0, 1]
        assert run["first_nonfinite"][0] is None
        event = run["first_nonfinite"][bad_seed]
        assert event["step"] == bad_step and "critic_loss" in event["what"]
    text = (tmp_path / "results.md").read_text()
    assert (f"Stopped by a non-finite update: VAE (α≡1) seed 1 at step {bad_step} (critic_loss"
            in text)
    assert "α-Bridge 1→0 (cosine) seed 1 at step 2" in text


# --------------------------------------------------------------------------- gradient probe


def test_gradient_probe_separates_the_two_terms():
    from bridge_jax.experiments import gradient_probe

    # α ≡ 1: the bridge loss is the negative ELBO, w ≡ 1 and the bound term has weight 0.
    vae = list(gradient_probe.probe_run("ring", "vae", 2, every=1, size=sweep.TINY))
    assert [r["step"] for r in vae] == [0, 1]
    for r in vae:
        assert r["alpha"] == 1.0 and r["weight_mean"] == pytest.approx(1.0)
        assert r["weight_ess"] == pytest.approx(1.0)
        assert r["grad_norm_bound_term"] == 0.0
        assert r["grad_norm_elbo_term"] == pytest.approx(r["grad_norm_negative_elbo"],
                                                         rel=1e-6)
    # α = 0.5: λ/α = 0.5 on the weighted ELBO, both terms carry gradient.
    mid = list(gradient_probe.probe_run("ring", "fixed_0.5", 1, every=1, size=sweep.TINY))[0]
    assert mid["alpha"] == 0.5 and mid["grad_norm_bound_term"] > 0
    assert 0 < mid["weight_ess"] <= 1 and mid["grad_norm_elbo_term"] > 0
    with pytest.raises(sweep.configuration.ConfigError, match="no ELBO term"):
        next(gradient_probe.probe_run("ring", "nsgan", 1, size=sweep.TINY))
    with pytest.raises(SystemExit):
        gradient_probe.main(["--run", "nope"])


def test_markdown_states_the_schedule_and_overrides_the_runs_had():
    size = dataclasses.asdict(sweep.FULL)
    assert sweep._transition_text(size, "ring").startswith("α=0 at 0.167 of the training")
    assert sweep._transition_text(size, "stacked_mnist") == (
        "α=0.25 at 0.167 of the training steps, then hold α=0.25")
    assert "`critic.gradient_penalty=1.0`" in sweep._overrides_text(size, "stacked_mnist")
    size["dataset_overrides"] = {"ring": [["alpha.transition_steps", 600]]}  # as JSON has it
    assert sweep._per_dataset_text(sweep._transition_text, size, ["ring", "grid"]) == (
        "ring: α=0 at step 600, then hold α=0; "
        "grid: α=0 at 0.167 of the training steps, then hold α=0")
    assert sweep._per_dataset_text(sweep._overrides_text, size, ["grid"]) == "none"
    assert sweep._nonfinite_column(size, "ring").startswith("seeds stopped by")  # the default
    size["dataset_overrides"]["grid"] = [["nonfinite_policy", "skip"]]
    assert sweep._nonfinite_column(size, "grid") == "seeds with skipped non-finite updates"
    size["overrides"] = (("alpha.transition_steps", "300"),)  # --set comes last
    assert sweep._transition_text(size, "ring") == "α=0 at step 300, then hold α=0"
    # An overridden α_end is stated, and names the α-Bridge rows by the path they had.
    ended = {**size, "overrides": (("alpha.end", 0.25), ("alpha.transition_steps", 250))}
    assert sweep._transition_text(ended, "stacked_mnist") == (
        "α=0.25 at step 250, then hold α=0.25")
    def runs():
        return {"bridge_cosine": {"label": "α-Bridge 1→0 (cosine)",
                                  "alpha": {"schedule": "cosine", "start": 1.0, "end": 0.0}},
                "fixed_0.5": {"label": "fixed α=0.5",
                              "alpha": {"schedule": "constant", "start": 0.5, "end": 0.5}}}

    labelled = {"size": ended, "datasets": {"ring": {"runs": runs()}}}
    sweep.label_runs_by_their_alpha(labelled)
    bridge, fixed = labelled["datasets"]["ring"]["runs"].values()
    assert bridge["label"] == "α-Bridge 1→0.25 (cosine)" and bridge["alpha"]["end"] == 0.25
    assert fixed["label"] == "fixed α=0.5" and fixed["alpha"]["end"] == 0.5
    unchanged = {"size": size, "datasets": {"ring": {"runs": runs()}}}
    sweep.label_runs_by_their_alpha(unchanged)
    assert unchanged["datasets"]["ring"]["runs"] == runs()
    # The protocol lines state the width the runs had, --set included.
    assert "ring: 128×3" in "\n".join(sweep.mixture_protocol_markdown(
        {"size": size, "datasets": {"ring": {}}}))
    size["overrides"] = (("model.width", 64), ("model.latent_dim", 16))
    assert "ring: 64×3" in "\n".join(sweep.mixture_protocol_markdown(
        {"size": size, "datasets": {"ring": {}}}))
    image = {"runs": {"vae": {"seeds": [0], "num_steps": 10, "label": "VAE",
                              "per_seed": [{}], "nonfinite_updates": [0],
                              "summary": {k: {"mean": 0.0, "std": 0.0, "num_nonfinite": 0}
                                          for k in ("modes_covered", "kl_to_uniform", "fd")}}},
             "num_modes": 1000, "wall_s": 60.0}
    assert "width 64, latent dim 16," in sweep.image_markdown("stacked_mnist", image, size)[2]
    # A results.json written before dataset_overrides existed.
    legacy = {"image_overrides": [["alpha.transition_steps", -1]], "transition_fraction": 0.5}
    assert sweep._transition_text(legacy, "stacked_mnist") == "α=0 at the last step"
    assert sweep._transition_text(legacy, "ring").startswith("α=0 at 0.5 of the training")


def _field(config, dotted: str):
    """config["a"]["b"] for "a.b"."""
    return functools.reduce(lambda node, part: node[part], dotted.split("."), config)


@pytest.mark.parametrize("dataset", ["ring", "grid"])
def test_mixture_configs_are_the_full_sweeps_alpha_bridge(dataset):
    # configs/ring.py and configs/grid.py promise the full sweep's settings.
    swept = sweep.run_config(dataset, sweep.RUNS_BY_KEY["bridge_cosine"], sweep.FULL)
    config = sweep.configuration.mixture_config(dataset)
    for field in ("model.width", "model.depth", "model.latent_dim", "model.init_log_scale",
                  "num_steps", "batch_size", "alpha.schedule", "alpha.transition_steps",
                  "generator.learning_rate", "critic.learning_rate",
                  "generator.lr_schedule", "critic.lr_schedule", "critic.steps",
                  "critic.gradient_penalty", "generator.scale_lr_multiplier"):
        a, b = _field(swept, field), _field(config, field)
        assert a == pytest.approx(b) if isinstance(a, float) else a == b, field
    assert config.critic.gradient_penalty > 0


def test_stacked_mnist_config_is_the_full_sweeps_alpha_bridge():
    # configs/stacked_mnist.py (5,000 steps) promises the sweep's image settings: the
    # same model, penalty and α path 1 → 0.25, reached at the same fraction of training.
    swept = sweep.run_config("stacked_mnist", sweep.RUNS_BY_KEY["bridge_cosine"], sweep.FULL)
    config = load_config("stacked_mnist")
    for field in ("model.arch", "model.width", "model.latent_dim", "model.likelihood",
                  "batch_size", "alpha.schedule", "alpha.start", "alpha.end",
                  "alpha.self_normalize", "generator.learning_rate", "critic.learning_rate",
                  "critic.steps", "critic.gradient_penalty"):
        assert _field(swept, field) == _field(config, field), field
    assert (swept.alpha.end, swept.critic.gradient_penalty) == (0.25, 1.0)
    assert swept.alpha.transition_steps == 250 and swept.num_steps == 1500
    assert config.alpha.transition_steps == 833 and config.num_steps == 5000
    alpha = sweep.configuration.effective_alpha_schedule(config)
    assert [float(alpha(t)) for t in (0, 833, 4999)] == pytest.approx([1.0, 0.25, 0.25])
    # Every other method keeps its own α: a constant schedule ignores alpha.end.
    for key, value in (("vae", 1.0), ("adversarial", 0.0), ("fixed_0.5", 0.5)):
        c = sweep.run_config("stacked_mnist", sweep.RUNS_BY_KEY[key], sweep.FULL)
        assert float(sweep.configuration.effective_alpha_schedule(c)(1000)) == value, key
