"""
Which errors end a task at once and which Airflow retries, as a DAG author with ``retries=2`` meets them: errors
no retry can fix raise ``AirflowFailException`` (same message, the package's own error as the cause); throttling
and connection errors that outlast the request retries raise as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from moto import mock_aws

from airflow_dynamoscan.compat import AirflowFailException
from airflow_dynamoscan.exceptions import (
    IncompleteExportError,
    InvalidScanArgumentError,
    RetriesExhaustedError,
    ScanRequestError,
    SchemaMismatchError,
    TableNotFoundError,
    TransformError,
)
from airflow_dynamoscan.operators.base import DynamoDBScanBaseOperator, is_permanent_error
from airflow_dynamoscan.operators.dynamodb_export import DynamoDBExportManifestOperator, DynamoDBExportOperator
from airflow_dynamoscan.operators.dynamodb_transform import DynamoDBTransformOperator
from airflow_dynamoscan.scan.retry import RetryPolicy
from devtools.sample_data import load_sample_table
from tests.conftest import make_client

TABLE = "orders"
RETRIES: dict[str, Any] = {"retries": 2}


@pytest.fixture
def moto_table(moto_connection_env: str) -> Iterator[None]:
    with mock_aws():
        load_sample_table(make_client(), TABLE, 40, padding=10)
        yield


def explode(item: dict[str, Any]) -> dict[str, Any]:
    raise KeyError("the lookup has no entry for 4111 1111 1111 1111")


def export(tmp_path: Path, **kwargs: Any) -> Callable[[], Any]:
    arguments = {"task_id": "export", "table_name": TABLE, "destination": str(tmp_path / "out"), **RETRIES, **kwargs}
    return DynamoDBExportOperator(**arguments).execute


def transform(**kwargs: Any) -> Callable[[], Any]:
    arguments = {"task_id": "transform", "table_name": TABLE, "transform": explode, **RETRIES, **kwargs}
    return DynamoDBTransformOperator(**arguments).execute


def incomplete_manifest(tmp_path: Path) -> Callable[[], Any]:
    result = {"table_name": TABLE, "segment": 0, "total_segments": 2, "items": 0, "bytes": 0, "parts": []}
    results = [{**result, "destination": str(tmp_path), "file_format": "jsonl", "compression": None}]
    return DynamoDBExportManifestOperator(task_id="manifest", results=results, **RETRIES).execute


CASES: dict[str, tuple[Callable[[Path], Callable[[], Any]], type[Exception], str]] = {
    "missing-table": (
        lambda tmp: export(tmp, table_name="no-such-table"),
        TableNotFoundError,
        "Table 'no-such-table' was not found (region 'us-east-1', endpoint 'https://dynamodb.us-east-1.amazonaws.com')",
    ),
    "invalid-expression": (
        lambda tmp: export(tmp, scan_kwargs={"FilterExpression": "bad (("}),
        ScanRequestError,
        "Table 'orders': DynamoDB rejected the request: ",
    ),
    "misspelt-keyword": (
        lambda tmp: export(tmp, scan_kwargs={"FilterExpresion": "n > :n"}),
        InvalidScanArgumentError,
        "Table 'orders': 'FilterExpresion' is not a Scan keyword. Did you mean 'FilterExpression'?",
    ),
    "segment-without-total": (
        lambda tmp: export(tmp, segment=2),
        InvalidScanArgumentError,
        "Table 'orders': segment=2 needs total_segments, which is None",
    ),
    "transform-raises": (
        lambda tmp: transform(),
        TransformError,
        "Table 'orders': the transform raised KeyError on the item with key pk=",
    ),
    "mapped-key-change": (
        lambda tmp: transform(allow_key_change=True, segment=0, total_segments=4),
        InvalidScanArgumentError,
        "Table 'orders': allow_key_change=True is not allowed in a task that transforms one segment",
    ),
    "incomplete-export": (
        incomplete_manifest,
        IncompleteExportError,
        "Table 'orders': ",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_errors_no_retry_can_fix_fail_the_task_at_once(moto_table: None, tmp_path: Path, case: str) -> None:
    make_call, cause_type, message_start = CASES[case]
    with pytest.raises(AirflowFailException) as failed:
        make_call(tmp_path)({})
    assert str(failed.value).startswith(message_start)
    assert type(failed.value.__cause__) is cause_type
    assert str(failed.value) == str(failed.value.__cause__)
    assert "4111" not in str(failed.value)  # still no item data
    assert not (tmp_path / "out").exists()


def throttled(operator: DynamoDBScanBaseOperator, error: Exception) -> None:
    def fail(**_: Any) -> None:
        raise error

    operator.hook._scan_client.meta.events.register("before-send.dynamodb.Scan", fail)


TRANSIENT = {
    "throttling": ClientError(
        {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}, "Scan"
    ),
    "server-error": ClientError(
        {"Error": {"Code": "InternalServerError", "Message": "oops"}, "ResponseMetadata": {"HTTPStatusCode": 500}},
        "Scan",
    ),
    "connection": EndpointConnectionError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com"),
}


@pytest.mark.parametrize("kind", list(TRANSIENT))
def test_transient_errors_stay_retryable_after_the_request_retries(moto_table: None, tmp_path: Path, kind: str) -> None:
    policy = RetryPolicy(max_attempts=2, base_delay=0.001, max_delay=0.001)
    destination = str(tmp_path / "out")
    export = DynamoDBExportOperator(
        task_id="export", table_name=TABLE, destination=destination, request_retry_policy=policy, **RETRIES
    )
    transform = DynamoDBTransformOperator(
        task_id="transform", table_name=TABLE, transform=explode, request_retry_policy=policy, **RETRIES
    )
    operator: DynamoDBScanBaseOperator
    for operator in (export, transform):
        throttled(operator, TRANSIENT[kind])
        with pytest.raises(RetriesExhaustedError) as raised:
            operator.execute({})  # type: ignore[arg-type]
        assert not isinstance(raised.value, AirflowFailException)
        assert not is_permanent_error(raised.value)


@pytest.mark.parametrize(
    ("code", "permanent"),
    [
        ("ValidationException", True),
        ("ResourceNotFoundException", True),
        ("AccessDeniedException", True),
        ("ThrottlingException", False),
        ("ProvisionedThroughputExceededException", False),
        ("InternalServerError", False),
    ],
)
def test_aws_error_codes_that_reach_an_operator_unconverted(code: str, permanent: bool) -> None:
    assert is_permanent_error(ClientError({"Error": {"Code": code, "Message": "m"}}, "Scan")) is permanent


def test_an_item_that_does_not_fit_a_schema_without_extra_column_fails_the_task_at_once(
    moto_table: None, tmp_path: Path
) -> None:
    schema = {"columns": [{"name": "pk", "type": "int64"}], "extra_column": None}
    with pytest.raises(AirflowFailException) as failed:
        export(tmp_path, file_format="parquet", schema=schema)({})
    assert type(failed.value.__cause__) is SchemaMismatchError
    assert "attribute 'pk' holds a str value, which does not fit its column of type 'int64'" in str(failed.value)
    assert "4111" not in str(failed.value)
