"""The documentation: README.md as a short front door, docs/ as the reference.

README.md holds what a newcomer needs on a screen or two; everything else lives in docs/.
These tests keep the README short and its Quickstart and production config true, every
relative link (and its ``#anchor``) landing on something that exists, every docs page
reachable from the README, and the metrics table in docs/metrics.md in step with the golden
exposition. Each checker is first shown to catch a broken input of its own, so a passing
test means the documents are right, not that the checker is blind.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from urllib.parse import unquote

import pytest
import yaml

from exporter.config import AkSkCredentials, parse
from tests.support.markdown import github_anchor, markdown_headings

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
METRICS_DOC = DOCS / "metrics.md"
GOLDEN = ROOT / "tests" / "golden" / "metrics.prom"

MAX_README_LINES = 200
#: The Quickstart's two commands: CI runs ``make test``; tests/e2e/test_demo.py is ``make demo``.
QUICKSTART = ("make demo", "make test")
CONFIG_HEADING = "## A minimal production config"
#: Markdown files whose relative links must land.
LINKED_FILES = (
    README,
    *sorted(DOCS.glob("*.md")),
    ROOT / "grafana" / "README.md",
    ROOT / "deploy" / "kubernetes" / "README.md",
    ROOT / "deploy" / "systemd" / "README.md",
)
IMAGE_SUFFIXES = (".png", ".svg", ".jpg", ".jpeg", ".gif")

#: ``[text](target)`` and ``![alt](target)``, with an optional title; group 1 is the target.
LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
#: A table row whose first cell is one backticked ``modelarts_*`` name; group 2: the rest.
METRIC_ROW = re.compile(r"^\|\s*`(modelarts_[a-z0-9_]+)`\s*\|(.*)$", re.MULTILINE)
TYPE_LINE = re.compile(r"^# TYPE (\S+) (\S+)$", re.MULTILINE)
#: A sample line of an exposition: group 1 the name, group 2 what is between the braces.
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? ", re.MULTILINE)


# --- helpers -----------------------------------------------------------------------------


def without_fences(text: str) -> str:
    """The text without fenced code blocks (inline code is kept: table cells use it)."""
    kept: list[str] = []
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        elif not fenced:
            kept.append(line)
    return "\n".join(kept)


def without_code(text: str) -> str:
    """The text without fenced code blocks and inline code spans, where links are not links."""
    return re.sub(r"`[^`\n]*`", "", without_fences(text))


def link_targets(path: Path) -> list[str]:
    """The target of every link and image in a Markdown file, outside code."""
    return LINK.findall(without_code(path.read_text(encoding="utf-8")))


def is_relative(target: str) -> bool:
    """Whether a link target is a path in the repository (not a URL or a mail address)."""
    return not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:|^//", target)


def is_image(target: str) -> bool:
    return target.partition("#")[0].lower().endswith(IMAGE_SUFFIXES)


def anchors(path: Path) -> set[str]:
    """GitHub's anchors for a Markdown file's headings; a repeated one gets -1, -2 …"""
    seen: Counter[str] = Counter()
    found: set[str] = set()
    for heading in markdown_headings(path.read_text(encoding="utf-8")):
        anchor = github_anchor(heading)
        found.add(f"{anchor}-{seen[anchor]}" if seen[anchor] else anchor)
        seen[anchor] += 1
    return found


def dead_links(path: Path) -> dict[str, str]:
    """Relative link target → why it lands nowhere: a missing file, or an ``#anchor`` that
    no heading of the Markdown file it names has."""
    dead: dict[str, str] = {}
    for target in link_targets(path):
        if not is_relative(target):
            continue
        file_part, _, anchor = target.partition("#")
        destination = (path.parent / unquote(file_part)).resolve() if file_part else path
        if not destination.exists():
            dead[target] = "no such file"
        elif anchor and destination.suffix != ".md":
            dead[target] = "an anchor into a file that is not Markdown"
        elif anchor and anchor not in anchors(destination):
            dead[target] = f"no heading with anchor #{anchor} in {destination.name}"
    return dead


def linked_files(path: Path) -> set[Path]:
    """The files a Markdown file links to (relative links only, anchors dropped)."""
    return {
        (path.parent / unquote(target.partition("#")[0])).resolve()
        for target in link_targets(path)
        if is_relative(target) and target.partition("#")[0]
    }


def unlinked_pages(readme: Path, pages: list[Path]) -> list[str]:
    """The names of the pages that ``readme`` does not link to."""
    linked = linked_files(readme)
    return [page.name for page in pages if page.resolve() not in linked]


def table_metrics(path: Path) -> dict[str, list[str]]:
    """Metric name → the row's other cells, for each table row that starts with a
    ``modelarts_*`` name (recording rules, ``modelarts:*``, are not metrics)."""
    return {
        name: [cell.strip() for cell in rest.strip().strip("|").split("|")]
        for name, rest in METRIC_ROW.findall(without_fences(path.read_text(encoding="utf-8")))
    }


def golden_families(path: Path) -> dict[str, str]:
    """Metric family → type, from the ``# TYPE`` lines of an exposition."""
    return dict(TYPE_LINE.findall(path.read_text(encoding="utf-8")))


