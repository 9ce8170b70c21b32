"""
Errors no retry can fix, met before the first Scan request: each ends the task at once (``AirflowFailException``,
so ``retries=2`` are not spent) with a message that names the table, the parameter or connection and what is
allowed, and no Scan request is sent, no file written.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from airflow_dynamoscan.compat import AirflowFailException
from airflow_dynamoscan.exceptions import InvalidScanArgumentError, MissingBucketError, MissingRegionError
from airflow_dynamoscan.operators.dynamodb_export import DynamoDBExportOperator
from airflow_dynamoscan.operators.dynamodb_native_export import plan_native_export_files
from airflow_dynamoscan.task_groups import plan_export_segments
from devtools.sample_data import load_sample_table
from tests.conftest import fails_task, make_client

TABLE = "orders"


@pytest.fixture
def moto_table(moto_connection_env: str) -> Iterator[None]:
    with mock_aws():
        load_sample_table(make_client(), TABLE, 10)
        make_client(service="s3").create_bucket(Bucket="exports")
        yield


def export_operator(tmp_path: Path, **kwargs: Any) -> DynamoDBExportOperator:
    arguments: dict[str, Any] = {"task_id": "export", "table_name": TABLE, "retries": 2}
    arguments.setdefault("destination", str(tmp_path / "out"))
    return DynamoDBExportOperator(**{**arguments, **kwargs})


def run_counting_scans(operator: DynamoDBExportOperator, scans: list[str]) -> Any:
    """Run the task, appending each Scan request it sends to ``scans`` (none, when it is refused before the scan)."""
    with contextlib.suppress(MissingRegionError):  # no client can be made at all: no request either
        operator.hook._scan_client.meta.events.register("before-call.dynamodb.Scan", lambda **_: scans.append("Scan"))
    return operator.execute({})  # type: ignore[arg-type]


def test_a_destination_bucket_that_does_not_exist(moto_table: None, tmp_path: Path) -> None:
    operator = export_operator(tmp_path, destination="s3://no-such-bucket/orders/2026-12-07")
    scans: list[str] = []
    with fails_task(MissingBucketError) as failed:
        run_counting_scans(operator, scans)
    assert str(failed.value) == (
        "Destination 's3://no-such-bucket/orders/2026-12-07': cannot list its files: the bucket 'no-such-bucket' "
        "does not exist (NoSuchBucket); create it, or give a destination in an existing bucket "
        "(destination='s3://bucket/prefix')."
    )
    assert scans == []


def test_a_connection_without_a_region(moto_table: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_NO_REGION", '{"conn_type": "aws", "login": "testing", "password": "testing"}')
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    operator = export_operator(tmp_path, aws_conn_id="no_region")
    with fails_task(MissingRegionError) as failed:
        run_counting_scans(operator, [])
    assert str(failed.value) == (
        "Table 'orders': Connection 'no_region' names no AWS region: set region_name in its extra "
        '({"region_name": "us-east-1"}), pass region_name= to the task, or set AWS_DEFAULT_REGION where it runs.'
    )
    assert not (tmp_path / "out").exists()
    with pytest.raises(MissingRegionError, match=r"^Table 'orders': Connection 'no_region' names no AWS region"):
        plan_export_segments(TABLE, "auto", aws_conn_id="no_region")


PARQUET_MISSING = (
    "Table 'orders': file_format='parquet' needs pyarrow, which is not installed where this task runs: install the "
    "parquet extra (pip install 'airflow-dynamoscan[parquet]') on every worker, or choose file_format='jsonl', "
    "'dynamodb_json' or 'csv'."
)


def test_parquet_without_pyarrow(moto_table: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow now raises ImportError
    scans: list[str] = []
    with fails_task(InvalidScanArgumentError) as failed:
        run_counting_scans(export_operator(tmp_path, file_format="parquet"), scans)
    assert str(failed.value) == PARQUET_MISSING
    assert scans == []  # not even the schema sample
    assert not (tmp_path / "out").exists()
    with pytest.raises(InvalidScanArgumentError) as planned:
        plan_export_segments(TABLE, 4, file_format="parquet")
    assert str(planned.value) == PARQUET_MISSING
    with pytest.raises(AirflowFailException) as native:
        plan_native_export_files(
            {"table_name": TABLE, "s3_bucket": "exports", "manifest_summary_key": "staging/manifest-summary.json"},
            s3_client=make_client(service="s3"),
            file_format="parquet",
        )
    assert str(native.value) == PARQUET_MISSING


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (Decimal("1" * 39), "a number of more than 38 significant digits"),
        (10**40 + 1, "a number of more than 38 significant digits"),
        (set(), "an empty set; DynamoDB sets hold at least one element"),
        ({"nested": [frozenset()]}, "an empty set; DynamoDB sets hold at least one element"),
    ],
    ids=["39-digit-decimal", "41-digit-int", "empty-set", "nested-empty-set"],
)
def test_expression_values_dynamodb_cannot_store(moto_table: None, tmp_path: Path, value: Any, problem: str) -> None:
    scan_kwargs = {"FilterExpression": "amount > :n", "ExpressionAttributeValues": {":n": value}}
    scans: list[str] = []
    with fails_task(InvalidScanArgumentError) as failed:
        run_counting_scans(export_operator(tmp_path, scan_kwargs=scan_kwargs), scans)
    assert str(failed.value) == (
        f"Table 'orders': ExpressionAttributeValues[':n'] is a {type(value).__name__}, which DynamoDB cannot store "
        f"({problem}). Allowed: str, int, decimal.Decimal (at most 38 significant digits), bytes, bool, None, "
        'non-empty sets, lists, dicts, or an AttributeValue such as {"S": "paid"}.'
    )
    assert scans == []
    assert not (tmp_path / "out").exists()


def test_a_38_digit_number_is_sent(moto_table: None, tmp_path: Path) -> None:
    scan_kwargs = {"FilterExpression": "pk = :n", "ExpressionAttributeValues": {":n": Decimal("9" * 38)}}
    scans: list[str] = []
    assert run_counting_scans(export_operator(tmp_path, scan_kwargs=scan_kwargs), scans)["items"] == 0
    assert scans != []
