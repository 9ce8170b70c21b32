from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from airflow_dynamoscan.exceptions import DynamoScanError, IncompleteExportError, InvalidScanArgumentError
from airflow_dynamoscan.export.exporter import export_pages, segment_prefix
from airflow_dynamoscan.export.manifest import MANIFEST_NAME, build_manifest, read_manifest, write_manifest
from airflow_dynamoscan.storage.destinations import open_destination
from tests.unit.export.readback import mixed_items, pages_of

DESTINATION = "s3://bucket/orders"


def result(segment: int | None, total_segments: int | None = 4, **overrides: Any) -> dict[str, Any]:
    number = segment or 0
    prefix = f"segment-{number:05d}-of-{total_segments or 1:05d}"
    parts = [
        {
            "uri": f"{DESTINATION}/{prefix}/part-00000.jsonl",
            "path": f"{prefix}/part-00000.jsonl",
            "items": 10,
            "bytes": 100,
        },
        {
            "uri": f"{DESTINATION}/{prefix}/part-00001.jsonl",
            "path": f"{prefix}/part-00001.jsonl",
            "items": number,
            "bytes": 7,
        },
    ]
    return {
        "table_name": "orders",
        "segment": segment,
        "total_segments": total_segments,
        "items": 10 + number,
        "bytes": 107,
        "parts": parts,
        "destination": DESTINATION,
        "file_format": "jsonl",
        "compression": None,
        "started_at": f"2026-01-01T00:0{number}:00+00:00",
        "finished_at": f"2026-01-01T01:0{number}:00+00:00",
        **overrides,
    }


def build(results: list[dict[str, Any]], total_segments: int | None = 4, **overrides: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "table_name": "orders",
        "destination_uri": DESTINATION,
        "file_format": "jsonl",
        "compression": None,
        "total_segments": total_segments,
        "started_at": None,
        "finished_at": None,
        **overrides,
    }
    return build_manifest(results, **arguments)


def test_manifest_lists_segments_in_order_with_totals_and_time_window() -> None:
    results = [result(2), result(0), result(3), result(1)]
    manifest = build(results)
    created_at = datetime.fromisoformat(manifest.pop("created_at"))
    assert abs((datetime.now(timezone.utc) - created_at).total_seconds()) < 60
    assert manifest == {
        "format_version": 1,
        "table_name": "orders",
        "destination": DESTINATION,
        "file_format": "jsonl",
        "compression": None,
        "total_segments": 4,
        "items": 46,
        "bytes": 428,
        "part_count": 8,
        "scan_started_at": "2026-01-01T00:00:00+00:00",
        "scan_finished_at": "2026-01-01T01:03:00+00:00",
        "segments": [
            {
                "segment": number,
                "items": 10 + number,
                "bytes": 107,
                "started_at": f"2026-01-01T00:0{number}:00+00:00",
                "finished_at": f"2026-01-01T01:0{number}:00+00:00",
                "parts": result(number)["parts"],
            }
            for number in range(4)
        ],
    }


def test_time_window_includes_the_given_times_and_normalises_zones() -> None:
    results = [result(0, 2, started_at="2026-01-01T02:00:00+02:00"), result(1, 2, finished_at=None)]
    manifest = build(results, 2, started_at=None, finished_at="2026-01-01T05:00:00Z")
    assert manifest["scan_started_at"] == "2026-01-01T00:00:00+00:00"
    assert manifest["scan_finished_at"] == "2026-01-01T05:00:00+00:00"
    untimed = build([result(0, 1, started_at=None, finished_at=None)], 1)
    assert (untimed["scan_started_at"], untimed["scan_finished_at"]) == (None, None)
    with pytest.raises(InvalidScanArgumentError, match=r"started_at='yesterday' is not an ISO 8601 date and time\.$"):
        build([result(0, 1, started_at="yesterday")], 1)


def test_whole_table_export_is_segment_zero_of_one() -> None:
    manifest = build([result(None, None)], None)
    assert manifest["total_segments"] == 1
    assert [segment["segment"] for segment in manifest["segments"]] == [0]


def test_missing_and_duplicated_segments_are_named() -> None:
    with pytest.raises(IncompleteExportError) as error:
        build([result(0, 8), result(2, 8), result(2, 8), result(6, 8), result(6, 8)], 8)
    assert str(error.value) == (
        "Table 'orders': the export to s3://bucket/orders is incomplete: missing segments 1, 3-5, 7 (5 of 8); "
        "segments reported more than once: 2, 6."
    )
    assert isinstance(error.value, DynamoScanError)


