"""Reading Markdown for the tests of the docs and of the runbook: headings and the anchors
GitHub gives them."""

from __future__ import annotations

import re

__all__ = ["github_anchor", "markdown_headings"]


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped,
    spaces turned into hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def markdown_headings(text: str) -> list[str]:
    """The ATX headings of a Markdown text, leaving out lines inside fenced code blocks."""
    headings: list[str] = []
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        match = re.match(r"^#{1,6}\s+(.+?)\s*#*\s*$", line)
        if match and not fenced:
            headings.append(match.group(1))
    return headings
