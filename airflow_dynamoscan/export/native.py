"""
DynamoDB's native exports (``ExportTableToPointInTime``): where they are, how to read them, how to convert them.

DynamoDB writes a native export under ``{S3Prefix}/AWSDynamoDB/{ExportId}/``:

* ``manifest-summary.json``: one JSON object (``exportArn``, ``tableArn``, ``exportTime``, ``itemCount``,
  ``outputFormat``, ``manifestFilesS3Key``, ...; incremental exports add ``exportFromTime``, ``exportToTime``,
  ``outputView`` and ``exportType``);
* ``manifest-files.json``: JSON Lines, one object per data file: ``itemCount``, ``md5Checksum``, ``etag``,
  ``dataFileS3Key`` (a key in the export's bucket);
* ``data/*.json.gz``: gzip, one JSON document per line: ``{"Item": {...}}`` for a full export, or a change record
  ``{"Metadata": {"WriteTimestampMicros": {"N": ...}}, "Keys": {...}, "NewImage": {...}, "OldImage": {...}}``
  for an incremental export (a delete has no ``NewImage``; ``OldImage`` only with ``NEW_AND_OLD_IMAGES``).

Every data file's line count is checked against its ``itemCount``. AWS does not document what ``md5Checksum``
covers; :func:`read_data_file` checks it only when asked (``verify_md5=True``), against the MD5 of the object's
bytes or of its decompressed content, either accepted. ``ION`` exports are refused with a clear error.

The module knows nothing of Airflow: it takes a boto3 S3 client.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import itertools
import json
import logging
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from airflow_dynamoscan.exceptions import DynamoScanError, InvalidScanArgumentError
from airflow_dynamoscan.export.exporter import export_pages
from airflow_dynamoscan.export.formats import encode_json, needs_attribute_values
from airflow_dynamoscan.export.schema import ExportSchema, plan_schema
from airflow_dynamoscan.scan.decode import deserialize_wire_item, wire_item_to_client_item
from airflow_dynamoscan.scan.scanner import ScanPage
from airflow_dynamoscan.storage.destinations import Destination

log = logging.getLogger(__name__)

#: The export types of ``ExportTableToPointInTime``.
EXPORT_TYPES = ("FULL_EXPORT", "INCREMENTAL_EXPORT")

#: The view types of an incremental export.
EXPORT_VIEW_TYPES = ("NEW_IMAGE", "NEW_AND_OLD_IMAGES")

#: The output formats DynamoDB writes; only ``DYNAMODB_JSON`` is read here.
OUTPUT_FORMATS = ("DYNAMODB_JSON", "ION")

#: File names inside ``AWSDynamoDB/{ExportId}/``.
SUMMARY_NAME = "manifest-summary.json"
FILES_NAME = "manifest-files.json"

#: The column (or field) that says what a change record of an incremental export did: ``upsert`` or ``delete``.
OPERATION_FIELD = "_op"

#: The column (or field) holding a change record's write time, in microseconds since the epoch.
WRITE_TIME_FIELD = "_write_time_micros"

#: Items per page handed to the encoders while converting.
CONVERT_PAGE_ITEMS = 1000

#: A converted export's one schema (CSV, Parquet) is planned from the first rows of its first data files with records.
SCHEMA_SAMPLE_FILES = 8
SCHEMA_SAMPLE_ROWS_PER_FILE = 1000


class NativeExportError(DynamoScanError):
    """A native export is missing, incomplete, in a format that cannot be read, or disagrees with its manifests."""


@dataclass(frozen=True)
class NativeExportSummary:
    """
    What ``manifest-summary.json`` says about one export.

    :ivar bucket: the bucket the export is in
    :ivar summary_key: the key of ``manifest-summary.json``
    :ivar export_arn: the export's ARN
    :ivar table_arn: the exported table's ARN
    :ivar export_type: ``FULL_EXPORT`` or ``INCREMENTAL_EXPORT``
    :ivar output_format: ``DYNAMODB_JSON`` or ``ION``
    :ivar output_view: an incremental export's view type (``NEW_IMAGE``/``NEW_AND_OLD_IMAGES``), else ``None``
    :ivar item_count: the items (or change records) of the whole export
    :ivar billed_size_bytes: the size DynamoDB bills
    :ivar manifest_files_key: the key of ``manifest-files.json``
    :ivar raw: every field of the file, as read
    """

    bucket: str
    summary_key: str
    export_arn: str | None
    table_arn: str | None
    export_type: str
    output_format: str
    output_view: str | None
    item_count: int
    billed_size_bytes: int | None
    manifest_files_key: str
    raw: dict[str, Any] = field(repr=False)

    @property
    def incremental(self) -> bool:
        """Whether this is an incremental export, whose data files hold change records."""
        return self.export_type == "INCREMENTAL_EXPORT"


@dataclass(frozen=True)
class NativeDataFile:
    """
    One line of ``manifest-files.json``.

    :ivar key: ``dataFileS3Key``, the object's key in the export's bucket
    :ivar item_count: the lines (items or change records) the file holds
    :ivar md5_checksum: ``md5Checksum``, base64, as DynamoDB wrote it
    :ivar etag: the object's S3 ETag, as DynamoDB wrote it
    """

    key: str
    item_count: int
    md5_checksum: str | None = None
    etag: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The file as a small JSON-compatible dict (for XCom)."""
        return {"key": self.key, "item_count": self.item_count, "md5_checksum": self.md5_checksum, "etag": self.etag}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NativeDataFile:
        """The inverse of :meth:`as_dict`."""
        return cls(
            key=str(data["key"]),
            item_count=int(data["item_count"]),
            md5_checksum=data.get("md5_checksum"),
            etag=data.get("etag"),
        )


