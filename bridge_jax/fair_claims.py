"""The paper's claims, each measured on the fair test's records, with a verdict.

Pure functions of the report's records (:mod:`bridge_jax.report_data`). Each claim is
one or more comparisons of the α-Bridge with another run on the evaluation seeds: the
shipped α-Bridge (the cosine or the adaptive one, whichever the selection rule ships),
except for the annealing claim, which compares the cosine α-Bridge (the evaluation run
named ``bridge``) with the ablation trained around it. Comparisons are paired by seed
(95 % t interval of the per-seed difference, :mod:`bridge_jax.evaluation.intervals`),
or, for stability, of success counts over the whole tuning grid (Fisher's exact test,
two-sided, 5 %):

- "no worse" claims (keeps maximum likelihood's modes; as sharp as adversarial learning)
  hold only when the whole interval lies on the α-Bridge's side of 0 (an exact tie, as
  every seed at all modes, is such an interval); "does not hold" when the interval says
  the α-Bridge is worse; "not separated" when it straddles 0. (Until 2026-12-08 they
  held whenever the interval did not say worse, so a 24-point HQ deficit with a wide
  interval read "holds". No non-inferiority margin was declared before the runs, so
  none is used: a small deficit the seeds cannot rule out stays "not separated".)
- "better" claims (more stable training; annealing beats each ablation variant) hold
  only when the interval (or the test) says it is better; "not separated" otherwise.

A claim's summary verdict: "holds" when every comparison holds, "does not hold" when
any says the opposite, otherwise "not separated".
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import stats

from bridge_jax import selection
from bridge_jax.evaluation.intervals import Interval, paired_difference
from bridge_jax.report_data import Run

HOLDS, FAILS, OPEN = "holds", "does not hold", "not separated"
KEEPS_MODES = "keeps maximum likelihood's modes"
AS_SHARP = "as sharp as adversarial learning"
STABLER = "more stable training (success rate over the grid)"
ANNEALING = "annealing beats constant α, a warm start and the endpoint"
ABLATION_PREFIX = "ablation: "


@dataclasses.dataclass(frozen=True)
class Comparison:
    """One measured comparison behind a claim."""

    claim: str
    against: str
    measured: str
    verdict: str


# (metric, title, scale of the printed value, direction) of the tables and claims: the
# mixtures' defaults; a protocol may declare its own (``metrics``, ``claim_metrics``).
METRICS = (("modes_covered_strict", "strict modes", 1.0, "max"),
           ("hq_fraction", "HQ %", 100.0, "max"), ("reverse_kl", "reverse KL", 1.0, "min"))
# the claims' coverage metric (keeps ML's modes) and quality metric (as sharp)
CLAIM_METRICS = {"coverage": ("modes_covered", "modes", 1.0, "max"),
                 "quality": ("hq_fraction", "HQ %", 100.0, "max")}


def protocol_metrics(protocol) -> tuple[tuple, dict]:
    """The protocol's (table metrics, claim metrics), the mixtures' when it declares none."""
    metrics = tuple(tuple(m) for m in protocol.get("metrics", METRICS))
    claim = protocol.get("claim_metrics", CLAIM_METRICS)
    return metrics, {k: tuple(claim[k]) for k in ("coverage", "quality")}


def values(run: Run, key: str, scale: float, direction: str = "max") -> np.ndarray:
    """Per-seed values (seed order) × ``scale``; a diverged member gets the worst value
    of the metric's ``direction`` (:func:`bridge_jax.selection.member_values`)."""
    return np.array([selection.member_values(m, [(key, direction)])[0] * scale
                     for m in run.members])


def direction_of(iv: Interval, higher_is_better: bool = True) -> str | None:
    """"better" or "worse" for the α-Bridge when the interval of its difference excludes
    0, None when it does not."""
    if not iv.excludes_zero:
        return None
    return "better" if (iv.mean > 0) == higher_is_better else "worse"


def is_bridge(label: str) -> bool:
    """Whether a method label names an α-Bridge method (cosine or adaptive)."""
    return "α-Bridge" in label


def fmt_interval(iv: Interval, digits: int) -> str:
    return f"{iv.mean:+.{digits}f} [{iv.low:+.{digits}f}, {iv.high:+.{digits}f}]"


def grid_label(run: Run) -> str:
    """The tuning grid's method label of an evaluation run ("<label> [<grid run>]")."""
    return run.label.rsplit(" [", 1)[0]


