"""The chain of incremental windows: the rule for the next window, and the chain read back from a destination."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from airflow_dynamoscan.export.chain import (
    WINDOW_FIELD,
    ChainError,
    ExportWindow,
    chain_end,
    check_window_commit,
    committed_windows,
    next_window,
)
from airflow_dynamoscan.storage.destinations import open_destination

DAY = datetime(2026, 12, 1, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)
NOW = DAY + timedelta(days=10)
MICRO = timedelta(microseconds=1)


@pytest.mark.parametrize(
    ("last_end", "hint", "expected"),
    [
        # Airflow 3's cron runs: the hint is the run's (empty) interval, the day's midnight.
        (DAY, DAY + 24 * HOUR, (DAY, DAY + 24 * HOUR)),
        # A run of a day already exported (a re-run, a retry after the commit): nothing to do.
        (DAY + 24 * HOUR, DAY + 24 * HOUR, None),
        (DAY + 24 * HOUR, DAY + 2 * HOUR, None),
        # Less than 15 minutes since the chain's end: nothing yet; 15 minutes exactly: a window.
        (DAY, DAY + timedelta(minutes=14, seconds=59), None),
        (DAY, DAY + timedelta(minutes=15), (DAY, DAY + timedelta(minutes=15))),
        # A pause of 3 days: 24 hours per window, in order, until the hint.
        (DAY, DAY + 72 * HOUR, (DAY, DAY + 24 * HOUR)),
        (DAY + 48 * HOUR, DAY + 72 * HOUR, (DAY + 48 * HOUR, DAY + 72 * HOUR)),
        # No hint (a manual run without a logical date): up to now, 24 hours at most.
        (NOW - 5 * HOUR, None, (NOW - 5 * HOUR, NOW)),
        # A hint in the future is never passed: now.
        (NOW - 5 * HOUR, NOW + 5 * HOUR, (NOW - 5 * HOUR, NOW)),
        # Sub-second ends are cut to the second (the start rounded up, the end down).
        (DAY + MICRO, DAY + 2 * HOUR + MICRO, (DAY + timedelta(seconds=1), DAY + 2 * HOUR)),
    ],
)  # fmt: skip
def test_next_window(last_end: datetime, hint: datetime | None, expected: tuple[datetime, datetime] | None) -> None:
    assert next_window(last_end, hint, NOW, NOW - timedelta(days=35)) == expected


def test_next_window_reads_iso_text_and_pendulum_times() -> None:
    import pendulum

    window = next_window("2026-12-01T00:00:00Z", pendulum.datetime(2026, 12, 2, tz="Europe/Paris"), NOW)  # type: ignore[arg-type]
    assert window == (DAY, datetime(2026, 12, 1, 23, tzinfo=timezone.utc))
    assert all(type(moment) is datetime for moment in window)  # type: ignore[union-attr]


def test_a_chain_beyond_the_restorable_period_asks_for_a_full_export() -> None:
    earliest = NOW - timedelta(days=35)
    with pytest.raises(ChainError) as error:
        next_window(earliest - timedelta(seconds=1), NOW, NOW, earliest, table_name="orders")
    message = str(error.value)
    assert message.startswith("Table 'orders': the chain of incremental exports ends at ")
    assert (earliest - timedelta(seconds=1)).isoformat() in message and earliest.isoformat() in message
    assert "35 days" in message and "export_type='FULL_EXPORT'" in message and "chain_start" in message
    assert next_window(earliest, NOW, NOW, earliest) == (earliest, earliest + 24 * HOUR)


def commit(root: Path, start: datetime, end: datetime, *, folder: str | None = None) -> None:
    window = ExportWindow(start, end)
    path = root / (folder or window.folder)
    path.mkdir(parents=True)
    manifest = {"items": 0, "segments": [], WINDOW_FIELD: window.as_dict(str(root))}
    (path / "manifest.json").write_text(json.dumps(manifest))


def test_the_chain_is_read_from_the_committed_manifests(tmp_path: Path) -> None:
    chain = open_destination(str(tmp_path))
    assert committed_windows(chain) == [] and chain_end(chain) is None
    commit(tmp_path, DAY + 24 * HOUR, DAY + 48 * HOUR)
    commit(tmp_path, DAY, DAY + 24 * HOUR)
    (tmp_path / "20261203T000000Z_20261204T000000Z").mkdir()  # a window being written: no manifest, not counted
    (tmp_path / "20261203T000000Z_20261204T000000Z" / "part-00000.jsonl.gz").write_bytes(b"")
    assert committed_windows(chain) == [
        ExportWindow(DAY, DAY + 24 * HOUR),
        ExportWindow(DAY + 24 * HOUR, DAY + 48 * HOUR),
    ]
    assert chain_end(chain) == DAY + 48 * HOUR
    assert ExportWindow(DAY, DAY + 24 * HOUR).folder == "20261201T000000Z_20261202T000000Z"


def test_a_gap_in_the_chain_is_an_error_naming_both_windows(tmp_path: Path) -> None:
    commit(tmp_path, DAY, DAY + 24 * HOUR)
    commit(tmp_path, DAY + 48 * HOUR, DAY + 72 * HOUR)
    with pytest.raises(ChainError, match=r"has a gap between the windows 2026-12-01T00:00:00\+00:00 to 2026-12-02"):
        chain_end(open_destination(str(tmp_path)))


def test_a_manifest_in_the_wrong_folder_is_refused(tmp_path: Path) -> None:
    commit(tmp_path, DAY, DAY + 24 * HOUR, folder="renamed")
    with pytest.raises(ChainError, match=r"belongs in 20261201T000000Z_20261202T000000Z/, not renamed/"):
        committed_windows(open_destination(str(tmp_path)))


def test_a_window_is_committed_only_where_the_chain_ends(tmp_path: Path) -> None:
    chain = open_destination(str(tmp_path))
    check_window_commit(chain, ExportWindow(DAY + 5 * HOUR, DAY + 6 * HOUR))  # a new chain starts anywhere
    commit(tmp_path, DAY, DAY + 24 * HOUR)
    check_window_commit(chain, ExportWindow(DAY + 24 * HOUR, DAY + 48 * HOUR))
    with pytest.raises(ChainError, match="is already committed"):
        check_window_commit(chain, ExportWindow(DAY, DAY + 24 * HOUR))
    with pytest.raises(ChainError, match=r"does not start where the chain .* ends \(2026-12-02T00:00:00\+00:00\)"):
        check_window_commit(chain, ExportWindow(DAY + 2 * HOUR, DAY + 26 * HOUR))
