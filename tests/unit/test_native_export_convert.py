"""Native exports (documented layout, in moto S3) converted to Parquet and JSONL with the scan export's manifest."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from moto import mock_aws

from airflow_dynamoscan.compat import AirflowFailException
from airflow_dynamoscan.operators.dynamodb_export import DynamoDBExportManifestOperator
from airflow_dynamoscan.operators.dynamodb_native_export import (
    DynamoDBNativeExportConvertOperator,
    plan_native_export_files,
)
from tests.conftest import make_client
from tests.native_export_fixture import BuiltExport, change_line, full_line, write_native_export
from tests.unit.export.readback import read_jsonl

BUCKET = "native-exports"
OUT = "converted"

ITEMS = [
    {"pk": f"order#{number}", "count": Decimal(number), "amount": Decimal(f"{number}.25"), "flag": number % 2 == 0}
    for number in range(7)
]
ITEMS[1].update({"raw": b"\x00\xff", "tags": {"b", "a"}, "note": "ünïcødé"})
ITEMS[5].update({"amount": Decimal("123456.125"), "nested": {"k": [Decimal(1), None]}})


def parquet_row(item: dict[str, Any]) -> dict[str, Any]:
    """What a Parquet part holds for an item: ints int64, decimals exact, sets and maps JSON text."""
    row: dict[str, Any] = {}
    for name, value in item.items():
        if (
            isinstance(value, Decimal)
            and value == value.to_integral_value()
            and name in ("count", "_write_time_micros")
        ):
            row[name] = int(value)
        elif isinstance(value, set):
            row[name] = json.dumps(sorted(value), separators=(",", ":"))
        elif isinstance(value, dict):
            row[name] = json.dumps(value, default=lambda v: None if v is None else int(v), separators=(",", ":"))
        else:
            row[name] = value
    return row


@pytest.fixture
def s3(moto_connection_env: str) -> Iterator[Any]:
    with mock_aws():
        client = make_client(service="s3")
        client.create_bucket(Bucket=BUCKET)
        client.create_bucket(Bucket=OUT)
        yield client


def convert(
    s3: Any, built: BuiltExport, destination: str, *, files_per_task: int = 1, **options: Any
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run the task group's steps as the scheduler would: plan, one convert task per batch, manifest."""
    plans = plan_native_export_files(
        {"table_name": "orders", "s3_bucket": BUCKET, "manifest_summary_key": built.summary_key},
        files_per_task=files_per_task,
        s3_client=s3,
        file_format=options.get("file_format", "jsonl"),
    )
    results = [
        DynamoDBNativeExportConvertOperator(
            task_id="convert_files", table_name="orders", destination=destination, **plan, **options
        ).execute({})  # type: ignore[arg-type]
        for plan in plans
    ]
    summary = DynamoDBExportManifestOperator(task_id="write_manifest", results=results).execute({})  # type: ignore[arg-type]
    return results, summary


def read_dataset(manifest: dict[str, Any], root: Path) -> pa.Table:
    """Every part the manifest lists, read as one pyarrow dataset (with the first part's schema, as pyarrow does)."""
    paths = [str(root / part["path"]) for segment in manifest["segments"] for part in segment["parts"]]
    return ds.dataset(paths, format="parquet").to_table()


def without_nulls(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{name: value for name, value in row.items() if value is not None} for row in rows]


def test_full_export_converts_to_one_parquet_dataset_of_exactly_the_items(s3: Any, tmp_path: Path) -> None:
    files = [[full_line(item) for item in ITEMS[:3]], [full_line(item) for item in ITEMS[3:6]], [full_line(ITEMS[6])]]
    built = write_native_export(s3, BUCKET, "exports/orders", files)
    results, summary = convert(s3, built, str(tmp_path / "out"), files_per_task=2, file_format="parquet")
    assert [(result["segment"], result["total_segments"], result["items"]) for result in results] == [
        (0, 2, 6),
        (1, 2, 1),
    ]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert (manifest["table_name"], manifest["file_format"], manifest["items"], manifest["total_segments"]) == (
        "orders",
        "parquet",
        7,
        2,
    )
    assert summary["items"] == 7
    assert [part["path"] for segment in manifest["segments"] for part in segment["parts"]] == [
        "segment-00000-of-00002/part-00000.parquet",
        "segment-00001-of-00002/part-00000.parquet",
    ]
    rows = sorted(without_nulls(read_dataset(manifest, tmp_path / "out").to_pylist()), key=lambda row: row["pk"])
    assert rows == [parquet_row(item) for item in ITEMS]


