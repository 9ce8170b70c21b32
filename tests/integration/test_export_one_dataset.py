"""
A table whose items disagree about types, exported as a DAG author does — mapped (the plan step's schema given to
one task per segment, then the manifest) and whole-table — read back AS ONE DATASET with pyarrow and DuckDB.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from airflow_dynamoscan.operators.dynamodb_export import DynamoDBExportManifestOperator, DynamoDBExportOperator
from airflow_dynamoscan.task_groups import plan_export_segments
from devtools.sample_data import create_table, put_items
from tests.conftest import unique_table_name
from tests.unit.export.datasets import (
    item_view,
    read_csv_duckdb,
    read_csv_parts,
    read_parquet_dataset,
    read_parquet_duckdb,
    rebuild,
    rebuild_csv,
)

pytestmark = pytest.mark.usefixtures("aws_connection_env")

# Small pages: the plan's sample (the first page of each of 4 segments) sees a few items only, so most of the
# drift below is met only by the export itself.
SCAN_KWARGS = {"Limit": 5}


def drifting_item(number: int) -> dict[str, Any]:
    item: dict[str, Any] = {"pk": f"k{number:04d}", "name": f"item {number}"}
    item["n"] = str(number) if number % 10 == 3 else Decimal(number)  # int here, string there
    if number % 7:
        item["price"] = Decimal(number) / 8  # missing from some items
    if number % 50 == 17:
        item["price"] = Decimal("9.8765432109876543210987654321098765E+60")  # wider than any decimal128
    item["nested"] = {"level": {"deeper": [Decimal(number), "x", None, {"flag": True}]}}
    item["tags"] = {"a", f"t{number % 3}"}
    item["numbers"] = {Decimal(number), Decimal("0.5")}
    item["raw"] = bytes([number % 256, 0, 255])
    if number % 60 == 59:
        item[f"rare_{number}"] = "an attribute only this item has"
    return item


@pytest.fixture(scope="module")
def drifting_table(dynalite_client: Any) -> tuple[str, list[dict[str, Any]]]:
    name = unique_table_name("drift")
    create_table(dynalite_client, name)
    items = [drifting_item(number) for number in range(240)]
    put_items(dynalite_client, name, items)
    return name, items


def mapped_export(table_name: str, destination: Path, file_format: str, compression: str | None) -> dict[str, Any]:
    """What dynamodb_parallel_export runs: plan_segments, one export task per planned keyword set, the manifest."""
    plans = plan_export_segments(table_name, 3, file_format=file_format, scan_kwargs=SCAN_KWARGS)
    assert len({str(plan["schema"]) for plan in plans}) == 1  # one schema, given to every mapped task
    results = []
    for plan in plans:
        operator = DynamoDBExportOperator(
            task_id="export_segment",
            table_name=table_name,
            destination=str(destination),
            file_format=file_format,
            compression=compression,
            max_file_bytes=4_000 if compression in (None, "snappy", "zstd") else 1_500,
            scan_kwargs=SCAN_KWARGS,
            **plan,
        )
        results.append(operator.execute({}))  # type: ignore[arg-type]
    assert all(result["schema"] == plans[0]["schema"] for result in results)
    DynamoDBExportManifestOperator(task_id="write_manifest", results=results).execute({})  # type: ignore[arg-type]
    manifest: dict[str, Any] = json.loads((destination / "manifest.json").read_text())
    assert manifest["schema"] == plans[0]["schema"]
    assert manifest["part_count"] >= 3  # one part or more per segment
    return manifest


@pytest.mark.parametrize("compression", ["snappy", "zstd"])
def test_mapped_parquet_export_reads_as_one_dataset(
    drifting_table: tuple[str, list[dict[str, Any]]], tmp_path: Path, compression: str
) -> None:
    name, items = drifting_table
    manifest = mapped_export(name, tmp_path, "parquet", compression)
    expected = sorted((item_view(item) for item in items), key=lambda item: item["pk"])
    table = read_parquet_dataset(tmp_path)
    assert table.num_rows == len(items)
    assert rebuild(table.to_pylist(), manifest["schema"]) == expected
    _, rows = read_parquet_duckdb(tmp_path)
    assert rebuild(rows, manifest["schema"]) == expected
    # An attribute only one item has is a column if the sample saw it, else in that item's _extra: never lost.
    extras = [row["_extra"] for row in table.to_pylist() if row["_extra"]]
    columns = [column["name"] for column in manifest["schema"]["columns"] if column["name"].startswith("rare_")]
    assert sum("an attribute only this item has" in extra for extra in extras) + len(columns) == 4
    assert len(columns) < 4


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_mapped_csv_export_shares_one_header(
    drifting_table: tuple[str, list[dict[str, Any]]], tmp_path: Path, compression: str | None
) -> None:
    name, items = drifting_table
    manifest = mapped_export(name, tmp_path, "csv", compression)
    extension = ".csv.gz" if compression else ".csv"
    header = [*[column["name"] for column in manifest["schema"]["columns"]], "_extra"]
    headers, rows = read_csv_parts(tmp_path, extension)
    assert headers == [header] * manifest["part_count"]
    expected = sorted((item_view(item) for item in items), key=lambda item: item["pk"])
    assert rebuild_csv(rows, manifest["schema"]) == expected
    names, duck_rows = read_csv_duckdb(tmp_path, extension)
    assert names == header
    assert rebuild_csv(duck_rows, manifest["schema"]) == expected


def test_whole_table_export_plans_its_own_schema(
    drifting_table: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    name, items = drifting_table
    result = DynamoDBExportOperator(
        task_id="export",
        table_name=name,
        destination=str(tmp_path),
        file_format="parquet",
        total_segments=4,
        max_workers=2,
        max_file_bytes=4_000,
        scan_kwargs=SCAN_KWARGS,
    ).execute({})  # type: ignore[arg-type]
    assert len(result["parts"]) > 3
    assert (
        result["schema"] == plan_export_segments(name, 1, file_format="parquet", scan_kwargs=SCAN_KWARGS)[0]["schema"]
    )
    table = read_parquet_dataset(tmp_path)
    expected = sorted((item_view(item) for item in items), key=lambda item: item["pk"])
    assert rebuild(table.to_pylist(), result["schema"]) == expected


def test_a_given_schema_is_used_as_it_is(drifting_table: tuple[str, list[dict[str, Any]]], tmp_path: Path) -> None:
    name, items = drifting_table
    schema = {
        "columns": [
            {"name": "pk", "type": "string"},
            {"name": "n", "type": "int64"},
            {"name": "price", "type": "decimal(38,3)"},
        ]
    }
    result = DynamoDBExportOperator(
        task_id="export",
        table_name=name,
        destination=str(tmp_path),
        file_format="parquet",
        segment=0,
        total_segments=1,
        schema=schema,
    ).execute({})  # type: ignore[arg-type]
    assert result["schema"] == {**schema, "extra_column": "_extra", "other_attributes": "extra"}
    rows = {row["pk"]: row for row in read_parquet_dataset(tmp_path).to_pylist()}
    assert rows["k0003"]["n"] is None  # a string does not fit int64 ...
    assert '"n":"3"' in rows["k0003"]["_extra"]  # ... so it is in _extra, still a string
    assert rows["k0004"]["n"] == 4
    assert rows["k0004"]["price"] == Decimal("0.5")
    assert rebuild(list(rows.values()), result["schema"]) == sorted(
        (item_view(item) for item in items), key=lambda item: item["pk"]
    )


def test_mapped_export_of_chosen_columns(drifting_table: tuple[str, list[dict[str, Any]]], tmp_path: Path) -> None:
    """columns= with the plan step: the planned schema has those columns; other attributes are left out."""
    name, items = drifting_table
    plans = plan_export_segments(name, 2, file_format="csv", columns=["pk", "price"])
    assert plans[0]["schema"]["columns"][0] == {"name": "pk", "type": "string"}
    assert plans[0]["schema"]["other_attributes"] == "omit"
    for plan in plans:
        DynamoDBExportOperator(
            task_id="export_segment",
            table_name=name,
            destination=str(tmp_path),
            file_format="csv",
            columns=["pk", "price"],
            **plan,
        ).execute({})  # type: ignore[arg-type]
    headers, rows = read_csv_parts(tmp_path, ".csv")
    assert headers == [["pk", "price", "_extra"]] * 2
    by_pk = {row["pk"]: row for row in rows}
    assert len(by_pk) == len(items)
    for item in items:
        price = item.get("price")
        row = by_pk[item["pk"]]
        if price is None:
            assert (row["price"], row["_extra"]) == ("", "")
        elif row["price"]:
            assert (Decimal(row["price"]), row["_extra"]) == (price, "")
        else:
            assert json.loads(row["_extra"], parse_float=Decimal) == {"price": price}  # wider than the column
