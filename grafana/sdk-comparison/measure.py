r"""Print every figure of the grafana-foundation-sdk comparison in grafana/README.md.

    python3 -m venv /tmp/gfsdk && \
        /tmp/gfsdk/bin/pip install 'grafana-foundation-sdk==1769699796!10.4.0' mypy
    /tmp/gfsdk/bin/python grafana/sdk-comparison/measure.py
    /tmp/gfsdk/bin/python -m mypy --strict grafana/sdk-comparison/mistakes.py

(The last command is the mypy side of ``mistakes.py``; this script runs it too.) Paths are
taken from this file, so it runs from any directory. ``--diff`` also lists every difference
between the two JSON documents.

A measurement, not part of the project: neither ``generate.py`` nor the tests use this
folder, and CI only lints it. It prints:

- Lines of code: lines that are not blank, not only a comment and not in a docstring, of the
  top-level definitions counted. "The helpers" of a capacity dashboard are the top-level
  definitions (functions, constants, type aliases) its function uses, directly or through
  other helpers, found by name in the source (``ast``), across the modules of ``grafana/``
  for ours and in ``capacity_sdk.py`` for the SDK's. "The whole generator" is every line of
  code of ``grafana/*.py`` but ``render.py``, which draws screenshots and writes no JSON.
- The JSON the SDK writes (``capacity_sdk.py``) against the committed
  ``dashboards/modelarts-capacity.json``.
- The cases of ``mistakes.py``: whether the SDK catches each at run time, and whether
  ``mypy --strict`` does.
- The installed size of the SDK.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.metadata
import importlib.util
import json
import re
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from capacity_sdk import as_json, capacity_dashboard

HERE = Path(__file__).resolve().parent
GRAFANA = HERE.parent
COMMITTED = GRAFANA / "dashboards" / "modelarts-capacity.json"
SDK = HERE / "capacity_sdk.py"
MISTAKES = HERE / "mistakes.py"
DISTRIBUTION = "grafana-foundation-sdk"
VERSION = "1769699796!10.4.0"
#: grafana/*.py that are not the generator: render.py draws the dashboards into PNGs.
NOT_GENERATOR = ("render.py",)
DASHBOARD = "capacity_dashboard"
FOUR_DASHBOARDS = ("fleet_dashboard", "pools_dashboard", "capacity_dashboard", "exporter_dashboard")
WIDTH = 100

Definition = tuple[str, str]
"""A top-level definition: (module, name)."""


# --- lines of code -----------------------------------------------------------------------


@dataclass
class Module:
    """A parsed source file: its top-level definitions and what it imports from its neighbours."""

    path: Path
    lines: list[str]
    body: list[ast.stmt]
    definitions: dict[str, ast.stmt] = field(default_factory=dict)
    imports: dict[str, Definition] = field(default_factory=dict)
    docstrings: set[int] = field(default_factory=set)


def bound_names(node: ast.stmt) -> list[str]:
    """The names a top-level statement defines (a function, a class, an assignment)."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [node.name]
    targets = node.targets if isinstance(node, ast.Assign) else []
    if isinstance(node, ast.AnnAssign):
        targets = [node.target]
    return [target.id for target in targets if isinstance(target, ast.Name)]


def parse(path: Path, neighbours: Sequence[str]) -> Module:
    """Parse a module; ``neighbours`` are the module names whose imports are followed."""
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text)
    module = Module(path, text.splitlines(), tree.body)
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            body = node.body
            first = body[0] if body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                module.docstrings.update(range(first.lineno, (first.end_lineno or 0) + 1))
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            # A string after a constant documents it.
            module.docstrings.update(range(node.lineno, (node.end_lineno or 0) + 1))
        elif isinstance(node, ast.ImportFrom) and node.module in neighbours and not node.level:
            source = node.module or ""
            for alias in node.names:
                module.imports[alias.asname or alias.name] = (source, alias.name)
        for name in bound_names(node):
            module.definitions[name] = node
    return module


