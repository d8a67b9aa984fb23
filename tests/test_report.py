"""bridge_jax.report: tables, protocol lines and plots from workdirs written as the trainer
writes them (config.json, members.json, summary.json, metrics.jsonl, samples.npy, and
sweep.json for a sweep), with constructed numbers whose mean ± std the table must show."""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from bridge_jax import report, report_plots
from bridge_jax.report_data import ReportError, load_workdirs, runs_by_dataset

# --- the fixture's numbers ------------------------------------------------------------

SEEDS = (0, 1, 2)
RING_EVALS = {  # run → metric → per-seed values (inf: a seed with no HQ sample)
    "vae": {"modes_covered": [8, 8, 7], "modes_covered_strict": [8, 7, 7],
            "hq_fraction": [0.60, 0.62, 0.67], "reverse_kl": [0.01, 0.02, 0.06]},
    "bridge_cosine": {"modes_covered": [8, 6, 7], "modes_covered_strict": [8, 5, 6],
                      "hq_fraction": [0.90, 0.95, 0.52],
                      "reverse_kl": [0.02, 0.06, math.inf]},
    "nsgan": {"modes_covered": [5, 4, 6], "modes_covered_strict": [3, 2, 4],
              "hq_fraction": [0.80, 0.85, 0.70], "reverse_kl": [0.30, 0.50, 0.40]},
}
RING_REFERENCE = {"modes_covered": 8, "modes_covered_strict": 8, "hq_fraction": 0.989,
                  "reverse_kl": 0.001, "num_modes": 8, "mode_counts": [312] * 8}
LABELS = {"vae": "VAE (α≡1)", "bridge_cosine": "α-Bridge 1→0 (cosine)", "nsgan": "NS-GAN",
          "hybrid": "VAE-GAN hybrid"}
STACKED_EVALS = {"modes_covered": 991, "kl_to_uniform": 0.56, "fd": 419.41,
                 "kl_channel_marginals": [0.2, 0.1, 0.198], "kl_dependence": 0.058,
                 "num_samples": 2000}
STACKED_REFERENCE = {"modes_covered": 1000, "kl_to_uniform": 0.02, "fd": 0.1,
                     "kl_channel_marginals": [0.0005, 0.0003, 0.0002],
                     "kl_dependence": 0.019, "classifier_accuracy": 0.982}


def base_config(**fields) -> dict:
    """A resolved config as the trainer stores it (nested); ``fields``: "a.b" → value."""
    c = {"seed": 0, "method": "bridge", "num_steps": 600, "batch_size": 64,
         "nonfinite_policy": "stop",
         "data": {"name": "ring", "tfds_name": ""},
         "model": {"arch": "mlp", "width": 64, "depth": 2, "latent_dim": 2,
                   "likelihood": "gaussian", "init_log_scale": math.log(0.03)},
         "alpha": {"schedule": "cosine", "start": 1.0, "end": 0.0, "transition_begin": 0,
                   "transition_steps": 100, "num_stages": 4, "decay_rate": 0.01},
         "critic": {"gradient_penalty": 0.001, "learning_rate": 0.001, "b1": 0.5,
                    "b2": 0.999, "clip_norm": 10.0, "lr_schedule": "cosine",
                    "final_lr_fraction": 0.0, "lr_decay_steps": -1, "steps": 1,
                    "loss": "logistic"},
         "generator": {"learning_rate": 0.001, "b1": 0.5, "b2": 0.999, "clip_norm": 10.0,
                       "lr_schedule": "cosine", "final_lr_fraction": 0.0,
                       "lr_decay_steps": -1, "scale_lr_multiplier": 10.0},
         "eval": {"evaluators": "mixture", "every": 300, "num_samples": 2500},
         "sweep": {"name": "ring", "num_seeds": 1, "runs": []}}
    for dotted, value in fields.items():
        *parents, leaf = dotted.split(".")
        node = c
        for p in parents:
            node = node[p]
        node[leaf] = value
    return c


