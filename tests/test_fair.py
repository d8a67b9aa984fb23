"""The fair test's protocol: declared grid and seeds, the selection rule, stability counts,
paired intervals, and the stored tuning records selecting what configs/sweeps/fair.py
trains."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from bridge_jax import fair_claims, fair_report, selection, sweeps
from bridge_jax.config_files import load_module
from bridge_jax.configuration import config_from_file
from bridge_jax.evaluation.intervals import paired_difference, t_interval
from bridge_jax.report_data import Member, ReportError, Run

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = ROOT / "configs" / "sweeps"
RULE = selection.check_rule((("modes_covered_strict", "max"), ("hq_fraction", "max"),
                             ("reverse_kl", "min")))
SUCCESS = selection.check_success((("modes_covered_strict", ">=", "num_modes"),
                                   ("hq_fraction", ">=", 0.9)))


def _member(run, label, seed, strict, hq, kl, *, nonfinite=0, lr=1e-3):
    return Member(group=None, index=seed, run=run, label=label, seed=seed,
                  config={"nonfinite_policy": "stop", "generator.learning_rate": lr},
                  evals={"modes_covered_strict": strict, "hq_fraction": hq,
                         "reverse_kl": kl, "num_modes": 8},
                  nonfinite={"count": nonfinite, "first_step": None, "what": None})


def _run(name, label, rows, lr=1e-3):
    return Run("w", name, label, [_member(name, label, i, *r, lr=lr) for i, r in enumerate(rows)])


def test_the_grid_gives_every_method_the_same_budget_on_disjoint_seeds():
    tune = config_from_file(SWEEPS / "tune.py", "ring")
    members = sweeps.expand(tune)
    per_label = {}
    for m in members:
        per_label.setdefault(m.label, set()).add(m.run)
    assert len(per_label) == 7 and {len(v) for v in per_label.values()} == {4}
    assert len(members) == 7 * 4 * 3
    tuning_seeds = {m.seed for m in members}
    fair_seeds = set(range(*config_from_file(SWEEPS / "tuning.py").evaluation_seeds))
    assert tuning_seeds == {100, 101, 102} and fair_seeds == set(range(10))
    assert not tuning_seeds & fair_seeds
    # settings differ only in the declared fields: learning rates and one knob per method
    for m in members:
        assert float(m.config.generator.learning_rate) == float(m.config.critic.learning_rate)


def test_stacked_mnist_gives_every_method_two_settings_in_two_halves_on_disjoint_seeds():
    """Every method gets 2 settings on 1 selection seed; the halves that run side by side
    hold each method's first or second setting and together the whole grid; a setting
    changes only the declared fields; evaluation seeds avoid the selection seed and the
    seeds 0–2 on which the experiment's shared settings were chosen."""
    protocol = config_from_file(SWEEPS / "tuning_stacked_mnist.py")
    whole = sweeps.expand(config_from_file(SWEEPS / "tune.py", "stacked_mnist"))
    halves = [sweeps.expand(config_from_file(SWEEPS / "tune.py", f"stacked_mnist,half{i}"))
              for i in (0, 1)]
    per_label = {}
    for m in whole:
        per_label.setdefault(m.label, set()).add(m.run)
    assert len(per_label) == 7 and {len(v) for v in per_label.values()} == {2}
    assert len(whole) == 14 and {m.seed for m in whole} == {100}
    for half in halves:
        assert sorted(m.label for m in half) == sorted(per_label)  # one setting per method
    assert sorted(m.run for h in halves for m in h) == sorted(m.run for m in whole)
    for i, half in enumerate(halves):  # one method of a half: the half's own group record
        groups = {g[0].run.split("__")[0]: g for g in sweeps.group_members(half)}
        for key in ("vae", "adaptive"):
            variant = f"stacked_mnist,half{i},{key}"
            alone = sweeps.group_members(
                sweeps.expand(config_from_file(SWEEPS / "tune.py", variant)))
            assert len(alone) == 1 and [m.record() for m in alone[0]] == [
                m.record() for m in groups[key]]
    first, count = protocol.evaluation_seeds
    evaluation = set(range(first, first + count))
    assert evaluation == {10, 11, 12} and not evaluation & {100, 0, 1, 2}
    experiment = config_from_file(SWEEPS / "stacked_mnist.py")
    declared = {"method", "hybrid_weight", "generator.learning_rate", "critic.learning_rate",
                "alpha.schedule", "alpha.start", "alpha.end", "alpha.adaptive.target_low",
                "alpha.adaptive.target_high"}
    for m in whole:
        assert m.config.num_steps == experiment.num_steps == 1500
        assert m.config.critic.gradient_penalty == experiment.critic.gradient_penalty
        assert set(protocol.runs[[r["name"] for r in protocol.runs].index(m.run)]["set"]
                   ) <= declared