def golden_labels(path: Path) -> dict[str, frozenset[str]]:
    """Metric → the label names its samples carry, from an exposition."""
    found: dict[str, set[str]] = {}
    for name, labels in SAMPLE.findall(path.read_text(encoding="utf-8")):
        found.setdefault(name, set()).update(re.findall(r'(\w+)="(?:[^"\\]|\\.)*"', labels))
    return {name: frozenset(labels) for name, labels in found.items()}


def documented_labels(table: Path, column: int) -> dict[str, frozenset[str]]:
    """Metric → the label names in the given cell of its row (after the name); ``same``
    means the row above's."""
    result: dict[str, frozenset[str]] = {}
    previous: frozenset[str] = frozenset()
    for name, cells in table_metrics(table).items():
        cell = cells[column]
        labels = (
            previous
            if cell == "same"
            else frozenset(label.strip() for label in cell.strip("`").split(",") if label.strip())
        )
        result[name] = previous = labels
    return result


def label_mismatch(table: Path, column: int, golden: Path) -> dict[str, str]:
    """Metric → how its documented label names differ from those its golden samples carry."""
    served = golden_labels(golden)
    return {
        name: f"documented {sorted(labels)}, served {sorted(served[name])}"
        for name, labels in documented_labels(table, column).items()
        if name in served and labels != served[name]
    }


def table_mismatch(table: Path, golden: Path) -> tuple[list[str], list[str]]:
    """(golden families the table leaves out, table metrics the golden file lacks)."""
    documented, served = set(table_metrics(table)), set(golden_families(golden))
    return sorted(served - documented), sorted(documented - served)


