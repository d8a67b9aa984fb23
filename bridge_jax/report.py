r"""Results tables and plots from training workdirs.

    python -m bridge_jax.report WORKDIR [WORKDIR ...] --out DIR

Each WORKDIR is a sweep (``sweep.json`` and one group directory per compiled program)
or a single group (a plain run); :mod:`bridge_jax.report_data` reads them. ``DIR``
receives ``results.md`` and the plots of :mod:`bridge_jax.report_plots`.

``results.md`` holds, per dataset (``data.name``), one table: the training data scored
like samples (``evals_reference``), then one row per run (sweep order) with the mean ±
population std over the run's members (seeds) of its final evaluation; non-finite values
are left out of the mean and counted as ``(+n ∞)``. The last column counts the members
that met a non-finite update. Every setting in the protocol lines and in the "setting"
column is read from the members' stored resolved configs: settings every member shares
are stated once, the fields that differ between runs (found by diffing the configs) are
shown per run. Published PacGAN rows follow for context (not our measurement).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys

import numpy as np

from bridge_jax import report_plots
from bridge_jax.report_data import (
    ReportError,
    Run,
    Stat,
    Workdir,
    canonical,
    groups_of,
    load_workdirs,
    metric_stat,
    num_modes,
    refuse_uris,
    runs_by_dataset,
    save_records,
)

PROG = "bridge_jax.report"
DATA_REFERENCE_LABEL = "training data (reference)"

# Published rows (context, not our measurement): Lin et al. 2018, "PacGAN: The power of
# two samples in generative adversarial networks", NeurIPS; Tables 2 and 3 (2-D mixtures,
# 10 trials) and Table 4 (Stacked MNIST, unrolled-GAN architecture).
# (method, modes covered, HQ % or None, reverse KL / KL to uniform)
PUBLISHED = {
    "ring": [("GAN", 6.3, 98.2, 0.45), ("ALI", 6.6, 97.6, 0.36), ("PacGAN4", 7.8, 95.9, 0.07)],
    "grid": [("GAN", 17.3, 94.8, 0.70), ("ALI", 24.1, 95.7, 0.14),
             ("PacGAN4", 24.8, 93.6, 0.04)],
    "stacked_mnist": [("DCGAN", 78.9, None, 4.50), ("PacDCGAN2", 1000.0, None, 0.06)],
}
PUBLISHED_SOURCE = ("Lin, Khetan, Fanti, Oh (2018), PacGAN: The power of two samples in "
                    "generative adversarial networks, NeurIPS 2018 — 2-D mixture tables "
                    "(average over 10 trials) and the Stacked MNIST table")

# Fields that are not settings of a run: the seed (listed separately), the sweep's own.
IGNORED_FIELDS = ("seed", "workdir")
IGNORED_PREFIXES = ("sweep.",)
ALPHA_PATH_FIELDS = ("alpha.schedule", "alpha.start", "alpha.end", "alpha.transition_begin",
                     "alpha.transition_steps", "alpha.num_stages", "alpha.decay_rate")
PER_RUN = "per run"


@dataclasses.dataclass(frozen=True)
class Column:
    """A metric column: ``title``, cells ``scale·mean ± scale·std`` to ``digits`` places."""

    key: str
    title: str
    scale: float = 1.0
    digits: int = 2


# In table order, after modes covered; only the metrics some member has are shown.
METRIC_COLUMNS = (
    Column("modes_covered_strict", "strict modes"),
    Column("hq_fraction", "HQ %", 100.0, 1),
    Column("reverse_kl", "reverse KL"),
    Column("kl_to_uniform", "KL to uniform"),
    Column("fd", "FD-MNIST-classifier"),
    Column("precision", "precision", digits=3),
    Column("recall", "recall", digits=3),
)
METRIC_NOTES = {
    "hq_fraction": "PacGAN protocol (Lin et al. 2018 §5.1): a sample is *high quality* (HQ) "
                   "within 3 standard deviations of its nearest mode centre; a mode is "
                   "*covered* when it is the nearest centre of at least one HQ sample; "
                   "*strict* modes need at least 0.1 × N/K HQ samples; reverse KL = "
                   "KL(p̂ ‖ uniform) over the modes, p̂ the histogram of the HQ samples "
                   "(∞ when no sample is HQ).",
    "kl_to_uniform": "Stacked MNIST (VEEGAN/PacGAN protocol): each channel of a decoder mean "
                     "is classified by the project's digit classifier{accuracy}; a mode "
                     "(digit triple) is covered when predicted at least once; KL = "
                     "KL(p̂ ‖ U_K).",
    "fd": "FD-MNIST-classifier: Fréchet distance between the digit classifier's penultimate "
          "features of generated and of real channels. Not FID; lower is better.",
    "precision": "precision / recall: k-NN manifolds (Kynkäänniemi et al. 2019).",
}


def _pm(stat: Stat | None, column: Column) -> str:
    """``mean ± std`` of the finite values (the value alone when there is one: a single
    seed has no spread to show), ``(+n ∞)`` for the others; "—" without any."""
    if stat is None:
        return "—"
    if stat.count == 0:
        return ("∞ (no HQ sample)" if column.key == "reverse_kl"
                else f"∞ (all {stat.num_nonfinite})")
    s, d = column.scale, column.digits
    text = f"{stat.mean * s:.{d}f}" + (f" ± {stat.std * s:.{d}f}" if stat.count > 1 else "")
    if stat.num_nonfinite:
        text += f" (+{stat.num_nonfinite} ∞)"
    return text


def columns(evals: list[dict]) -> list[Column]:
    """The table's metric columns: the metrics some member's evaluation holds."""
    present = {k for e in evals for k in e}
    k = num_modes(evals)
    image = "kl_to_uniform" in present
    cols = []
    if "modes_covered" in present:
        of = f" (of {k})" if k else ""
        cols.append(Column("modes_covered", ("modes" if image else "modes covered") + of,
                           digits=1 if image else 2))
    return cols + [c for c in METRIC_COLUMNS if c.key in present]


def _fmt(value, grouped: bool = True) -> str:
    """A config value as the protocol writes it: floats with :g, integers with thousands
    separators (``grouped``; off for `field=value` literals), lists comma-joined."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int):
        return f"{value:,}" if grouped else str(value)
    if isinstance(value, list):
        return ", ".join(_fmt(v, grouped) for v in value) or "none"
    return str(value)