def test_stacked_mnist_claims_read_sharpness_from_fd_where_lower_is_better():
    """The protocol's own metrics: modes for coverage, FD (lower is better) for sharpness,
    the first two table metrics (modes, KL) for annealing."""
    protocol = config_from_file(SWEEPS / "tuning_stacked_mnist.py")
    metrics, claim_metrics = fair_claims.protocol_metrics(protocol)
    assert [m[0] for m in metrics] == ["modes_covered", "kl_to_uniform", "fd"]

    def run(name, label, rows):
        return Run("w", name, label, [Member(
            group=None, index=i, run=name, label=label, seed=10 + i,
            config={"nonfinite_policy": "stop", "generator.learning_rate": 2e-4},
            evals={"modes_covered": modes, "kl_to_uniform": kl, "fd": fd},
            nonfinite={"count": 0, "first_step": None, "what": None})
            for i, (modes, kl, fd) in enumerate(rows)])

    bridge = run("bridge", "α-Bridge (cosine 1→α_end) [b]",
                 [(999, 0.27, 170.0), (998, 0.30, 168.0), (999, 0.28, 175.0)])
    vae = run("vae", "VAE (α≡1) [v]", [(999, 0.05, 320.0), (998, 0.06, 330.0),
                                         (999, 0.05, 310.0)])  # the same modes per seed
    nsgan = run("nsgan", "NS-GAN [n]", [(600, 2.2, 240.0), (580, 2.3, 250.0),
                                         (620, 2.1, 245.0)])
    sharper = run("adversarial", "Adversarial (α≡0) [a]",
                  [(400, 3.0, 100.0), (420, 3.1, 105.0), (410, 2.9, 98.0)])
    warm = run("warm_start", "ablation: warm [w]", [(990, 0.40, 200.0), (985, 0.45, 205.0),
                                                    (992, 0.41, 199.0)])
    comparisons = fair_claims.claims(
        {r.name: r for r in (bridge, vae, nsgan, sharper, warm)}, [], None, metrics,
        claim_metrics)
    verdicts = {(c.claim, c.against): c for c in comparisons}
    assert verdicts[(fair_claims.KEEPS_MODES, "VAE (α≡1)")].verdict == "holds"  # a tie
    assert verdicts[(fair_claims.AS_SHARP, "NS-GAN")].verdict == "holds"  # FD 171 < 245
    worse = verdicts[(fair_claims.AS_SHARP, "Adversarial (α≡0)")]
    assert worse.verdict == "does not hold" and worse.measured.startswith(
        "Δ FD-MNIST-classifier +70.000 [")
    annealing = [c for c in comparisons if c.claim == fair_claims.ANNEALING]
    assert [c.measured.split(" [")[0] for c in annealing] == ["Δ modes +9.7", "Δ KL -0.137"]
    assert [c.verdict for c in annealing] == ["holds", "holds"]
    lines = fair_report.evaluated_lines([bridge], selection.check_success(protocol.success),
                                        metrics)
    assert "modes: mean ± sd [95% CI] | KL: mean ± sd [95% CI] | FD-MNIST" in lines[0]
    assert lines[2].startswith("| α-Bridge (cosine 1→α_end) [b] | 3 | 998.7 ± 0.6 [")
    assert lines[2].endswith("| 3/3 | – |")


def test_the_rule_picks_the_most_strict_modes_then_hq_and_counts_divergence_as_worst():
    runs = [_run("a_lr1", "A", [(8, 0.95, 0.01), (6, 0.99, 0.3)]),   # 7 modes
            _run("a_lr2", "A", [(8, 0.80, 0.02), (8, 0.70, 0.02)]),  # 8 modes, low HQ
            _run("a_lr3", "A", [(8, 0.99, 0.01), (8, 0.99, 0.01)]),  # 8 modes, HQ .99 ...
            _run("b_lr1", "B", [(8, 0.9, 0.05), (8, 0.9, 0.04)]),
            _run("b_lr2", "B", [(8, 0.9, 0.05), (8, 0.9, 0.04)])]
    runs[2].members[1].nonfinite["count"] = 1  # ... but one seed diverged: 4 modes
    chosen = selection.select(runs, RULE)
    assert chosen["A"][0].run == "a_lr2"
    assert chosen["A"][0].means == pytest.approx((8.0, 0.75, 0.02))
    assert chosen["A"][1][2].means == (4.0, 0.495, math.inf)
    assert chosen["B"][0].run == "b_lr1"  # an exact tie goes to the declared order