def first_line(node: ast.stmt) -> int:
    """Where a statement starts, decorators included."""
    decorators: list[ast.expr] = getattr(node, "decorator_list", [])
    return min([node.lineno, *(decorator.lineno for decorator in decorators)])


def code_lines(module: Module, nodes: Sequence[ast.stmt]) -> int:
    """Lines of code of the statements: not blank, not only a comment, not in a docstring."""
    numbers: set[int] = set()
    for node in nodes:
        numbers.update(range(first_line(node), (node.end_lineno or node.lineno) + 1))
    return sum(
        1
        for number in numbers - module.docstrings
        if (line := module.lines[number - 1].strip()) and not line.startswith("#")
    )


def all_code_lines(module: Module) -> int:
    """Every line of code of a module (imports and ``__all__`` included)."""
    return code_lines(module, module.body)


def references(node: ast.stmt) -> set[str]:
    """The names a statement reads that it does not bind itself (parameters, locals)."""
    read: set[str] = set()
    local: set[str] = set()
    for inner in ast.walk(node):
        if isinstance(inner, ast.Name):
            (read if isinstance(inner.ctx, ast.Load) else local).add(inner.id)
        elif isinstance(inner, ast.arg):
            local.add(inner.arg)
        elif inner is not node and isinstance(inner, ast.FunctionDef | ast.ClassDef):
            local.add(inner.name)
    return read - local


def resolve(modules: dict[str, Module], module: str, name: str) -> Definition | None:
    """Where a name used in a module is defined: there, or in the neighbour it comes from."""
    source = modules[module]
    if name in source.definitions:
        return module, name
    if name in source.imports:
        return resolve(modules, *source.imports[name])
    return None  # a builtin, or from the standard library or the SDK


def uses(modules: dict[str, Module], start: Definition) -> set[Definition]:
    """The definitions ``start`` uses, directly or through the ones it uses (not itself)."""
    seen = {start}
    todo = [start]
    while todo:
        module, name = todo.pop()
        for used in references(modules[module].definitions[name]):
            found = resolve(modules, module, used)
            if found is not None and found not in seen:
                seen.add(found)
                todo.append(found)
    return seen - {start}


def lines_of(modules: dict[str, Module], definitions: set[Definition]) -> int:
    """Lines of code of the definitions, each statement counted once."""
    total = 0
    for name, module in modules.items():
        nodes = {
            id(node): node for key, node in module.definitions.items() if (name, key) in definitions
        }
        total += code_lines(module, list(nodes.values()))
    return total


def grafana_modules() -> dict[str, Module]:
    """The generator's modules: grafana/*.py but the ones that are not the generator."""
    paths = [path for path in sorted(GRAFANA.glob("*.py")) if path.name not in NOT_GENERATOR]
    names = [path.stem for path in paths]
    return {path.stem: parse(path, names) for path in paths}


def defined_in(modules: dict[str, Module], name: str) -> Definition:
    """The module that defines a top-level name."""
    found = [(module, name) for module, source in modules.items() if name in source.definitions]
    if len(found) != 1:
        raise LookupError(f"{name} is defined in {len(found)} modules: {found}")
    return found[0]


# --- JSON --------------------------------------------------------------------------------


def differences(ours: Any, sdk: Any, path: str = "") -> Iterator[str]:
    """Every difference between two JSON documents: a key one lacks, a length, a value."""
    if isinstance(ours, dict) and isinstance(sdk, dict):
        for key in sorted(set(ours) | set(sdk)):
            if key not in sdk:
                yield f"only ours: {path}/{key} = {json.dumps(ours[key])[:60]}"
            elif key not in ours:
                yield f"only SDK:  {path}/{key} = {json.dumps(sdk[key])[:60]}"
            else:
                yield from differences(ours[key], sdk[key], f"{path}/{key}")
    elif isinstance(ours, list) and isinstance(sdk, list):
        if len(ours) != len(sdk):
            yield f"length:    {path}: ours {len(ours)}, SDK {len(sdk)}"
        for index, (mine, theirs) in enumerate(zip(ours, sdk, strict=False)):
            yield from differences(mine, theirs, f"{path}[{index}]")
    elif ours != sdk or type(ours) is not type(sdk):
        yield f"value:     {path}: ours {json.dumps(ours)[:40]}, SDK {json.dumps(sdk)[:40]}"


