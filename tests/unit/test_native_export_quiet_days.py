"""
A native export without records converts in every format: an empty table, an incremental window without a change,
data files that are all empty; and the schema sample skips empty files, however many are listed first.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from moto import mock_aws

from airflow_dynamoscan.export.native import SCHEMA_SAMPLE_FILES
from airflow_dynamoscan.hooks.dynamodb_scan import DynamoDBScanHook
from airflow_dynamoscan.operators.dynamodb_export import DynamoDBExportManifestOperator
from airflow_dynamoscan.operators.dynamodb_native_export import (
    DynamoDBNativeExportConvertOperator,
    plan_native_export_files,
    table_key_types,
)
from tests.conftest import make_client
from tests.native_export_fixture import full_line, write_native_export
from tests.unit.export.datasets import part_files, read_csv_parts, read_parquet_dataset, read_parquet_duckdb

BUCKET = "native-exports"
TABLE = "orders"


@pytest.fixture
def aws(moto_connection_env: str) -> Iterator[Any]:
    """Moto's S3 with the export bucket, and the exported table (keyed by pk string, sk number)."""
    with mock_aws():
        client = make_client(service="s3")
        client.create_bucket(Bucket=BUCKET)
        make_client().create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "N"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client


def convert(
    s3: Any, files: list[list[dict[str, Any]]], destination: Path, file_format: str, *, incremental: bool = False
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The group's plan_files (with the table's key types, as its task gets them), convert tasks and manifest."""
    built = write_native_export(s3, BUCKET, "staging", files, incremental=incremental)
    plans = plan_native_export_files(
        {"table_name": TABLE, "s3_bucket": BUCKET, "manifest_summary_key": built.summary_key},
        s3_client=s3,
        file_format=file_format,
        key_types=table_key_types(DynamoDBScanHook(), TABLE),
    )
    results = [
        DynamoDBNativeExportConvertOperator(
            task_id="convert_files", table_name=TABLE, destination=str(destination), file_format=file_format, **plan
        ).execute({})  # type: ignore[arg-type]
        for plan in plans
    ]
    DynamoDBExportManifestOperator(task_id="write_manifest", results=results).execute({})  # type: ignore[arg-type]
    return plans, json.loads((destination / "manifest.json").read_text())


KEYS = [{"name": "pk", "type": "string"}, {"name": "sk", "type": "int64"}]
CHANGE_KEYS = [{"name": "_op", "type": "string"}, {"name": "_write_time_micros", "type": "int64"}, *KEYS]


@pytest.mark.parametrize("incremental", [False, True], ids=["full", "incremental"])
@pytest.mark.parametrize("file_format", ["jsonl", "dynamodb_json", "csv", "parquet"])
def test_an_export_without_records_converts_in_every_format(
    aws: Any, tmp_path: Path, file_format: str, incremental: bool
) -> None:
    # DynamoDB writes one file per partition, empty ones too: here three, all empty.
    plans, manifest = convert(aws, [[], [], []], tmp_path / "out", file_format, incremental=incremental)
    assert manifest["items"] == 0
    assert manifest["total_segments"] == len(plans) == 3
    columns = CHANGE_KEYS if incremental else KEYS
    names = [column["name"] for column in columns] + ["_extra"]
    if file_format == "parquet":
        assert manifest["schema"]["columns"] == columns
        table = read_parquet_dataset(tmp_path / "out")
        assert (table.num_rows, table.schema.names) == (0, names)
        assert table.schema.field("sk").type == pa.int64()
        assert read_parquet_duckdb(tmp_path / "out") == (names, [])
    elif file_format == "csv":
        assert manifest["schema"]["columns"] == columns
        assert read_csv_parts(tmp_path / "out", ".csv") == ([names] * 3, [])
    else:
        assert "schema" not in manifest


def test_the_schema_sample_skips_empty_files_listed_first(aws: Any, tmp_path: Path) -> None:
    item = {"pk": "a#1", "sk": Decimal(7), "amount": Decimal("12.50"), "note": "late"}
    files: list[list[dict[str, Any]]] = [[] for _ in range(SCHEMA_SAMPLE_FILES + 3)] + [[full_line(item)]]
    plans, manifest = convert(aws, files, tmp_path / "out", "parquet")
    expected = [
        {"name": "amount", "type": "decimal(38,2)"},
        {"name": "note", "type": "string"},
        {"name": "pk", "type": "string"},
        {"name": "sk", "type": "int64"},
    ]
    assert plans[0]["schema"]["columns"] == expected
    assert manifest["schema"]["columns"] == expected
    rows = read_parquet_dataset(tmp_path / "out").to_pylist()
    assert rows == [{"amount": Decimal("12.50"), "note": "late", "pk": "a#1", "sk": 7, "_extra": None}]


def test_a_single_convert_task_without_a_planned_schema_uses_the_key_columns(aws: Any, tmp_path: Path) -> None:
    built = write_native_export(aws, BUCKET, "staging", [[]])
    (plan,) = plan_native_export_files(
        {"table_name": TABLE, "s3_bucket": BUCKET, "manifest_summary_key": built.summary_key},
        s3_client=aws,
        file_format="csv",
        plan_schema=False,
    )
    result = DynamoDBNativeExportConvertOperator(
        task_id="convert", table_name=TABLE, destination=str(tmp_path / "out"), file_format="csv", **plan
    ).execute({})  # type: ignore[arg-type]
    assert result["items"] == 0
    assert result["schema"]["columns"] == KEYS
    (part,) = part_files(tmp_path / "out", ".csv")
    assert part.read_bytes() == b"pk,sk,_extra\r\n"


def test_key_types_of_a_table_that_is_gone_are_not_known(aws: Any, caplog: pytest.LogCaptureFixture) -> None:
    assert table_key_types(DynamoDBScanHook(), TABLE) == {"pk": "string", "sk": "int64"}
    assert table_key_types(DynamoDBScanHook(), "dropped") == {}
    assert "Table dropped: the key attributes are not known (TableNotFoundError)" in caplog.text
