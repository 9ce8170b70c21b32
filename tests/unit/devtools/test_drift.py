"""The drift table of ``make matrix-newest`` and the lock that ``make install`` installs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The developer tools run in the main venv (Python 3.11); the matrix's Python 3.10 has no tomllib.
tomllib = pytest.importorskip("tomllib")

from devtools.drift import LOCK, direct_dependencies, installed_versions, locked_versions, table  # noqa: E402

PYPROJECT = tomllib.loads((Path(__file__).resolve().parents[3] / "pyproject.toml").read_text())


def test_locked_versions_reads_pins_and_skips_hashes_comments_and_markers() -> None:
    text = (
        "# header\n"
        "moto==5.2.6 \\\n"
        "    --hash=sha256:aa \\\n"
        "    --hash=sha256:bb\n"
        "    # via -r pyproject.toml\n"
        "Apache_Airflow==3.3.2 ; python_full_version >= '3.10' \\\n"
        "    --hash=sha256:cc\n"
    )
    assert locked_versions(text) == {"moto": "5.2.6", "apache-airflow": "3.3.2"}


def test_table_marks_exactly_the_dependencies_that_moved() -> None:
    locked, tested = {"boto3": "1.44.18", "moto": "5.2.5"}, {"boto3": "1.44.18", "moto": "5.2.6"}
    lines = table(["boto3", "moto", "orjson"], locked, tested)
    assert [line.split() for line in lines] == [
        ["dependency", "locked", "tested"],
        ["boto3", "1.44.18", "1.44.18"],
        ["moto", "5.2.5", "5.2.6", "moved"],
        ["orjson", "-", "-"],
    ]


def test_every_direct_dependency_is_in_the_lock() -> None:
    """A dependency added to pyproject.toml without ``make lock`` would install nothing: the lock must hold it."""
    missing = set(direct_dependencies(PYPROJECT)) - set(locked_versions(LOCK.read_text()))
    assert not missing, f"run `make lock`: {sorted(missing)} not in {LOCK.name}"


def test_this_venv_is_the_lock() -> None:
    """``make install`` installs the lock exactly: every locked package at its locked version."""
    if sys.version_info[:2] != (3, 11):
        pytest.skip("the lock is resolved for Python 3.11; the matrix venvs resolve their own versions")
    installed = installed_versions(sys.executable)
    locked = locked_versions(LOCK.read_text())
    assert {name: installed.get(name) for name in locked} == locked