def test_unequal_seed_counts_and_bad_rules_are_refused_in_one_line():
    runs = [_run("a1", "A", [(8, 1, 0)]), _run("a2", "A", [(8, 1, 0), (8, 1, 0)])]
    with pytest.raises(selection.SelectionError, match="unequal numbers of seeds"):
        selection.select(runs, RULE)
    with pytest.raises(selection.SelectionError, match="'max' or 'min'"):
        selection.check_rule([("hq_fraction", "up")])
    with pytest.raises(selection.SelectionError, match="no metric 'fd'"):
        selection.select([runs[0]], selection.check_rule([("fd", "min")]))


def test_stability_counts_success_and_divergence_per_learning_rate():
    runs = [_run("a1", "A", [(8, 0.95, 0.01), (7, 0.99, 0.1)], lr=1e-3),
            _run("a2", "A", [(8, 0.91, 0.01), (8, 0.89, 0.1)], lr=3e-3)]
    runs[1].members[0].nonfinite["count"] = 2
    (row,) = selection.stability(runs, SUCCESS, "generator.learning_rate")
    assert (row.successes, row.divergences, row.num_members) == (1, 1, 4)
    assert row.by_value == {1e-3: (1, 0, 2), 3e-3: (0, 1, 2)}


def test_t_intervals_match_the_textbook_formula():
    x = np.array([1.0, 2.0, 4.0, 7.0])
    iv = t_interval(x)
    half = stats.t.ppf(0.975, 3) * x.std(ddof=1) / 2
    assert (iv.mean, iv.low, iv.high) == pytest.approx((3.5, 3.5 - half, 3.5 + half))
    d = paired_difference([5.0, 6.0, 8.0], [4.0, 5.0, 7.0])  # every seed +1
    assert (d.mean, d.low, d.high, d.excludes_zero) == (1.0, 1.0, 1.0, True)
    with pytest.raises(ValueError, match="equal lengths"):
        paired_difference([1.0, 2.0], [1.0])


def test_claim_verdicts_follow_the_paired_intervals():
    """"No worse" holds when the interval lies on the α-Bridge's side of 0 (a tie at every
    seed included), fails when it says worse, and is open when it straddles 0; "better"
    needs the interval to say better; the summary is "does not hold" as soon as one
    comparison fails."""
    seeds = [(8, 0.95, 0.01), (8, 0.96, 0.01), (8, 0.94, 0.02)]
    bridge = _run("bridge", "α-Bridge [b]", seeds)
    same = _run("x", "X [x]", seeds)
    sharper = _run("nsgan", "NS-GAN [n]", [(8, 0.99, 0.01), (8, 0.985, 0.01), (8, 0.995, 0.0)])
    blurrier = _run("w", "ablation: warm [w]", [(8, 0.5, 0.01), (8, 0.52, 0.01), (8, 0.55, 0.0)])
    keep = fair_claims.paired(fair_claims.KEEPS_MODES, bridge, same, "modes_covered_strict",
                              "m", 1.0, no_worse=True)
    sharp = fair_claims.paired(fair_claims.AS_SHARP, bridge, sharper, "hq_fraction", "HQ",
                               100.0, no_worse=True)
    tied = fair_claims.paired(fair_claims.ANNEALING, bridge, same, "hq_fraction", "HQ", 100.0,
                              no_worse=False)
    beats = fair_claims.paired(fair_claims.ANNEALING, bridge, blurrier, "hq_fraction", "HQ",
                               100.0, no_worse=False)
    assert [c.verdict for c in (keep, sharp, tied, beats)] == [
        "holds", "does not hold", "not separated", "holds"]
    assert sharp.measured.startswith("Δ HQ -4.0 [") and beats.against == "warm"
    # 0.8 points below on average, one seed above: the interval straddles 0, so "as sharp"
    # is not shown (it held before 2026-12-08, when only a "worse" interval failed it)
    close = _run("fgan", "f-GAN [f]", [(8, 0.97, 0.01), (8, 0.955, 0.01), (8, 0.95, 0.0)])
    straddles = fair_claims.paired(fair_claims.AS_SHARP, bridge, close, "hq_fraction", "HQ",
                                   100.0, no_worse=True)
    assert straddles.measured.startswith("Δ HQ -0.8 [") and straddles.verdict == "not separated"
    # lower is better (KL): shown no worse needs the interval's top at or below 0
    kl = fair_claims.paired(fair_claims.AS_SHARP, bridge, close, "reverse_kl", "KL", 1.0,
                            "min", no_worse=True)
    assert kl.verdict == "not separated"  # KL differences 0, 0, +0.02 straddle 0
    summary = fair_claims.summary_lines([keep, sharp, tied, beats], "ring", "x.md")
    assert "| keeps maximum likelihood's modes | **holds** | all" in summary[2]
    assert "| **does not hold** | NS-GAN" in summary[3]
    assert "| **not separated** | X" in summary[4]


