"""The documents' links land: every relative link and anchor in README.md, BENCHMARKS.md and
docs/*.md names a file that exists and, after `#`, a heading of that file (GitHub's anchor rule);
every `make X` they name is a target of the Makefile. Text only, no torch."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^```.*?^```[^\n]*$", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
MAKE = re.compile(r"\bmake ([a-z][\w-]*)")
TARGET = re.compile(r"^([A-Za-z][\w-]*)\s*:(?!=)", re.M)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped (letters,
    digits, spaces, hyphens and underscores kept), each space a hyphen."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading's anchor in `path`, a repeated one numbered as GitHub does (`-1`, `-2`)."""
    seen: dict[str, int] = {}
    out = set()
    for heading in HEADING.findall(FENCE.sub("", path.read_text(encoding="utf-8"))):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(path: Path) -> list[str]:
    """The link targets in `path`'s prose (code blocks and inline code left out)."""
    text = INLINE_CODE.sub("", FENCE.sub("", path.read_text(encoding="utf-8")))
    return LINK.findall(text)


def test_slug_follows_githubs_rule():
    assert slug("`depthbench plan`: predicted against measured wall time") == \
        "depthbench-plan-predicted-against-measured-wall-time"
    assert slug("The split, or cross-validation") == "the-split-or-cross-validation"
    assert slug("models (`depthbench.models`)") == "models-depthbenchmodels"


def test_the_check_catches_a_broken_link(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[ok](#title) [bad](#nowhere) `[code](#skipped)`\n"
                    "```\n[fenced](#skipped)\n```\n")
    assert links(page) == ["#title", "#nowhere"]
    assert anchors(page) == {"title"}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_and_anchor_resolves(doc):
    broken = []
    for target in links(doc):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:: not ours to check
            continue
        file, _, anchor = target.partition("#")
        dest = (doc.parent / file).resolve() if file else doc
        if not dest.exists():
            broken.append(f"{target}: no file {dest.relative_to(ROOT)}")
        elif anchor and (dest.suffix != ".md" or anchor not in anchors(dest)):
            broken.append(f"{target}: no heading #{anchor} in {dest.relative_to(ROOT)}")
    assert broken == []


def test_every_make_target_named_exists():
    targets = set(TARGET.findall((ROOT / "Makefile").read_text(encoding="utf-8")))
    named = {(doc.relative_to(ROOT).as_posix(), t) for doc in DOCS
             for t in MAKE.findall(doc.read_text(encoding="utf-8"))}
    assert {(doc, t) for doc, t in named if t not in targets} == set()


def test_the_readme_fits_about_a_screen_to_its_answer():
    """What the tool does, the two commands, the report's picture and the time of `make run`
    come before the list of commands, and the picture it shows is in the repository."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    order = [readme.find(s) for s in ("make run", "make test", "![", "| machine")]
    assert -1 not in order and order == sorted(order)
    assert all((ROOT / t).is_file() for t in links(ROOT / "README.md") if t.endswith(".png"))