def alpha_path(config: dict) -> str:
    """The α path of a member config: "α≡a", or "α <schedule> s→e, reaching α=e at step
    N, then held" (transition_steps > 0 ending before the last step), "over all steps"
    (transition_steps ≤ 0: the schedule spans num_steps − transition_begin)."""
    method = config.get("method")
    if method in ("vae", "adversarial"):
        return "α≡1" if method == "vae" else "α≡0"
    if method in ("nsgan", "hybrid"):
        return "α unused"
    schedule = config.get("alpha.schedule")
    start, end = float(config.get("alpha.start", 1.0)), float(config.get("alpha.end", 0.0))
    if schedule == "constant":
        return f"α≡{start:g}"
    text = f"α {schedule} {start:g}→{end:g}"
    if schedule == "step":
        text += f" in {config.get('alpha.num_stages')} stages"
    if schedule == "exponential":
        text += f" (decay rate {_fmt(config.get('alpha.decay_rate'))})"
    begin = int(config.get("alpha.transition_begin", 0) or 0)
    steps = int(config.get("alpha.transition_steps", -1) or -1)
    num_steps = int(config.get("num_steps", 0) or 0)
    if begin > 0:
        text += f" from step {begin:,}"
    if steps > 0 and begin + steps < num_steps:
        return text + f", reaching α={end:g} at step {begin + steps:,}, then held"
    return text + f", reaching α={end:g} at the last step"


