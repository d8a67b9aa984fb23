"""The README and docs/ cite only files that exist, and every doc is linked from the README."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Markdown links and backquoted repository paths (with or without :variant / globs).
LINK = re.compile(r"\]\(([^)#\s]+)")
PATH = re.compile(r"`((?:bridge_jax|configs|docs|examples|launch|results|tests)/[^`\s:*{}]*)")


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