RUN_FIELDS = {
    "vae": {"alpha.schedule": "constant", "alpha.start": 1.0, "alpha.end": 1.0},
    "bridge_cosine": {},
    "nsgan": {"method": "nsgan"},
    "hybrid": {"method": "hybrid"},
}


def _json_value(v):
    """Non-finite floats as the trainer stores them: "inf", "-inf", "nan"."""
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


def write_group(path, runs: list[str], *, evals=None, reference=None, complete=True,
                nonfinite=None, wall=100.0, samples_shape=(100, 2), config_fields=None):
    """One group directory: members run-major, seeds ascending, as the trainer writes."""
    os.makedirs(path, exist_ok=True)
    config_fields = config_fields or {}
    seeds = SEEDS
    members, per_member = [], []
    for run in runs:
        for s in seeds:
            cfg = base_config(**config_fields, **RUN_FIELDS.get(run, {}), seed=s)
            members.append({"index": len(members), "run": run, "label": LABELS.get(run, run),
                            "seed": s, "config": cfg})
            if evals is not None:
                per_member.append({k: _json_value(v[s]) for k, v in evals[run].items()}
                                  | {"num_modes": 8, "mode_counts": [1] * 8})
    n = len(members)
    group_cfg = copy.deepcopy(members[0]["config"])
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(group_cfg, f)
    with open(os.path.join(path, "members.json"), "w") as f:
        json.dump(members, f)
    events = [{"count": 0, "first_step": None, "what": None} for _ in range(n)]
    for index, event in (nonfinite or {}).items():
        events[index] = event
    summary = {"complete": complete, "preempted": not complete, "num_steps": 600,
               "steps_run": 600 if complete else 300, "wall_time_s": wall,
               "total_wall_time_s": wall, "num_members": n, "evals_step": 600,
               "evals": per_member if n > 1 else per_member[0],
               "evals_reference": reference or RING_REFERENCE, "nonfinite": events}
    if not complete:
        summary["evals"] = []
    with open(os.path.join(path, "summary.json"), "w") as f:
        json.dump(summary, f)
    write_metrics(path, members, per_member)
    rng = np.random.default_rng(0)
    np.save(os.path.join(path, "samples.npy"),
            rng.uniform(-1, 1, (n, *samples_shape)).astype(np.float32))
    return members


def write_metrics(path, members, per_member):
    """Training lines (no "member") and evaluation lines at steps 300 and 600; at 300
    every metric is half its final value."""
    with open(os.path.join(path, "metrics.jsonl"), "w") as f:
        for step in (300, 600):
            f.write(json.dumps({"step": step, "alpha": 0.5, "generator_loss": 1.0}) + "\n")
            for m, ev in zip(members, per_member, strict=False):
                scale = 0.5 if step == 300 else 1.0
                line = {"step": step, "member": m["index"]}
                for k, v in ev.items():
                    if isinstance(v, (int, float)):
                        line[f"eval/{k}"] = v * scale
                    elif isinstance(v, str):
                        line[f"eval/{k}"] = v
                f.write(json.dumps(line) + "\n")


def write_sweep(root) -> str:
    """A ring sweep: g00 (vae, bridge_cosine × 3 seeds; seed 2 of the bridge stopped by a
    non-finite update), g01 (nsgan × 3), g02 (hybrid, preempted)."""
    sweep = os.path.join(root, "ring_sweep")
    write_group(os.path.join(sweep, "g00_vae"), ["vae", "bridge_cosine"], evals=RING_EVALS,
                nonfinite={5: {"count": 1, "first_step": 450, "what": "generator_loss"}},
                wall=100.0)
    write_group(os.path.join(sweep, "g01_nsgan"), ["nsgan"], evals=RING_EVALS, wall=50.0)
    write_group(os.path.join(sweep, "g02_hybrid"), ["hybrid"], complete=False, wall=30.0)
    record = {"name": "ring", "description": "every method on the ring", "num_seeds": 3,
              "runs": [{"name": r, "label": LABELS[r]}
                       for r in ("vae", "bridge_cosine", "nsgan", "hybrid")],
              "groups": [{"dir": "g00_vae", "runs": ["vae", "bridge_cosine"], "num_members": 6},
                         {"dir": "g01_nsgan", "runs": ["nsgan"], "num_members": 3},
                         {"dir": "g02_hybrid", "runs": ["hybrid"], "num_members": 3}]}
    with open(os.path.join(sweep, "sweep.json"), "w") as f:
        json.dump(record, f)
    return sweep


