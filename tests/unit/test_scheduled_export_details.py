"""
What a DAG author meets on ordinary scheduled days, beyond the data: the task groups take the parameters the
operators document, ``method="auto"`` asks only what it needs, a failed task keeps its console links, and the log
says why a plan or a worker count is what it is.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import botocore.client
import pytest
from moto import mock_aws

from airflow_dynamoscan.compat import DAG, AirflowFailException
from airflow_dynamoscan.hooks.dynamodb_scan import DynamoDBScanHook
from airflow_dynamoscan.native_task_groups import (
    choose_table_export_method,
    dynamodb_native_export_to_files,
    dynamodb_table_export,
)
from airflow_dynamoscan.operators.dynamodb_export import DynamoDBExportOperator, sample_export_schema
from airflow_dynamoscan.scan.scanner import check_scan_kwargs
from devtools.sample_data import load_sample_table
from tests.conftest import make_client


def new_dag() -> DAG:
    return DAG(dag_id="nightly", schedule=None, start_date=datetime(2026, 1, 1))


def test_the_native_group_takes_operator_and_task_parameters_directly() -> None:
    with new_dag() as dag:
        dynamodb_native_export_to_files(
            "native",
            table_name="orders",
            s3_bucket="staging",
            destination="s3://out/orders",
            export_time="2026-11-30T00:00:00Z",
            poll_interval=30,
            restorable_wait=60,
            retries=3,
            retry_delay=timedelta(minutes=2),
            file_format="parquet",
            verify_md5=True,
        )
    start = dag.get_task("native.start_export")
    assert (start.export_time, start.poll_interval, start.restorable_wait) == (
        "2026-11-30T00:00:00Z",
        30.0,
        timedelta(seconds=60),
    )
    for task_id in ("start_export", "plan_files", "convert_files", "write_manifest"):
        task = dag.get_task(f"native.{task_id}")
        partial = getattr(task, "partial_kwargs", {})
        assert partial.get("retries", task.retries) == 3, task_id
        assert partial.get("retry_delay", task.retry_delay) == timedelta(minutes=2), task_id
    convert = dag.get_task("native.convert_files").partial_kwargs
    assert (convert["file_format"], convert["verify_md5"]) == ("parquet", True)
    assert "poll_interval" not in convert


def test_export_kwargs_still_work_and_a_parameter_given_twice_is_refused() -> None:
    with new_dag() as dag:
        dynamodb_native_export_to_files(
            "native", table_name="orders", s3_bucket="b", destination="/tmp/x", export_kwargs={"poll_interval": 45}
        )
    assert dag.get_task("native.start_export").poll_interval == 45.0
    with new_dag(), pytest.raises(ValueError, match=r"^Table 'orders': poll_interval is given twice"):
        dynamodb_native_export_to_files(
            "native",
            table_name="orders",
            s3_bucket="b",
            destination="/tmp/x",
            export_kwargs={"poll_interval": 45},
            poll_interval=30,
        )


def test_the_table_export_takes_task_parameters_for_every_task() -> None:
    with new_dag() as dag:
        dynamodb_table_export(
            "export",
            table_name="orders",
            destination="s3://out/orders",
            method="auto",
            native_s3_bucket="staging",
            retries=2,
            pool="exports",
            file_format="csv",
        )
    assert len(dag.task_ids) == 8
    for task_id in dag.task_ids:
        task = dag.get_task(task_id)
        partial = getattr(task, "partial_kwargs", {})
        assert (partial.get("retries", task.retries), partial.get("pool", task.pool)) == (2, "exports"), task_id


@pytest.fixture
def aws_calls(moto_connection_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Moto, and the names of the AWS operations every client sends."""
    calls: list[str] = []
    original = botocore.client.BaseClient._make_api_call

    def recorded(self: Any, operation_name: str, api_params: Any) -> Any:
        calls.append(operation_name)
        return original(self, operation_name, api_params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recorded)
    with mock_aws():
        load_sample_table(make_client(), "orders", 20)
        calls.clear()
        yield calls


def test_auto_asks_for_the_recovery_status_only_of_a_table_above_the_threshold(aws_calls: list[str]) -> None:
    assert choose_table_export_method("orders", "auto") == "scan"  # 20 small items: far below 1 GiB
    assert aws_calls == ["DescribeTable"]
    aws_calls.clear()
    assert choose_table_export_method("orders", "auto", native_threshold_bytes=0) == "scan"  # PITR is disabled
    assert aws_calls == ["DescribeTable", "DescribeContinuousBackups"]


