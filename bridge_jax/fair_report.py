r"""The fair test's report: selection, tuned results, stability, annealing ablation, claims.

    python -m bridge_jax.fair_report --protocol configs/sweeps/tuning.py \
        --tuning runs/tune_ring [--evaluation runs/fair_ring ...] [--probe ...] [--out DIR]

``--protocol`` is the config file that declares the grid's seeds, the selection rule and
the success criterion (its ``get_config()`` has ``rule`` and ``success``, and may name the
tables' ``metrics`` and the claims' ``claim_metrics``; the mixtures' by default). The
command prints each method's selected run (what ``configs/sweeps/fair.py`` must hold);
with ``--out`` it also writes ``DIR/fair_<dataset>.md`` and ``DIR/stability_<dataset>.png``
from the stored records (without ``--evaluation``: the selection and stability only):

- **selection**: every setting's mean scores on the selection seeds, the selected marked;
- **tuned and evaluated**: each method's selected setting on the evaluation seeds, mean ±
  std and the 95 % t interval, and its success rate;
- **stability**: over the whole grid × selection seeds, per method, the success and
  divergence rates and the success rate per learning rate (also the plot);
- **annealing ablation** and **claims**: paired per-seed differences (α-Bridge minus the
  other) with 95 % t intervals (:mod:`bridge_jax.evaluation.intervals`); a difference is
  called only when its interval excludes 0;
- **instance noise in place of R1** (``--noise-tuning WORKDIR ... [--noise WORKDIR ...]``,
  configs/sweeps/regularisers.py): σ₀ selected per method on the selection seeds, and the
  selected σ₀ minus its method's evaluated run, paired by evaluation seed;
- **diagnostic arms** (``--probe WORKDIR ...``, configs/sweeps/probe.py; run after the
  evaluation and never selected from): their scores, and each minus its method's
  evaluated run, paired by seed.

The tables of evaluated runs have a non-finite column (members stopped, or updates
skipped, and when).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from bridge_jax import fair_claims, selection
from bridge_jax.evaluation.intervals import paired_difference, t_interval
from bridge_jax.fair_claims import METRICS, fmt_interval, values
from bridge_jax.report_data import ReportError, Run, load_workdir, refuse_uris
from bridge_jax.sweeps import method_key

PROG = "bridge_jax.fair_report"
DEFAULT_PROTOCOL = "configs/sweeps/tuning.py"
LR_AXIS = "generator.learning_rate"
ABLATION_PREFIX = fair_claims.ABLATION_PREFIX
BRIDGE = "bridge"
NOISE_TEXT = ("Each regularised method's selected setting with R1 off and instance noise "
              "on both sides of the critic, σ₀ falling linearly to 0 at the last step "
              "(`configs/sweeps/regularisers.py`, declared before its runs): the same two "
              "σ₀ for every method, selected by the rule on the selection seeds, and never "
              "a change to the selection above or to the shipped configs.")
PROBE_TEXT = ("Run after the evaluation to explain it (`configs/sweeps/probe.py`): they "
              "change neither the selection nor the shipped configs. A probe is compared "
              "with the evaluated run of the same method, paired by seed.")


def _interval_or_text(values: np.ndarray, digits: int) -> str:
    if not np.all(np.isfinite(values)):  # diverged, or KL ∞ for a model missing a mode
        return f"∞ in {int(np.sum(~np.isfinite(values)))} of {values.size}"
    iv = t_interval(values)
    if iv.low == iv.high:
        return f"{iv.mean:.{digits}f}"
    return (f"{iv.mean:.{digits}f} ± {np.std(values, ddof=1):.{digits}f} "
            f"[{iv.low:.{digits}f}, {iv.high:.{digits}f}]")


def selection_lines(chosen: dict, rule) -> list[str]:
    names = [name for name, _ in rule]
    lines = ["| method | setting (run) | " + " | ".join(names) + " | diverged | |",
             "|---|---|" + "---|" * len(names) + "---|---|"]
    for label, (best, scores) in chosen.items():
        for s in scores:
            cells = " | ".join(f"{v:.4g}" for v in s.means)
            mark = "**selected**" if s.run == best.run else ""
            lines.append(f"| {label} | `{s.run}` | {cells} | {s.num_diverged}/{s.num_members}"
                         f" | {mark} |")
    return lines


def nonfinite_text(run: Run) -> str:
    """The run's non-finite updates: members stopped (policy ``stop``) or updates skipped
    (``skip``), with the steps of the first ones; "–" when there were none."""
    hit = [m for m in run.members if m.nonfinite.get("count", 0) > 0]
    if not hit:
        return "–"
    steps = sorted(int(m.nonfinite["first_step"]) for m in hit
                   if m.nonfinite.get("first_step") is not None)
    at = f" (first at steps {steps[0]}–{steps[-1]})" if len(steps) > 1 else (
        f" (first at step {steps[0]})" if steps else "")
    stopped = [m for m in hit if selection.diverged(m)]
    if stopped:
        return f"{len(stopped)} stopped{at}"
    skipped = sum(int(m.nonfinite["count"]) for m in hit)
    return f"{skipped} updates skipped in {len(hit)} seed{'s' * (len(hit) > 1)}{at}"


def evaluated_lines(runs: list[Run], criterion, metrics=METRICS) -> list[str]:
    lines = ["| run | seeds | " + " | ".join(f"{t}: mean ± sd [95% CI]"
                                           for _, t, _, _ in metrics)
             + " | success | non-finite |", "|---|---|" + "---|" * len(metrics) + "---|---|"]
    for run in runs:
        cells = [_interval_or_text(values(run, k, s, d), 3 if d == "min" else 1)
                 for k, _, s, d in metrics]
        ok = sum(selection.succeeded(m, criterion) for m in run.members)
        lines.append(f"| {run.label} | {len(run.members)} | " + " | ".join(cells)
                     + f" | {ok}/{len(run.members)} | {nonfinite_text(run)} |")
    return lines


def stability_lines(rows: list[selection.Stability]) -> list[str]:
    lrs = sorted({v for r in rows for v in r.by_value})
    lines = ["| method | success | divergence | "
             + " | ".join(f"success at lr {v:g}" for v in lrs) + " | "
             + " | ".join(f"divergence at lr {v:g}" for v in lrs) + " |",
             "|---|---|---|" + "---|" * (2 * len(lrs))]
    for r in rows:
        cells = [f"{r.by_value[v][i]}/{r.by_value[v][2]}" if v in r.by_value else "–"
                 for i in (0, 1) for v in lrs]
        lines.append(f"| {r.label} | {r.successes}/{r.num_members} "
                     f"({100 * r.success_rate:.0f}%) | {r.divergences}/{r.num_members} | "
                     + " | ".join(cells) + " |")
    return lines


def _paired_cells(run: Run, other: Run, subject: str, metrics=METRICS) -> list[str]:
    """``run`` minus ``other`` per seed, for every metric, with a verdict for ``subject``."""
    if [m.seed for m in other.members] != [m.seed for m in run.members]:
        raise ReportError(f"{other.name!r} and {run.name!r} were trained on other "
                          "seeds; a paired comparison needs the same seeds")
    cells = []
    for key, _, scale, direction in metrics:
        a, b = values(run, key, scale, direction), values(other, key, scale, direction)
        if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
            cells.append("∞ in a member")
            continue
        iv = paired_difference(a, b)
        verdict = fair_claims.direction_of(iv, direction == "max")
        cells.append(f"{fmt_interval(iv, 3 if direction == 'min' else 1)} — "
                     + (f"{subject} {verdict}" if verdict else "not separated"))
    return cells


def paired_lines(bridge: Run, others: list[Run], metrics=METRICS) -> list[str]:
    """α-Bridge minus each other run, per seed, for every metric (seeds must match)."""
    lines = ["| α-Bridge minus | " + " | ".join(f"Δ {t} (95% CI)" for _, t, _, _ in metrics)
             + " |", "|---|" + "---|" * len(metrics)]
    for other in others:
        lines.append(f"| {other.label} | " + " | ".join(
            _paired_cells(bridge, other, "α-Bridge", metrics)) + " |")
    return lines


def probe_lines(probes: list[Run], evaluation: list[Run], criterion,
                metrics=METRICS, subject: str = "probe") -> list[str]:
    """The diagnostic arms (configs/sweeps/probe.py): their scores, then each minus the
    evaluated run of its method (the run named by the probe's first name part), per seed;
    ``subject`` names the arms in the paired table's verdicts."""
    by_name = {r.name: r for r in evaluation}
    pairs = []
    for probe in probes:
        method = method_key(probe.name)
        if method not in by_name:
            raise ReportError(f"probe run {probe.name!r} has no evaluated run {method!r}")
        pairs.append((probe, by_name[method]))
    lines = [*evaluated_lines(probes, criterion, metrics), "",
             f"| {subject} minus the evaluated run | " + " | ".join(
                 f"Δ {t} (95% CI)" for _, t, _, _ in metrics) + " |",
             "|---|" + "---|" * len(metrics)]
    for probe, evaluated in pairs:
        lines.append(f"| {probe.label} − {evaluated.label} | "
                     + " | ".join(_paired_cells(probe, evaluated, subject, metrics)) + " |")
    return lines


def noise_lines(noise_tuning: list[Run], noise: list[Run], evaluation: list[Run], rule,
                criterion, metrics=METRICS) -> list[str]:
    """The instance-noise arms (configs/sweeps/regularisers.py): σ₀ selected per method on
    the selection seeds, then the selected σ₀ on the evaluation seeds minus the method's
    evaluated (R1) run, per seed."""
    lines = [NOISE_TEXT, "", "Selection of σ₀ (selection seeds):", "",
             *selection_lines(selection.select(noise_tuning, rule), rule), ""]
    if noise:
        lines += ["The selected σ₀ on the evaluation seeds:", "",
                  *probe_lines(noise, evaluation, criterion, metrics, "noise"), ""]
    return lines


def stability_plot(rows: list[selection.Stability], path: str) -> str:
    """Grouped bars, two panels: each method's success rate and divergence rate at each
    learning rate of the grid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = sorted({v for r in rows for v in r.by_value})
    width = 0.8 / max(len(values), 1)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    x = np.arange(len(rows))
    for ax, (index, title) in zip(axes, ((0, "success rate"), (1, "divergence rate")), strict=True):
        for i, v in enumerate(values):
            rates = [r.by_value[v][index] / r.by_value[v][2] if v in r.by_value else 0.0
                     for r in rows]
            ax.bar(x + (i - (len(values) - 1) / 2) * width, rates, width, label=f"lr {v:g}")
        ax.set_xticks(x, [r.label for r in rows], rotation=25, ha="right", fontsize=7)
        ax.set_title(f"{title} (grid × selection seeds)", fontsize=9)
        ax.set_ylim(0, 1.05)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _dataset(runs: list[Run]) -> str:
    names = {r.dataset for r in runs}
    if len(names) != 1:
        raise ReportError(f"the runs hold {len(names)} datasets {sorted(names)}; one at a time")
    return names.pop()


def markdown(protocol, tuning: list[Run], evaluation: list[Run], plot: str,
             rows: list[selection.Stability], comparisons: list[fair_claims.Comparison],
             chosen: dict, shipped: Run, probes: list[Run] = (),
             source: str = DEFAULT_PROTOCOL, *, noise_tuning: list[Run] = (),
             noise: list[Run] = ()) -> str:
    """fair_<dataset>.md, given the stability rows, the claims' comparisons, the selection
    (:func:`bridge_jax.selection.select`), the shipped α-Bridge's evaluation run, the
    diagnostic arms (``probes``, configs/sweeps/probe.py; may be empty), the protocol's
    file (``source``) and the instance-noise arms (``noise_tuning``, ``noise``;
    configs/sweeps/regularisers.py; may be empty)."""
    metrics, _ = fair_claims.protocol_metrics(protocol)
    rule = selection.check_rule(protocol.rule)
    criterion = selection.check_success(protocol.success)
    dataset = _dataset(tuning + evaluation)
    bridge = next(r for r in evaluation if r.name == BRIDGE)
    methods = [r for r in evaluation if not r.label.startswith(ABLATION_PREFIX)]
    ablation = [r for r in evaluation if r.label.startswith(ABLATION_PREFIX)]
    lines = [f"# The fair test on {dataset}", "",
             protocol_text(source, chosen, rule, criterion, _seeds_text(tuning),
                           _seeds_text(evaluation)), "",
             "## Selection (selection seeds)", "", *selection_lines(chosen, rule), "",
             "## Tuned and evaluated (evaluation seeds)", "",
             *evaluated_lines(methods + ablation, criterion, metrics), "",
             *_stability_section(rows, plot),
             "## The shipped α-Bridge against every other method (paired by evaluation "
             "seed)", "", *paired_lines(shipped, [r for r in methods if r is not shipped], metrics),
             ""]
    if ablation:
        lines += ["## Annealing ablation (paired by evaluation seed)", "",
                  *paired_lines(bridge, ablation, metrics), ""]
    if noise_tuning:
        lines += ["## Instance noise in place of R1", "",
                  *noise_lines(list(noise_tuning), list(noise), evaluation, rule, criterion,
                               metrics)]
    if probes:
        lines += ["## Diagnostic arms (after the evaluation, on its seeds; not selected "
                  "from)", "", PROBE_TEXT, "", *probe_lines(list(probes), evaluation,
                                                             criterion, metrics), ""]
    lines = lines[:2] + ["## Claims", "", *fair_claims.detailed_lines(comparisons), "",
                         shipped_line(chosen, rule), ""] + lines[2:]
    return "\n".join(lines)


def protocol_text(source: str, chosen: dict, rule, criterion, tuning_seeds: str,
                  evaluation_seeds: str) -> str:
    """The paragraph that states the declared protocol."""
    worst = " / ".join("0" if d == "max" else "∞" for _, d in rule)
    return (f"Protocol (declared in `{source}` before the runs): every method gets "
            f"{len(next(iter(chosen.values()))[1])} settings; selection seeds {tuning_seeds}, "
            f"evaluation seeds {evaluation_seeds}. Rule: "
            f"{', '.join(f'{d} {n}' for n, d in rule)} (means over the selection seeds; a "
            f"diverged member scores {worst}). Success: "
            + ", ".join(f"{n} {op} {b}" for n, op, b in criterion) + ".")


def _stability_section(rows: list[selection.Stability], plot: str) -> list[str]:
    return ["## Stability (whole grid × selection seeds)", "", *stability_lines(rows), "",
            f"![success and divergence rates per learning rate]({os.path.basename(plot)})",
            ""]


def tuning_markdown(protocol, tuning: list[Run], plot: str, rows: list[selection.Stability],
                    chosen: dict, source: str = DEFAULT_PROTOCOL) -> str:
    """fair_<dataset>.md before the evaluation sweep has run: the protocol, the selection
    and the stability over the grid."""
    rule = selection.check_rule(protocol.rule)
    criterion = selection.check_success(protocol.success)
    first, count = protocol.evaluation_seeds
    declared = ", ".join(map(str, range(first, first + count)))
    dataset = _dataset(tuning)
    lines = [f"# The fair test on {dataset}", "",
             protocol_text(source, chosen, rule, criterion, _seeds_text(tuning),
                           f"{declared} (declared)"), "",
             "**The evaluation has not run yet**: this page holds the selection and the "
             "stability over the grid. `configs/sweeps/fair.py` trains each method's "
             "selected setting on the evaluation seeds; no claim is measured until then.",
             "", shipped_line(chosen, rule), "",
             "## Selection (selection seeds)", "", *selection_lines(chosen, rule), "",
             *_stability_section(rows, plot)]
    return "\n".join(lines)


def shipped_label(chosen: dict, rule) -> str | None:
    """The method label of the α-Bridge setting a shipped config carries: of the α-Bridge
    methods' selected settings, the better one under the rule on the selection seeds
    (None: no α-Bridge)."""
    bridges = {label: best for label, (best, _) in chosen.items()
               if fair_claims.is_bridge(label)}
    return max(bridges, key=lambda label: bridges[label].key(rule)) if bridges else None


def shipped_run(chosen: dict, rule) -> selection.SettingScore | None:
    """The selected setting of :func:`shipped_label`'s method (None: no α-Bridge)."""
    label = shipped_label(chosen, rule)
    return None if label is None else chosen[label][0]


def shipped_evaluation(chosen: dict, rule, evaluation: list[Run]) -> Run:
    """The shipped α-Bridge's evaluation run (the cosine ``bridge`` when it has none)."""
    label = shipped_label(chosen, rule)
    return next((r for r in evaluation if not r.label.startswith(ABLATION_PREFIX)
                 and fair_claims.grid_label(r) == label),
                next(r for r in evaluation if r.name == BRIDGE))


def shipped_line(chosen: dict, rule) -> str:
    label = shipped_label(chosen, rule)
    if label is None:
        return ""
    return ("Shipped α-Bridge setting (the better α-Bridge method under the rule on the "
            f"selection seeds; `configs/` carries it): **`{chosen[label][0].run}`**. The "
            f"claims are measured with it ({label}), except the annealing claim: the "
            "cosine α-Bridge against the ablation trained around it.")


def _seeds_text(runs: list[Run]) -> str:
    """The seeds the records hold, e.g. ``0…9`` (or a list when they are not a range)."""
    seeds = sorted({m.seed for r in runs for m in r.members})
    if seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2:
        return f"{seeds[0]}…{seeds[-1]}"
    return ", ".join(map(str, seeds))


def write(protocol, tuning: list[Run], evaluation: list[Run], out: str,
          probes: list[Run] = (), source: str = DEFAULT_PROTOCOL, *,
          noise_tuning: list[Run] = (), noise: list[Run] = ()) -> str:
    """Writes ``out/fair_<dataset>.md`` and ``out/stability_<dataset>.png`` (with the
    diagnostic arms ``probes`` and the instance-noise arms ``noise_tuning``, ``noise`` when
    given; ``source``: the protocol's file, named in the text); returns the markdown's
    path. Without ``evaluation`` runs the page holds the selection and the stability only
    (:func:`tuning_markdown`)."""
    by_name = {r.name: r for r in evaluation}
    if evaluation and BRIDGE not in by_name:
        raise ReportError(f"no run named {BRIDGE!r} among the evaluation runs")
    rows = selection.stability(tuning, selection.check_success(protocol.success), LR_AXIS)
    rule = selection.check_rule(protocol.rule)
    chosen = selection.select(tuning, rule)
    if evaluation:
        shipped = shipped_evaluation(chosen, rule, evaluation)
        comparisons = fair_claims.claims(by_name, rows, shipped,
                                         *fair_claims.protocol_metrics(protocol))
    os.makedirs(out, exist_ok=True)
    arms = [*probes, *noise_tuning, *noise] if evaluation else []  # shown with it only
    stem = _dataset(tuning + arms)
    plot = stability_plot(rows, os.path.join(out, f"stability_{stem}.png"))
    path = os.path.join(out, f"fair_{stem}.md")
    with open(path, "w") as f:
        f.write(markdown(protocol, tuning, evaluation, plot, rows, comparisons, chosen,
                         shipped, probes, source, noise_tuning=noise_tuning, noise=noise)
                if evaluation else
                tuning_markdown(protocol, tuning, plot, rows, chosen, source))
    if evaluation:
        with open(os.path.join(out, f"claims_{stem}.md"), "w") as f:  # quoted by the README
            f.write("\n".join(fair_claims.summary_lines(
                comparisons, stem, f"docs/results/fair_{stem}.md",
                fair_claims.grid_label(shipped))) + "\n")
    return path


def load_runs(paths: list[str]) -> list[Run]:
    runs = [r for p in paths for r in load_workdir(p).runs()]
    if not runs:
        raise ReportError("no finished runs with evaluations in " + ", ".join(paths))
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--protocol", required=True, help="the declaring config file")
    parser.add_argument("--tuning", nargs="+", required=True, metavar="WORKDIR")
    parser.add_argument("--evaluation", nargs="*", default=[], metavar="WORKDIR")
    parser.add_argument("--probe", nargs="*", default=[], metavar="WORKDIR",
                        help="diagnostic arms' workdirs (configs/sweeps/probe.py)")
    parser.add_argument("--noise-tuning", nargs="*", default=[], metavar="WORKDIR",
                        help="instance-noise arms on the selection seeds "
                             "(configs/sweeps/regularisers.py :<dataset>,tune)")
    parser.add_argument("--noise", nargs="*", default=[], metavar="WORKDIR",
                        help="their selected σ₀ on the evaluation seeds (:<dataset>,evaluate)")
    parser.add_argument("--out", default="", metavar="DIR")
    args = parser.parse_args(argv)
    try:
        refuse_uris(*args.tuning, *args.evaluation, *args.probe, *args.noise_tuning,
                    *args.noise, args.out)
        from bridge_jax.configuration import ConfigError, config_from_file

        try:
            protocol = config_from_file(args.protocol)
        except ConfigError as e:
            raise ReportError(str(e)) from None
        tuning = load_runs(args.tuning)
        chosen = selection.select(tuning, selection.check_rule(protocol.rule))
        for label, (best, _) in chosen.items():
            print(f"{label}: {best.run}")
        if args.out:
            probes = load_runs(args.probe) if args.probe else []
            evaluation = load_runs(args.evaluation) if args.evaluation else []
            print(write(protocol, tuning, evaluation, args.out, probes, args.protocol,
                        noise_tuning=load_runs(args.noise_tuning) if args.noise_tuning else [],
                        noise=load_runs(args.noise) if args.noise else []))
    except (ReportError, selection.SelectionError, OSError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
