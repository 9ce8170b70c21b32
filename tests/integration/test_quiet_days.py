"""
A quiet day is a normal export: an empty table, or a filter that matches nothing, exports in every format, in one
task and as the mapped tasks of ``dynamodb_parallel_export`` (fixed and ``"auto"`` segments), with a manifest of
0 items and a schema of the table's key attributes, which the readers users use read back as 0 rows.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from airflow_dynamoscan.operators.dynamodb_export import DynamoDBExportManifestOperator, DynamoDBExportOperator
from airflow_dynamoscan.task_groups import plan_export_segments
from devtools.sample_data import load_sample_table
from tests.conftest import unique_table_name
from tests.unit.export.datasets import (
    part_files,
    read_csv_duckdb,
    read_csv_parts,
    read_parquet_dataset,
    read_parquet_duckdb,
)

FORMATS = ("jsonl", "dynamodb_json", "csv", "parquet")
EXTENSIONS = {"jsonl": ".jsonl", "dynamodb_json": ".json", "csv": ".csv", "parquet": ".parquet"}

#: The schema of every CSV and Parquet export of the empty table: its keys (a number sort key) and the extra column.
KEY_SCHEMA = {
    "columns": [{"name": "pk", "type": "string"}, {"name": "sk", "type": "int64"}],
    "extra_column": "_extra",
    "other_attributes": "extra",
}


@pytest.fixture(scope="module")
def empty_keyed_table(dynalite_client: Any) -> str:
    """An empty table keyed by a string partition key and a number sort key."""
    name = unique_table_name("quiet")
    dynalite_client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    dynalite_client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100})
    return name


@pytest.fixture(scope="module")
def busy_table(dynalite_client: Any) -> str:
    name = unique_table_name("busy")
    load_sample_table(dynalite_client, name, 30)
    return name


#: A filter that matches none of the sample items.
NOTHING = {"FilterExpression": "pk = :none", "ExpressionAttributeValues": {":none": "no such key"}}


def run_export(table: str, destination: Path, file_format: str, mode: str, **kwargs: Any) -> dict[str, Any]:
    """The export as its tasks run: one task, or plan -> one task per planned segment -> manifest."""
    common: dict[str, Any] = {"table_name": table, "destination": str(destination), "file_format": file_format}
    if mode == "single":
        results = [DynamoDBExportOperator(task_id="export", **common, **kwargs).execute({})]  # type: ignore[arg-type]
    else:
        plans = plan_export_segments(
            table,
            3 if mode == "fixed" else "auto",
            file_format=file_format,
            scan_kwargs=kwargs.get("scan_kwargs"),
        )
        results = [
            DynamoDBExportOperator(task_id="export_segment", **common, **kwargs, **plan).execute({})  # type: ignore[arg-type]
            for plan in plans
        ]
    committed = DynamoDBExportManifestOperator(task_id="write_manifest", results=results).execute({})  # type: ignore[arg-type]
    assert committed["items"] == 0
    manifest: dict[str, Any] = json.loads((destination / "manifest.json").read_text())
    return manifest


def assert_reads_back_empty(destination: Path, file_format: str, manifest: dict[str, Any], schema: Any) -> None:
    assert manifest["items"] == 0
    parts = [path for path in part_files(destination, EXTENSIONS[file_format]) if path.name.startswith("part-")]
    assert len(parts) == manifest["total_segments"] == manifest["part_count"]
    if file_format == "parquet":
        assert manifest["schema"] == schema
        table = read_parquet_dataset(destination)
        assert table.num_rows == 0
        assert table.schema.names == ["pk", "sk", "_extra"]
        assert [table.schema.field(name).type for name in ("pk", "sk", "_extra")] == [
            pa.string(),
            pa.int64(),
            pa.string(),
        ]
        assert read_parquet_duckdb(destination) == (["pk", "sk", "_extra"], [])
    elif file_format == "csv":
        assert manifest["schema"] == schema
        headers, rows = read_csv_parts(destination, ".csv")
        assert headers == [["pk", "sk", "_extra"]] * len(parts)
        assert rows == []
        assert read_csv_duckdb(destination, ".csv") == (["pk", "sk", "_extra"], [])
    else:
        assert "schema" not in manifest
        assert [part.read_bytes() for part in parts] == [b""] * len(parts)


@pytest.mark.parametrize("mode", ["single", "fixed", "auto"])
@pytest.mark.parametrize("file_format", FORMATS)
def test_an_empty_table_exports_in_every_format_and_way(
    aws_connection_env: str, empty_keyed_table: str, tmp_path: Path, file_format: str, mode: str
) -> None:
    manifest = run_export(empty_keyed_table, tmp_path / "out", file_format, mode)
    assert manifest["total_segments"] == {"single": 1, "fixed": 3, "auto": 1}[mode]
    assert_reads_back_empty(tmp_path / "out", file_format, manifest, KEY_SCHEMA)


@pytest.mark.parametrize("mode", ["single", "fixed"])
@pytest.mark.parametrize("file_format", ["csv", "parquet"])
def test_a_filter_that_matches_nothing_exports_the_key_columns(
    aws_connection_env: str, busy_table: str, tmp_path: Path, file_format: str, mode: str
) -> None:
    manifest = run_export(busy_table, tmp_path / "out", file_format, mode, scan_kwargs=NOTHING)
    assert manifest["items"] == 0
    # The sample table is keyed by pk (string) alone.
    assert manifest["schema"] == {
        "columns": [{"name": "pk", "type": "string"}],
        "extra_column": "_extra",
        "other_attributes": "extra",
    }
    headers = [["pk", "_extra"]] * manifest["total_segments"]
    if file_format == "csv":
        assert read_csv_parts(tmp_path / "out", ".csv") == (headers, [])
    else:
        assert read_parquet_duckdb(tmp_path / "out") == (["pk", "_extra"], [])


def test_a_gzip_csv_of_an_empty_table_holds_only_the_header(
    aws_connection_env: str, empty_keyed_table: str, tmp_path: Path
) -> None:
    run_export(empty_keyed_table, tmp_path / "out", "csv", "single", compression="gzip")
    (part,) = part_files(tmp_path / "out", ".csv.gz")
    assert gzip.decompress(part.read_bytes()) == b"pk,sk,_extra\r\n"