@dataclass(frozen=True)
class ChangeRecord:
    """
    One change of an incremental export.

    :ivar keys: the item's key attributes (plain Python values, or AttributeValues when read with
        ``deserialize=False``)
    :ivar new_image: the item after the change; ``None`` for a delete
    :ivar old_image: the item before the change, only with ``NEW_AND_OLD_IMAGES`` (``None`` for a new item)
    :ivar write_time_micros: when the change was written, microseconds since the epoch
    """

    keys: dict[str, Any]
    new_image: dict[str, Any] | None
    old_image: dict[str, Any] | None
    write_time_micros: int

    @property
    def operation(self) -> str:
        """``"upsert"`` (the item exists after the change) or ``"delete"``."""
        return "delete" if self.new_image is None else "upsert"


def export_id_from_arn(export_arn: str) -> str:
    """
    Return the export id of an export ARN: ``arn:aws:dynamodb:...:table/T/export/01695097218000-d6299cbd`` ->
    ``01695097218000-d6299cbd``.

    :raises InvalidScanArgumentError: the ARN does not name an export.
    """
    _, marker, export_id = str(export_arn).rpartition("/export/")
    if not marker or not export_id or "/" in export_id:
        raise InvalidScanArgumentError(
            f"export_arn={export_arn!r} is not the ARN of a DynamoDB export "
            "(arn:aws:dynamodb:REGION:ACCOUNT:table/TABLE/export/EXPORT_ID)."
        )
    return export_id


def export_folder(s3_prefix: str | None, export_id: str) -> str:
    """Return the key prefix DynamoDB writes an export under: ``{s3_prefix}/AWSDynamoDB/{export_id}/``."""
    prefix = (s3_prefix or "").strip("/")
    return f"{prefix}/AWSDynamoDB/{export_id}/" if prefix else f"AWSDynamoDB/{export_id}/"


def summary_key(s3_prefix: str | None, export_arn: str) -> str:
    """Return the key of an export's ``manifest-summary.json``."""
    return export_folder(s3_prefix, export_id_from_arn(export_arn)) + SUMMARY_NAME


def _read_object(s3_client: Any, bucket: str, key: str, what: str) -> bytes:
    try:
        body: bytes = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as error:
        code = getattr(error, "response", {}).get("Error", {}).get("Code")
        if code in ("NoSuchKey", "404", "NotFound"):
            raise NativeExportError(
                f"The {what} s3://{bucket}/{key} does not exist: the export is not complete, or the key is wrong."
            ) from error
        if code == "NoSuchBucket":
            raise NativeExportError(f"The bucket {bucket!r} of the native export does not exist.") from error
        raise
    return body