def test_plan_segments_says_which_figures_it_used(aws_calls: list[str], capfd: pytest.CaptureFixture[str]) -> None:
    make_client().create_table(
        TableName="fresh",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    capfd.readouterr()
    hook = DynamoDBScanHook()
    handler = logging.Handler()
    records: list[str] = []
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    if hasattr(hook.log, "addHandler"):  # a logging.Logger (Airflow 2); Airflow 3's task logger writes to the output
        hook.log.addHandler(handler)
    try:
        assert hook.plan_segments("fresh", min_segments=1, max_segments=1024) == 1
    finally:
        if hasattr(hook.log, "removeHandler"):
            hook.log.removeHandler(handler)
    logged = " ".join(("".join(capfd.readouterr()) + " ".join(records)).split())
    assert (
        "Table fresh: planned 1 segment(s), one per 2147483648 bytes (at least 1, at most 1024), from "
        "DescribeTable's TableSizeBytes=0 and ItemCount=0"
    ) in logged
    assert (
        "Table fresh: DynamoDB refreshes TableSizeBytes and ItemCount about every six hours, so a new or recently "
        "filled table may show 0 bytes while it holds items; give total_segments to choose the count yourself"
    ) in logged


class RecordingTaskInstance(SimpleNamespace):
    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def test_a_task_that_fails_on_its_arguments_has_stored_its_links(aws_calls: list[str], tmp_path: Path) -> None:
    ti = RecordingTaskInstance(pushed={}, dag_id="nightly", run_id="r", task_id="export")
    operator = DynamoDBExportOperator(
        task_id="export", table_name="orders", destination="s3://out/orders/", file_format="xml"
    )
    with pytest.raises(AirflowFailException, match="file_format='xml' is not allowed"):
        operator.execute({"ti": ti})  # type: ignore[arg-type]
    # Airflow reads both when the task ends; stored, they log no "XCom not found" error.
    assert ti.pushed == {
        "dynamoscan_table": {"region_name": "us-east-1", "aws_domain": "aws.amazon.com", "table_name": "orders"},
        "dynamoscan_destination": {
            "region_name": "us-east-1",
            "aws_domain": "aws.amazon.com",
            "destination": "s3://out/orders/",
        },
    }
    assert aws_calls == []


def test_default_workers_are_those_the_memory_budget_holds(
    aws_calls: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    hook = DynamoDBScanHook()
    with caplog.at_level(logging.DEBUG, logger="airflow_dynamoscan.scan.scanner"):
        assert len(list(hook.parallel_scan("orders", total_segments=8))) == 20
        default = [record for record in caplog.records if "workers instead of" in record.message]
        caplog.clear()
        assert len(list(hook.parallel_scan("orders", total_segments=8, max_workers=8))) == 20
        asked = [record for record in caplog.records if "workers instead of" in record.message]
    assert [record.levelno for record in default] == [logging.DEBUG]
    assert [(record.levelno, record.message) for record in asked] == [
        (
            logging.INFO,
            "Parallel scan of orders: 6 workers instead of the 8 asked for: max_memory_mb=64 holds the pages of 6; "
            "max_memory_mb=80 runs 8",
        )
    ]
    with caplog.at_level(logging.DEBUG, logger="airflow_dynamoscan.scan.scanner"):
        caplog.clear()
        assert len(list(hook.parallel_scan("orders", total_segments=8, max_workers=8, max_memory_mb=80))) == 20
    assert not [record for record in caplog.records if "workers instead of" in record.message]


def test_a_number_templated_into_a_filter_value_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    values = {":min": "5", ":status": "paid", ":typed": {"N": "5"}, ":n": 5}
    with caplog.at_level(logging.WARNING):
        checked = check_scan_kwargs("orders", {"FilterExpression": "x", "ExpressionAttributeValues": values})
    assert checked["ExpressionAttributeValues"] == {
        ":min": {"S": "5"},
        ":status": {"S": "paid"},
        ":typed": {"N": "5"},
        ":n": {"N": "5"},
    }
    assert [record.message for record in caplog.records] == [
        "Table orders: ExpressionAttributeValues[':min'] is a string that looks like a number; it is sent as a "
        'string ({"S": ...}), which matches no number attribute. A templated value renders as text: for a number, '
        'write {":min": {"N": "{{ ... }}"}} or set render_template_as_native_obj=True on the DAG (see '
        "docs/troubleshooting.md)"
    ]


def test_the_schema_sample_is_reported_once_as_a_sample(
    aws_calls: list[str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="airflow_dynamoscan"):
        result = sample_export_schema(DynamoDBScanHook(), "orders")
    lines = [
        record.getMessage()
        for record in caplog.records
        if record.levelno >= logging.INFO and record.name.startswith("airflow_dynamoscan")
    ]
    assert [line for line in lines if "stopped early" in line] == []  # the sample's scans: DEBUG only
    columns = ", ".join(f"{column.name} {column.type}" for column in result.columns)
    assert lines == [
        "Table orders: planned the export's schema from a sample (the first page with items of each of 4 sample "
        f"segments, read and then stopped): {columns}"
    ]
    assert aws_calls.count("Scan") == 4