def test_claims_measure_the_shipped_bridge_and_annealing_with_the_cosine_one():
    """With the adaptive α-Bridge shipped, the coverage, sharpness and stability claims
    compare it; the annealing claim compares the cosine α-Bridge with its ablation."""
    good = [(8, 0.95, 0.01), (8, 0.96, 0.01), (8, 0.94, 0.02)]
    cosine = _run("bridge", "α-Bridge (cosine 1→α_end) [b]", [(5, 0.5, 0.1), (6, 0.6, 0.1),
                                                                (4, 0.4, 0.2)])
    adaptive = _run("adaptive", "α-Bridge, adaptive α [a]", good)
    vae = _run("vae", "VAE (α≡1) [v]", good)
    warm = _run("warm_start", "ablation: warm [w]", [(3, 0.3, 0.1), (4, 0.35, 0.1),
                                                     (2, 0.25, 0.2)])
    by_name = {r.name: r for r in (cosine, adaptive, vae, warm)}
    for run in by_name.values():
        for m in run.members:
            m.evals["modes_covered"] = m.evals["modes_covered_strict"]
    rows = [selection.Stability("α-Bridge, adaptive α", 3, 3, 0, {}),
            selection.Stability("VAE (α≡1)", 3, 0, 0, {})]
    comparisons = fair_claims.claims(by_name, rows, shipped=adaptive)
    keep = next(c for c in comparisons if c.claim == fair_claims.KEEPS_MODES)
    assert keep.measured == "Δ modes +0.0 [+0.0, +0.0]"  # adaptive vs VAE, not cosine
    stable = next(c for c in comparisons if c.claim == fair_claims.STABLER)
    assert stable.measured.startswith("3/3 vs 0/3")
    annealing = [c for c in comparisons if c.claim == fair_claims.ANNEALING]
    assert [c.measured.split(" [")[0] for c in annealing] == [
        "Δ strict modes +2.0", "Δ HQ % +20.0"]  # cosine minus the warm start
    # without a shipped run, everything compares the cosine α-Bridge
    default = fair_claims.claims(by_name, rows)
    keep_cosine = next(c for c in default if c.claim == fair_claims.KEEPS_MODES)
    assert keep_cosine.verdict == "does not hold"
    header = fair_claims.summary_lines(comparisons, "grid", "x.md", "α-Bridge, adaptive α")[0]
    assert header == "| claim (grid, α-Bridge, adaptive α) | verdict | against |"


def test_the_ablation_drops_variants_that_coincide():
    fair = config_from_file(SWEEPS / "fair.py", "ring,tiny")
    names = [r["name"] for r in fair.sweep.runs]
    # the tiny selection is end0: 1→0 is the bridge itself and constant α_end = α ≡ 0
    assert names[-2:] == ["constant_end", "warm_start"] and "anneal_1to0" not in names
    warm = fair.sweep.runs[-1]["set"]
    assert (warm["alpha.schedule"], warm["alpha.num_stages"], warm["alpha.end"]) == (
        "step", 1, 0.0)


