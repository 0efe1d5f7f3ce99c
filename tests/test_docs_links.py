# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""The README's and docs' relative links lead somewhere: the file exists and the #anchor is a heading of it
(GitHub's anchor rule), as a reader clicking them on the Hub or GitHub sees."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def github_anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped (letters, digits, spaces, '-' and '_' kept),
    spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set:
    found, seen, fenced = set(), {}, False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        match = re.match(r"#{1,6}\s+(.*)", line)
        if match and not fenced:
            anchor = github_anchor(match.group(1))
            count = seen.get(anchor, 0)
            seen[anchor] = count + 1
            found.add(anchor if count == 0 else f"{anchor}-{count}")  # repeated headings get -1, -2, ...
    return found


def test_github_anchor_rule():
    assert github_anchor("A second machine: AMD EPYC with AVX-512-BF16, no AMX") == \
        "a-second-machine-amd-epyc-with-avx-512-bf16-no-amx"
    assert github_anchor("Speed: where the time goes, and what the extractor does about it") == \
        "speed-where-the-time-goes-and-what-the-extractor-does-about-it"
    assert github_anchor("`ground` and `pipeline(...)`") == "ground-and-pipeline"


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_relative_links_resolve(page):
    problems = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):  # https:, mailto:, ...
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            problems.append(f"{target}: no file {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{target}: no heading with the anchor #{anchor} in {dest.name}")
    assert not problems, f"{page.name}: " + "; ".join(problems)
