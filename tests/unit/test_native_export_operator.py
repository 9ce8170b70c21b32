"""DynamoDBNativeExportOperator and its trigger against moto's ExportTableToPointInTime / DescribeExport and S3."""

from __future__ import annotations

import asyncio
import importlib
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from moto import mock_aws

from airflow_dynamoscan.compat import AirflowException, AirflowFailException, TaskDeferred
from airflow_dynamoscan.operators.dynamodb_native_export import (
    DynamoDBNativeExportOperator,
    client_token,
    export_result,
)
from airflow_dynamoscan.triggers.dynamodb_native_export import DynamoDBNativeExportTrigger
from devtools.sample_data import load_sample_table
from tests.conftest import make_client

TABLE = "orders"
BUCKET = "native-exports"
NOW = datetime.now(timezone.utc)


@pytest.fixture
def restorable(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The restorable range DescribeContinuousBackups reports (moto pins both ends to when PITR was enabled)."""
    window: dict[str, Any] = {"earliest": NOW - timedelta(days=35), "latest": NOW - timedelta(minutes=5)}

    def report(parsed: dict[str, Any], **_: Any) -> None:
        recovery = parsed["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
        if recovery.get("PointInTimeRecoveryStatus") == "ENABLED":
            recovery["EarliestRestorableDateTime"] = window["earliest"]
            recovery["LatestRestorableDateTime"] = window["latest"]

    from airflow_dynamoscan.hooks import dynamodb_scan

    original = dynamodb_scan.DynamoDBScanHook.client

    def client_with_range(self: Any) -> Any:
        client = original.fget(self)
        client.meta.events.register("after-call.dynamodb.DescribeContinuousBackups", report)
        return client

    monkeypatch.setattr(dynamodb_scan.DynamoDBScanHook, "client", property(client_with_range))
    return window


@pytest.fixture
def moto_table(moto_connection_env: str, restorable: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
    with mock_aws():
        make_client(service="s3").create_bucket(Bucket=BUCKET)
        items = load_sample_table(make_client(), TABLE, 40, padding=10)
        make_client().update_continuous_backups(
            TableName=TABLE, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )
        yield items


def context(run_id: str = "scheduled__2026-11-30", **times: datetime) -> dict[str, Any]:
    ti = SimpleNamespace(dag_id="nightly", task_id="export", run_id=run_id, map_index=-1, try_number=1)
    return {"ti": ti, "run_id": run_id, **times}


def operator(**kwargs: Any) -> DynamoDBNativeExportOperator:
    # moto needs an S3Prefix (DynamoDB does not).
    options: dict[str, Any] = {
        "task_id": "export",
        "table_name": TABLE,
        "s3_bucket": BUCKET,
        "s3_prefix": "exports",
        "poll_interval": 0.05,
    }
    return DynamoDBNativeExportOperator(**{**options, **kwargs})


def test_full_export_waits_in_the_worker_and_returns_the_export(moto_table: list[dict[str, Any]]) -> None:
    result = operator(s3_prefix="/exports/orders/", deferrable=False).execute(
        context(data_interval_end=NOW - timedelta(hours=1))  # type: ignore[arg-type]
    )
    assert result["export_status"] == "COMPLETED"
    assert result["item_count"] == 40
    assert result["billed_size_bytes"] > 0
    assert (result["s3_bucket"], result["s3_prefix"], result["table_name"]) == (BUCKET, "exports/orders", TABLE)
    assert result["export_arn"].startswith("arn:aws:dynamodb:us-east-1:")
    keys = [entry["Key"] for entry in make_client(service="s3").list_objects_v2(Bucket=BUCKET)["Contents"]]
    # moto writes one data file under the documented folder and no manifests.
    assert len(keys) == 1 and keys[0].startswith("exports/orders/AWSDynamoDB/")


@pytest.fixture
def held_exports(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """moto runs an export in a thread that may finish before the first DescribeExport: hold it until released."""
    from moto.dynamodb.models import table_export

    release = threading.Event()
    original_run = table_export.TableExport.run

    def held_run(self: Any) -> None:
        release.wait(timeout=60)
        original_run(self)

    monkeypatch.setattr(table_export.TableExport, "run", held_run)
    return release


def test_deferrable_export_hands_the_wait_to_the_trigger(
    moto_table: list[dict[str, Any]], held_exports: threading.Event
) -> None:
    task = operator(deferrable=True, timeout=600)
    with pytest.raises(TaskDeferred) as deferred:
        task.execute(context(data_interval_end=NOW - timedelta(hours=1)))  # type: ignore[arg-type]
    held_exports.set()  # the export finishes while the trigger polls
    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout == timedelta(seconds=600)
    trigger = deferred.value.trigger
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)  # as the triggerer rebuilds it
    assert isinstance(rebuilt, DynamoDBNativeExportTrigger)

    async def first_event() -> Any:
        return await anext(aiter(rebuilt.run()))

    event = asyncio.run(first_event())
    assert event.payload["status"] == "success"
    assert event.payload["description"]["ExportStatus"] == "COMPLETED"
    result = task.execute_complete(context(), event.payload)  # type: ignore[arg-type]
    assert (result["export_arn"], result["item_count"]) == (kwargs["export_arn"], 40)


def test_trigger_reports_a_failed_export_and_the_task_fails(moto_table: list[dict[str, Any]]) -> None:
    table_arn = make_client().describe_table(TableName=TABLE)["Table"]["TableArn"]
    started = make_client().export_table_to_point_in_time(TableArn=table_arn, S3Bucket="no-such-bucket", S3Prefix="p")
    trigger = DynamoDBNativeExportTrigger(
        export_arn=started["ExportDescription"]["ExportArn"], table_name=TABLE, poll_interval=0.05
    )

    async def events() -> list[Any]:
        return [event async for event in trigger.run()]

    (event,) = asyncio.run(events())
    assert event.payload["status"] == "failed"
    assert "S3NoSuchBucket" in event.payload["message"]
    with pytest.raises(AirflowFailException, match=r"Table 'orders': export .* failed: S3NoSuchBucket"):
        operator().execute_complete(context(), event.payload)  # type: ignore[arg-type]
    with pytest.raises(AirflowException, match="still IN_PROGRESS") as timed_out:
        operator().execute_complete(context(), {"status": "timeout", "message": "still IN_PROGRESS"})  # type: ignore[arg-type]
    assert not isinstance(timed_out.value, AirflowFailException)  # a retry waits for the same export


def test_trigger_timeout_event(moto_table: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.dynamodb.models.table_export import TableExport

    monkeypatch.setattr(TableExport, "start", lambda self: None)  # the export never finishes
    table_arn = make_client().describe_table(TableName=TABLE)["Table"]["TableArn"]
    arn = make_client().export_table_to_point_in_time(TableArn=table_arn, S3Bucket=BUCKET, S3Prefix="p")[
        "ExportDescription"
    ]["ExportArn"]
    trigger = DynamoDBNativeExportTrigger(export_arn=arn, table_name=TABLE, poll_interval=0.05, timeout=0.2)

    async def events() -> list[Any]:
        return [event async for event in trigger.run()]

    (event,) = asyncio.run(events())
    assert event.payload["status"] == "timeout"
    assert event.payload["description"]["ExportStatus"] == "IN_PROGRESS"
    with pytest.raises(AirflowException, match="still IN_PROGRESS after"):
        operator(deferrable=False, timeout=0.2).execute(context(data_interval_end=NOW - timedelta(hours=1)))  # type: ignore[arg-type]


def test_point_in_time_recovery_disabled(moto_table: list[dict[str, Any]]) -> None:
    make_client().update_continuous_backups(
        TableName=TABLE, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": False}
    )
    with pytest.raises(
        AirflowFailException,
        match=r"Table 'orders': point-in-time recovery is not enabled .*PointInTimeRecoveryEnabled",
    ):
        operator().execute(context(data_interval_end=NOW - timedelta(hours=1)))  # type: ignore[arg-type]


def test_missing_table_and_bucket(moto_table: list[dict[str, Any]]) -> None:
    with pytest.raises(AirflowFailException, match="'missing'"):
        operator(table_name="missing").execute(context())  # type: ignore[arg-type]
    with pytest.raises(AirflowFailException, match=r"the bucket s3_bucket='absent-bucket' does not exist"):
        operator(s3_bucket="absent-bucket").execute(context(data_interval_end=NOW - timedelta(hours=1)))  # type: ignore[arg-type]
    with pytest.raises(AirflowFailException, match="s3_bucket is empty"):
        operator(s3_bucket="").execute(context())  # type: ignore[arg-type]


def test_export_times_outside_the_restorable_range(
    moto_table: list[dict[str, Any]], restorable: dict[str, Any]
) -> None:
    with pytest.raises(AirflowFailException, match="is before the earliest restorable time"):
        operator(export_time=NOW - timedelta(days=40)).execute(context())  # type: ignore[arg-type]
    with pytest.raises(AirflowFailException, match="is in the future"):
        operator(export_time=NOW + timedelta(hours=1)).execute(context())  # type: ignore[arg-type]
    # Just after the latest restorable time: not yet restorable, which a retry fixes.
    with pytest.raises(AirflowException, match="after the latest restorable time") as too_recent:
        operator(export_time=NOW - timedelta(minutes=1), restorable_wait=0).execute(context())  # type: ignore[arg-type]
    assert not isinstance(too_recent.value, AirflowFailException)


def test_incremental_windows_are_checked(moto_table: list[dict[str, Any]]) -> None:
    start = NOW - timedelta(days=2)
    incremental = operator(export_type="INCREMENTAL_EXPORT", export_view_type="NEW_IMAGE")
    with pytest.raises(AirflowFailException, match=r"lasts 0:10:00; DynamoDB needs at least 15 minutes"):
        incremental.execute(context(data_interval_start=start, data_interval_end=start + timedelta(minutes=10)))  # type: ignore[arg-type]
    with pytest.raises(AirflowFailException, match=r"at most 24 hours\. Split it"):
        incremental.execute(context(data_interval_start=start, data_interval_end=start + timedelta(hours=25)))  # type: ignore[arg-type]
    with pytest.raises(AirflowFailException, match="an incremental export needs a window"):
        incremental.execute(context())  # type: ignore[arg-type]
    request, _ = incremental.build_request(
        context(data_interval_start=start, data_interval_end=start + timedelta(hours=24))
    )
    assert request["ExportType"] == "INCREMENTAL_EXPORT"
    assert request["IncrementalExportSpecification"] == {
        "ExportFromTime": start,
        "ExportToTime": start + timedelta(hours=24),
        "ExportViewType": "NEW_IMAGE",
    }
    result = incremental.execute(context(data_interval_start=start, data_interval_end=start + timedelta(hours=1)))  # type: ignore[arg-type]
    assert result["export_type"] == "INCREMENTAL_EXPORT"


def test_client_token_is_stable_across_retries_and_passes_options(moto_table: list[dict[str, Any]]) -> None:
    moment = NOW - timedelta(hours=2)
    task = operator(
        s3_prefix="p",
        s3_bucket_owner="123456789012",
        s3_sse_algorithm="KMS",
        s3_sse_kms_key_id="alias/exports",
    )
    first, _ = task.build_request(context(data_interval_end=moment))
    retry_context = context(data_interval_end=moment)
    retry_context["ti"].try_number = 2
    retry, _ = task.build_request(retry_context)
    other_run, _ = task.build_request(context("manual__x", data_interval_end=moment))
    assert first == retry
    assert other_run["ClientToken"] != first["ClientToken"]
    assert len(first["ClientToken"]) == 64 and "$" not in first["ClientToken"]
    assert {key: value for key, value in first.items() if key not in ("ClientToken", "TableArn")} == {
        "S3Bucket": BUCKET,
        "S3Prefix": "p",
        "S3BucketOwner": "123456789012",
        "S3SseAlgorithm": "KMS",
        "S3SseKmsKeyId": "alias/exports",
        "ExportFormat": "DYNAMODB_JSON",
        "ExportType": "FULL_EXPORT",
        "ExportTime": moment,
    }
    identity = {"dag_id": "d", "task_id": "t", "run_id": "r", "map_index": 0}
    assert client_token(identity, {"a": 1}) == client_token(dict(identity), {"a": 1})
    assert client_token(identity, {"a": 1}) != client_token({**identity, "map_index": 1}, {"a": 1})


def test_bad_parameters_fail_when_the_dag_is_parsed() -> None:
    with pytest.raises(ValueError, match=r"export_type='DELTA' is not allowed; allowed: FULL_EXPORT, INCREMENTAL"):
        operator(export_type="DELTA")
    with pytest.raises(ValueError, match=r"export_view_type='OLD_IMAGE' is not allowed"):
        operator(export_type="INCREMENTAL_EXPORT", export_view_type="OLD_IMAGE")
    with pytest.raises(ValueError, match=r"s3_sse_algorithm='DES' is not allowed; allowed: None, AES256, KMS"):
        operator(s3_sse_algorithm="DES")
    with pytest.raises(ValueError, match="apply to export_type='INCREMENTAL_EXPORT' only"):
        operator(export_from_time="2026-11-01T00:00:00Z")


@pytest.mark.parametrize(
    ("parameter", "value", "bound"),
    [
        ("poll_interval", None, "> 0"),
        ("poll_interval", "60", "> 0"),
        ("poll_interval", 0, "> 0"),
        ("poll_interval", True, "> 0"),
        ("poll_interval", float("nan"), "> 0"),
        ("timeout", -5, "> 0"),
        ("timeout", "1h", "> 0"),
        ("timeout", timedelta(0), "> 0"),
        ("restorable_wait", -1, ">= 0"),
        ("restorable_wait", float("inf"), ">= 0"),
    ],
)
def test_bad_durations_are_refused_by_name_when_the_dag_is_parsed(parameter: str, value: Any, bound: str) -> None:
    with pytest.raises(ValueError) as raised:
        operator(**{parameter: value})
    assert str(raised.value) == (
        f"Table {TABLE!r}: {parameter}={value!r} is not allowed; it must be a number of seconds {bound} or a "
        "datetime.timedelta."
    )


def test_durations_take_seconds_or_timedeltas() -> None:
    built = operator(poll_interval=timedelta(seconds=90), timeout=120, restorable_wait=0)
    assert (built.poll_interval, built.export_timeout, built.restorable_wait) == (
        90.0,
        timedelta(seconds=120),
        timedelta(0),
    )


def test_result_names_the_documented_manifest_keys() -> None:
    arn = "arn:aws:dynamodb:us-east-1:123456789012:table/orders/export/01695097218000-d6299cbd"
    described = {
        "ExportArn": arn,
        "ExportStatus": "COMPLETED",
        "S3Bucket": BUCKET,
        "S3Prefix": "exports/orders",
        "ItemCount": 7,
        "BilledSizeBytes": 1234,
        "ExportType": "INCREMENTAL_EXPORT",
        "StartTime": datetime(2026, 11, 30, 0, 5, tzinfo=timezone.utc),
        "IncrementalExportSpecification": {"ExportViewType": "NEW_IMAGE"},
    }
    result = export_result(TABLE, described)
    folder = "exports/orders/AWSDynamoDB/01695097218000-d6299cbd/"
    assert result["manifest_summary_key"] == folder + "manifest-summary.json"
    assert result["manifest_files_key"] == folder + "manifest-files.json"
    assert (result["item_count"], result["billed_size_bytes"], result["export_view_type"]) == (7, 1234, "NEW_IMAGE")
    assert result["started_at"] == "2026-11-30T00:05:00+00:00"
    given = export_result(TABLE, {**described, "ExportManifest": "x/AWSDynamoDB/y/manifest-summary.json"})
    assert given["manifest_files_key"] == "x/AWSDynamoDB/y/manifest-files.json"
