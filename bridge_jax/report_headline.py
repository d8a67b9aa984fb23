"""The compact results table the README shows: per dataset, the reference row and a few
chosen runs, the main metrics only (``python -m bridge_jax.report ... --headline
vae,nsgan,bridge_cosine`` writes it to ``headline.md`` beside the full ``results.md``)."""

from __future__ import annotations

from bridge_jax.report_data import Run, groups_of, metric_stat, runs_by_dataset

# The main metrics of each protocol, in column order (the first of them present wins).
HEADLINE_KEYS = ("modes_covered", "hq_fraction", "reverse_kl", "kl_to_uniform", "fd",
                 "precision", "recall")


def headline_table(dataset: str, runs: list[Run], run_names: list[str]) -> list[str]:
    """Markdown lines of one dataset's compact table (runs in ``run_names`` order)."""
    from bridge_jax.report import DATA_REFERENCE_LABEL, _pm, columns

    evals = [m.evals for r in runs for m in r.members]
    cols = [c for c in columns(evals) if c.key in HEADLINE_KEYS]
    by_name = {r.name: r for r in runs}
    chosen = [by_name[n] for n in run_names if n in by_name]
    seeds = sorted({len(r.members) for r in chosen})
    steps = {m.config.get("num_steps") for r in chosen for m in r.members}
    lines = [f"**{dataset}** ({', '.join(map(str, seeds))} seed(s), "
             f"{', '.join(f'{s:,}' for s in sorted(steps))} steps)", "",
             "| method | " + " | ".join(c.title for c in cols) + " |",
             "|" + "---|" * (len(cols) + 1)]
    references = [g.reference for g in groups_of(runs) if g.reference]
    if references:
        lines.append(f"| *{DATA_REFERENCE_LABEL}* | "
                     + " | ".join(_pm(metric_stat(references, c.key), c) for c in cols) + " |")
    for r in chosen:
        member_evals = [m.evals for m in r.members]
        lines.append(f"| {r.label} | "
                     + " | ".join(_pm(metric_stat(member_evals, c.key), c) for c in cols) + " |")
    return lines + [""]


def headline_markdown(workdirs, run_names: list[str]) -> str:
    """Every dataset's compact table, for the README."""
    lines = []
    for dataset, runs in runs_by_dataset(workdirs).items():
        lines += headline_table(dataset, runs, run_names)
    return "\n".join(lines)
