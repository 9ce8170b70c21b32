"""
One schema per converted native export: planned once from the export's data files, given to every mapped convert
task, recorded in the manifest; the parts of a full and an incremental export read back as ONE dataset.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from moto import mock_aws

from airflow_dynamoscan.compat import AirflowFailException, Asset
from airflow_dynamoscan.export.native import SCHEMA_SAMPLE_FILES
from airflow_dynamoscan.operators.dynamodb_export import DynamoDBExportManifestOperator
from airflow_dynamoscan.operators.dynamodb_native_export import (
    DynamoDBNativeExportConvertOperator,
    plan_native_export_files,
)
from tests.conftest import make_client
from tests.native_export_fixture import change_line, full_line, write_native_export
from tests.unit.export.datasets import (
    item_view,
    read_csv_parts,
    read_parquet_dataset,
    read_parquet_duckdb,
    rebuild,
    rebuild_csv,
)

BUCKET = "native-exports"

#: Three data files whose items have different attribute sets (and the same attribute with other scales).
FILES = [
    [{"pk": "a#1", "count": Decimal(3), "flag": True}, {"pk": "a#2", "count": Decimal(-4)}],
    [{"pk": "b#1", "amount": Decimal("12.5"), "tags": {"y", "x"}}, {"pk": "b#2", "amount": Decimal("0.125")}],
    [{"pk": "c#1", "raw": b"\x00\xff", "nested": {"k": [Decimal(1), None]}, "note": "ünï"}],
]


@pytest.fixture
def s3(moto_connection_env: str) -> Iterator[Any]:
    with mock_aws():
        client = make_client(service="s3")
        client.create_bucket(Bucket=BUCKET)
        yield client


def run_group(
    s3: Any, summary_key: str, destination: Path, file_format: str, outlet_events: Any = None
) -> tuple[list[dict[str, Any]], Any]:
    """The group's steps as the scheduler runs them: plan (with the schema), one convert task per file, manifest."""
    plans = plan_native_export_files(
        {"table_name": "orders", "s3_bucket": BUCKET, "manifest_summary_key": summary_key},
        s3_client=s3,
        file_format=file_format,
    )
    results = [
        DynamoDBNativeExportConvertOperator(
            task_id="convert_files", table_name="orders", destination=str(destination), file_format=file_format, **plan
        ).execute({})  # type: ignore[arg-type]
        for plan in plans
    ]
    outlets = [Asset("orders_native")] if outlet_events is not None else []
    DynamoDBExportManifestOperator(task_id="write_manifest", results=results, outlets=outlets).execute(
        {"outlet_events": outlet_events}  # type: ignore[arg-type]
    )
    return plans, json.loads((destination / "manifest.json").read_text())


def expected_items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted((item_view(item) for item in items), key=lambda item: item["pk"])


def test_full_export_converts_to_one_parquet_dataset_with_one_planned_schema(s3: Any, tmp_path: Path) -> None:
    built = write_native_export(s3, BUCKET, "full", [[full_line(item) for item in file] for file in FILES])
    events: defaultdict[Any, SimpleNamespace] = defaultdict(SimpleNamespace)
    plans, manifest = run_group(s3, built.summary_key, tmp_path / "out", "parquet", events)
    assert len(plans) == 3
    # The asset event names the committed manifest, as a scan export's does.
    (event,) = events.values()
    assert event.extra["manifest"] == str(tmp_path / "out" / "manifest.json")
    assert (event.extra["items"], event.extra["parts"], event.extra["total_segments"]) == (5, 3, 3)
    assert (event.extra["table_name"], event.extra["file_format"]) == ("orders", "parquet")
    assert manifest["schema"] == plans[0]["schema"] == plans[1]["schema"] == plans[2]["schema"]
    types = {column["name"]: column["type"] for column in manifest["schema"]["columns"]}
    assert list(types) == sorted(types)
    assert types == {
        "amount": "decimal(38,3)",
        "count": "int64",
        "flag": "bool",
        "nested": "json",
        "note": "string",
        "pk": "string",
        "raw": "binary",
        "tags": "json",
    }
    everything = [item for file in FILES for item in file]
    # pyarrow takes the first part's schema and reads every other part with it: it fails if any part differs.
    table = read_parquet_dataset(tmp_path / "out")
    assert rebuild(table.to_pylist(), manifest["schema"]) == expected_items(everything)
    names, rows = read_parquet_duckdb(tmp_path / "out")
    assert names == [*table.column_names]
    assert rebuild(rows, manifest["schema"]) == expected_items(everything)


