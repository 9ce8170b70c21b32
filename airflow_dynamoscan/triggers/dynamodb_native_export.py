"""Wait, in the triggerer, for a DynamoDB native export (``ExportTableToPointInTime``) to finish."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from airflow_dynamoscan.compat import BaseTrigger, TriggerEvent

#: Seconds between two DescribeExport calls, unless told otherwise.
DEFAULT_POLL_INTERVAL = 60.0

#: ExportStatus values after which an export never changes again.
FINAL_STATUSES = ("COMPLETED", "FAILED")


def json_description(description: dict[str, Any]) -> dict[str, Any]:
    """DescribeExport's ``ExportDescription`` with its times as ISO 8601 text, so it travels as JSON (XCom, events)."""

    def plain(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, dict):
            return {name: plain(nested) for name, nested in value.items()}
        if isinstance(value, list):
            return [plain(nested) for nested in value]
        return value

    return {name: plain(value) for name, value in description.items() if name != "ResponseMetadata"}


def describe_export_client(
    aws_conn_id: str | None, region_name: str | None, verify: bool | str | None, botocore_config: dict[str, Any] | None
) -> Any:
    """A boto3 DynamoDB client built from an Airflow AWS connection."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    return AwsBaseHook(
        aws_conn_id=aws_conn_id, client_type="dynamodb", region_name=region_name, verify=verify, config=botocore_config
    ).get_conn()


class DynamoDBNativeExportTrigger(BaseTrigger):
    """
    Poll ``DescribeExport`` until a native export is ``COMPLETED`` or ``FAILED``, without blocking the triggerer.

    Each call runs in a worker thread of the triggerer's event loop (``asyncio.to_thread``), so no extra
    dependency (aiobotocore) is needed and other triggers keep running while DynamoDB answers.

    :param export_arn: the export to wait for
    :param table_name: the exported table, for messages
    :param poll_interval: seconds between two DescribeExport calls
    :param timeout: seconds after which the trigger gives up with a ``timeout`` event (``None``: never; the
        operator's deferral timeout still applies)
    :param aws_conn_id: the Airflow connection of the table
    :param region_name: AWS region; default: the connection's
    :param verify: SSL verification, as for the Amazon provider's operators
    :param botocore_config: ``botocore.config.Config`` options as a dict

    Emits one event: ``{"status": "success" | "failed" | "timeout" | "error", "export_arn", "message",
    "description"}``, ``description`` being the last ``ExportDescription`` (times as ISO 8601 text) or ``None``.
    """

    def __init__(
        self,
        *,
        export_arn: str,
        table_name: str,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        timeout: float | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.export_arn = export_arn
        self.table_name = table_name
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.verify = verify
        self.botocore_config = botocore_config

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """The classpath and keyword arguments that rebuild this trigger in the triggerer."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "export_arn": self.export_arn,
                "table_name": self.table_name,
                "poll_interval": self.poll_interval,
                "timeout": self.timeout,
                "aws_conn_id": self.aws_conn_id,
                "region_name": self.region_name,
                "verify": self.verify,
                "botocore_config": self.botocore_config,
            },
        )

    def _event(self, status: str, message: str, description: dict[str, Any] | None) -> TriggerEvent:
        payload = {"status": status, "export_arn": self.export_arn, "message": message, "description": description}
        return TriggerEvent(payload)  # type: ignore[no-untyped-call]

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Yield exactly one event, when the export reaches a final status, the timeout passes, or a call fails."""
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        try:
            client = await asyncio.to_thread(
                describe_export_client, self.aws_conn_id, self.region_name, self.verify, self.botocore_config
            )
            while True:
                response = await asyncio.to_thread(client.describe_export, ExportArn=self.export_arn)
                description = json_description(response["ExportDescription"])
                status = description.get("ExportStatus")
                if status == "COMPLETED":
                    yield self._event("success", f"Export of table {self.table_name!r} completed", description)
                    return
                if status == "FAILED":
                    yield self._event(
                        "failed",
                        f"Export of table {self.table_name!r} failed: {description.get('FailureCode')}: "
                        f"{description.get('FailureMessage')}",
                        description,
                    )
                    return
                if deadline is not None and time.monotonic() >= deadline:
                    yield self._event(
                        "timeout",
                        f"Export of table {self.table_name!r} is still {status} after {self.timeout} seconds",
                        description,
                    )
                    return
                self.log.info(
                    "Export of table %s is %s; next check in %s s", self.table_name, status, self.poll_interval
                )
                await asyncio.sleep(self.poll_interval)
        except Exception as error:  # noqa: BLE001 - the task decides what an error means
            yield self._event(
                "error",
                f"Checking the export of table {self.table_name!r} failed: {type(error).__name__}: {error}",
                None,
            )


class DynamoDBRestorableTimeTrigger(BaseTrigger):
    """
    Poll ``DescribeContinuousBackups`` until a table's ``LatestRestorableDateTime`` reaches an export time, without
    holding a worker: point-in-time backups lag the table by about five minutes, so an export of "now" waits.

    :param table_name: the table's name
    :param export_time: the time that must become restorable, ISO 8601 text with a time zone
    :param poll_interval: seconds between two DescribeContinuousBackups calls
    :param timeout: seconds after which the trigger gives up with a ``timeout`` event
    :param aws_conn_id: the Airflow connection of the table
    :param region_name: AWS region; default: the connection's
    :param verify: SSL verification, as for the Amazon provider's operators
    :param botocore_config: ``botocore.config.Config`` options as a dict

    Emits one event: ``{"status": "restorable" | "timeout" | "error", "message", "latest"}``, ``latest`` being the
    last ``LatestRestorableDateTime`` seen (ISO 8601 text) or ``None``.
    """

    def __init__(
        self,
        *,
        table_name: str,
        export_time: str,
        poll_interval: float,
        timeout: float,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.table_name = table_name
        self.export_time = export_time
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.verify = verify
        self.botocore_config = botocore_config

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """The classpath and keyword arguments that rebuild this trigger in the triggerer."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "table_name": self.table_name,
                "export_time": self.export_time,
                "poll_interval": self.poll_interval,
                "timeout": self.timeout,
                "aws_conn_id": self.aws_conn_id,
                "region_name": self.region_name,
                "verify": self.verify,
                "botocore_config": self.botocore_config,
            },
        )

    def _event(self, status: str, message: str, latest: str | None) -> TriggerEvent:
        return TriggerEvent({"status": status, "message": message, "latest": latest})  # type: ignore[no-untyped-call]

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Yield exactly one event: the time is restorable, the timeout passed, or a call failed."""
        deadline = time.monotonic() + self.timeout
        target = datetime.fromisoformat(self.export_time)
        latest_text: str | None = None
        try:
            client = await asyncio.to_thread(
                describe_export_client, self.aws_conn_id, self.region_name, self.verify, self.botocore_config
            )
            while True:
                response = await asyncio.to_thread(client.describe_continuous_backups, TableName=self.table_name)
                recovery = response["ContinuousBackupsDescription"].get("PointInTimeRecoveryDescription", {})
                latest = recovery.get("LatestRestorableDateTime")
                latest_text = latest.isoformat() if isinstance(latest, datetime) else latest
                if isinstance(latest, datetime) and latest >= target:
                    yield self._event(
                        "restorable", f"{self.export_time} is restorable in table {self.table_name!r}", latest_text
                    )
                    return
                if time.monotonic() >= deadline:
                    yield self._event(
                        "timeout",
                        f"the export time {self.export_time} is after the latest restorable time {latest_text} of "
                        f"table {self.table_name!r} after {self.timeout} seconds of waiting",
                        latest_text,
                    )
                    return
                self.log.info(
                    "Waiting for %s to become restorable in table %s (latest: %s)",
                    self.export_time,
                    self.table_name,
                    latest_text,
                )
                await asyncio.sleep(min(self.poll_interval, max(0.0, deadline - time.monotonic())))
        except Exception as error:  # noqa: BLE001 - the task decides what an error means
            yield self._event(
                "error",
                f"Checking the restorable time of table {self.table_name!r} failed: {type(error).__name__}: {error}",
                latest_text,
            )
