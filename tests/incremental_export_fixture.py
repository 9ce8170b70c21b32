"""
moto's ``ExportTableToPointInTime`` made to answer incremental exports as DynamoDB does, for tests.

moto ignores ``IncrementalExportSpecification`` and ``ClientToken``. :func:`answer_incremental_exports` patches it
so that an export remembers its window and reports it in ``DescribeExport``, and a request with a ``ClientToken``
already seen returns that export instead of starting another (DynamoDB's idempotency). Every request that started
an export is recorded, so a test can assert which windows were exported, and that none was exported twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from moto.core.responses import ActionResult
from moto.dynamodb.models import table_export
from moto.dynamodb.responses import DynamoHandler


@dataclass
class ExportLog:
    """
    What the patched server saw.

    :ivar started: one ``(ClientToken, ExportFromTime, ExportToTime)`` per export started, in order (UTC)
    :ivar requests: every request, including those answered by an earlier export of the same token
    """

    started: list[tuple[str | None, datetime | None, datetime | None]] = field(default_factory=list)
    requests: int = 0
    by_token: dict[str, str] = field(default_factory=dict)

    def windows(self) -> list[tuple[datetime | None, datetime | None]]:
        """The windows of the exports started, in order."""
        return [(start, end) for _, start, end in self.started]


def moment(value: Any) -> datetime | None:
    """A time of a JSON request (epoch seconds, as botocore sends it) as an aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, timezone.utc)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(timezone.utc)


def answer_incremental_exports(
    setattr_: Callable[[Any, str, Any], None] = setattr,
    on_start: Callable[[Any, dict[str, Any]], None] | None = None,
) -> ExportLog:
    """
    Patch moto (with ``setattr_``, e.g. ``monkeypatch.setattr``) and return the log of exports it starts.

    :param on_start: called with the new ``TableExport`` and its incremental specification (times as datetimes)
        when an incremental export starts, e.g. to write its data files
    """
    log = ExportLog()
    original_start = DynamoHandler.export_table_to_point_in_time
    original_response = table_export.TableExport.response

    def start(self: Any) -> ActionResult:
        log.requests += 1
        body = self.body
        token = body.get("ClientToken")
        if token is not None and token in log.by_token:
            known = self.dynamodb_backend.describe_export(log.by_token[token])
            return ActionResult({"ExportDescription": known.response()})
        spec = dict(body.get("IncrementalExportSpecification") or {})
        result = original_start(self)
        arn = result.result["ExportDescription"]["ExportArn"]  # type: ignore[index]
        export = self.dynamodb_backend.describe_export(arn)
        export.incremental_spec = spec
        start_time, end_time = moment(spec.get("ExportFromTime")), moment(spec.get("ExportToTime"))
        log.started.append((token, start_time, end_time))
        if token is not None:
            log.by_token[token] = arn
        if spec and on_start is not None:
            on_start(export, {**spec, "ExportFromTime": start_time, "ExportToTime": end_time})
        return ActionResult({"ExportDescription": export.response()})

    def response(self: Any) -> dict[str, Any]:
        description: dict[str, Any] = original_response(self)
        spec = getattr(self, "incremental_spec", None)
        if spec:
            description["IncrementalExportSpecification"] = spec
        return description

    setattr_(DynamoHandler, "export_table_to_point_in_time", start)
    setattr_(table_export.TableExport, "response", response)
    return log