def _shared(members, key: str):
    """The value of ``key`` every member shares, else PER_RUN."""
    values = {canonical(m.config.get(key)) for m in members}
    return members[0].config.get(key) if len(values) == 1 else PER_RUN


def _per_run_value(run: Run, fn) -> str:
    """fn(member config) for a run; "varies" when its members disagree."""
    texts = {fn(m.config) for m in run.members}
    return texts.pop() if len(texts) == 1 else "varies"


def _is_setting(key: str) -> bool:
    return key not in IGNORED_FIELDS and not key.startswith(IGNORED_PREFIXES)


def run_settings(runs: list[Run]) -> list[str]:
    """Per run (in order), the settings that differ between runs: the fields whose values
    are not equal in every member config (seed aside), α path fields as one α path; []
    when the runs differ in nothing."""
    members = [m for r in runs for m in r.members]
    keys = sorted({k for m in members for k in m.config if _is_setting(k)})
    differing = [k for k in keys if k not in ALPHA_PATH_FIELDS
                 and len({canonical(m.config.get(k)) for m in members}) > 1]
    differing.sort(key=lambda k: k != "method")  # the method first
    alphas = [_per_run_value(r, alpha_path) for r in runs]
    show_alpha = len(set(alphas)) > 1
    if not differing and not show_alpha:
        return []
    out = []
    for run, alpha in zip(runs, alphas, strict=True):
        parts = [f"`{k}={_per_run_value(run, lambda c, k=k: _fmt(c.get(k), False))}`"
                 for k in differing]
        if show_alpha:
            parts.insert(1 if differing[:1] == ["method"] else 0, alpha)
        out.append(", ".join(parts))
    return out


def _seeds_text(runs: list[Run]) -> str:
    """The seeds of every run, once when every run has the same."""
    per_run = {r.label: ", ".join(str(m.seed) for m in r.members) for r in runs}
    if len(set(per_run.values())) == 1:
        seeds = next(iter(per_run.values()))
        return f"{seeds} ({len(runs[0].members)} per run)"
    return "; ".join(f"{label}: {s}" for label, s in per_run.items())


def _lr_text(members, player: str) -> str:
    """Adam lr (β1, β2), lr schedule and clipping of ``player`` (generator or critic)."""
    def v(field):
        return _fmt(_shared(members, f"{player}.{field}"))

    text = (f"Adam lr {v('learning_rate')} (β1 {v('b1')}, β2 {v('b2')}), "
            f"{v('lr_schedule')} lr schedule")
    if _shared(members, f"{player}.lr_schedule") == "cosine":
        horizon = _shared(members, f"{player}.lr_decay_steps")
        at = ("the last step" if isinstance(horizon, int) and horizon <= 0
              else f"step {_fmt(horizon)}")
        text += f" (decaying to {v('final_lr_fraction')} × lr at {at})"
    return text + f", gradient clipping {v('clip_norm')}"


def _eval_text(members) -> str:
    """Which evaluators, how often, on how many samples (0: each evaluator's protocol)."""
    names = _shared(members, "eval.evaluators")
    names = names.replace(",", ", ") if isinstance(names, str) else _fmt(names)
    every, n = _shared(members, "eval.every"), _shared(members, "eval.num_samples")
    when = ("after the last step only" if every == 0
            else f"every {_fmt(every)} steps and after the last")
    size = ("each evaluator's protocol number of samples" if n == 0
            else f"{_fmt(n)} samples")
    return f"{names} {when}, on {size} per member"