def test_probe_arms_change_only_the_learning_rate_or_the_nonfinite_policy():
    selected, shipped = FAIR_SWEEP.SELECTED["grid"], FAIR_SWEEP.SHIPPED["grid"]
    grid = {r["name"]: r["set"] for r in config_from_file(SWEEPS / "tuning.py").runs}
    lr_arm = config_from_file(SWEEPS / "probe.py", "grid,lr")
    assert len(lr_arm.sweep.runs) == 2
    for run, key in zip(lr_arm.sweep.runs, ("bridge", "adaptive"), strict=True):
        chosen = grid[selected[key]]
        other = 1e-3 if chosen["generator.learning_rate"] == 3e-3 else 3e-3
        assert run["set"] == {**chosen, "generator.learning_rate": other,
                              "critic.learning_rate": other}
        assert run["name"].split("__")[0] == key  # how the report pairs it
    (skip,) = config_from_file(SWEEPS / "probe.py", "grid,skip").sweep.runs
    assert skip["set"] == {**grid[shipped], "nonfinite_policy": "skip"}
    assert skip["name"] == shipped + "__skip"
    fair = config_from_file(SWEEPS / "fair.py", "grid")
    assert (lr_arm.seed, lr_arm.sweep.num_seeds) == (fair.seed, fair.sweep.num_seeds)
    assert lr_arm.num_steps == fair.num_steps and lr_arm.eval.to_dict() == fair.eval.to_dict()


@pytest.mark.parametrize("dataset", ["ring", "grid"])
def test_the_noise_arms_replace_r1_by_instance_noise_and_change_nothing_else(dataset):
    """Every regularised method (the shipped α-Bridge, f-GAN, NS-GAN) gets the same two
    σ₀ on the selection seeds, each its selected setting with R1 off and σ falling to 0
    at the last step; nothing is selected from the evaluation seeds."""
    module = load_module(SWEEPS / "regularisers.py")
    config = config_from_file(SWEEPS / "regularisers.py", f"{dataset},tune")
    protocol = config_from_file(SWEEPS / "tuning.py")
    grid = {r["name"]: r["set"] for r in protocol.runs}
    chosen = module.methods(dataset)
    assert sorted(chosen) == sorted([FAIR_SWEEP.SHIPPED[dataset].split("__")[0], "fgan",
                                     "nsgan"])
    assert (config.seed, config.sweep.num_seeds) == tuple(protocol.selection_seeds)
    assert len(config.sweep.runs) == 2 * len(chosen)
    for run in config.sweep.runs:
        key, noise = run["name"].split("__")
        selected = grid[chosen[key]]
        assert run["set"] == {**selected, "critic.gradient_penalty": 0.0,
                              "critic.instance_noise": float(noise[len("noise"):]),
                              "critic.instance_noise_steps": -1}
    assert {r["set"]["critic.instance_noise"] for r in config.sweep.runs} == {0.1, 0.5}


def test_noise_lines_select_sigma_on_selection_seeds_and_pair_it_with_the_r1_run():
    tuning = [_run("nsgan__noise0.1", "NS-GAN + noise", [(8, 0.90, 0.01)] * 3),
              _run("nsgan__noise0.5", "NS-GAN + noise", [(8, 0.95, 0.01)] * 3)]
    evaluated = _run("nsgan", "NS-GAN [n]", [(8, 0.90, 0.02), (8, 0.92, 0.02)])
    noise = _run("nsgan__noise0.5", "NS-GAN + noise σ₀=0.5", [(8, 0.95, 0.01),
                                                             (8, 0.96, 0.01)])
    lines = fair_report.noise_lines(tuning, [noise], [evaluated], RULE, SUCCESS)
    assert "| NS-GAN + noise | `nsgan__noise0.5` | 8 | 0.95 | 0.01 | 0/3 | **selected** |" \
        in lines
    row = next(line for line in lines if line.startswith("| NS-GAN + noise σ₀=0.5 − "))
    # per seed +5 and +4 points of HQ: mean +4.5, t interval with 1 degree of freedom
    assert "| +4.5 [-1.9, +10.9] — not separated |" in row
    assert "noise minus the evaluated run" in "".join(lines)