def _json_object(text: bytes | str, where: str) -> dict[str, Any]:
    """``text`` as a JSON object; ``where`` names the file (and line) in the error."""
    try:
        value = json.loads(text)
    except ValueError as error:
        raise NativeExportError(f"{where} is not valid JSON: {error}") from error
    if isinstance(value, dict):
        return value
    raise NativeExportError(f"{where} is not a JSON object.")


def _required(data: Mapping[str, Any], name: str, where: str) -> Any:
    if data.get(name) is None:
        raise NativeExportError(f"{where} lacks the field {name!r}.")
    return data[name]


def read_summary(s3_client: Any, bucket: str, key: str) -> NativeExportSummary:
    """
    Read ``manifest-summary.json`` at ``s3://{bucket}/{key}``.

    :raises NativeExportError: the file is missing, not a JSON object, or lacks ``itemCount`` or
        ``manifestFilesS3Key``; or the export is in the ``ION`` format (convert an ``DYNAMODB_JSON`` export).
    """
    where = f"s3://{bucket}/{key}"
    raw = _json_object(_read_object(s3_client, bucket, key, "manifest summary"), where)
    output_format = str(raw.get("outputFormat") or "DYNAMODB_JSON")
    if output_format != "DYNAMODB_JSON":
        raise NativeExportError(
            f"The native export {raw.get('exportArn')!r} ({where}) is in the {output_format} format; only "
            "DYNAMODB_JSON exports can be read. Export again with ExportFormat='DYNAMODB_JSON'."
        )
    export_type = raw.get("exportType")
    if export_type is None:
        export_type = "INCREMENTAL_EXPORT" if raw.get("exportFromTime") is not None else "FULL_EXPORT"
    return NativeExportSummary(
        bucket=bucket,
        summary_key=key,
        export_arn=raw.get("exportArn"),
        table_arn=raw.get("tableArn"),
        export_type=str(export_type),
        output_format=output_format,
        output_view=raw.get("outputView"),
        item_count=int(_required(raw, "itemCount", where)),
        billed_size_bytes=None if raw.get("billedSizeBytes") is None else int(raw["billedSizeBytes"]),
        manifest_files_key=str(_required(raw, "manifestFilesS3Key", where)),
        raw=raw,
    )


def read_data_files(s3_client: Any, summary: NativeExportSummary) -> list[NativeDataFile]:
    """
    Read ``manifest-files.json`` of an export and check it against the summary.

    :return: the data files, in the manifest's order.
    :raises NativeExportError: the file is missing or malformed, or its item counts do not add up to the
        summary's ``itemCount``.
    """
    key = summary.manifest_files_key
    where = f"s3://{summary.bucket}/{key}"
    files = []
    for number, line in enumerate(_read_object(s3_client, summary.bucket, key, "manifest of files").splitlines()):
        if not line.strip():
            continue
        line_where = f"{where} line {number + 1}"
        entry = _json_object(line, line_where)
        files.append(
            NativeDataFile(
                key=str(_required(entry, "dataFileS3Key", line_where)),
                item_count=int(_required(entry, "itemCount", line_where)),
                md5_checksum=entry.get("md5Checksum"),
                etag=entry.get("etag"),
            )
        )
    listed = sum(data_file.item_count for data_file in files)
    if listed != summary.item_count:
        raise NativeExportError(
            f"The native export {summary.export_arn!r}: {where} lists {listed} items in {len(files)} files, but "
            f"s3://{summary.bucket}/{summary.summary_key} says itemCount={summary.item_count}."
        )
    return files