def protocol_lines(runs: list[Run]) -> list[str]:
    """The settings every member of ``runs`` shares, once ("per run" where they differ:
    those are in the table's setting column); all read from the stored configs."""
    members = [m for r in runs for m in r.members]

    def v(key):
        return _fmt(_shared(members, key))

    likelihood = _shared(members, "model.likelihood")
    sigma = _shared(members, "model.init_log_scale")
    decoder = (f", decoder σ init {math.exp(sigma):.3g}" if likelihood == "gaussian"
               and isinstance(sigma, (int, float)) else "")
    alphas = {_per_run_value(r, alpha_path) for r in runs}
    evals_steps = {int((g.summary or {}).get("evals_step", -1)) for g in groups_of(runs)}
    evals_step = (f"step {next(iter(evals_steps)):,}" if len(evals_steps) == 1
                  else "each group's last step")
    return [
        f"- Training: {v('num_steps')} steps, batch {v('batch_size')}, method "
        f"{v('method')}, non-finite policy {v('nonfinite_policy')}; seeds "
        f"{_seeds_text(runs)}.",
        f"- Model: {v('model.arch')}, width×depth {v('model.width')}×{v('model.depth')}, "
        f"latent dim {v('model.latent_dim')}, {v('model.likelihood')} likelihood{decoder}.",
        f"- Encoder/decoder: {_lr_text(members, 'generator')}"
        + (f"; decoder log σ lr × {v('generator.scale_lr_multiplier')}." if decoder
           else "."),
        f"- Critic: {_lr_text(members, 'critic')}; {v('critic.steps')} update(s) per "
        f"generator update, {v('critic.loss')} loss, R1 penalty γ = "
        f"{v('critic.gradient_penalty')}.",
        "- α path: " + (next(iter(alphas)) if len(alphas) == 1 else PER_RUN) + ".",
        f"- Evaluation: {_eval_text(members)}; the table is the evaluation at "
        f"{evals_step}, mean ± population std over each run's seeds.",
        "- Settings marked \"per run\" are in the table's setting column (the fields that "
        "differ between the runs' stored configs); every field is in each group's "
        "`config.json` and `members.json`.",
    ]


def _metric_notes(evals: list[dict], references: list[dict]) -> list[str]:
    """One line per evaluation protocol whose metrics the table shows."""
    present = {k for e in evals for k in e}
    accuracy = next((r["classifier_accuracy"] for r in references
                     if isinstance(r.get("classifier_accuracy"), (int, float))), None)
    notes = []
    for key, note in METRIC_NOTES.items():
        if key in present:
            acc = f" (held-out accuracy {accuracy:.3f})" if accuracy is not None else ""
            notes.append("- " + note.replace("{accuracy}", acc))
    return notes


def nonfinite_title(runs: list[Run]) -> str:
    """The last column's title, per the members' non-finite policy."""
    policies = {m.policy for r in runs for m in r.members}
    if policies == {"stop"}:
        return "seeds stopped by a non-finite update (row: the model at that step)"
    if policies == {"skip"}:
        return "seeds with skipped non-finite updates"
    return "seeds with a non-finite update (stopped or skipped: nonfinite_policy per run)"


def nonfinite_notes(runs: list[Run]) -> list[str]:
    """A line per policy naming each member's first non-finite update (run, seed, step,
    quantities); none when every update was finite."""
    events: dict[str, list[str]] = {"stop": [], "skip": []}
    for run in runs:
        for m in run.members:
            if m.nonfinite["count"] <= 0:
                continue
            step = m.nonfinite["first_step"]
            where = f"at step {int(step):,}" if step is not None else "at an unrecorded step"
            what = f" ({m.nonfinite['what']})" if m.nonfinite["what"] else ""
            events.setdefault(m.policy, []).append(f"{run.label} seed {m.seed} {where}{what}")
    heads = {"stop": "Stopped by a non-finite update: ",
             "skip": "First skipped non-finite update: "}
    return [line for policy, items in events.items() if items
            for line in ("", heads.get(policy, f"Non-finite ({policy}): ")
                         + "; ".join(items) + ".")]


def _reference_row(cols: list[Column], references: list[dict], setting: bool) -> list[str]:
    """The training data's row (mean ± std over the groups' reference evaluations)."""
    if not any(references):
        return []
    cells = [f"*{DATA_REFERENCE_LABEL}*"] + ([""] if setting else [])
    cells += [_pm(metric_stat(references, c.key), c) for c in cols] + ["—"]
    return ["| " + " | ".join(cells) + " |"]