def keys_only(found: Sequence[str], side: str) -> list[str]:
    """The key names (not paths) that only one side writes, in order of first appearance."""
    prefix = f"only {side}:"
    names = [line.split(" = ")[0].rsplit("/", 1)[1] for line in found if line.startswith(prefix)]
    return list(dict.fromkeys(names))


# --- mistakes ----------------------------------------------------------------------------


def mypy_errors() -> dict[int, str] | None:
    """``mypy --strict mistakes.py``: its errors by line, or None if mypy is not installed."""
    if importlib.util.find_spec("mypy") is None:
        return None
    with tempfile.TemporaryDirectory() as cache:
        command = [sys.executable, "-m", "mypy", "--strict", "--cache-dir", cache, MISTAKES.name]
        run = subprocess.run(command, cwd=HERE, capture_output=True, text=True, check=False)  # noqa: S603
    if run.returncode not in {0, 1}:  # 1: it found errors; anything else: it could not check
        raise RuntimeError(f"mypy failed: {run.stdout}{run.stderr}")
    error = re.compile(rf"^{re.escape(MISTAKES.name)}:(\d+):(?:\d+:)? error: (.*)$")
    return {
        int(match[1]): match[2] for line in run.stdout.splitlines() if (match := error.match(line))
    }


def case_lines() -> dict[str, range]:
    """The lines of each function of mistakes.py, decorators included."""
    tree = ast.parse(MISTAKES.read_text(encoding="utf-8"))
    return {
        node.name: range(first_line(node), (node.end_lineno or node.lineno) + 1)
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
    }


# --- the report --------------------------------------------------------------------------


def installed() -> str:
    """The SDK's version, installed size, modules and lines."""
    distribution = importlib.metadata.distribution(DISTRIBUTION)
    files = [Path(str(item.locate())) for item in distribution.files or []]
    files = [path for path in files if path.is_file()]
    modules = [path for path in files if path.suffix == ".py"]
    size = sum(path.stat().st_size for path in files)
    lines = sum(len(path.read_text(encoding="utf-8").splitlines()) for path in modules)
    return (
        f"{DISTRIBUTION} {distribution.version}: {size / 1e6:.1f} MB installed "
        f"({len(modules)} modules, {lines:,} lines)"
    )


def wrapped(label: str, items: Sequence[str]) -> str:
    """A label and a list, wrapped and indented."""
    return textwrap.fill(
        ", ".join(items), WIDTH, initial_indent=f"  {label}", subsequent_indent=" " * 6
    )


def report_code_lines() -> list[str]:
    """Lines of code, ours and the SDK's."""
    ours = grafana_modules()
    ours_start = defined_in(ours, DASHBOARD)
    ours_helpers = uses(ours, ours_start)
    ours_board = lines_of(ours, {ours_start})
    ours_helper_lines = lines_of(ours, ours_helpers)
    four = lines_of(ours, {defined_in(ours, name) for name in FOUR_DASHBOARDS})
    generator = sum(all_code_lines(module) for module in ours.values())

    sdk = {SDK.stem: parse(SDK, [])}
    sdk_start = (SDK.stem, DASHBOARD)
    sdk_helpers = uses(sdk, sdk_start)
    sdk_board = lines_of(sdk, {sdk_start})
    sdk_helper_lines = lines_of(sdk, sdk_helpers)

    ratio = sdk_board / ours_board
    return [
        "Lines of code (not blank, not only a comment, not in a docstring)",
        f"  capacity dashboard:       SDK {sdk_board}, ours {ours_board} "
        f"(the SDK's takes {ratio:.2f} times the lines)",
        f"  helpers it uses:          SDK {sdk_helper_lines}, ours {ours_helper_lines}",
        f"  dashboard and helpers:    SDK {sdk_board + sdk_helper_lines}, "
        f"ours {ours_board + ours_helper_lines}",
        f"  our four dashboards:      {four:,} (at {ratio:.2f} times: {four * ratio:,.0f} "
        "with the SDK)",
        f"  our whole generator:      {generator:,} "
        f"(grafana/*.py but {', '.join(NOT_GENERATOR)}: {len(ours)} modules)",
        wrapped("our helpers: ", sorted(f"{module}.{name}" for module, name in ours_helpers)),
        wrapped("SDK helpers: ", sorted(name for _, name in sdk_helpers)),
    ]


