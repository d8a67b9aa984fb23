"""The README and docs/ cite only files that exist, and every doc is linked from the README."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Markdown links, and backquoted repository paths that are a whole code span (a span
# with a glob, a :variant or arguments is not a file name).
LINK = re.compile(r"\]\(([^)#\s]+)")
PATH = re.compile(r"`((?:bridge_jax|configs|docs|examples|launch|results|tests)/[^`\s:*{}]*)`")


def _cited(markdown: Path) -> set[Path]:
    text = markdown.read_text()
    targets = {m for m in LINK.findall(text) if "://" not in m}
    cited = {(markdown.parent / t).resolve() for t in targets}
    cited |= {(ROOT / p.rstrip("/.,")).resolve() for p in PATH.findall(text)}
    return cited


def test_every_file_the_readme_and_docs_cite_exists():
    generated = {(ROOT / "docs" / "api").resolve()}  # written by launch/docs.sh
    for md in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        missing = sorted(str(p.relative_to(ROOT)) for p in _cited(md)
                         if not p.exists() and p not in generated)
        assert not missing, f"{md.name} cites missing files: {missing}"


def test_every_doc_is_linked_from_the_readme():
    readme = ROOT / "README.md"
    linked = _cited(readme)
    for doc in sorted((ROOT / "docs").glob("*.md")):
        assert doc.resolve() in linked, f"README.md does not link {doc.relative_to(ROOT)}"


# The results the README quotes: written by the report command from the stored records
# of the sweeps (results/records/<sweep>/: each group's config, members, summary and
# metrics as the trainer wrote them, without checkpoints).
RECORDS = ROOT / "results" / "records"
REPORTED = ROOT / "docs" / "results"
HEADLINE_RUNS = ["vae", "adversarial", "nsgan", "bridge_cosine"]


def test_the_results_tables_are_what_the_report_writes_from_the_stored_records(tmp_path):
    from bridge_jax import report

    workdirs = sorted(str(p) for p in RECORDS.iterdir() if (p / "sweep.json").exists())
    assert workdirs, "no stored sweep records"
    report.write_report(workdirs, str(tmp_path), headline=HEADLINE_RUNS)
    for name in ("results.md", "headline.md"):
        assert (tmp_path / name).read_text() == (REPORTED / name).read_text(), name
    for plot in sorted(p.name for p in tmp_path.glob("*.png")):
        assert (REPORTED / plot).exists(), plot


def test_the_readme_quotes_the_headline_tables_verbatim():
    readme = (ROOT / "README.md").read_text()
    claims = sorted(p.name for p in REPORTED.glob("claims_*.md"))  # bridge_jax.fair_report's
    assert "claims_ring.md" in claims
    for name in ("headline.md", *claims):
        for line in (REPORTED / name).read_text().splitlines():
            assert line in readme, (name, line)