def test_probe_lines_pair_each_arm_with_its_methods_evaluated_run():
    evaluated = _run("bridge", "α-Bridge [bridge__lr0.003__end0]",
                     [(8, 0.80, 0.1), (0, 0.0, 0.0), (8, 0.90, 0.1)])
    evaluated.members[1].nonfinite.update(count=1, first_step=1200)
    probe = _run("bridge__lr0.001__end0", "α-Bridge at lr 0.001 (probe)",
                 [(8, 0.85, 0.1), (6, 0.70, 0.2), (8, 0.80, 0.1)])
    lines = fair_report.probe_lines([probe], [evaluated], SUCCESS)
    assert "| 1 stopped (first at step 1200) |" in fair_report.evaluated_lines(
        [evaluated], SUCCESS)[2]
    row = lines[-1]
    assert row.startswith("| α-Bridge at lr 0.001 (probe) − α-Bridge [bridge__lr0.003__end0]")
    # the diverged seed scores 0 modes and 0 % HQ: Δ modes (0, 6, 0), Δ HQ (5, 70, −10) %
    modes = paired_difference(np.array([8.0, 6, 8]), np.array([8.0, 0, 8]))
    hq = paired_difference(np.array([85.0, 70, 80]), np.array([80.0, 0, 90]))
    assert f"{modes.mean:+.1f} [{modes.low:+.1f}, {modes.high:+.1f}]" in row
    assert f"{hq.mean:+.1f} [{hq.low:+.1f}, {hq.high:+.1f}]" in row
    assert "∞ in a member" in row  # the diverged seed's KL
    skipping = _run("adaptive__skip", "skip", [(8, 0.9, 0.1)])
    skipping.members[0].config["nonfinite_policy"] = "skip"
    skipping.members[0].nonfinite.update(count=7, first_step=300)
    assert fair_report.nonfinite_text(skipping) == "7 updates skipped in 1 seed (first at step 300)"
    with pytest.raises(ReportError, match="no evaluated run 'adaptive'"):
        fair_report.probe_lines([skipping], [evaluated], SUCCESS)


FAIR = ROOT / "results" / "fair"  # the fair test's stored records (not the sweep tables)


FAIR_SWEEP = load_module(SWEEPS / "fair.py")  # SELECTED and SHIPPED
SELECTED_DATASETS = sorted(FAIR_SWEEP.SELECTED)
# datasets whose evaluation sweep is stored too (Stacked MNIST's may still be running)
EVALUATED_DATASETS = sorted(d for d in SELECTED_DATASETS if any(FAIR.glob(f"fair_{d}*")))


def _protocol(dataset: str):
    return FAIR_SWEEP.TUNE.protocol(dataset)


def _records(dataset: str) -> tuple[list[str], list[str]]:
    """The stored tuning and evaluation workdirs of ``dataset`` (a sweep may be stored in
    halves that ran side by side, e.g. tune_grid_lr0.001 and tune_grid_lr0.003)."""
    tuning = sorted(str(p) for p in FAIR.glob(f"tune_{dataset}*"))
    evaluation = sorted(str(p) for p in FAIR.glob(f"fair_{dataset}*"))
    assert tuning, f"no stored tuning records of {dataset} in {FAIR}"
    assert evaluation or dataset not in EVALUATED_DATASETS
    return tuning, evaluation


def _probes(dataset: str) -> list[str]:
    """The stored diagnostic arms of ``dataset`` (configs/sweeps/probe.py), maybe none."""
    return sorted(str(p) for p in FAIR.glob(f"probe_{dataset}_*"))


def _noise_records(dataset: str) -> tuple[list[Run], list[Run]]:
    """The stored instance-noise arms of ``dataset`` (configs/sweeps/regularisers.py): the
    σ₀ tuning runs and the selected σ₀'s evaluation runs, maybe none."""
    tuning, evaluation = FAIR / f"noise_tune_{dataset}", FAIR / f"noise_{dataset}"
    return ([] if not tuning.exists() else fair_report.load_runs([str(tuning)]),
            [] if not evaluation.exists() else fair_report.load_runs([str(evaluation)]))


NOISE_SWEEP = load_module(SWEEPS / "regularisers.py")  # SELECTED_NOISE


@pytest.mark.parametrize("dataset", sorted(NOISE_SWEEP.SELECTED_NOISE))
def test_the_stored_noise_records_select_what_the_evaluate_arm_trains(dataset):
    assert "ring" in NOISE_SWEEP.SELECTED_NOISE
    tuning, _ = _noise_records(dataset)
    protocol = _protocol(dataset)
    chosen = selection.select(tuning, selection.check_rule(protocol.rule))
    assert {best.run.split("__")[0]: best.run for best, _ in chosen.values()} == \
        NOISE_SWEEP.SELECTED_NOISE[dataset]
    trained = config_from_file(SWEEPS / "regularisers.py", f"{dataset},evaluate")
    assert sorted(r["name"] for r in trained.sweep.runs) == sorted(
        NOISE_SWEEP.SELECTED_NOISE[dataset].values())


