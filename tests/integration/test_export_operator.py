"""DynamoDBExportOperator and DynamoDBExportManifestOperator against the local DynamoDB server."""

from __future__ import annotations

import csv
import gzip
import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from airflow_dynamoscan.exceptions import (
    DestinationError,
    IncompleteExportError,
    InvalidScanArgumentError,
    TableNotFoundError,
)
from airflow_dynamoscan.export.manifest import MANIFEST_NAME
from airflow_dynamoscan.operators.dynamodb_export import DynamoDBExportManifestOperator, DynamoDBExportOperator
from airflow_dynamoscan.storage.ownership import MARKER_NAME
from devtools.sample_data import create_table, put_items
from tests.conftest import fails_task, unique_table_name
from tests.unit.export.readback import json_view, loads_exact, mixed_items, read_dynamodb_json, read_jsonl

pytestmark = pytest.mark.usefixtures("aws_connection_env")


@pytest.fixture(scope="module")
def export_table(dynalite_client: Any) -> tuple[str, list[dict[str, Any]]]:
    """A table of 600 mixed items and the edge cases (exact decimals, sets, binary, unicode, empty values)."""
    name = unique_table_name("export")
    create_table(dynalite_client, name)
    items = mixed_items(600)
    put_items(dynalite_client, name, items)
    return name, items


def export(table_name: str, destination: Path | str, **kwargs: Any) -> dict[str, Any]:
    operator = DynamoDBExportOperator(task_id="export", table_name=table_name, destination=str(destination), **kwargs)
    return operator.execute({})  # type: ignore[arg-type]


def part_bytes(destination: Path, result: dict[str, Any]) -> list[bytes]:
    return [(destination / part["path"]).read_bytes() for part in result["parts"]]


def by_pk(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda item: str(item["pk"]))


@pytest.mark.parametrize("compression", ["gzip", None])
def test_jsonl_export_reads_back_exactly(
    export_table: tuple[str, list[dict[str, Any]]], tmp_path: Path, compression: str | None
) -> None:
    name, items = export_table
    result = export(
        name,
        tmp_path,
        compression=compression,
        total_segments=5,
        max_workers=3,
        max_file_bytes=5_000,
        scan_kwargs={"Limit": 50},
    )
    assert (result["table_name"], result["segment"], result["total_segments"]) == (name, 0, 1)
    assert result["items"] == len(items) == sum(part["items"] for part in result["parts"])
    assert len(result["parts"]) > 1
    assert all(part["path"].startswith("segment-00000-of-00001/part-") for part in result["parts"])
    lines: list[Any] = []
    for data in part_bytes(tmp_path, result):
        lines.extend(read_jsonl(gzip.decompress(data) if compression else data))
    assert by_pk(lines) == by_pk([json_view(item) for item in items])
    assert any(str(line.get("precise")) == "12345678901234567890.123456789" for line in lines)


