"""
The e2e calendar: scheduled runs, interval after interval, of a scan export and of a chained incremental native
export (DAGs ``e2e_calendar_*``, tests/e2e/dags/e2e_calendar.py), with the table changed between intervals.

Both DAGs are hourly with catch-up from :data:`INTERVALS` - 1 hours ago, so the scheduler creates their runs one
after the other (``max_active_runs=1``), each waiting at its gate. For each interval the check changes the table
(inserts, updates, deletes, a quiet interval, an empty table), logs each write with a write time inside that
interval for the export server (:mod:`tests.e2e.calendar_exports`), opens the gates, and checks:

* the scan export's folder of the run holds exactly the table as it was then;
* the native chain's window of the run holds exactly the writes logged in it, and the fold of every window so far
  equals the table at the last window's end: no change twice, none missing.
* in the first :data:`MIRROR_INTERVALS` intervals, the Iceberg mirror (DAG ``e2e_calendar_iceberg_mirror``: a
  native full export loads it on its first run, each later run merges one incremental window) read back with
  pyiceberg equals the table as of the run's window end, and the run's commit is the mirror's current snapshot.

Two intervals of the native DAG do not run (their runs are marked failed before they start, as for a DAG paused
then): the next run's window covers them. Then one run's export is cleared and runs again (it skips: its window is
exported), and a manual run without a logical date is triggered (it exports the chain's tail, or skips when it is
shorter than 15 minutes). Every run prints its window and counts. JSON Lines, so an empty window or table never
meets the CSV/Parquet schema of an empty export.
"""

from __future__ import annotations

import gzip
import json
import os
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from pyiceberg.catalog import load_catalog

from tests.e2e.api import parse_time
from tests.e2e.calendar_exports import change_log_path, changes_in
from tests.e2e.stack import wait_for
from tests.iceberg_support import canonical, mirror_items, sort_items, sql_catalog_properties

if TYPE_CHECKING:
    from tests.e2e.run import E2E

SCAN_DAG = "e2e_calendar_scan_export"
NATIVE_DAG = "e2e_calendar_native_chain"
MIRROR_DAG = "e2e_calendar_iceberg_mirror"
#: The mirror DAG's scheduled runs (its end_date): the load at interval 0, then one merged window per interval.
MIRROR_INTERVALS = 4
MIRROR_TABLE = "e2e.calendar_orders"
TABLE = "calendar_orders"
STAGING_BUCKET = "calendar-staging"
#: Scheduled runs of each DAG: logical dates start, start + 1 h, ..., start + (INTERVALS - 1) h.
INTERVALS = 7
#: Native runs that do not run (a pause of two intervals): the next run's window covers them.
PAUSED = (4, 5)
RUN_TIMEOUT = 300.0
EXPORT_TASK = "export_changes.start_export"


def calendar_environment(root: Path) -> dict[str, str]:
    """The variables the calendar DAGs read when they are parsed; set them before Airflow starts."""
    now = datetime.now(timezone.utc)
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=INTERVALS - 1)
    return {
        "E2E_CALENDAR_START": start.isoformat(),
        "E2E_CALENDAR_DIR": str(root / "calendar"),
        "AIRFLOW_CONN_ICEBERG_E2E": json.dumps({"conn_type": "iceberg", "extra": mirror_catalog(root)}),
    }


def mirror_catalog(root: Path) -> dict[str, str]:
    """The Iceberg mirror's catalog: SQL on a SQLite file, the warehouse on local disk, in the run's folder."""
    return sql_catalog_properties(root / "calendar" / "iceberg")


def item(number: int, amount: int, status: str = "NEW") -> dict[str, Any]:
    return {"pk": f"c#{number:03d}", "n": number, "amount": amount, "status": status}


