"""
The e2e moto server's answers to incremental exports and restorable times, for the calendar check.

An incremental export of a table named ``calendar*`` is answered at once from a change log, a JSON Lines file the
check appends to as it changes the table (one ``{"table", "write_time_micros", "keys", "new", "old"}`` per write,
plain JSON values): the records whose write time is in ``[ExportFromTime, ExportToTime)`` are written, in write
order, as DynamoDB's incremental export layout (``tests.native_export_fixture``); a full export at
``ExportTime`` writes the table as of then, the fold of the records written before it (the Iceberg mirror's load).
``DescribeContinuousBackups`` of
such a table reports the last 35 days, to now, as DynamoDB's point-in-time recovery does.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
from moto.core.responses import ActionResult
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.responses import DynamoHandler

from tests.incremental_export_fixture import answer_incremental_exports, moment
from tests.native_export_fixture import REGION, change_line, full_line, write_native_export

#: Tables whose exports and restorable times this module answers.
TABLE_PREFIX = "calendar"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
#: Data files per incremental export.
DATA_FILES = 2


def change_log_path(release_file: Path) -> Path:
    """The change log beside the moto server's release file (both in the e2e run's directory)."""
    return release_file.parent / "calendar-change-log.jsonl"


def changes_in(log_path: Path, table: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """The logged writes to ``table`` in ``[start, end)``, in write order."""
    if not log_path.exists():
        return []
    low, high = int(start.timestamp() * 1_000_000), int(end.timestamp() * 1_000_000)
    entries = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    found = [entry for entry in entries if entry["table"] == table and low <= entry["write_time_micros"] < high]
    return sorted(found, key=lambda entry: entry["write_time_micros"])


def answer_calendar(endpoint_url: str, release_file: Path) -> None:
    """Patch moto (in the server's process) to answer the calendar table's incremental exports and backups."""
    log_path = change_log_path(release_file)
    original_backups = DynamoDBBackend.describe_continuous_backups

    def describe_continuous_backups(self: Any, table_name: str) -> dict[str, Any]:
        description: dict[str, Any] = original_backups(self, table_name)
        if not table_name.startswith(TABLE_PREFIX):
            return description
        now = datetime.now(timezone.utc)
        recovery = dict(description["PointInTimeRecoveryDescription"])
        recovery.update({"EarliestRestorableDateTime": now - timedelta(days=35), "LatestRestorableDateTime": now})
        return {**description, "PointInTimeRecoveryDescription": recovery}

    def write(export: Any, spec: dict[str, Any]) -> None:
        if not export.table.name.startswith(TABLE_PREFIX):
            return
        if spec.get("ExportTime") is not None:  # a full export: the table as of then
            table: dict[str, Any] = {}
            for entry in changes_in(log_path, export.table.name, EPOCH, spec["ExportTime"]):
                key = json.dumps(entry["keys"], sort_keys=True)
                if entry["new"] is None:
                    table.pop(key, None)
                else:
                    table[key] = entry["new"]
            lines = [full_line(value) for _, value in sorted(table.items())]
        else:
            entries = changes_in(log_path, export.table.name, spec["ExportFromTime"], spec["ExportToTime"])
            lines = [
                change_line(entry["keys"], entry["write_time_micros"], entry["new"], entry["old"]) for entry in entries
            ]
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        files = [lines[start::DATA_FILES] for start in range(DATA_FILES)]
        built = write_native_export(
            s3,
            export.s3_bucket,
            export.s3_prefix,
            files,
            table_name=export.table.name,
            export_id=export.export_id,
            incremental=spec.get("ExportTime") is None,
        )
        export.item_count, export.processed_bytes = len(lines), built.summary["billedSizeBytes"]
        export.manifest_key, export.finished_at = built.summary_key, datetime.now(timezone.utc).timestamp()
        export.status = "COMPLETED"

    DynamoDBBackend.describe_continuous_backups = describe_continuous_backups  # type: ignore[method-assign]
    answer_incremental_exports(on_start=write)
    start_export = DynamoHandler.export_table_to_point_in_time

    def start_full_export(self: Any) -> ActionResult:
        result: ActionResult = start_export(self)
        body = self.body
        if body.get("IncrementalExportSpecification") or body.get("ExportType") == "INCREMENTAL_EXPORT":
            return result
        export = self.dynamodb_backend.describe_export(result.result["ExportDescription"]["ExportArn"])  # type: ignore[index]
        if export.status == "IN_PROGRESS":
            export_time = moment(body.get("ExportTime")) or datetime.now(timezone.utc)
            write(export, {"ExportTime": export_time})
        return ActionResult({"ExportDescription": export.response()})

    DynamoHandler.export_table_to_point_in_time = start_full_export  # type: ignore[method-assign]