def test_incremental_export_converts_to_one_parquet_dataset_of_change_rows(s3: Any, tmp_path: Path) -> None:
    first = [
        change_line({"pk": "a"}, 1_000, {"pk": "a", "v": Decimal("1.5")}, None),
        change_line({"pk": "b"}, 2_000, None, {"pk": "b", "v": Decimal("2.5")}),
    ]
    second = [change_line({"pk": "c"}, 3_000, {"pk": "c", "tags": {"x"}, "flag": False}, {"pk": "c"})]
    built = write_native_export(s3, BUCKET, "inc", [first, second], incremental=True)
    plans, manifest = run_group(s3, built.summary_key, tmp_path / "out", "parquet")
    assert [plan["schema"] for plan in plans] == [manifest["schema"]] * 2
    assert [column["name"] for column in manifest["schema"]["columns"]] == [
        "_op",
        "_write_time_micros",
        "flag",
        "pk",
        "tags",
        "v",
    ]
    expected = [
        {"_op": "upsert", "_write_time_micros": 1_000, "pk": "a", "v": Decimal("1.5")},
        {"_op": "delete", "_write_time_micros": 2_000, "pk": "b"},
        {"_op": "upsert", "_write_time_micros": 3_000, "pk": "c", "tags": ["x"], "flag": False},
    ]
    assert rebuild(read_parquet_dataset(tmp_path / "out").to_pylist(), manifest["schema"]) == expected_items(expected)
    assert rebuild(read_parquet_duckdb(tmp_path / "out")[1], manifest["schema"]) == expected_items(expected)


def test_csv_parts_share_one_header(s3: Any, tmp_path: Path) -> None:
    built = write_native_export(s3, BUCKET, "csv", [[full_line(item) for item in file] for file in FILES])
    _, manifest = run_group(s3, built.summary_key, tmp_path / "out", "csv")
    headers, rows = read_csv_parts(tmp_path / "out", ".csv")
    assert headers == [[*[column["name"] for column in manifest["schema"]["columns"]], "_extra"]] * 3
    assert manifest["csv_formula_escaping"] is False
    assert rebuild_csv(rows, manifest["schema"]) == expected_items([item for file in FILES for item in file])


def test_attributes_beyond_the_sample_go_to_the_extra_column(s3: Any, tmp_path: Path) -> None:
    files = [[{"pk": f"f#{number}", "n": Decimal(number)}] for number in range(SCHEMA_SAMPLE_FILES)]
    files.append([{"pk": "late", "n": Decimal("0.5"), "late": "only here"}])
    built = write_native_export(s3, BUCKET, "late", [[full_line(item) for item in file] for file in files])
    _, manifest = run_group(s3, built.summary_key, tmp_path / "out", "parquet")
    assert manifest["schema"]["columns"] == [{"name": "n", "type": "int64"}, {"name": "pk", "type": "string"}]
    table = read_parquet_dataset(tmp_path / "out")
    assert table.num_rows == SCHEMA_SAMPLE_FILES + 1
    assert rebuild(table.to_pylist(), manifest["schema"]) == expected_items([item for file in files for item in file])


def test_the_manifest_refuses_a_part_with_another_schema(s3: Any, tmp_path: Path) -> None:
    built = write_native_export(s3, BUCKET, "two", [[full_line(item) for item in file] for file in FILES[:2]])
    plans = plan_native_export_files(
        {"table_name": "orders", "s3_bucket": BUCKET, "manifest_summary_key": built.summary_key},
        s3_client=s3,
        file_format="parquet",
    )
    plans[1]["schema"] = None  # this task plans its own schema from its own file
    results = [
        DynamoDBNativeExportConvertOperator(
            task_id="convert_files", table_name="orders", destination=str(tmp_path), file_format="parquet", **plan
        ).execute({})  # type: ignore[arg-type]
        for plan in plans
    ]
    assert results[0]["schema"] != results[1]["schema"]
    with pytest.raises(AirflowFailException, match="export result #1 has schema="):
        DynamoDBExportManifestOperator(task_id="write_manifest", results=results).execute({})  # type: ignore[arg-type]
    assert not (tmp_path / "manifest.json").exists()