def read_data_file(
    s3_client: Any, bucket: str, data_file: NativeDataFile, *, verify_md5: bool = False
) -> Iterator[dict[str, Any]]:
    """
    Yield the JSON documents of one gzip data file, line by line, then check how many there were.

    The object is streamed: memory holds one line at a time, whatever the file's size.

    :param verify_md5: also check ``md5Checksum`` (see the module docstring)
    :raises NativeExportError: the file is missing, not gzip, a line is not a JSON object, its line count is not
        the manifest's ``itemCount``, or (``verify_md5``) neither MD5 matches.
    """
    where = f"s3://{bucket}/{data_file.key}"
    try:
        body = s3_client.get_object(Bucket=bucket, Key=data_file.key)["Body"]
    except Exception as error:
        code = getattr(error, "response", {}).get("Error", {}).get("Code")
        if code in ("NoSuchKey", "404", "NotFound"):
            raise NativeExportError(f"The data file {where} listed in the manifest does not exist.") from error
        raise
    raw_md5 = hashlib.md5(usedforsecurity=False)
    content_md5 = hashlib.md5(usedforsecurity=False)

    class _Hashing(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            chunk = body.read(len(buffer))
            raw_md5.update(chunk)
            buffer[: len(chunk)] = chunk
            return len(chunk)

    count = 0
    try:
        with gzip.GzipFile(fileobj=io.BufferedReader(_Hashing(), 1024 * 1024), mode="rb") as lines:
            for line in lines:
                content_md5.update(line)
                if not line.strip():
                    continue
                count += 1
                yield _json_object(line, f"{where} line {count}")
    except (OSError, EOFError) as error:
        raise NativeExportError(f"{where} is not a complete gzip file: {error}") from error
    if count != data_file.item_count:
        raise NativeExportError(
            f"{where} holds {count} records, but the manifest of files says itemCount={data_file.item_count}."
        )
    if verify_md5 and data_file.md5_checksum is not None:
        expected = data_file.md5_checksum
        found = {base64.b64encode(digest.digest()).decode("ascii") for digest in (raw_md5, content_md5)}
        if expected not in found:
            raise NativeExportError(f"{where}: its MD5 does not match md5Checksum={expected!r} of the manifest.")


def _image(document: Mapping[str, Any], name: str, where: str, deserialize: bool) -> dict[str, Any] | None:
    value = document.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise NativeExportError(f"{where}: {name} is not a map of attributes.")
    return deserialize_wire_item(value) if deserialize else wire_item_to_client_item(value)


def read_items(
    s3_client: Any, bucket: str, data_file: NativeDataFile, *, deserialize: bool = True, verify_md5: bool = False
) -> Iterator[dict[str, Any]]:
    """
    Yield the items of one data file of a full export.

    :param deserialize: plain Python values (``Decimal``, ``bytes``, sets...); ``False`` yields AttributeValues in
        botocore's client shape (``B`` as ``bytes``), as a scan with ``deserialize=False`` does
    :raises NativeExportError: as :func:`read_data_file`, or a line that is not ``{"Item": {...}}`` (a change
        record: read it with :func:`read_changes`).
    """
    where = f"s3://{bucket}/{data_file.key}"
    for document in read_data_file(s3_client, bucket, data_file, verify_md5=verify_md5):
        item = _image(document, "Item", where, deserialize)
        if item is None:
            raise NativeExportError(
                f"{where} holds a line without 'Item' (fields {sorted(document)}): is it an incremental export?"
            )
        yield item


def read_changes(
    s3_client: Any, bucket: str, data_file: NativeDataFile, *, deserialize: bool = True, verify_md5: bool = False
) -> Iterator[ChangeRecord]:
    """
    Yield the change records of one data file of an incremental export, in the file's order.

    :param deserialize: as for :func:`read_items`
    :raises NativeExportError: as :func:`read_data_file`, or a line without ``Keys`` or
        ``Metadata.WriteTimestampMicros``.
    """
    where = f"s3://{bucket}/{data_file.key}"
    for document in read_data_file(s3_client, bucket, data_file, verify_md5=verify_md5):
        keys = _image(document, "Keys", where, deserialize)
        write_time = (document.get("Metadata") or {}).get("WriteTimestampMicros")
        if keys is None or not isinstance(write_time, dict) or "N" not in write_time:
            raise NativeExportError(
                f"{where} holds a line that is not a change record with Keys and Metadata.WriteTimestampMicros "
                f"(fields {sorted(document)}): is it a full export?"
            )
        yield ChangeRecord(
            keys=keys,
            new_image=_image(document, "NewImage", where, deserialize),
            old_image=_image(document, "OldImage", where, deserialize),
            write_time_micros=int(Decimal(write_time["N"])),
        )


@dataclass
class FoldedChanges:
    """
    The net effect of change records: the items to write and the keys to delete, each key once.

    :ivar upserts: the latest image of every item that exists after the changes
    :ivar deletes: the keys of every item deleted by its latest change
    """

    upserts: list[dict[str, Any]]
    deletes: list[dict[str, Any]]


def _key_identity(keys: Mapping[str, Any]) -> str:
    return encode_json(dict(sorted(keys.items()))).decode("utf-8")


def fold_changes(records: Iterable[ChangeRecord]) -> FoldedChanges:
    """
    Fold change records into upserts and deletes: per key, the change with the latest write time wins; of two
    changes with the same write time, the later one in ``records`` wins.

    Records may come from several files and several consecutive exports, in any order. Memory holds one record
    per distinct key.
    """
    latest: dict[str, ChangeRecord] = {}
    for record in records:
        identity = _key_identity(record.keys)
        known = latest.get(identity)
        if known is None or record.write_time_micros >= known.write_time_micros:
            latest[identity] = record
    upserts = [record.new_image for record in latest.values() if record.new_image is not None]
    deletes = [record.keys for record in latest.values() if record.new_image is None]
    return FoldedChanges(upserts=upserts, deletes=deletes)


def change_row(record: ChangeRecord, *, attribute_values: bool) -> dict[str, Any]:
    """
    Return the output row of one change: ``_op`` (``upsert``/``delete``), ``_write_time_micros``, then the new
    image's attributes (an upsert) or the key attributes (a delete).

    :param attribute_values: the record holds AttributeValues, and so does the row
    :raises NativeExportError: the item has an attribute named ``_op`` or ``_write_time_micros``.
    """
    image = record.new_image if record.new_image is not None else record.keys
    clash = sorted(name for name in (OPERATION_FIELD, WRITE_TIME_FIELD) if name in image)
    if clash:
        raise NativeExportError(
            f"An item has attribute(s) {clash}, which the converted change records use for the operation and "
            "the write time; convert this export as a full export, or rename the attribute."
        )
    meta: dict[str, Any]
    if attribute_values:
        meta = {OPERATION_FIELD: {"S": record.operation}, WRITE_TIME_FIELD: {"N": str(record.write_time_micros)}}
    else:
        meta = {OPERATION_FIELD: record.operation, WRITE_TIME_FIELD: record.write_time_micros}
    return {**meta, **image}


def read_rows(
    s3_client: Any,
    bucket: str,
    data_file: NativeDataFile,
    *,
    incremental: bool,
    attribute_values: bool,
    verify_md5: bool = False,
) -> Generator[dict[str, Any], None, None]:
    """
    Yield the output rows of one data file: its items (a full export), or its change rows (an incremental export,
    see :func:`change_row`).

    :param attribute_values: rows of AttributeValues (for ``dynamodb_json``), else plain Python values
    """
    if not incremental:
        yield from read_items(s3_client, bucket, data_file, deserialize=not attribute_values, verify_md5=verify_md5)
        return
    for record in read_changes(s3_client, bucket, data_file, deserialize=not attribute_values, verify_md5=verify_md5):
        yield change_row(record, attribute_values=attribute_values)


def plan_native_schema(
    s3_client: Any,
    bucket: str,
    data_files: Sequence[NativeDataFile],
    *,
    incremental: bool,
    columns: Sequence[str] | None = None,
    key_types: Mapping[str, str] | None = None,
) -> ExportSchema:
    """
    Plan the one schema of a CSV or Parquet conversion of a native export, from a bounded sample: the first
    :data:`SCHEMA_SAMPLE_ROWS_PER_FILE` rows of each of the first :data:`SCHEMA_SAMPLE_FILES` data files that
    hold records, as :func:`read_rows` gives them (so an incremental export's schema has ``_op`` and
    ``_write_time_micros``). Files the manifest lists as empty (DynamoDB writes one per partition, empty ones
    too, listed in any order) are skipped without being read, however many come first.

    Give it to every convert task (``schema=``), so all parts of the export share it; attributes the sample did
    not show go to the schema's extra column. An export without any record (an empty table, a quiet incremental
    window) gets the table's key attributes (``key_types``, with ``_op`` and ``_write_time_micros`` for an
    incremental export) and the extra column. See :func:`~airflow_dynamoscan.export.schema.plan_schema`.

    :param columns: the attributes to convert, in this order (the others omitted)
    :param key_types: the table's key attributes and their column types
        (:func:`~airflow_dynamoscan.export.schema.key_column_types`); ``None``: not known
    :raises NativeExportError: a sampled data file is missing or malformed.
    """
    sample: list[dict[str, Any]] = []
    sampled_files = 0
    for data_file in data_files:
        if sampled_files >= SCHEMA_SAMPLE_FILES:
            break
        if data_file.item_count <= 0:
            continue
        sampled_files += 1
        rows = read_rows(s3_client, bucket, data_file, incremental=incremental, attribute_values=False)
        try:
            sample.extend(itertools.islice(rows, SCHEMA_SAMPLE_ROWS_PER_FILE))
        finally:
            rows.close()
    types = dict(key_types or {})
    if incremental:
        types = {OPERATION_FIELD: "string", WRITE_TIME_FIELD: "int64", **types}
    log.info(
        "Planned the converted export's schema from %s record(s) of %s of its %s data file(s) (empty files skipped)",
        len(sample),
        sampled_files,
        len(data_files),
    )
    return plan_schema(sample, columns=columns, key_types=types)


def _pages(rows: Iterator[dict[str, Any]]) -> Iterator[ScanPage]:
    page: list[dict[str, Any]] = []
    for row in rows:
        page.append(row)
        if len(page) >= CONVERT_PAGE_ITEMS:
            yield ScanPage(page, None, None, None, len(page), len(page))
            page = []
    if page:
        yield ScanPage(page, None, None, None, len(page), len(page))


def convert_data_files(
    s3_client: Any,
    bucket: str,
    data_files: Sequence[NativeDataFile],
    destination: Destination,
    *,
    incremental: bool,
    file_format: str,
    compression: str | None,
    prefix: str,
    max_file_bytes: int | None = None,
    columns: Sequence[str] | None = None,
    schema: ExportSchema | dict[str, Any] | None = None,
    verify_md5: bool = False,
) -> dict[str, Any]:
    """
    Convert data files of one native export into parts of the package's own formats under ``prefix``.

    A full export gives one row per item, as a scan export does. An incremental export gives one row per change,
    with ``_op`` (``upsert``/``delete``) and ``_write_time_micros`` first, then the new image (an upsert) or the
    keys (a delete); fold them downstream (latest write time wins per key) or with :func:`fold_changes`.
    The parts are written by :func:`~airflow_dynamoscan.export.exporter.export_pages`, so everything it says about
    retries, atomic parts, rotation and schemas holds here too.

    :param data_files: the files to convert, e.g. one mapped task's share of :func:`read_data_files`
    :param incremental: the export is incremental (see :attr:`NativeExportSummary.incremental`)
    :param schema: for CSV and Parquet, the export's one schema (see :func:`plan_native_schema`); ``None``
        plans one from the first rows converted here, which suits a single convert task only
    :return: as :func:`~airflow_dynamoscan.export.exporter.export_pages`.
    :raises NativeExportError: a data file is missing or disagrees with the manifest.
    """
    attribute_values = needs_attribute_values(file_format)

    def rows() -> Iterator[dict[str, Any]]:
        for data_file in data_files:
            yield from read_rows(
                s3_client,
                bucket,
                data_file,
                incremental=incremental,
                attribute_values=attribute_values,
                verify_md5=verify_md5,
            )
            log.info("Read %s records from s3://%s/%s", data_file.item_count, bucket, data_file.key)

    return export_pages(
        _pages(rows()),
        destination,
        file_format=file_format,
        compression=compression,
        prefix=prefix,
        max_file_bytes=max_file_bytes,
        columns=None if schema is not None else columns,
        schema=schema,
    )


def batch_data_files(
    data_files: Sequence[NativeDataFile], files_per_task: int, *, max_batches: int | None = None
) -> list[list[NativeDataFile]]:
    """
    Cut the data files into consecutive batches of at most ``files_per_task`` files (at least one batch).

    :param max_batches: never more batches than this (e.g. Airflow's ``max_map_length``): the batches grow instead
    :raises InvalidScanArgumentError: ``files_per_task`` or ``max_batches`` is not an integer >= 1.
    """
    for name, value in (("files_per_task", files_per_task), ("max_batches", 1 if max_batches is None else max_batches)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidScanArgumentError(f"{name}={value!r} is not allowed; it must be an integer >= 1.")
    if max_batches is not None:
        files_per_task = max(files_per_task, -(-len(data_files) // max_batches))
    batches = [list(data_files[start : start + files_per_task]) for start in range(0, len(data_files), files_per_task)]
    return batches or [[]]


#: The shortest and the longest window of one incremental export.
MIN_INCREMENTAL_WINDOW = timedelta(minutes=15)
MAX_INCREMENTAL_WINDOW = timedelta(hours=24)


def utc_datetime(value: datetime | str, name: str) -> datetime:
    """
    Return ``value`` (a ``datetime`` or ISO 8601 text, as a template renders it) as an aware UTC ``datetime``; a
    time without a zone is taken as UTC.

    :raises InvalidScanArgumentError: naming the parameter.
    """
    if isinstance(value, str):
        text = value.strip()
        try:
            # Python 3.10's fromisoformat does not read the "Z" suffix.
            value = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
        except ValueError as error:
            raise InvalidScanArgumentError(f"{name}={text!r} is not an ISO 8601 date and time.") from error
    if not isinstance(value, datetime):
        raise InvalidScanArgumentError(f"{name}={value!r} is not a date and time.")
    moment = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    # A plain datetime, whatever subclass came in (Airflow's pendulum times): differences print as durations.
    return datetime(
        moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second, moment.microsecond,
        tzinfo=timezone.utc,
    )  # fmt: skip


def check_incremental_window(export_from_time: datetime, export_to_time: datetime, *, table_name: str) -> None:
    """
    Check that ``[export_from_time, export_to_time)`` is a window DynamoDB accepts: 15 minutes to 24 hours.

    :raises InvalidScanArgumentError: naming the table, the window and :func:`split_export_window` for longer ones.
    """
    export_from_time = utc_datetime(export_from_time, "export_from_time")
    export_to_time = utc_datetime(export_to_time, "export_to_time")
    length = export_to_time - export_from_time
    if length < MIN_INCREMENTAL_WINDOW:
        raise InvalidScanArgumentError(
            f"Table {table_name!r}: the incremental export window {export_from_time.isoformat()} to "
            f"{export_to_time.isoformat()} lasts {length}; DynamoDB needs at least 15 minutes. "
            "Give a longer export_from_time/export_to_time, or leave both out and chain the windows "
            "(chain_destination), which takes each window from where the last committed one ended."
        )
    if length > MAX_INCREMENTAL_WINDOW:
        raise InvalidScanArgumentError(
            f"Table {table_name!r}: the incremental export window {export_from_time.isoformat()} to "
            f"{export_to_time.isoformat()} lasts {length}; DynamoDB allows at most 24 hours. Split it into "
            "consecutive exports with airflow_dynamoscan.export.native.split_export_window(...) and map the "
            "export over them (.expand_kwargs)."
        )


def split_export_window(start: datetime | str, end: datetime | str) -> list[dict[str, str]]:
    """
    Split ``[start, end)`` into consecutive incremental-export windows of equal length, each at most 24 hours
    (and, for a window of at least 15 minutes, at least 15 minutes), in order.

    :return: ``[{"export_from_time": iso, "export_to_time": iso}, ...]``, ready for
        ``DynamoDBNativeExportOperator.partial(...).expand_kwargs(...)``; each window starts where the previous
        one ends, the first at ``start``, the last ending at ``end``.
    :raises InvalidScanArgumentError: ``end`` is not after ``start`` plus 15 minutes.
    """
    begin, finish = utc_datetime(start, "start"), utc_datetime(end, "end")
    total = finish - begin
    if total < MIN_INCREMENTAL_WINDOW:
        raise InvalidScanArgumentError(
            f"The window {begin.isoformat()} to {finish.isoformat()} lasts {total}; an incremental export needs at "
            "least 15 minutes."
        )
    count = -(-total // MAX_INCREMENTAL_WINDOW)
    bounds = [begin + total * index / count for index in range(count)] + [finish]
    return [
        {"export_from_time": bounds[index].isoformat(), "export_to_time": bounds[index + 1].isoformat()}
        for index in range(count)
    ]
