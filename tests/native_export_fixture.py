"""
Build DynamoDB native exports in (moto) S3 exactly as AWS documents the layout ("DynamoDB table export output
format"), for the reader and the converter: moto's own ExportTableToPointInTime writes one data file and no
manifests.

Under ``{prefix}/AWSDynamoDB/{ExportId}/``: ``manifest-summary.json`` (one JSON object), ``manifest-summary.md5``,
``manifest-files.json`` (JSON Lines: ``itemCount``, ``md5Checksum``, ``etag``, ``dataFileS3Key``),
``manifest-files.md5`` and ``data/{random}.json.gz`` (gzip JSON Lines: ``{"Item": ...}`` for a full export,
``{"Metadata": {"WriteTimestampMicros": {"N": ...}}, "Keys": ..., "NewImage": ..., "OldImage": ...}`` for an
incremental one). AttributeValues are in DynamoDB JSON's wire shape: ``B`` as base64, numbers as strings.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

from boto3.dynamodb.types import TypeSerializer

from airflow_dynamoscan.scan.decode import client_item_to_wire_item

ACCOUNT = "123456789012"
REGION = "us-east-1"

#: The fields AWS documents for manifest-summary.json of a full export, in its order.
FULL_SUMMARY_FIELDS = (
    "version",
    "exportArn",
    "startTime",
    "endTime",
    "tableArn",
    "tableId",
    "exportTime",
    "s3Bucket",
    "s3Prefix",
    "s3SseAlgorithm",
    "s3SseKmsKeyId",
    "manifestFilesS3Key",
    "billedSizeBytes",
    "itemCount",
    "outputFormat",
)
#: What an incremental export's summary adds.
INCREMENTAL_SUMMARY_FIELDS = ("exportFromTime", "exportToTime", "outputView", "exportType")
#: The fields of each manifest-files.json line.
FILES_FIELDS = ("itemCount", "md5Checksum", "etag", "dataFileS3Key")


def wire(item: dict[str, Any]) -> dict[str, Any]:
    """A plain Python item as DynamoDB JSON (wire shape)."""
    serializer = TypeSerializer()
    return client_item_to_wire_item({name: serializer.serialize(value) for name, value in item.items()})


def full_line(item: dict[str, Any]) -> dict[str, Any]:
    """One line of a full export's data file."""
    return {"Item": wire(item)}


def change_line(
    keys: dict[str, Any],
    write_time_micros: int,
    new_image: dict[str, Any] | None,
    old_image: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One line of an incremental export's data file; ``new_image=None`` is a delete."""
    line: dict[str, Any] = {
        "Metadata": {"WriteTimestampMicros": {"N": str(write_time_micros)}},
        "Keys": wire(keys),
    }
    if new_image is not None:
        line["NewImage"] = wire(new_image)
    if old_image is not None:
        line["OldImage"] = wire(old_image)
    return line


@dataclass
class BuiltExport:
    """What the builder wrote: the keys to hand the reader, and the data files' keys."""

    bucket: str
    prefix: str
    export_id: str
    export_arn: str
    summary_key: str
    files_key: str
    data_keys: list[str]
    summary: dict[str, Any]


def new_export_id() -> str:
    """An export id shaped as DynamoDB's: 14 digits (milliseconds), a dash, 8 hex digits."""
    return f"{secrets.randbelow(10**14):014d}-{secrets.token_hex(4)}"


def write_native_export(
    s3: Any,
    bucket: str,
    prefix: str,
    files: list[list[dict[str, Any]]],
    *,
    table_name: str = "orders",
    incremental: bool = False,
    output_view: str = "NEW_AND_OLD_IMAGES",
    output_format: str = "DYNAMODB_JSON",
    export_id: str | None = None,
) -> BuiltExport:
    """
    Write a native export of ``files`` (each a list of data lines, see :func:`full_line`, :func:`change_line`).

    ``md5Checksum`` is the base64 MD5 of the data object's bytes and ``etag`` its S3 ETag (the hex MD5 of a
    single-part upload), both checked here against what S3 reports.
    """
    export_id = export_id or new_export_id()
    folder = f"{prefix.strip('/')}/AWSDynamoDB/{export_id}/" if prefix.strip("/") else f"AWSDynamoDB/{export_id}/"
    table_arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table_name}"
    export_arn = f"{table_arn}/export/{export_id}"
    data_keys, manifest_lines, billed = [], [], 0
    for lines in files:
        body = gzip.compress(b"".join(json.dumps(line).encode("utf-8") + b"\n" for line in lines))
        key = f"{folder}data/{secrets.token_hex(13)}.json.gz"
        etag = s3.put_object(Bucket=bucket, Key=key, Body=body)["ETag"].strip('"')
        assert etag == hashlib.md5(body).hexdigest()
        data_keys.append(key)
        billed += len(body)
        manifest_lines.append(
            {
                "itemCount": len(lines),
                "md5Checksum": base64.b64encode(hashlib.md5(body).digest()).decode("ascii"),
                "etag": etag,
                "dataFileS3Key": key,
            }
        )
    files_key = f"{folder}manifest-files.json"
    files_body = b"".join(json.dumps(line).encode("utf-8") + b"\n" for line in manifest_lines)
    summary: dict[str, Any] = {
        "version": "2023-08-01" if incremental else "2020-06-30",
        "exportArn": export_arn,
        "startTime": "2026-11-30T00:05:00.000Z",
        "endTime": "2026-11-30T00:20:00.000Z",
        "tableArn": table_arn,
        "tableId": "0e9f4d2c-1b2a-4c3d-9e8f-7a6b5c4d3e2f",
        "exportTime": "2026-11-30T00:00:00.000Z",
        "s3Bucket": bucket,
        "s3Prefix": prefix.strip("/") or None,
        "s3SseAlgorithm": "AES256",
        "s3SseKmsKeyId": None,
        "manifestFilesS3Key": files_key,
        "billedSizeBytes": billed,
        "itemCount": sum(len(lines) for lines in files),
        "outputFormat": output_format,
    }
    if incremental:
        summary.update(
            {
                "exportFromTime": "2026-11-29T00:00:00.000Z",
                "exportToTime": "2026-11-30T00:00:00.000Z",
                "outputView": output_view,
                "exportType": "INCREMENTAL_EXPORT",
            }
        )
    summary_body = json.dumps(summary).encode("utf-8")
    summary_key = f"{folder}manifest-summary.json"
    s3.put_object(Bucket=bucket, Key=files_key, Body=files_body)
    s3.put_object(Bucket=bucket, Key=f"{folder}manifest-files.md5", Body=hashlib.md5(files_body).hexdigest().encode())
    s3.put_object(Bucket=bucket, Key=summary_key, Body=summary_body)
    s3.put_object(
        Bucket=bucket, Key=f"{folder}manifest-summary.md5", Body=hashlib.md5(summary_body).hexdigest().encode()
    )
    return BuiltExport(bucket, prefix, export_id, export_arn, summary_key, files_key, data_keys, summary)