def report_json(show_all: bool) -> list[str]:
    """The SDK's JSON against the committed dashboard."""
    ours = json.loads(COMMITTED.read_text(encoding="utf-8"))
    sdk = as_json(capacity_dashboard())
    found = list(differences(ours, sdk))
    kinds = {kind: sum(line.startswith(kind) for line in found) for kind in ("only", "length")}
    values = len(found) - sum(kinds.values())
    lines = [
        f"JSON: capacity_sdk.py against {COMMITTED.relative_to(GRAFANA.parent)}",
        f"  equal: {'yes' if ours == sdk else 'no'}; {len(found)} differences "
        f"({kinds['only']} keys on one side only, {kinds['length']} lengths, {values} values)",
        f"  same top-level key order: {'yes' if list(ours) == list(sdk) else 'no'}",
        wrapped("ours: ", list(ours)),
        wrapped("SDK:  ", list(sdk)),
        wrapped("keys only the SDK writes: ", keys_only(found, "SDK")),
        wrapped("keys only ours writes:    ", keys_only(found, "ours")),
    ]
    if show_all:
        lines += [f"    {line}" for line in found]
    return lines


def report_mistakes() -> list[str]:
    """Each case of mistakes.py: caught at run time, and by mypy --strict."""
    # Imported by name, not with an import statement: mypy over this file would otherwise
    # follow it and report the mistakes it makes on purpose.
    mistakes = importlib.import_module(MISTAKES.stem)
    cases: dict[str, Callable[[], object]] = mistakes.CASES
    outcome: Callable[[Callable[[], object]], str] = mistakes.outcome
    errors = mypy_errors()
    spans = case_lines()
    lines = ["Mistakes (mistakes.py): the mistake; at run time; under mypy --strict"]
    caught = typed_caught = 0
    for name, mistake in cases.items():
        result = outcome(mistake)
        caught += result != "accepted"
        if errors is None:
            typed = "mypy is not installed"
        else:
            found = [message for line, message in errors.items() if line in spans[name]]
            typed = f"error ({found[0]})" if found else "accepted"
            typed_caught += bool(found)
        lines += [
            f"  {name}: {(mistake.__doc__ or '').strip()}",
            f"      run time: {result}",
            f"      mypy:     {typed}",
        ]
    lines.append(f"  caught at run time: {caught} of {len(cases)}")
    if errors is not None:
        lines.append(f"  caught by mypy --strict: {typed_caught} of {len(cases)}")
        in_cases = {line for name in cases for line in spans[name]}
        lines += [
            f"  mypy, outside the cases: line {line}: {message}"
            for line, message in errors.items()
            if line not in in_cases
        ]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Print the figures; 1 if the installed SDK is not the version measured."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--diff", action="store_true", help="list every JSON difference")
    args = parser.parse_args(argv)
    sections = [
        [installed()],
        report_code_lines(),
        report_json(args.diff),
        report_mistakes(),
    ]
    print("\n\n".join("\n".join(section) for section in sections))
    version = importlib.metadata.version(DISTRIBUTION)
    if version != VERSION:
        print(f"\nThe figures are for {DISTRIBUTION}=={VERSION}; this is {version}.")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
