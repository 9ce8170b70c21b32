"""DynamoDBExportOperator to an S3 destination, with moto's in-process DynamoDB and S3."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from airflow_dynamoscan.exceptions import MissingBucketError
from airflow_dynamoscan.operators.dynamodb_export import DynamoDBExportManifestOperator, DynamoDBExportOperator
from devtools.sample_data import load_sample_table
from tests.conftest import fails_task, make_client
from tests.unit.export.readback import json_view, read_dynamodb_json, read_jsonl

TABLE = "orders"
BUCKET = "exports-bucket"


@pytest.fixture
def moto_aws(moto_connection_env: str) -> Iterator[list[dict[str, Any]]]:
    with mock_aws():
        make_client(service="s3").create_bucket(Bucket=BUCKET)
        yield load_sample_table(make_client(), TABLE, 150, padding=20)


def s3_objects(prefix: str) -> dict[str, bytes]:
    s3 = make_client(service="s3")
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return {entry["Key"]: s3.get_object(Bucket=BUCKET, Key=entry["Key"])["Body"].read() for entry in listed}


def test_mapped_export_to_s3_with_manifest(moto_aws: list[dict[str, Any]]) -> None:
    results = [
        DynamoDBExportOperator(
            task_id="export",
            table_name=TABLE,
            destination=f"s3://{BUCKET}/daily/2026-11-27/",
            segment=segment,
            total_segments=3,
            compression="gzip",
        ).execute({})  # type: ignore[arg-type]
        for segment in range(3)
    ]
    summary = DynamoDBExportManifestOperator(task_id="manifest", results=results).execute({})  # type: ignore[arg-type]
    objects = s3_objects("daily/2026-11-27/")
    assert sorted(objects) == sorted(
        [f"daily/2026-11-27/segment-0000{n}-of-00003/part-00000.jsonl.gz" for n in range(3)]
        + ["daily/2026-11-27/manifest.json"]
    )
    assert results[1]["parts"][0]["uri"] == f"s3://{BUCKET}/daily/2026-11-27/segment-00001-of-00003/part-00000.jsonl.gz"
    lines = [line for key, data in objects.items() if key.endswith(".gz") for line in read_jsonl(gzip.decompress(data))]
    assert sorted(lines, key=lambda line: line["pk"]) == sorted(
        (json_view(item) for item in moto_aws), key=lambda line: line["pk"]
    )
    manifest = json.loads(objects["daily/2026-11-27/manifest.json"])
    assert manifest["items"] == summary["items"] == 150
    assert manifest["destination"] == f"s3://{BUCKET}/daily/2026-11-27"


def test_whole_table_dynamodb_json_to_s3(moto_aws: list[dict[str, Any]]) -> None:
    result = DynamoDBExportOperator(
        task_id="export", table_name=TABLE, destination=f"s3://{BUCKET}/native", file_format="dynamodb_json"
    ).execute({})  # type: ignore[arg-type]
    objects = s3_objects("native/")
    # Until a manifest commits it, the export's marker names it as the owner of the destination.
    assert sorted(objects) == ["native/_export.json", "native/segment-00000-of-00001/part-00000.json"]
    data = objects["native/segment-00000-of-00001/part-00000.json"]
    read = read_dynamodb_json(data)
    assert result["items"] == len(read) == 150
    assert sorted(read, key=lambda item: item["pk"]) == sorted(moto_aws, key=lambda item: item["pk"])


def test_missing_bucket_is_a_clear_error(moto_aws: list[dict[str, Any]]) -> None:
    # No retry creates the bucket: the task fails at once.
    with fails_task(MissingBucketError, match="s3://no-such-bucket"):
        DynamoDBExportOperator(task_id="export", table_name=TABLE, destination="s3://no-such-bucket/x").execute({})  # type: ignore[arg-type]