def fenced_block(text: str, heading: str) -> str:
    """The first fenced code block after ``heading``."""
    section = text.split(f"\n{heading}\n", 1)[1]
    match = re.search(r"^```[a-z]*\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)
    assert match, f"no code block under {heading!r}"
    return match.group(1)


# --- the checkers themselves ---------------------------------------------------------------


class TestCheckers:
    def test_github_anchors(self, tmp_path: Path) -> None:
        """Headings get GitHub's anchors: lower case, punctuation dropped, spaces to hyphens,
        a repeat suffixed -1, and no heading read from a code block."""
        page = tmp_path / "page.md"
        page.write_text(
            "# Protecting /metrics\n## When ModelArts misbehaves: the fault matrix\n"
            "## systemd (a VM)\n## `modelarts_up`\n## Notes\n## Notes\n"
            "```sh\n# not a heading\n```\n",
            encoding="utf-8",
        )
        assert anchors(page) == {
            "protecting-metrics",
            "when-modelarts-misbehaves-the-fault-matrix",
            "systemd-a-vm",
            "modelarts_up",
            "notes",
            "notes-1",
        }

    def test_dead_links_are_found(self, tmp_path: Path) -> None:
        """A missing file, an anchor no heading has and an anchor into a non-Markdown file
        are reported; good links, URLs and links inside code are not."""
        (tmp_path / "sub").mkdir()
        (tmp_path / "sub" / "target.md").write_text("# Target\n## Good part\n", encoding="utf-8")
        (tmp_path / "data.txt").write_text("x\n", encoding="utf-8")
        page = tmp_path / "sub" / "page.md"
        page.write_text(
            "# Page\n"
            "[ok](target.md) [ok](target.md#good-part) [ok](#page) [ok](../data.txt)\n"
            "[url](https://example.com/missing.md) [mail](mailto:x@example.com)\n"
            "`[code](missing-in-code.md)`\n```\n[fenced](missing-in-fence.md)\n```\n"
            "[gone](missing.md) [bad](target.md#no-such-part) [self](#nowhere)\n"
            "[txt](../data.txt#line) ![image](images/missing.png)\n",
            encoding="utf-8",
        )
        assert dead_links(page) == {
            "missing.md": "no such file",
            "target.md#no-such-part": "no heading with anchor #no-such-part in target.md",
            "#nowhere": "no heading with anchor #nowhere in page.md",
            "../data.txt#line": "an anchor into a file that is not Markdown",
            "images/missing.png": "no such file",
        }

    def test_unlinked_pages_are_found(self, tmp_path: Path) -> None:
        """A page the README does not link to is reported; one it links to, with an anchor
        or through a code span in the link text, is not."""
        (tmp_path / "docs").mkdir()
        pages = [tmp_path / "docs" / name for name in ("a.md", "b.md", "c.md")]
        for page in pages:
            page.write_text("# Page\n", encoding="utf-8")
        readme = tmp_path / "README.md"
        readme.write_text(
            "[A](docs/a.md#page) [`b`](docs/b.md) `[c](docs/c.md)`\n", encoding="utf-8"
        )
        assert unlinked_pages(readme, pages) == ["c.md"]

    def test_metrics_table_mismatch_is_found(self, tmp_path: Path) -> None:
        """A golden family missing from the table and a table metric missing from the golden
        file are both reported; recording rules and code blocks are not read as metrics."""
        table = tmp_path / "metrics.md"
        table.write_text(
            "| metric | type |\n|---|---|\n| `modelarts_up` | gauge |\n"
            "| `modelarts_invented` | gauge |\n| `modelarts:pool_jobs:sum` | |\n"
            "```\n| `modelarts_in_code` | gauge |\n```\n",
            encoding="utf-8",
        )
        golden = tmp_path / "metrics.prom"
        golden.write_text(
            "# HELP modelarts_up Up.\n# TYPE modelarts_up gauge\nmodelarts_up 1.0\n"
            "# TYPE modelarts_api_requests_total counter\n",
            encoding="utf-8",
        )
        assert table_metrics(table) == {
            "modelarts_up": ["gauge"],
            "modelarts_invented": ["gauge"],
        }
        assert table_mismatch(table, golden) == (
            ["modelarts_api_requests_total"],
            ["modelarts_invented"],
        )

    def test_label_mismatch_is_found(self, tmp_path: Path) -> None:
        """A row missing a label its samples carry is reported, also through ``same``; a row
        that names them all, in any order, is not."""
        table = tmp_path / "metrics.md"
        table.write_text(
            "| metric | type | labels |\n|---|---|---|\n"
            "| `modelarts_up` | gauge | `region, project_id` |\n"
            "| `modelarts_specs` | gauge | `project_id` |\n"
            "| `modelarts_spec_gpus` | gauge | same |\n"
            "| `modelarts_exporter_poll_interval_seconds` | gauge | |\n",
            encoding="utf-8",
        )
        golden = tmp_path / "metrics.prom"
        golden.write_text(
            'modelarts_up{project_id="p",region="r"} 1.0\n'
            'modelarts_specs{job_type="train",project_id="p",region="r"} 3.0\n'
            'modelarts_spec_gpus{job_type="a\\"b=\\"c",project_id="p",region="r"} 8.0\n'
            "modelarts_exporter_poll_interval_seconds 60.0\n",
            encoding="utf-8",
        )
        assert label_mismatch(table, 1, golden) == {
            "modelarts_specs": (
                "documented ['project_id'], served ['job_type', 'project_id', 'region']"
            ),
            "modelarts_spec_gpus": (
                "documented ['project_id'], served ['job_type', 'project_id', 'region']"
            ),
        }


# --- README --------------------------------------------------------------------------------


class TestReadme:
    def test_is_short(self) -> None:
        """README.md has at most 200 lines; the reference lives in docs/."""
        lines = len(README.read_text(encoding="utf-8").splitlines())
        assert lines <= MAX_README_LINES, f"README.md has {lines} lines"

    def test_quickstart_has_both_commands(self) -> None:
        """The Quickstart's code block starts with `make demo` and `make test`, one per line."""
        block = fenced_block(README.read_text(encoding="utf-8"), "## Quickstart")
        commands = [line.split("#", 1)[0].strip() for line in block.splitlines()]
        assert commands[: len(QUICKSTART)] == list(QUICKSTART)

    def test_shows_a_dashboard_image(self) -> None:
        """The README shows at least one image from docs/images/."""
        images = [t for t in link_targets(README) if t.startswith("docs/images/")]
        assert any(is_image(t) for t in images), "README.md shows no image from docs/images/"

    def test_minimal_config_is_valid(self) -> None:
        """The README's minimal production config loads, with pool discovery, the resource
        specs, AK/SK from files and the 60 s default poll interval it promises."""
        text = fenced_block(README.read_text(encoding="utf-8"), CONFIG_HEADING)
        read: list[str] = []

        def read_file(path: str) -> str:
            read.append(path)
            return "secret-from-file\n"

        config = parse(yaml.safe_load(text), environ={}, read_file=read_file)
        (target,) = config.targets
        assert target.discovery is not None
        assert target.job_types == ("train", "inference")
        assert isinstance(target.credentials, AkSkCredentials)
        assert target.credentials.secret_key.reveal() == "secret-from-file"
        assert len(read) == 2
        assert config.poll_interval == 60.0

    def test_main_metrics_are_served(self) -> None:
        """Every metric in the README's short table is one the exporter serves."""
        documented = set(table_metrics(README))
        assert documented, "README.md has no metrics table"
        unknown = sorted(documented - set(golden_families(GOLDEN)))
        assert not unknown, f"README.md names metrics not in {GOLDEN.name}: {unknown}"

    def test_main_metrics_labels_are_served(self) -> None:
        """Each metric in the README's short table lists the label names its samples carry."""
        wrong = label_mismatch(README, 0, GOLDEN)
        assert not wrong, f"README.md labels ≠ {GOLDEN.name}: {wrong}"


# --- links -----------------------------------------------------------------------------------


def relative_name(path: Path) -> str:
    return str(path.relative_to(ROOT))


class TestLinks:
    @pytest.mark.parametrize("path", LINKED_FILES, ids=relative_name)
    def test_relative_links_land(self, path: Path) -> None:
        """Every relative link names an existing file, and its #anchor a heading there
        (images are test_images_exist's)."""
        dead = {t: why for t, why in dead_links(path).items() if not is_image(t)}
        assert not dead, f"{relative_name(path)}: {dead}"

    def test_images_exist(self) -> None:
        """Every image the README and the docs pages show exists."""
        missing = [
            f"{relative_name(path)}: {target}"
            for path in LINKED_FILES
            for target in dead_links(path)
            if is_image(target)
        ]
        assert not missing, f"missing images: {missing}"

    def test_every_docs_page_is_linked_from_the_readme(self) -> None:
        """Each docs/*.md page is linked from README.md, so none is out of reach."""
        unlinked = unlinked_pages(README, sorted(DOCS.glob("*.md")))
        assert not unlinked, f"docs pages README.md does not link to: {unlinked}"


# --- the metrics reference -----------------------------------------------------------------


class TestMetricsReference:
    def test_every_served_family_is_documented(self) -> None:
        """Every metric family of the golden exposition has a row in docs/metrics.md."""
        missing, _ = table_mismatch(METRICS_DOC, GOLDEN)
        assert not missing, f"{GOLDEN.name} families with no row in metrics.md: {missing}"

    def test_every_documented_metric_is_served(self) -> None:
        """Every modelarts_* metric in docs/metrics.md's table is in the golden exposition."""
        _, unknown = table_mismatch(METRICS_DOC, GOLDEN)
        assert not unknown, f"metrics.md rows for metrics not in {GOLDEN.name}: {unknown}"

    def test_types_match(self) -> None:
        """Each row's type (gauge, counter) is the golden exposition's type for it."""
        served = golden_families(GOLDEN)
        wrong = {
            name: (cells[0], served[name])
            for name, cells in table_metrics(METRICS_DOC).items()
            if name in served and cells[0] != served[name]
        }
        assert not wrong, f"metrics.md type ≠ golden type: {wrong}"

    def test_labels_match(self) -> None:
        """Each row lists exactly the label names the golden samples of its metric carry."""
        wrong = label_mismatch(METRICS_DOC, 1, GOLDEN)
        assert not wrong, f"metrics.md labels ≠ {GOLDEN.name}: {wrong}"


# --- nothing refers to files outside the repository ---------------------------------------

#: Text naming something only the project's first authors had: their notes file, its
#: folder, their machine's checkout. Built from pieces, so that this file does not name them.
OUTSIDE_REFERENCES = ("shared" + "/", "HUAWEI_API" + "_NOTES", "/" + "work/")


def repository_files(root: Path) -> list[Path]:
    """The files of the repository at ``root``: tracked, or new and not ignored."""
    import subprocess

    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout.decode("utf-8", errors="surrogateescape")
    return [root / name for name in listed.split("\0") if name and (root / name).is_file()]


def outside_references(paths: list[Path], root: Path) -> list[str]:
    """``file:line: text`` for each line of ``paths`` that names something outside the
    repository (binary files are read as text too: a path in an image's metadata counts)."""
    found: list[str] = []
    for path in paths:
        text = path.read_bytes().decode("utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            if any(needle in line for needle in OUTSIDE_REFERENCES):
                found.append(f"{path.relative_to(root)}:{number}: {line.strip()[:120]}")
    return found


class TestSelfContained:
    def test_outside_references_are_found(self, tmp_path: Path) -> None:
        """Each outside reference is reported with its file and line; the page the code now
        cites, and words that merely look alike ("shared", "/workspace"), are not."""
        (tmp_path / "a.py").write_text(
            '"""Tolerated (``' + OUTSIDE_REFERENCES[0] + 'seeds/x.rst``)."""\nx = 1\n',
            encoding="utf-8",
        )
        (tmp_path / "b.md").write_text(
            "See docs/modelarts-api.md, a shared pool, /workspace.\nthe "
            + OUTSIDE_REFERENCES[1]
            + " file\ncd "
            + OUTSIDE_REFERENCES[2]
            + "main\n",
            encoding="utf-8",
        )
        paths = [tmp_path / "a.py", tmp_path / "b.md"]
        found = outside_references(paths, tmp_path)
        assert [entry.split(": ", 1)[0] for entry in found] == ["a.py:1", "b.md:2", "b.md:3"]

    def test_repository_files_are_listed(self) -> None:
        """The listing holds this file, the README and the docs, so the next test cannot pass
        by reading nothing."""
        listed = set(repository_files(ROOT))
        assert {Path(__file__).resolve(), README, METRICS_DOC} <= {p.resolve() for p in listed}

    def test_no_file_refers_outside_the_repository(self) -> None:
        """No file of the repository cites a file users and contributors do not have; the
        facts the code relies on are in docs/modelarts-api.md, with their public sources."""
        found = outside_references(repository_files(ROOT), ROOT)
        assert not found, "references to files outside the repository:\n" + "\n".join(found)