def write_plain_stacked(root) -> str:
    """A plain single-member Stacked MNIST run (no sweep.json)."""
    path = os.path.join(root, "stacked_plain")
    os.makedirs(path)
    cfg = base_config(**{"data.name": "stacked_mnist", "model.arch": "dcgan",
                         "model.likelihood": "bernoulli", "model.latent_dim": 32,
                         "eval.evaluators": "stacked_mnist,fd"})
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(cfg, f)
    with open(os.path.join(path, "members.json"), "w") as f:
        json.dump([{"index": 0, "run": "bridge", "label": "α-Bridge 1→0.25 (cosine)",
                    "seed": 0, "config": cfg}], f)
    with open(os.path.join(path, "summary.json"), "w") as f:
        json.dump({"complete": True, "preempted": False, "num_steps": 600, "steps_run": 600,
                   "wall_time_s": 20.0, "total_wall_time_s": 20.0, "num_members": 1,
                   "evals_step": 600, "evals": STACKED_EVALS,
                   "evals_reference": STACKED_REFERENCE,
                   "nonfinite": [{"count": 0, "first_step": None, "what": None}]}, f)
    write_metrics(path, [{"index": 0}], [STACKED_EVALS])
    np.save(os.path.join(path, "samples.npy"),
            np.random.default_rng(1).uniform(0, 1, (16, 8, 8, 3)).astype(np.float32))
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("workdirs"))
    sweep, plain = write_sweep(root), write_plain_stacked(root)
    out = os.path.join(root, "out")
    text = report.write_report([sweep, plain], out)
    return {"root": root, "sweep": sweep, "plain": plain, "out": out, "text": text}


def _pm(values, scale=1.0, digits=2) -> str:
    v = np.asarray(values, np.float64)
    fin = v[np.isfinite(v)]
    s = f"{fin.mean() * scale:.{digits}f} ± {fin.std() * scale:.{digits}f}"
    return s + (f" (+{v.size - fin.size} ∞)" if v.size > fin.size else "")


