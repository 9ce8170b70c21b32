"""Print what moved between the lock and a venv of newest releases: ``python -m devtools.drift VENV_PYTHON``.

``make matrix-newest`` installs the newest release of every dependency; when it fails while ``make test`` (the
lock) passes, the cause is one of the lines this prints with ``moved``. Direct dependencies only: those
``pyproject.toml`` names (runtime, extras and the ``test`` group).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LOCK = PROJECT_ROOT / ".ci" / "lock.txt"


def direct_dependencies(pyproject: dict[str, object]) -> list[str]:
    """Return the canonical names of the runtime dependencies, every extra and the ``test`` group, sorted."""
    project = pyproject["project"]
    assert isinstance(project, dict)
    groups = pyproject.get("dependency-groups", {})
    assert isinstance(groups, dict)
    texts = [*project["dependencies"], *groups.get("test", [])]
    for extra in project.get("optional-dependencies", {}).values():
        texts += extra
    return sorted({canonicalize_name(Requirement(text).name) for text in texts})


def locked_versions(text: str) -> dict[str, str]:
    """Return ``{distribution: version}`` of the ``name==version`` lines of a lock written by ``uv pip compile``."""
    pins: dict[str, str] = {}
    for line in text.splitlines():
        if line[:1].isalnum() and "==" in line:
            requirement = Requirement(line.split(";", 1)[0].rstrip(" \\"))
            (spec,) = requirement.specifier
            pins[canonicalize_name(requirement.name)] = spec.version
    return pins


def installed_versions(python: str) -> dict[str, str]:
    """Return ``{distribution: version}`` of what the interpreter ``python`` has installed."""
    listing = subprocess.run(
        [python, "-m", "pip", "list", "--format", "json", "--disable-pip-version-check"],
        check=False,
        capture_output=True,
        text=True,
    )
    if listing.returncode != 0:
        # uv-made venvs have no pip: ask uv about the same interpreter.
        uv = Path(sys.executable).with_name("uv")
        listing = subprocess.run(
            [str(uv), "pip", "list", "--python", python, "--format", "json"], check=True, capture_output=True, text=True
        )
    return {canonicalize_name(entry["name"]): entry["version"] for entry in json.loads(listing.stdout)}


def table(names: list[str], locked: dict[str, str], tested: dict[str, str]) -> list[str]:
    """Return the lines of the version table: name, locked, tested, and ``moved`` where they differ."""
    width = max(len(name) for name in names)
    lines = [f"{'dependency':<{width}}  {'locked':<12}  {'tested':<12}"]
    for name in names:
        lock, new = locked.get(name, "-"), tested.get(name, "-")
        lines.append(f"{name:<{width}}  {lock:<12}  {new:<12}{'  moved' if lock != new else ''}".rstrip())
    return lines


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m devtools.drift PATH/TO/VENV/bin/python", file=sys.stderr)
        return 2
    names = direct_dependencies(tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text()))
    locked = locked_versions(LOCK.read_text())
    tested = installed_versions(argv[0])
    print(f"Direct dependencies: {LOCK.relative_to(PROJECT_ROOT)} (make test) against the newest releases tested here")
    print("\n".join(table(names, locked, tested)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