def test_missing_segments_of_a_large_scan_are_summarised() -> None:
    results = [result(number, 1000) for number in range(0, 1000, 2)]
    with pytest.raises(IncompleteExportError) as error:
        build(results, 1000)
    message = str(error.value)
    assert message.startswith(
        "Table 'orders': the export to s3://bucket/orders is incomplete: missing segments 1, 3, 5, 7, 9, 11,"
    )
    assert message.endswith(", 39, ... (480 more ranges) (500 of 1000).")


def test_out_of_range_segment() -> None:
    with pytest.raises(IncompleteExportError, match="segments outside 0-1: 5"):
        build([result(0, 2), result(1, 2), result(5, 2)], 2)


def test_no_results_is_every_segment_missing() -> None:
    with pytest.raises(IncompleteExportError, match="missing segments 0-3 \\(4 of 4\\)"):
        build([], 4)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"table_name": "invoices"}, "export result #1 is for table 'invoices', not this one."),
        ({"total_segments": 8}, "export result #1 is from a scan of total_segments=8, not 4."),
        ({"file_format": "csv"}, "export result #1 has file_format='csv', but the export has file_format='jsonl'."),
        ({"destination": "s3://other/x"}, "export result #1 has destination='s3://other/x', but the export has"),
        ({"compression": "gzip"}, "export result #1 has compression='gzip', but the export has compression=None."),
        ({"items": 99}, "segment 1 reports 99 items but its parts hold 11."),
    ],
)
def test_results_that_disagree_with_the_export(overrides: dict[str, Any], message: str) -> None:
    results = [result(0), result(1, **overrides), result(2), result(3)]
    with pytest.raises(IncompleteExportError) as error:
        build(results)
    assert str(error.value).startswith(f"Table 'orders': {message}")


def test_malformed_result() -> None:
    broken = result(1)
    del broken["parts"]
    with pytest.raises(IncompleteExportError, match="Table 'orders': export result #0 lacks parts"):
        build([broken], 2)
    with pytest.raises(IncompleteExportError, match="Table 'orders': export result #0 is not a dict: 'oops'"):
        build(["oops"], 2)  # type: ignore[list-item]


def test_write_and_read_manifest_locally(tmp_path: Path) -> None:
    destination = open_destination(str(tmp_path / "export"))
    assert read_manifest(destination) is None
    manifest = build([result(0, 1, table_name="commandes ✓")], 1, table_name="commandes ✓")
    uri = write_manifest(destination, manifest)
    assert uri == f"{tmp_path}/export/manifest.json"
    assert read_manifest(destination) == manifest
    text = (tmp_path / "export" / MANIFEST_NAME).read_text(encoding="utf-8")
    assert json.loads(text) == manifest
    assert '"table_name": "commandes ✓"' in text
    assert sorted(path.name for path in (tmp_path / "export").iterdir()) == [MANIFEST_NAME]


def test_read_manifest_that_is_not_an_object(tmp_path: Path) -> None:
    destination = open_destination(str(tmp_path))
    destination.write_bytes(MANIFEST_NAME, b"[1, 2]")
    with pytest.raises(DynamoScanError, match=r"/manifest\.json is not a JSON object\.$"):
        read_manifest(destination)
    destination.write_bytes(MANIFEST_NAME, b"{not json")
    with pytest.raises(DynamoScanError, match=r"/manifest\.json is not valid JSON: "):
        read_manifest(destination)


def test_parallel_export_to_s3_then_manifest() -> None:
    items = mixed_items(90)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="bucket")
        destination = open_destination(DESTINATION, s3_client=client)
        results = []
        for segment in range(3):
            written = export_pages(
                pages_of(items[segment::3], 10),
                destination,
                file_format="jsonl",
                compression="gzip",
                prefix=segment_prefix(segment, 3),
            )
            results.append({"table_name": "orders", "segment": segment, "total_segments": 3, **written})
        assert read_manifest(destination) is None
        manifest = build(results, 3, compression="gzip")
        assert write_manifest(destination, manifest) == "s3://bucket/orders/manifest.json"
        assert read_manifest(destination) == manifest
        assert manifest["items"] == len(items)
        keys = sorted(entry["Key"] for entry in client.list_objects_v2(Bucket="bucket")["Contents"])
        assert keys == [
            "orders/manifest.json",
            "orders/segment-00000-of-00003/part-00000.jsonl.gz",
            "orders/segment-00001-of-00003/part-00000.jsonl.gz",
            "orders/segment-00002-of-00003/part-00000.jsonl.gz",
        ]
        assert [part["uri"] for segment in manifest["segments"] for part in segment["parts"]] == [
            f"s3://bucket/{key}" for key in keys[1:]
        ]