def table_lines(runs: list[Run], references: list[dict]) -> list[str]:
    """The table: header, the reference row, one row per run."""
    evals = [m.evals for r in runs for m in r.members]
    cols = columns(evals)
    settings = run_settings(runs)
    head = ["method"] + (["setting"] if settings else []) + [c.title for c in cols]
    head.append(nonfinite_title(runs))
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += _reference_row(cols, references, bool(settings))
    for i, run in enumerate(runs):
        member_evals = [m.evals for m in run.members]
        cells = [run.label] + ([settings[i]] if settings else [])
        cells += [_pm(metric_stat(member_evals, c.key), c) for c in cols]
        cells.append(str(sum(1 for m in run.members if m.nonfinite["count"] > 0)))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def kl_split_notes(runs: list[Run], references: list[dict]) -> list[str]:
    """Where each row's KL to uniform comes from (mean over seeds): KL = Σ_c KL(p̂_c ‖ U_10)
    (digits generated too rarely or too often, per channel) + the channels' dependence."""
    def has_split(e):
        return isinstance(e.get("kl_channel_marginals"), list) and "kl_dependence" in e

    rows = [(f"*{DATA_REFERENCE_LABEL}*", [r for r in references if has_split(r)])]
    rows += [(r.label, [m.evals for m in r.members]) for r in runs]
    parts = [f"{label} {np.mean([sum(e['kl_channel_marginals']) for e in es]):.3f} + "
             f"{np.mean([e['kl_dependence'] for e in es]):.3f}"
             for label, es in rows if es and all(has_split(e) for e in es)]
    if not any(has_split(m.evals) for r in runs for m in r.members):
        return []
    return ["", "KL to uniform split into the channels' class imbalance Σ_c KL(p̂_c ‖ U_10) "
            "and their dependence (mean over seeds): " + "; ".join(parts) + "."]


def published_lines(dataset: str) -> list[str]:
    """The PacGAN paper's rows for ``dataset`` (context, not our measurement)."""
    if dataset not in PUBLISHED:
        return []
    image = all(hq is None for _, _, hq, _ in PUBLISHED[dataset])
    lines = ["", "Published reference rows (context, **not our measurement**; different "
             "architectures, budgets" + (" and classifier" if image else "") + "):", ""]
    if image:
        lines += ["| method (PacGAN paper) | modes (of 1000) | KL |", "|---|---|---|"]
        lines += [f"| {n} | {m:g} | {kl} |" for n, m, _, kl in PUBLISHED[dataset]]
    else:
        lines += ["| method (PacGAN paper) | modes covered | HQ % | reverse KL |",
                  "|---|---|---|---|"]
        lines += [f"| {n} | {m:g} | {hq} | {kl} |" for n, m, hq, kl in PUBLISHED[dataset]]
    return lines + ["", f"Source: {PUBLISHED_SOURCE}."]


def dataset_markdown(dataset: str, runs: list[Run]) -> list[str]:
    """One dataset's section: heading, protocol, table, notes, published rows."""
    groups = groups_of(runs)
    references = [g.reference for g in groups]
    evals = [m.evals for r in runs for m in r.members]
    k = num_modes(evals)
    sizes = {len(r.members) for r in runs}
    seeds = (f"{sizes.pop()} seed(s)" if len(sizes) == 1
             else f"{min(sizes)}–{max(sizes)} seeds")
    steps = _fmt(_shared([m for r in runs for m in r.members], "num_steps"))
    wall = sum(g.wall_time_s for g in groups)
    lines = [f"## {dataset}" + (f" ({k} modes)" if k else "") + f" — {seeds}, {steps} steps, "
             f"wall {wall / 60:.1f} min", ""]
    lines += protocol_lines(runs) + _metric_notes(evals, references) + [""]
    lines += table_lines(runs, references)
    lines += nonfinite_notes(runs) + kl_split_notes(runs, references)
    lines += published_lines(dataset)
    return lines + [""]