def test_incremental_export_converts_to_change_rows_with_the_operation(s3: Any, tmp_path: Path) -> None:
    first = [
        change_line({"pk": "a"}, 1_000, {"pk": "a", "v": Decimal("1.5")}, None),
        change_line({"pk": "b"}, 2_000, None, {"pk": "b", "v": Decimal("2.5")}),
    ]
    second = [change_line({"pk": "c"}, 3_000, {"pk": "c", "v": Decimal("3.5"), "tags": {"x"}}, {"pk": "c"})]
    built = write_native_export(s3, BUCKET, "inc", [first, second], incremental=True)
    _, summary = convert(s3, built, str(tmp_path / "out"), file_format="parquet")
    assert summary["items"] == 3
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    rows = sorted(without_nulls(read_dataset(manifest, tmp_path / "out").to_pylist()), key=lambda row: row["pk"])
    assert rows == [
        {"_op": "upsert", "_write_time_micros": 1_000, "pk": "a", "v": Decimal("1.5")},
        {"_op": "delete", "_write_time_micros": 2_000, "pk": "b"},
        {"_op": "upsert", "_write_time_micros": 3_000, "pk": "c", "v": Decimal("3.5"), "tags": '["x"]'},
    ]


def test_incremental_export_to_jsonl_on_s3(s3: Any) -> None:
    lines = [
        change_line({"pk": "a"}, 7, {"pk": "a", "raw": b"\x01", "n": Decimal("12345678901234567890.5")}),
        change_line({"pk": "z"}, 8, None),
    ]
    built = write_native_export(s3, BUCKET, "inc", [lines], incremental=True, output_view="NEW_IMAGE")
    results, summary = convert(s3, built, f"s3://{OUT}/orders/2026-11-30", compression="gzip")
    key = "orders/2026-11-30/segment-00000-of-00001/part-00000.jsonl.gz"
    assert results[0]["parts"][0]["uri"] == f"s3://{OUT}/{key}"
    rows = read_jsonl(gzip.decompress(s3.get_object(Bucket=OUT, Key=key)["Body"].read()))
    assert rows == [
        {"_op": "upsert", "_write_time_micros": 7, "pk": "a", "raw": "AQ==", "n": Decimal("12345678901234567890.5")},
        {"_op": "delete", "_write_time_micros": 8, "pk": "z"},
    ]
    assert summary["manifest"] == f"s3://{OUT}/orders/2026-11-30/manifest.json"


def test_empty_export_gives_one_empty_part(s3: Any, tmp_path: Path) -> None:
    built = write_native_export(s3, BUCKET, "empty", [])
    results, summary = convert(s3, built, str(tmp_path / "out"))
    assert (len(results), summary["items"], summary["parts"]) == (1, 0, 1)
    assert (tmp_path / "out" / "segment-00000-of-00001" / "part-00000.jsonl").read_bytes() == b""


def test_bad_exports_fail_clearly(s3: Any, tmp_path: Path) -> None:
    ion = write_native_export(s3, BUCKET, "ion", [[full_line(ITEMS[0])]], output_format="ION")
    with pytest.raises(AirflowFailException, match="is in the ION format"):
        convert(s3, ion, str(tmp_path / "ion"))
    with pytest.raises(AirflowFailException, match=r"manifest summary .* does not exist"):
        plan_native_export_files(
            {"s3_bucket": BUCKET, "manifest_summary_key": "nothing/AWSDynamoDB/x/manifest-summary.json"},
            s3_client=s3,
        )
    with pytest.raises(AirflowFailException, match="names no s3_bucket or manifest_summary_key"):
        plan_native_export_files({"table_name": "orders", "export_arn": "arn"}, s3_client=s3)
    built = write_native_export(s3, BUCKET, "short", [[full_line(ITEMS[0]), full_line(ITEMS[1])]])
    (plan,) = plan_native_export_files({"s3_bucket": BUCKET, "manifest_summary_key": built.summary_key}, s3_client=s3)
    plan["data_files"][0]["item_count"] = 3
    with pytest.raises(AirflowFailException, match="holds 2 records, but the manifest of files says itemCount=3"):
        DynamoDBNativeExportConvertOperator(
            task_id="convert", table_name="orders", destination=str(tmp_path / "short"), **plan
        ).execute({})  # type: ignore[arg-type]
    # Nothing was committed: the failed part is not there.
    assert not list((tmp_path / "short").rglob("*.jsonl"))


def test_plan_never_maps_more_tasks_than_allowed(s3: Any) -> None:
    built = write_native_export(s3, BUCKET, "many", [[full_line(item)] for item in ITEMS])
    export = {"s3_bucket": BUCKET, "manifest_summary_key": built.summary_key}
    plans = plan_native_export_files(export, max_tasks=3, s3_client=s3)
    assert [(plan["segment"], plan["total_segments"], len(plan["data_files"])) for plan in plans] == [
        (0, 3, 3),
        (1, 3, 3),
        (2, 3, 1),
    ]
    assert [data_file["key"] for plan in plans for data_file in plan["data_files"]] == built.data_keys
    assert len(plan_native_export_files(export, s3_client=s3)) == 7
