"""
Folders around an export's destination: an S3 console "folder" at the destination is no file, and a destination
inside the folder of a complete export is refused (that export would then hold files its manifest does not list).
moto's in-process DynamoDB and S3; each export runs its mapped segments and its manifest as Airflow would.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from airflow_dynamoscan.exceptions import DestinationError
from airflow_dynamoscan.operators.dynamodb_export import DynamoDBExportManifestOperator, DynamoDBExportOperator
from airflow_dynamoscan.storage.destinations import LocalDestination, S3Destination
from devtools.sample_data import load_sample_table
from tests.conftest import fails_task, make_client
from tests.unit.export.readback import json_view, read_jsonl

TABLE = "orders"
BUCKET = "exports-bucket"
ITEMS = 40


@pytest.fixture
def table(moto_connection_env: str) -> Iterator[list[dict[str, Any]]]:
    with mock_aws():
        make_client(service="s3").create_bucket(Bucket=BUCKET)
        yield load_sample_table(make_client(), TABLE, ITEMS, padding=10)


def export(destination: str, total_segments: int = 2) -> dict[str, Any]:
    results = [
        DynamoDBExportOperator(
            task_id="export",
            table_name=TABLE,
            destination=destination,
            segment=segment,
            total_segments=total_segments,
            compression="gzip",
        ).execute({})  # type: ignore[arg-type]
        for segment in range(total_segments)
    ]
    return dict(DynamoDBExportManifestOperator(task_id="manifest", results=results).execute({}))  # type: ignore[arg-type]


def s3_objects(prefix: str = "") -> dict[str, bytes]:
    s3 = make_client(service="s3")
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return {entry["Key"]: s3.get_object(Bucket=BUCKET, Key=entry["Key"])["Body"].read() for entry in listed}


def test_folder_made_with_the_s3_console_is_a_destination_like_any_prefix(table: list[dict[str, Any]]) -> None:
    s3 = make_client(service="s3")
    s3.put_object(Bucket=BUCKET, Key="exports/daily/", Body=b"")  # "Create folder" in the S3 console
    summary = export(f"s3://{BUCKET}/exports/daily")
    objects = s3_objects("exports/")
    parts = [f"exports/daily/segment-0000{n}-of-00002/part-00000.jsonl.gz" for n in range(2)]
    # The folder stays (it is the user's), beside exactly the export's parts and manifest.
    assert sorted(objects) == sorted(["exports/daily/", "exports/daily/manifest.json", *parts])
    lines = [line for key in parts for line in read_jsonl(gzip.decompress(objects[key]))]
    assert sorted(lines, key=lambda line: line["pk"]) == sorted(
        (json_view(item) for item in table), key=lambda line: line["pk"]
    )
    assert summary["items"] == ITEMS


def test_s3_console_folders_inside_the_destination_are_not_files(table: list[dict[str, Any]]) -> None:
    s3 = make_client(service="s3")
    for key in ("exports/", "exports/daily/", "exports/daily/empty/"):
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"")
    destination = S3Destination(BUCKET, "exports/daily", s3)
    assert destination.list() == []
    s3.put_object(Bucket=BUCKET, Key="exports/daily/notes/", Body=b"not empty")  # a file whose name ends in '/'
    assert destination.list() == ["notes/"]


@pytest.mark.parametrize("where", ["local", "s3"])
def test_destination_inside_a_complete_export_is_refused_naming_it(
    table: list[dict[str, Any]], tmp_path: Path, where: str
) -> None:
    parent = str(tmp_path / "exports") if where == "local" else f"s3://{BUCKET}/exports"
    export(parent)
    before = s3_objects() if where == "s3" else sorted(str(path) for path in tmp_path.rglob("*"))
    child = f"{parent}/2026-12-07"
    with fails_task(DestinationError) as error:
        export(child)
    assert str(error.value) == (
        f"Table {TABLE!r}: destination {child} is inside the complete export of table {TABLE!r} as jsonl (gzip), "
        f"2 segments at {parent} (manifest.json is there): its folder would hold files its manifest does not list. "
        f"Choose a destination outside {parent}, e.g. beside it."
    )
    after = s3_objects() if where == "s3" else sorted(str(path) for path in tmp_path.rglob("*"))
    assert after == before
    # Deeper is refused the same way, and overwrite=True does not change that (it replaces the destination only).
    with fails_task(DestinationError, match=f"is inside the complete export of table 'orders' .* at {parent} "):
        DynamoDBExportOperator(task_id="export", table_name=TABLE, destination=f"{child}/a/b", overwrite=True).execute(
            {}
        )  # type: ignore[arg-type]


def test_a_manifest_json_of_something_else_above_is_no_export(table: list[dict[str, Any]], tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps({"name": "a web app's manifest"}))
    summary = export(str(tmp_path / "exports"))
    assert summary["items"] == ITEMS


@pytest.mark.parametrize("where", ["local", "s3"])
def test_create_bytes_creates_once(table: list[dict[str, Any]], tmp_path: Path, where: str) -> None:
    destination = (
        LocalDestination(str(tmp_path)) if where == "local" else S3Destination(BUCKET, "x", make_client(service="s3"))
    )
    assert destination.create_bytes("_export.json", b"first") is True
    assert destination.create_bytes("_export.json", b"second") is False
    assert destination.read_bytes("_export.json") == b"first"
    assert destination.list() == ["_export.json"]  # no hidden file left behind
