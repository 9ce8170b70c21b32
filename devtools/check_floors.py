"""Check that the lowest-versions constraints pin every declared floor exactly: ``python -m devtools.check_floors``.

``make matrix-lowest`` installs ``.ci/constraints-lowest.txt``; if a floor in ``pyproject.toml`` moved without the
constraints (or the other way round), the lowest run would test versions the package does not declare.
"""

from __future__ import annotations

import sys
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = PROJECT_ROOT / ".ci" / "constraints-lowest.txt"


def declared_floors(pyproject: dict[str, object]) -> dict[str, str]:
    """
    Return ``{distribution: floor}`` of the runtime dependencies, the ``parquet`` extra and the ``test`` group, but
    not of what a marker keeps off Python 3.10, the lowest matrix's Python.
    """
    project = pyproject["project"]
    assert isinstance(project, dict)
    groups = pyproject.get("dependency-groups", {})
    assert isinstance(groups, dict)
    specifiers = [*project["dependencies"], *project["optional-dependencies"]["parquet"], *groups["test"]]
    floors: dict[str, str] = {}
    for text in specifiers:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate({"python_version": "3.10"}):
            continue  # not installed by the lowest matrix (Python 3.10)
        lower = [spec.version for spec in requirement.specifier if spec.operator == ">="]
        if not lower:
            raise SystemExit(f"pyproject.toml: {text!r} declares no floor (>=); every dependency needs one")
        floors[canonicalize_name(requirement.name)] = lower[0]
    return floors


def pinned_versions(text: str) -> dict[str, str]:
    """Return ``{distribution: version}`` of the ``name==version`` lines of a constraints file."""
    pins: dict[str, str] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            (spec,) = requirement.specifier
            if spec.operator == "<":
                continue  # a cap on a package that is not a direct dependency: its reason is written beside it
            if spec.operator != "==":
                raise SystemExit(f"{CONSTRAINTS.name}: {line!r} is not an exact pin (==)")
            pins[canonicalize_name(requirement.name)] = spec.version
    return pins


def main() -> int:
    floors = declared_floors(tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text()))
    pins = pinned_versions(CONSTRAINTS.read_text())
    problems = [
        f"{name}: pyproject.toml declares >={floor}, {CONSTRAINTS.name} pins {pins.get(name, 'nothing')}"
        for name, floor in sorted(floors.items())
        if pins.get(name) != floor
    ]
    problems += [f"{name}: pinned in {CONSTRAINTS.name} but not declared" for name in sorted(set(pins) - set(floors))]
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print(f"{len(floors)} floors in pyproject.toml, each pinned in {CONSTRAINTS.name}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