def test_dynamodb_json_export_reads_back_exactly(
    export_table: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    name, items = export_table
    result = export(name, tmp_path, file_format="dynamodb_json", compression="gzip")
    assert result["parts"][0]["path"].endswith(".json.gz")
    read = [item for data in part_bytes(tmp_path, result) for item in read_dynamodb_json(gzip.decompress(data))]
    assert by_pk(read) == by_pk(items)


def test_csv_export_keeps_every_value_text(export_table: tuple[str, list[dict[str, Any]]], tmp_path: Path) -> None:
    name, items = export_table
    result = export(name, tmp_path, file_format="csv", total_segments=2)
    (data,) = part_bytes(tmp_path, result)
    reader = csv.DictReader(io.StringIO(data.decode("utf-8"), newline=""))
    rows = {row["pk"]: row for row in reader}
    # The sample (the first page of four segments) holds this small table whole: every attribute has a column.
    assert reader.fieldnames == [*sorted({attribute for item in items for attribute in item}), "_extra"]
    types = {column["name"]: column["type"] for column in result["schema"]["columns"]}
    assert len(rows) == len(items)
    assert {row["_extra"] for row in rows.values()} == {""}
    for item in items:
        row = rows[str(item["pk"])]
        for attribute, value in item.items():
            cell = row[attribute]
            if (types[attribute] == "json" and value is not None) or isinstance(value, (dict, list, set)):
                assert loads_exact(cell) == json_view(value), attribute
            elif isinstance(value, bool):
                assert cell == ("true" if value else "false")
            elif value is None:
                assert cell == ""
            elif isinstance(value, bytes):
                assert cell == json_view(value)
            elif isinstance(value, (Decimal, int)):
                # DynamoDB normalises numbers (0.00 is stored as 0); the value must be exactly the same number.
                assert Decimal(cell) == value, attribute
            else:
                assert cell == value, attribute


def test_parquet_export_keeps_keys_and_exact_numbers(
    export_table: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    name, items = export_table
    result = export(name, tmp_path, file_format="parquet", compression="zstd", total_segments=3)
    rows = [row for part in result["parts"] for row in pq.read_table(tmp_path / part["path"]).to_pylist()]
    assert sorted(str(row["pk"]) for row in rows) == sorted(str(item["pk"]) for item in items)
    expected_precise = {str(item["pk"]): item["precise"] for item in items if "precise" in item}
    for row in rows:
        if str(row["pk"]) in expected_precise:
            assert row["precise"] == expected_precise[str(row["pk"])]  # numerically exact, at the column's scale
    assert pq.ParquetFile(tmp_path / result["parts"][0]["path"]).metadata.row_group(0).column(0).compression == "ZSTD"


def test_mapped_segments_union_retry_and_manifest(
    export_table: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    name, items = export_table
    results = [export(name, tmp_path, segment=segment, total_segments=4) for segment in range(4)]
    retried = export(name, tmp_path, segment=2, total_segments=4)  # a retry of segment 2 overwrites its parts
    assert [part["path"] for part in retried["parts"]] == [part["path"] for part in results[2]["parts"]]
    results[2] = retried
    files = sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*") if path.is_file())
    # Until the manifest commits the export, its marker names it as the destination's owner.
    assert files == sorted([MARKER_NAME] + [part["path"] for result in results for part in result["parts"]])
    lines = [line for result in results for data in part_bytes(tmp_path, result) for line in read_jsonl(data)]
    assert len(lines) == len(items)
    assert by_pk(lines) == by_pk([json_view(item) for item in items])

    summary = DynamoDBExportManifestOperator(task_id="manifest", results=results).execute({})  # type: ignore[arg-type]
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())
    assert summary["items"] == manifest["items"] == len(items)
    assert summary["manifest"].endswith(MANIFEST_NAME)
    assert [segment["segment"] for segment in manifest["segments"]] == [0, 1, 2, 3]
    assert [segment["items"] for segment in manifest["segments"]] == [result["items"] for result in results]
    assert manifest["table_name"] == name and manifest["file_format"] == "jsonl"
    committed = sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*"))
    parts = [part["path"] for result in results for part in result["parts"]]
    assert committed == sorted([MANIFEST_NAME] + [f"segment-0000{n}-of-00004" for n in range(4)] + parts)

    with fails_task(DestinationError, match=r"already holds a complete export .* overwrite=True"):
        export(name, tmp_path, segment=0, total_segments=4)
    assert export(name, tmp_path, segment=0, total_segments=4, overwrite=True)["items"] == results[0]["items"]


def test_manifest_refuses_a_missing_segment(export_table: tuple[str, list[dict[str, Any]]], tmp_path: Path) -> None:
    name, _ = export_table
    results = [export(name, tmp_path, segment=segment, total_segments=4) for segment in (0, 1, 3)]
    with fails_task(IncompleteExportError, match=r"missing segments 2 \(1 of 4\)"):
        DynamoDBExportManifestOperator(task_id="manifest", results=results).execute({})  # type: ignore[arg-type]
    assert not (tmp_path / MANIFEST_NAME).exists()


def test_empty_table_gives_an_empty_valid_export(dynalite_client: Any, tmp_path: Path) -> None:
    name = unique_table_name("empty-export")
    create_table(dynalite_client, name)
    results = [export(name, tmp_path, segment=segment, total_segments=2) for segment in range(2)]
    assert [result["items"] for result in results] == [0, 0]
    assert [len(result["parts"]) for result in results] == [1, 1]
    assert all(data == b"" for result in results for data in part_bytes(tmp_path, result))
    DynamoDBExportManifestOperator(task_id="manifest", results=results).execute({})  # type: ignore[arg-type]
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())
    assert (manifest["items"], manifest["total_segments"], manifest["part_count"]) == (0, 2, 2)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"file_format": "xml"}, InvalidScanArgumentError, "file_format='xml'.*jsonl.*dynamodb_json.*csv.*parquet"),
        ({"compression": "bz2"}, InvalidScanArgumentError, "compression='bz2'"),
        ({"segment": 1}, InvalidScanArgumentError, "segment=1 needs total_segments, which is None"),
        ({"segment": 4, "total_segments": 4}, InvalidScanArgumentError, "segment=4 is not allowed"),
        ({"scan_kwargs": {"Segment": 1}}, InvalidScanArgumentError, "Segment are set by the scanner"),
        ({"max_workers": 0}, InvalidScanArgumentError, "max_workers=0"),
    ],
)
def test_bad_arguments_fail_before_anything_is_written(
    export_table: tuple[str, list[dict[str, Any]]], tmp_path: Path, kwargs: dict[str, Any], error: type, match: str
) -> None:
    name, _ = export_table
    with fails_task(error, match=match):
        export(name, tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*"))


def test_missing_table_writes_nothing(tmp_path: Path) -> None:
    with fails_task(TableNotFoundError, match="'no-such-table' was not found"):
        export("no-such-table", tmp_path / "out")
    assert not any(path.is_file() for path in tmp_path.rglob("*"))


def test_invalid_filter_expression_surfaces_dynamodb_message(
    export_table: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    name, _ = export_table
    with pytest.raises(Exception, match="expression attribute value used in expression is not defined"):
        export(name, tmp_path, scan_kwargs={"FilterExpression": "pk = :missing"})
    assert not any(path.is_file() for path in tmp_path.rglob("*"))


def test_filter_and_projection_pass_through(export_table: tuple[str, list[dict[str, Any]]], tmp_path: Path) -> None:
    name, items = export_table
    scan_kwargs = {
        "FilterExpression": "#s = :s",
        "ProjectionExpression": "pk, #s",
        "ExpressionAttributeNames": {"#s": "status"},
        "ExpressionAttributeValues": {":s": {"S": "paid"}},
    }
    result = export(name, tmp_path, scan_kwargs=scan_kwargs, total_segments=3)
    lines = [line for data in part_bytes(tmp_path, result) for line in read_jsonl(data)]
    expected = sorted(str(item["pk"]) for item in items if item.get("status") == "paid")
    assert expected and sorted(line["pk"] for line in lines) == expected
    assert all(set(line) == {"pk", "status"} for line in lines)