def _missing_lines(workdirs: list[Workdir]) -> list[str]:
    """A line per group left out of the tables: which runs, and why."""
    lines = []
    for w in workdirs:
        for group, names in w.missing():
            where = w.name if group.path == w.path else f"{w.name}/{group.name}"
            lines.append(f"- {where}: runs {', '.join(f'`{n}`' for n in names)} "
                         f"({group.problem})")
    if not lines:
        return []
    return ["## Missing from the tables", "",
            "These groups have no final evaluation to report:", ""] + lines + [""]


def results_markdown(workdirs: list[Workdir], plots: list[str] = ()) -> str:
    """The whole results.md of ``workdirs``; ``plots``: the plot file names to list."""
    all_groups = [g for w in workdirs for g in w.groups if g.summary]
    wall = sum(g.wall_time_s for g in all_groups)
    lines = [f"# Results: {', '.join(w.name for w in workdirs)}", ""]
    descriptions = [f"- {w.name}: {w.description}" for w in workdirs if w.description]
    lines += descriptions + ([""] if descriptions else [])
    lines += [f"Wall time: **{wall / 60:.1f} min** ({wall:.0f} s), the sum of the "
              f"`total_wall_time_s` of {len(all_groups)} group(s) (training and evaluation, "
              "over all resumes).", ""]
    lines += _missing_lines(workdirs)
    for dataset, runs in runs_by_dataset(workdirs).items():
        lines += dataset_markdown(dataset, runs)
    if plots:
        lines += ["## Plots", ""] + [f"- `{p}`" for p in plots] + [""]
    return "\n".join(lines)


def write_report(workdirs: list[str], out_dir: str, *, plots: bool = True,
                 headline: list[str] = ()) -> str:
    """Reads ``workdirs``, writes ``out_dir/results.md``, (``plots``) the PNG plots and,
    given run names, the compact ``headline.md``; returns the markdown. Raises
    :class:`ReportError` on bad input."""
    from bridge_jax.report_headline import headline_markdown

    loaded = load_workdirs(list(workdirs))
    os.makedirs(out_dir, exist_ok=True)
    names = report_plots.write_plots(runs_by_dataset(loaded), out_dir) if plots else []
    text = results_markdown(loaded, names)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(text)
    if headline:
        with open(os.path.join(out_dir, "headline.md"), "w") as f:
            f.write(headline_markdown(loaded, list(headline)))
    return text


def main(argv: list[str] | None = None) -> int:
    """The CLI: prints the path of results.md; bad input → one error line, status 2."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("workdirs", nargs="+", metavar="WORKDIR",
                        help="a sweep directory (sweep.json) or a single run's workdir")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="where results.md and the plots are written")
    parser.add_argument("--no-plots", action="store_true", help="only write results.md")
    parser.add_argument("--headline", default="", metavar="RUN,RUN,...",
                        help="also write headline.md: the reference row and these runs, "
                             "main metrics only (the README's compact tables)")
    parser.add_argument("--save-records", default="", metavar="DIR",
                        help="with one WORKDIR: first copy its records (configs, members, "
                             "summaries, metrics, final samples; no checkpoints) to DIR and "
                             "report from there")
    args = parser.parse_args(argv)
    try:
        refuse_uris(*args.workdirs, args.out, args.save_records)
        if args.save_records:
            if len(args.workdirs) != 1:
                raise ReportError("--save-records takes exactly one WORKDIR")
            save_records(args.workdirs[0], args.save_records)
            args.workdirs = [args.save_records]
        write_report(args.workdirs, args.out, plots=not args.no_plots,
                     headline=[n for n in args.headline.split(",") if n])
    except ReportError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # --out is a file, not writable, the disk is full, ...
        print(f"{PROG}: error: cannot write the report to {args.out}: {e}", file=sys.stderr)
        return 2
    print(os.path.join(args.out, "results.md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