def paired(claim: str, bridge: Run, other: Run, key: str, title: str, scale: float,
           direction: str = "max", *, no_worse: bool) -> Comparison:
    """The α-Bridge minus ``other`` on one metric (``direction``: which way is better),
    paired by seed."""
    a, b = values(bridge, key, scale, direction), values(other, key, scale, direction)
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return Comparison(claim, grid_label(other).removeprefix(ABLATION_PREFIX),
                          f"{title}: ∞ in a member", OPEN)
    iv = paired_difference(a, b)
    better = direction_of(iv, direction == "max")
    if no_worse:
        shown = iv.low >= 0 if direction == "max" else iv.high <= 0
        verdict = FAILS if better == "worse" else HOLDS if shown else OPEN
    else:
        verdict = {"better": HOLDS, "worse": FAILS, None: OPEN}[better]
    return Comparison(claim, grid_label(other).removeprefix(ABLATION_PREFIX),
                      f"Δ {title} {fmt_interval(iv, 3 if direction == 'min' else 1)}",
                      verdict)


def stability_comparison(mine: selection.Stability, other: selection.Stability
                         ) -> Comparison:
    table = [[mine.successes, mine.num_members - mine.successes],
             [other.successes, other.num_members - other.successes]]
    p = float(stats.fisher_exact(table).pvalue)
    verdict = OPEN
    if p < 0.05:
        verdict = HOLDS if mine.success_rate > other.success_rate else FAILS
    return Comparison(STABLER, other.label, f"{mine.successes}/{mine.num_members} vs "
                      f"{other.successes}/{other.num_members}, Fisher p = {p:.2g}", verdict)


def claims(by_name: dict[str, Run], rows: list[selection.Stability],
           shipped: Run | None = None, metrics: tuple = METRICS,
           claim_metrics: dict | None = None) -> list[Comparison]:
    """Every comparison, claim by claim (runs are found by their evaluation names);
    ``shipped``: the shipped α-Bridge's evaluation run (default: the cosine ``bridge``);
    ``metrics``: the tables' metrics, whose first two the annealing claim compares;
    ``claim_metrics``: the coverage and quality metrics (default :data:`CLAIM_METRICS`)."""
    claim_metrics = claim_metrics or CLAIM_METRICS
    cosine = by_name["bridge"]
    bridge = shipped or cosine
    out = []
    if "vae" in by_name:
        out.append(paired(KEEPS_MODES, bridge, by_name["vae"], *claim_metrics["coverage"],
                          no_worse=True))
    for other in ("nsgan", "adversarial"):
        if other in by_name:
            out.append(paired(AS_SHARP, bridge, by_name[other], *claim_metrics["quality"],
                              no_worse=True))
    mine = next((r for r in rows if r.label == grid_label(bridge)), None)
    if mine is not None:
        out += [stability_comparison(mine, r) for r in rows if not is_bridge(r.label)]
    for run in by_name.values():
        if run.label.startswith(ABLATION_PREFIX):
            out += [paired(ANNEALING, cosine, run, k, t, s, d, no_worse=False)
                    for k, t, s, d in metrics[:2]]
    return out


def detailed_lines(comparisons: list[Comparison]) -> list[str]:
    lines = ["| claim | α-Bridge against | measured (95% CI) | verdict |", "|---|---|---|---|"]
    lines += [f"| {c.claim} | {c.against} | {c.measured} | **{c.verdict}** |"
              for c in comparisons]
    return lines


def summary_lines(comparisons: list[Comparison], dataset: str, link: str,
                  shipped: str = "") -> list[str]:
    """One row per claim: its verdict and, where it is not "holds", against what;
    ``shipped`` (the shipped α-Bridge's label) goes into the header when given."""
    title = f"{dataset}, {shipped}" if shipped else dataset
    lines = [f"| claim ({title}) | verdict | against |", "|---|---|---|"]
    for claim in dict.fromkeys(c.claim for c in comparisons):
        mine = [c for c in comparisons if c.claim == claim]
        verdicts = {c.verdict for c in mine}
        verdict = FAILS if FAILS in verdicts else (HOLDS if verdicts == {HOLDS} else OPEN)
        names = list(dict.fromkeys(c.against for c in mine if c.verdict == verdict))
        against = "all" if verdict == HOLDS else ", ".join(names)
        lines.append(f"| {claim} | **{verdict}** | {against} ([details]({link})) |")
    return lines