def changes_of(interval: int, table: dict[str, dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """The writes of an interval, as ``("put", item)`` or ``("delete", item)``, given the table before them."""
    if interval == 1:  # inserts
        return [("put", item(number, 100 + number)) for number in range(30)]
    if interval == 2:  # updates, inserts, deletes
        updates = [("put", item(number, 500 + number, "PAID")) for number in range(10)]
        inserts = [("put", item(number, 100 + number)) for number in range(30, 35)]
        return updates + inserts + [("delete", table[f"c#{number:03d}"]) for number in (20, 21, 22)]
    if interval == 4:  # deletes and updates
        deletes = [("delete", table[f"c#{number:03d}"]) for number in range(23, 28)]
        return deletes + [("put", item(number, 900 + number, "SHIPPED")) for number in range(5)]
    if interval == 5:  # the table emptied
        return [("delete", value) for _, value in sorted(table.items())]
    if interval == 6:  # inserts into an empty table
        return [("put", item(number, 7)) for number in range(100, 108)]
    return []  # 0: an empty table; 3: a quiet interval


class Calendar:
    """The check's state: the folders, the clients, the table as it should be, the logical dates."""

    def __init__(self, e2e: E2E) -> None:
        self.e2e = e2e
        self.start = datetime.fromisoformat(os.environ["E2E_CALENDAR_START"])
        self.folder = Path(os.environ["E2E_CALENDAR_DIR"])
        self.log_path = change_log_path(e2e.stack.export_release_file)
        self.table: dict[str, dict[str, Any]] = {}
        options: Any = {"region_name": "us-east-1", "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        self.dynalite = boto3.resource("dynamodb", endpoint_url=e2e.stack.dynalite_url, **options)
        self.moto_dynamodb = boto3.client("dynamodb", endpoint_url=e2e.stack.moto_url, **options)
        self.moto_s3 = boto3.client("s3", endpoint_url=e2e.stack.moto_url, **options)

    def logical_date(self, interval: int) -> datetime:
        return self.start + timedelta(hours=interval)

    def create_tables(self) -> None:
        key: Any = {
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
        }
        self.dynalite.create_table(TableName=TABLE, **key).wait_until_exists()
        self.moto_dynamodb.create_table(TableName=TABLE, **key)
        self.moto_dynamodb.update_continuous_backups(
            TableName=TABLE, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )
        self.moto_s3.create_bucket(Bucket=STAGING_BUCKET)

    def apply(self, interval: int) -> list[tuple[str, dict[str, Any]]]:
        """Write the interval's changes to the table, and log them with write times inside the interval."""
        changes = changes_of(interval, self.table)
        table = self.dynalite.Table(TABLE)
        first_write = self.logical_date(interval - 1) + timedelta(minutes=30)
        with self.log_path.open("a") as log:
            for number, (kind, value) in enumerate(changes):
                key = {"pk": value["pk"]}
                old = self.table.get(value["pk"])
                if kind == "put":
                    table.put_item(Item=value)
                    self.table[value["pk"]] = value
                else:
                    table.delete_item(Key=key)
                    del self.table[value["pk"]]
                micros = int((first_write + timedelta(seconds=number)).timestamp() * 1_000_000)
                entry = {"table": TABLE, "write_time_micros": micros, "keys": key, "old": old}
                log.write(json.dumps({**entry, "new": value if kind == "put" else None}) + "\n")
        return changes

    def find_run(self, dag_id: str, interval: int) -> dict[str, Any]:
        """The scheduled run of the interval, once the scheduler has created it."""
        wanted = self.logical_date(interval)

        def created() -> dict[str, Any] | None:
            self.e2e.stack.check_alive()
            for run in self.e2e.api.runs(dag_id):
                if run["run_type"] == "scheduled" and parse_time(run["logical_date"]) == wanted:
                    return run
            return None

        found: dict[str, Any] = wait_for(f"the {dag_id} run of {wanted.isoformat()}", created, RUN_TIMEOUT, 1)
        return found

    def open_gate(self, dag_id: str, interval: int) -> None:
        gate = self.folder / "gates" / dag_id / self.logical_date(interval).strftime("%Y%m%dT%H%M%S")
        gate.parent.mkdir(parents=True, exist_ok=True)
        gate.touch()

    def committed_windows(self) -> list[tuple[datetime, datetime, Path]]:
        """The native chain's committed windows, oldest first, from their manifests."""
        windows = []
        for manifest_path in (self.folder / "chain").glob("*/manifest.json"):
            window = json.loads(manifest_path.read_text())["incremental_window"]
            start, end = parse_time(window["export_from_time"]), parse_time(window["export_to_time"])
            assert start is not None and end is not None
            windows.append((start, end, manifest_path.parent))
        return sorted(windows, key=lambda window: window[0])

    def staged_exports(self) -> int:
        """The native exports the server wrote (their manifest-summary.json files)."""
        pages = self.moto_s3.get_paginator("list_objects_v2").paginate(Bucket=STAGING_BUCKET)
        return sum(1 for page in pages for entry in page.get("Contents", []) if entry["Key"].endswith("summary.json"))


def plain(value: Any) -> Any:
    """An item as its JSON line reads back: numbers as Decimals."""
    return {name: Decimal(field) if isinstance(field, int) else field for name, field in value.items()}


def read_parts(root: Path) -> list[dict[str, Any]]:
    """Every row of the committed export under ``root``: its manifest lists exactly the part files there."""
    manifest = json.loads((root / "manifest.json").read_text())
    listed = {part["path"] for segment in manifest["segments"] for part in segment["parts"]}
    on_disk = {str(path.relative_to(root)) for path in root.glob("segment-*/part-*")}
    assert on_disk == listed, f"{root}: part files {sorted(on_disk ^ listed)} differ from the manifest's"
    rows: list[dict[str, Any]] = []
    for relative in sorted(on_disk):
        with gzip.open(root / relative, "rt") as part:
            rows.extend(json.loads(line, parse_float=Decimal, parse_int=Decimal) for line in part if line.strip())
    assert manifest["items"] == len(rows), (
        f"{root}: the manifest says {manifest['items']} items, parts hold {len(rows)}"
    )
    return rows


def check_scan_folder(calendar: Calendar, interval: int, expected: dict[str, dict[str, Any]]) -> int:
    """The scan export of the interval's run holds exactly the table as it was."""
    root = calendar.folder / "scan" / calendar.logical_date(interval).strftime("%Y%m%dT%H%M%S")
    rows = read_parts(root)
    got = {row["pk"]: row for row in rows}
    assert len(got) == len(rows), f"{root}: an item exported twice"
    want = {pk: plain(value) for pk, value in expected.items()}
    assert got == want, f"{root}: differs from the table: {sorted(set(got) ^ set(want))[:5]} ..."
    return len(rows)


def check_chain(calendar: Calendar) -> list[tuple[datetime, datetime, int]]:
    """
    The chain's windows follow one another from the start; each holds exactly the writes logged in it; their fold
    equals the table now.
    """
    windows = calendar.committed_windows()
    assert windows, "no window committed"
    assert windows[0][0] == calendar.start, f"the chain starts at {windows[0][0]}, not {calendar.start}"
    folded: dict[str, Any] = {}
    summary = []
    for (start, end, root), following in zip(windows, [*windows[1:], None], strict=True):
        assert following is None or following[0] == end, f"windows {start}-{end} and {following} do not follow"
        rows = read_parts(root)
        logged = changes_in(calendar.log_path, TABLE, start, end)
        got = [(row["pk"], row["_op"], int(row["_write_time_micros"])) for row in rows]
        want = [
            (entry["keys"]["pk"], "upsert" if entry["new"] else "delete", entry["write_time_micros"])
            for entry in logged
        ]
        assert sorted(got) == sorted(want), f"window {start} to {end}: rows {got[:3]}... != logged {want[:3]}..."
        for row in sorted(rows, key=lambda row: int(row["_write_time_micros"])):
            if row["_op"] == "delete":
                folded.pop(row["pk"], None)
            else:
                folded[row["pk"]] = {name: value for name, value in row.items() if not name.startswith("_")}
        summary.append((start, end, len(rows)))
    want_table = {pk: plain(value) for pk, value in calendar.table.items()}
    assert folded == want_table, (
        f"the fold of the chain differs from the table: {sorted(set(folded) ^ set(want_table))}"
    )
    logged_total = len(changes_in(calendar.log_path, TABLE, calendar.start, windows[-1][1]))
    assert sum(count for _, _, count in summary) == logged_total, "a change exported twice or missing"
    return summary


def check_mirror(calendar: Calendar, interval: int, run_id: str, expected: dict[str, dict[str, Any]]) -> str:
    """
    The mirror read back with pyiceberg equals the table as of the run's window end, exactly; the run's commit
    (``load_export`` at interval 0, ``merge_window`` after) ends its window there and is the current snapshot.
    """
    commit_task = "mirror.load_export" if interval == 0 else "mirror.merge_window"
    result = calendar.e2e.api.xcom(MIRROR_DAG, run_id, commit_task)
    end = parse_time(result["window_end"])
    assert end == calendar.logical_date(interval), f"mirror run {interval}: its window ends at {end}"
    if interval:
        start = parse_time(result["window_start"])
        assert start == calendar.logical_date(interval - 1), f"mirror run {interval}: its window starts at {start}"
    catalog = load_catalog("iceberg_e2e", **mirror_catalog(calendar.folder.parent))
    table = catalog.load_table(MIRROR_TABLE)
    snapshot = table.current_snapshot()
    assert snapshot is not None and snapshot.snapshot_id == result["snapshot_id"], (
        f"mirror run {interval}: current snapshot {snapshot} is not the run's {result['snapshot_id']}"
    )
    found = sort_items(mirror_items(table), ["pk"])
    want = sort_items([canonical(value) for value in expected.values()], ["pk"])
    assert found == want, f"mirror run {interval}: {len(found)} rows differ from the table's {len(want)} items"
    operation = "load" if interval == 0 else f"window {calendar.logical_date(interval - 1):%H:%M}-{end:%H:%M} UTC"
    return (
        f"{operation}: {result['rows_added']} rows added, {result['rows_deleted']} deleted, "
        f"{len(found)} rows = the table; snapshot {result['snapshot_id']}"
    )


def wait_run(calendar: Calendar, dag_id: str, run_id: str, expect: str = "success") -> None:
    calendar.e2e.wait(dag_id, run_id, expect=expect)


def task_state(calendar: Calendar, dag_id: str, run_id: str, task_id: str) -> str:
    (found,) = [ti for ti in calendar.e2e.api.task_instances(dag_id, run_id) if ti["task_id"] == task_id]
    return str(found["state"])


def run_intervals(calendar: Calendar) -> None:
    """Each interval: change the table, open both gates, check both runs."""
    e2e = calendar.e2e
    for interval in range(INTERVALS):
        scan_run = calendar.find_run(SCAN_DAG, interval)["dag_run_id"]
        native_run = calendar.find_run(NATIVE_DAG, interval)["dag_run_id"]
        mirror_run = calendar.find_run(MIRROR_DAG, interval)["dag_run_id"] if interval < MIRROR_INTERVALS else None
        changes = calendar.apply(interval) if interval else []
        expected = dict(calendar.table)
        calendar.open_gate(SCAN_DAG, interval)
        if interval in PAUSED:
            e2e.api.set_run_state(NATIVE_DAG, native_run, "failed")
        else:
            calendar.open_gate(NATIVE_DAG, interval)
        if mirror_run is not None:
            calendar.open_gate(MIRROR_DAG, interval)
        wait_run(calendar, SCAN_DAG, scan_run)
        scanned = check_scan_folder(calendar, interval, expected)
        kinds = {kind: sum(1 for change, _ in changes if change == kind) for kind in ("put", "delete")}
        line = f"{len(changes)} writes ({kinds['put']} puts, {kinds['delete']} deletes); scan export {scanned} items"
        if interval in PAUSED:
            wait_run(calendar, NATIVE_DAG, native_run, expect="failed")
            line += "; native: not run (paused)"
        else:
            wait_run(calendar, NATIVE_DAG, native_run)
            if task_state(calendar, NATIVE_DAG, native_run, EXPORT_TASK) == "skipped":
                line += "; native: skipped, nothing to export yet"
            else:
                start, end, count = check_chain(calendar)[-1]
                assert end == calendar.logical_date(interval), f"run {interval} exported up to {end}"
                line += f"; native window {start:%H:%M}-{end:%H:%M} UTC: {count} changes"
        if mirror_run is not None:
            wait_run(calendar, MIRROR_DAG, mirror_run)
            line += "; iceberg mirror " + check_mirror(calendar, interval, mirror_run, expected)
        e2e.figure(f"calendar run {calendar.logical_date(interval):%Y-%m-%dT%H:%M}Z", line)


def check_calendar_of_scheduled_runs(e2e: E2E) -> None:
    """Scheduled runs over 7 hourly intervals; the chain holds every change once, through a pause and re-runs."""
    calendar = Calendar(e2e)
    calendar.create_tables()
    started = time.monotonic()
    e2e.api.unpause(SCAN_DAG)
    e2e.api.unpause(NATIVE_DAG)
    e2e.api.unpause(MIRROR_DAG)
    try:
        run_intervals(calendar)
    finally:
        e2e.api.request("PATCH", f"/dags/{SCAN_DAG}", {"is_paused": True})
        e2e.api.request("PATCH", f"/dags/{MIRROR_DAG}", {"is_paused": True})
    # No more scheduled runs of the chain (an hour may have passed): what follows are a re-run and a manual run.
    e2e.api.request("PATCH", f"/dags/{NATIVE_DAG}", {"is_paused": True})
    for run in e2e.api.runs(NATIVE_DAG):
        if parse_time(run["logical_date"]) not in [calendar.logical_date(n) for n in range(INTERVALS)]:
            e2e.api.set_run_state(NATIVE_DAG, run["dag_run_id"], "failed")
    e2e.api.request("PATCH", f"/dags/{NATIVE_DAG}", {"is_paused": False})
    windows_before, exports_before = check_chain(calendar), calendar.staged_exports()
    assert [(start, end) for start, end, _ in windows_before] == [
        (calendar.logical_date(a), calendar.logical_date(b)) for a, b in ((0, 1), (1, 2), (2, 3), (3, 6))
    ], windows_before
    # A re-run of one interval: its export task cleared (and what follows it); the window is exported, so it skips.
    rerun = calendar.find_run(NATIVE_DAG, 2)["dag_run_id"]
    e2e.api.request(
        "POST",
        f"/dags/{NATIVE_DAG}/clearTaskInstances",
        {
            "dry_run": False,
            "dag_run_id": rerun,
            "task_ids": [EXPORT_TASK],
            "include_downstream": True,
            "only_failed": False,
            "reset_dag_runs": True,
        },
    )
    time.sleep(2)
    wait_run(calendar, NATIVE_DAG, rerun)
    assert task_state(calendar, NATIVE_DAG, rerun, EXPORT_TASK) == "skipped"
    assert check_chain(calendar) == windows_before and calendar.staged_exports() == exports_before
    e2e.figure("calendar re-run of 02:00 (cleared)", "start_export skipped; no export, the chain unchanged")
    # A manual run without a logical date: the chain's tail up to now, or nothing if that is under 15 minutes.
    manual = str(e2e.api.trigger(NATIVE_DAG, {}, logical_date=None)["dag_run_id"])
    wait_run(calendar, NATIVE_DAG, manual)
    windows_after = check_chain(calendar)
    if task_state(calendar, NATIVE_DAG, manual, EXPORT_TASK) == "skipped":
        assert windows_after == windows_before
        outcome = "skipped: less than 15 minutes since the chain's end"
    else:
        assert windows_after[:-1] == windows_before and windows_after[-1][0] == windows_before[-1][1]
        start, end, count = windows_after[-1]
        outcome = f"window {start:%H:%M}-{end:%H:%M} UTC: {count} changes"
    e2e.figure("calendar manual run without a logical date", outcome)
    e2e.figure(
        "calendar",
        f"{INTERVALS} scheduled intervals x 2 DAGs (+ {MIRROR_INTERVALS} of the Iceberg mirror), "
        f"{len(windows_after)} windows, "
        f"{sum(count for _, _, count in windows_after)} changes, each once; {time.monotonic() - started:.0f} s",
    )