def _row(text: str, label: str) -> list[str]:
    """The cells of the table row whose first cell is ``label``."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == label:
            return cells
    raise AssertionError(f"no row {label!r}")


# --- tests ------------------------------------------------------------------------------


def test_run_rows_are_mean_and_population_std_of_the_seeds(built):
    text = built["text"]
    for run in ("vae", "bridge_cosine", "nsgan"):
        e = RING_EVALS[run]
        cells = _row(text, LABELS[run])
        assert cells[2:6] == [_pm(e["modes_covered"]), _pm(e["modes_covered_strict"]),
                              _pm(e["hq_fraction"], 100, 1), _pm(e["reverse_kl"])]
    # the infinite reverse KL of seed 2 is left out of the mean and counted
    assert _row(text, LABELS["bridge_cosine"])[5] == "0.04 ± 0.02 (+1 ∞)"
    # runs in sweep order
    positions = [text.index(f"| {LABELS[r]} |") for r in ("vae", "bridge_cosine", "nsgan")]
    assert positions == sorted(positions)


def test_reference_row_and_header(built):
    text = built["text"]
    ring = text[text.index("## ring"):text.index("## stacked_mnist")]
    assert "## ring (8 modes) — 3 seed(s), 600 steps, wall 2.5 min" in ring
    assert ("| method | setting | modes covered (of 8) | strict modes | HQ % | reverse KL | "
            "seeds stopped by a non-finite update (row: the model at that step) |") in ring
    assert _row(ring, "*training data (reference)*") == [
        "*training data (reference)*", "", "8.00 ± 0.00", "8.00 ± 0.00", "98.9 ± 0.0",
        "0.00 ± 0.00", "—"]


def test_nonfinite_column_and_line(built):
    text = built["text"]
    assert [_row(text, LABELS[r])[-1] for r in ("vae", "bridge_cosine", "nsgan")] == [
        "0", "1", "0"]
    assert ("Stopped by a non-finite update: α-Bridge 1→0 (cosine) seed 2 at step 450 "
            "(generator_loss).") in text


def test_protocol_states_shared_settings_once_and_differences_per_run(built):
    text = built["text"]
    ring = text[text.index("## ring"):text.index("## stacked_mnist")]
    assert "- Training: 600 steps, batch 64, method per run, non-finite policy stop; " \
           "seeds 0, 1, 2 (3 per run)." in ring
    assert ring.count("width×depth 64×2") == 1
    assert "latent dim 2, gaussian likelihood, decoder σ init 0.03." in ring
    assert ring.count("R1 penalty γ = 0.001") == 1
    assert ("Adam lr 0.001 (β1 0.5, β2 0.999), cosine lr schedule (decaying to 0 × lr at "
            "the last step), gradient clipping 10") in ring
    assert "decoder log σ lr × 10." in ring
    assert "- α path: per run." in ring
    assert "mixture every 300 steps and after the last, on 2,500 samples per member" in ring
    assert _row(ring, LABELS["vae"])[1] == "`method=bridge`, α≡1"
    assert _row(ring, LABELS["bridge_cosine"])[1] == (
        "`method=bridge`, α cosine 1→0, reaching α=0 at step 100, then held")
    assert _row(ring, LABELS["nsgan"])[1] == "`method=nsgan`, α unused"


def test_stacked_mnist_section(built):
    text = built["text"]
    stacked = text[text.index("## stacked_mnist"):]
    assert "## stacked_mnist (1000 modes) — 1 seed(s), 600 steps, wall 0.3 min" in stacked
    assert "| method | modes (of 1000) | KL to uniform | FD-MNIST-classifier |" in stacked
    assert _row(stacked, "α-Bridge 1→0.25 (cosine)")[1:] == [
        "991.0", "0.56", "419.41", "0"]  # one seed: the value, no "± 0.0"
    assert _row(stacked, "*training data (reference)*")[1:4] == [
        "1000.0", "0.02", "0.10"]
    assert ("(mean over seeds): *training data (reference)* 0.001 + 0.019; "
            "α-Bridge 1→0.25 (cosine) 0.498 + 0.058.") in stacked
    assert "held-out accuracy 0.982" in stacked
    assert "- Evaluation: stacked_mnist, fd every 300 steps" in stacked
    assert "- α path: α cosine 1→0, reaching α=0 at step 100, then held." in stacked
    assert "| PacDCGAN2 | 1000 | 0.06 |" in stacked


def test_published_rows_wall_time_incomplete_and_plots(built):
    text = built["text"]
    assert "**not our measurement**" in text and "| PacGAN4 | 7.8 | 95.9 | 0.07 |" in text
    assert "Wall time: **3.3 min** (200 s), the sum of the `total_wall_time_s` of 4 group(s)" \
        in text
    assert "- ring/g02_hybrid: runs `hybrid` (preempted at step 300 of 600)" in text
    assert "| VAE-GAN hybrid |" not in text
    names = [f"{p}_{d}.png" for d in ("ring", "stacked_mnist")
             for p in ("coverage_vs_quality", "samples", "trajectory")]
    for name in names:
        assert f"- `{name}`" in text
        with open(os.path.join(built["out"], name), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(os.path.join(built["out"], "results.md")) as f:
        assert f.read() == text


def test_trajectory_is_the_mean_over_members(built):
    runs = runs_by_dataset(load_workdirs([built["sweep"]]))["ring"]
    traj = report_plots.run_trajectory(runs[0], {})
    steps, hq = traj["hq_fraction"]
    assert steps.tolist() == [300, 600]
    np.testing.assert_allclose(hq, [0.5 * np.mean(RING_EVALS["vae"]["hq_fraction"]),
                                    np.mean(RING_EVALS["vae"]["hq_fraction"])])
    _, kl = report_plots.run_trajectory(runs[1], {})["reverse_kl"]
    np.testing.assert_allclose(kl[-1], np.mean([0.02, 0.06]))  # inf left out


def test_bad_inputs(tmp_path, built, capsys):
    with pytest.raises(ReportError, match="not a workdir"):
        load_workdirs([str(tmp_path)])
    only_incomplete = tmp_path / "incomplete"
    write_group(str(only_incomplete), ["hybrid"], complete=False)
    assert report.main([str(only_incomplete), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bridge_jax.report: error: no group with evaluations")
    assert err.count("\n") == 1
    assert report.main([built["plain"], "--out", str(tmp_path / "o2"), "--no-plots"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "o2" / "results.md")


def test_cli_error_is_one_line_and_status_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bridge_jax.report", str(tmp_path / "nope"),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert proc.returncode == 2
    assert proc.stderr.startswith("bridge_jax.report: error: ")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


@pytest.mark.parametrize("args", [["gs://bucket/run", "--out", "OUT"],
                                  ["RUN", "--out", "gs://bucket/report"],
                                  ["RUN", "--out", "OUT", "--save-records", "gs://b/records"]])
def test_a_uri_is_refused_in_one_line_and_never_becomes_a_local_folder(
        args, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "RUN").mkdir()
    assert report.main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a URI; the report reads and writes local folders" in err
    assert sorted(os.listdir(tmp_path)) == ["RUN"]


def test_skip_policy_all_infinite_and_missing_group_dir(tmp_path):
    """A sweep whose second group never started; its runs kept going past non-finite
    updates (policy skip) and one run has no HQ sample in any seed."""
    sweep = tmp_path / "sweep"
    evals = {"vae": {**RING_EVALS["vae"], "reverse_kl": [math.inf] * 3}}
    write_group(str(sweep / "g00_vae"), ["vae"], evals=evals,
                config_fields={"nonfinite_policy": "skip"},
                nonfinite={0: {"count": 3, "first_step": 10, "what": "critic_loss"},
                           2: {"count": 1, "first_step": None, "what": None}})
    (sweep / "sweep.json").write_text(json.dumps(
        {"name": "s", "runs": [{"name": "vae", "label": "VAE"}, {"name": "nsgan"}],
         "groups": [{"dir": "g00_vae", "runs": ["vae"], "num_members": 3},
                    {"dir": "g01_nsgan", "runs": ["nsgan"], "num_members": 3}]}))
    text = report.write_report([str(sweep)], str(tmp_path / "out"), plots=False)
    assert "| seeds with skipped non-finite updates |" in text
    assert _row(text, "VAE")[4:] == ["∞ (no HQ sample)", "2"]
    assert ("First skipped non-finite update: VAE seed 0 at step 10 (critic_loss); "
            "VAE seed 2 at an unrecorded step.") in text
    assert "- s/g01_nsgan: runs `nsgan` (directory missing)" in text
    assert "| method | modes covered" in text  # one run: no setting column
    assert not os.path.exists(tmp_path / "out" / "samples_ring.png")


def test_headline_is_the_chosen_rows_with_the_main_metrics(built, tmp_path):
    report.write_report([built["sweep"], built["plain"]], str(tmp_path), plots=False,
                        headline=["nsgan", "bridge_cosine", "no_such_run"])
    text = (tmp_path / "headline.md").read_text()
    assert text.startswith("**ring** (3 seed(s),")
    assert "| method | modes covered (of 8) | HQ % | reverse KL |" in text
    e = RING_EVALS["nsgan"]
    assert _row(text, "NS-GAN")[1:] == [_pm(e["modes_covered"]),
                                        _pm(e["hq_fraction"], 100, 1), _pm(e["reverse_kl"])]
    assert _row(text, "*training data (reference)*")[1:3] == ["8.00 ± 0.00", "98.9 ± 0.0"]
    assert "VAE (α≡1)" not in text  # not chosen
    assert text.index("| NS-GAN |") < text.index("| α-Bridge 1→0 (cosine) |")  # given order
    assert "| method | modes (of 1000) | KL to uniform | FD-MNIST-classifier |" in text
