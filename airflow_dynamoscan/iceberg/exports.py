"""What a mirror reads from DynamoDB's native exports: a full export's items, an incremental export's net changes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from airflow_dynamoscan.export.native import (
    FoldedChanges,
    NativeExportError,
    NativeExportSummary,
    fold_changes,
    read_changes,
    read_data_files,
    read_items,
    read_summary,
)


def export_items(s3_client: Any, summary: NativeExportSummary, *, verify_md5: bool = False) -> Iterator[dict[str, Any]]:
    """
    Yield every item of a full export, file after file (memory holds one line at a time).

    :raises NativeExportError: the export is incremental, or a file is missing or disagrees with the manifest.
    """
    if summary.incremental:
        raise NativeExportError(f"The native export {summary.export_arn!r} is incremental; a load needs a full one.")
    for data_file in read_data_files(s3_client, summary):
        yield from read_items(s3_client, summary.bucket, data_file, verify_md5=verify_md5)


def export_changes(s3_client: Any, summary: NativeExportSummary, *, verify_md5: bool = False) -> FoldedChanges:
    """
    The net change per key of an incremental export (:func:`~airflow_dynamoscan.export.native.fold_changes`):
    the latest image of every item changed and still there, the keys of every item deleted.

    :raises NativeExportError: the export is a full one, or a file is missing or disagrees with the manifest.
    """
    if not summary.incremental:
        raise NativeExportError(
            f"The native export {summary.export_arn!r} is a full export; a merge needs an incremental one."
        )

    def records() -> Iterator[Any]:
        for data_file in read_data_files(s3_client, summary):
            yield from read_changes(s3_client, summary.bucket, data_file, verify_md5=verify_md5)

    return fold_changes(records())


def summary_of(s3_client: Any, export: dict[str, Any]) -> NativeExportSummary:
    """The summary of the export a native export task returned (its ``s3_bucket`` and ``manifest_summary_key``)."""
    return read_summary(s3_client, str(export["s3_bucket"]), str(export["manifest_summary_key"]))


__all__ = ["export_changes", "export_items", "summary_of"]