def test_every_dataset_with_a_selection_has_its_records_and_the_ring_is_one():
    assert "ring" in SELECTED_DATASETS and {"ring", "grid"} <= set(EVALUATED_DATASETS)
    for dataset in SELECTED_DATASETS:
        _records(dataset)


@pytest.mark.parametrize("dataset", SELECTED_DATASETS)
def test_the_stored_tuning_records_select_what_the_fair_sweep_trains(dataset):
    protocol = _protocol(dataset)
    tuning = fair_report.load_runs(_records(dataset)[0])
    chosen = selection.select(tuning, selection.check_rule(protocol.rule))
    fair = config_from_file(SWEEPS / "fair.py", dataset)
    trained = {r["name"]: r for r in fair.sweep.runs}
    grid = {r["name"]: r for r in protocol.runs}
    for label, (best, _) in chosen.items():
        run = trained[best.run.split("__")[0]]
        assert run["label"] == f"{label} [{best.run}]"
        assert run["set"] == grid[best.run]["set"]


@pytest.mark.parametrize("dataset", SELECTED_DATASETS)
def test_the_fair_report_is_what_the_command_writes_from_the_stored_records(tmp_path,
                                                                           dataset):
    """Evaluated datasets: the whole page and the claims; a dataset whose evaluation has
    not run: the page of the selection and stability alone, and no claims."""
    protocol = _protocol(dataset)
    tuning, evaluation = _records(dataset)
    probes = fair_report.load_runs(_probes(dataset)) if _probes(dataset) else []
    noise_tuning, noise = _noise_records(dataset)
    path = fair_report.write(protocol, fair_report.load_runs(tuning),
                             fair_report.load_runs(evaluation) if evaluation else [],
                             str(tmp_path), probes,
                             f"configs/sweeps/{FAIR_SWEEP.TUNE.PROTOCOLS[dataset]}",
                             noise_tuning=noise_tuning, noise=noise)
    names = [f"fair_{dataset}.md"] + ([f"claims_{dataset}.md"] if evaluation else [])
    for name in names:
        assert (tmp_path / name).read_text() == (ROOT / "docs" / "results" / name).read_text()
    assert Path(path) == tmp_path / f"fair_{dataset}.md"
    assert ("has not run yet" in Path(path).read_text()) == (not evaluation)
    assert (tmp_path / f"claims_{dataset}.md").exists() == bool(evaluation)


def test_without_an_evaluation_the_page_holds_the_selection_and_no_claims(tmp_path):
    protocol = _protocol("ring")
    tuning = fair_report.load_runs(_records("ring")[0])
    path = Path(fair_report.write(protocol, tuning, [], str(tmp_path)))
    text = path.read_text()
    assert path == tmp_path / "fair_ring.md" and (tmp_path / "stability_ring.png").exists()
    assert "has not run yet" in text and "evaluation seeds 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 " \
        "(declared)" in text
    assert "| α-Bridge (cosine 1→α_end) | `bridge__lr0.001__end0` |" in text
    assert "**selected**" in text and "## Claims" not in text
    assert not (tmp_path / "claims_ring.md").exists()


@pytest.mark.parametrize("dataset", SELECTED_DATASETS)
def test_the_shipped_config_carries_the_selected_alpha_bridge_setting(dataset):
    """configs/<dataset>.py has every field of the α-Bridge setting the rule ships (the
    better α-Bridge method on the selection seeds), so a user who runs it gets what the
    fair test reports."""
    protocol = _protocol(dataset)
    rule = selection.check_rule(protocol.rule)
    chosen = selection.select(fair_report.load_runs(_records(dataset)[0]), rule)
    shipped = fair_report.shipped_run(chosen, rule)
    assert FAIR_SWEEP.SHIPPED[dataset] == shipped.run
    fields = {r["name"]: r["set"] for r in protocol.runs}[shipped.run]
    shipped_config = config_from_file(ROOT / "configs" / f"{dataset}.py")
    for name, value in fields.items():
        node = shipped_config
        for part in name.split("."):
            node = node[part]
        assert node == value, (name, node, value)
