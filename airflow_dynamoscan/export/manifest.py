"""
The manifest of a finished export: ``manifest.json`` at the destination root, listing every segment's parts.

It is written last, atomically, and only once every segment of the scan has reported exactly once, so its
presence means the export is complete: a reader lists the parts from it rather than from the destination.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from airflow_dynamoscan.exceptions import DynamoScanError, IncompleteExportError, InvalidScanArgumentError
from airflow_dynamoscan.storage.destinations import Destination, normalize_destination
from airflow_dynamoscan.storage.ownership import remove_marker, remove_stale_files

log = logging.getLogger(__name__)

#: The manifest's file name at the destination root.
MANIFEST_NAME = "manifest.json"

#: The version of the manifest layout; raised when a field changes meaning or disappears.
MANIFEST_FORMAT_VERSION = 1

_RESULT_KEYS = ("segment", "total_segments", "items", "bytes", "parts")
# What every segment of one export must share, recorded in the manifest when the results give it (the window of
# an incremental export of a chain: see airflow_dynamoscan.export.chain).
_LAYOUT_KEYS = ("schema", "csv_formula_escaping", "incremental_window")
_LISTED_NUMBERS = 20


def _describe_numbers(numbers: Iterable[int]) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``"0-2, 5, 7-8"``, cut after a few ranges."""
    ranges: list[list[int]] = []
    for number in sorted(numbers):
        if ranges and number == ranges[-1][1] + 1:
            ranges[-1][1] = number
        else:
            ranges.append([number, number])
    text = ", ".join(str(first) if first == last else f"{first}-{last}" for first, last in ranges[:_LISTED_NUMBERS])
    if len(ranges) > _LISTED_NUMBERS:
        text += f", ... ({len(ranges) - _LISTED_NUMBERS} more ranges)"
    return text


def _utc(value: str | datetime | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = (
            value
            if isinstance(value, datetime)
            # Python 3.10's fromisoformat does not read the "Z" suffix.
            else datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
        )
    except (TypeError, ValueError, AttributeError) as error:
        raise InvalidScanArgumentError(f"{name}={value!r} is not an ISO 8601 date and time.") from error
    # A time without a zone is taken as UTC, the zone Airflow works in.
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _check_result(
    index: int, result: Any, table_name: str, total_segments: int, export: dict[str, Any]
) -> dict[str, Any]:
    if not isinstance(result, Mapping):
        raise IncompleteExportError(f"Table {table_name!r}: export result #{index} is not a dict: {result!r:.200}")
    missing_keys = [key for key in _RESULT_KEYS if key not in result]
    if missing_keys:
        raise IncompleteExportError(
            f"Table {table_name!r}: export result #{index} lacks {', '.join(missing_keys)}: {result!r:.200}"
        )
    if result.get("table_name", table_name) != table_name:
        raise IncompleteExportError(
            f"Table {table_name!r}: export result #{index} is for table {result['table_name']!r}, not this one."
        )
    for key, expected in export.items():
        reported = result.get(key)
        if key == "destination" and isinstance(reported, str):
            reported = normalize_destination(reported)
        if key in result and reported != expected:
            raise IncompleteExportError(
                f"Table {table_name!r}: export result #{index} has {key}={result[key]!r:.300}, but the export has "
                f"{key}={expected!r:.300}."
            )
    reported_total = 1 if result["total_segments"] is None else result["total_segments"]
    if reported_total != total_segments:
        raise IncompleteExportError(
            f"Table {table_name!r}: export result #{index} is from a scan of total_segments={reported_total}, "
            f"not {total_segments}."
        )
    part_items = sum(part.get("items", 0) for part in result["parts"])
    if part_items != result["items"]:
        raise IncompleteExportError(
            f"Table {table_name!r}: segment {result['segment']} reports {result['items']} items but its parts "
            f"hold {part_items}."
        )
    return {**result, "segment": 0 if result["segment"] is None else result["segment"]}


def _check_segments(checked: list[dict[str, Any]], table_name: str, destination_uri: str, total: int) -> None:
    """Refuse results that do not report every segment of ``0..total-1`` exactly once."""
    counts = Counter(result["segment"] for result in checked)
    missing = [segment for segment in range(total) if segment not in counts]
    duplicated = [segment for segment, count in counts.items() if count > 1]
    unexpected = [segment for segment in counts if not (isinstance(segment, int) and 0 <= segment < total)]
    if not (missing or duplicated or unexpected):
        return
    problems = []
    if missing:
        problems.append(f"missing segments {_describe_numbers(missing)} ({len(missing)} of {total})")
    if duplicated:
        problems.append(f"segments reported more than once: {_describe_numbers(duplicated)}")
    if unexpected:
        problems.append(f"segments outside 0-{total - 1}: {', '.join(map(repr, sorted(unexpected, key=str)))}")
    raise IncompleteExportError(
        f"Table {table_name!r}: the export to {destination_uri} is incomplete: {'; '.join(problems)}."
    )


def _scan_window(
    checked: list[dict[str, Any]], started_at: str | None, finished_at: str | None
) -> tuple[str | None, str | None]:
    """The earliest start and the latest finish of the export and its results, in UTC, or ``None``."""
    starts = [_utc(started_at, "started_at")] + [_utc(r.get("started_at"), "started_at") for r in checked]
    finishes = [_utc(finished_at, "finished_at")] + [_utc(r.get("finished_at"), "finished_at") for r in checked]
    known_starts = [moment for moment in starts if moment is not None]
    known_finishes = [moment for moment in finishes if moment is not None]
    return (
        min(known_starts).isoformat() if known_starts else None,
        max(known_finishes).isoformat() if known_finishes else None,
    )


def build_manifest(
    results: Iterable[Mapping[str, Any]],
    *,
    table_name: str,
    destination_uri: str,
    file_format: str,
    compression: str | None,
    total_segments: int | None,
    started_at: str | None,
    finished_at: str | None,
) -> dict[str, Any]:
    """
    Check the per-segment export results of one scan and return the manifest that lists them.

    :param results: one dict per segment, as the export tasks return them: ``segment``, ``total_segments``,
        ``items``, ``bytes``, ``parts`` (each ``{"uri", "path", "items", "bytes"}``) and optionally
        ``table_name``, ``destination``, ``file_format``, ``compression``, ``schema`` and
        ``csv_formula_escaping`` (each, if present, must match this export, the schema and escaping being those
        of the first result), ``started_at`` and ``finished_at`` (ISO 8601). A whole-table export in one task may give
        ``segment`` and ``total_segments`` as ``None``: it counts as segment 0 of 1.
    :param table_name: the exported table
    :param destination_uri: the root of the export, compared with the results' in its normalised form (see
        :func:`~airflow_dynamoscan.storage.destinations.normalize_destination`), which the manifest records
    :param file_format: the parts' file format
    :param compression: the parts' compression
    :param total_segments: the segment count of the scan (``None``: 1)
    :param started_at: when the export started (ISO 8601), if known beyond the results' own times
    :param finished_at: when the export finished (ISO 8601), if known beyond the results' own times
    :return: the manifest: ``format_version``, ``table_name``, ``destination``, ``file_format``,
        ``compression``, ``total_segments``, ``items``, ``bytes``, ``part_count``, ``scan_started_at`` (the
        earliest start) and ``scan_finished_at`` (the latest finish) in UTC or ``None``, ``created_at``, for CSV and
        Parquet ``schema`` (the JSON form of :class:`~airflow_dynamoscan.export.schema.ExportSchema`, the same
        for every part) and for CSV ``csv_formula_escaping``, and
        ``segments`` sorted by number, each with ``segment``, ``items``, ``bytes``, ``started_at``,
        ``finished_at`` and ``parts``.
    :raises IncompleteExportError: naming the table: a segment is missing, reported twice or out of range, or a
        result is for another table, segment count, destination, format, compression or schema, or is malformed.
    :raises InvalidScanArgumentError: a time that is not ISO 8601, or a destination that is not allowed.
    """
    total = 1 if total_segments is None else total_segments
    results = list(results)
    destination_uri = normalize_destination(destination_uri)
    export = {"destination": destination_uri, "file_format": file_format, "compression": compression}
    # Every part of one export has one schema (CSV header, Parquet schema): a result with another is refused.
    layout = {
        key: results[0][key]
        for key in _LAYOUT_KEYS
        if results and isinstance(results[0], Mapping) and results[0].get(key) is not None
    }
    export.update(layout)
    checked = [_check_result(index, result, table_name, total, export) for index, result in enumerate(results)]
    _check_segments(checked, table_name, destination_uri, total)
    scan_started_at, scan_finished_at = _scan_window(checked, started_at, finished_at)
    segments = [_manifest_segment(result) for result in sorted(checked, key=lambda result: int(result["segment"]))]
    return {
        "format_version": MANIFEST_FORMAT_VERSION,
        "table_name": table_name,
        "destination": destination_uri,
        "file_format": file_format,
        "compression": compression,
        "total_segments": total,
        "items": sum(segment["items"] for segment in segments),
        "bytes": sum(segment["bytes"] for segment in segments),
        "part_count": sum(len(segment["parts"]) for segment in segments),
        "scan_started_at": scan_started_at,
        "scan_finished_at": scan_finished_at,
        "created_at": datetime.now(timezone.utc).isoformat(),
        **layout,
        "segments": segments,
    }


def _manifest_segment(result: Mapping[str, Any]) -> dict[str, Any]:
    """A segment's entry in the manifest, from its checked result."""
    return {
        "segment": result["segment"],
        "items": result["items"],
        "bytes": result["bytes"],
        "started_at": result.get("started_at"),
        "finished_at": result.get("finished_at"),
        "parts": [dict(part) for part in result["parts"]],
    }


def write_manifest(destination: Destination, manifest: Mapping[str, Any]) -> str:
    """
    Write ``manifest`` as ``manifest.json`` at the root of ``destination``, atomically; call it after every part.

    :return: the manifest's URI.
    :raises DestinationError: the file cannot be written.
    """
    destination.write_bytes(MANIFEST_NAME, json.dumps(manifest, indent=2, ensure_ascii=False).encode("utf-8"))
    uri = destination.child_uri(MANIFEST_NAME)
    log.info("Wrote the manifest %s: %s items in %s parts", uri, manifest.get("items"), manifest.get("part_count"))
    return uri


def read_manifest(destination: Destination) -> dict[str, Any] | None:
    """
    Return the manifest at the root of ``destination``, or ``None`` if there is none (the export is unfinished).

    :raises DynamoScanError: the file is not a JSON object.
    :raises DestinationError: the file cannot be read.
    """
    try:
        data = destination.read_bytes(MANIFEST_NAME)
    except FileNotFoundError:
        return None
    try:
        manifest = json.loads(data)
    except ValueError as error:
        raise DynamoScanError(f"{destination.child_uri(MANIFEST_NAME)} is not valid JSON: {error}") from error
    if not isinstance(manifest, dict):
        raise DynamoScanError(f"{destination.child_uri(MANIFEST_NAME)} is not a JSON object.")
    return manifest


def commit_export(destination: Destination, manifest: Mapping[str, Any]) -> str:
    """
    Commit a checked export: delete what is not its own, write its manifest, then remove its marker.

    The files of the export layout that ``manifest`` does not list go first (the parts of an export this one
    overwrote, leftover checkpoints, files of interrupted writes; see
    :func:`~airflow_dynamoscan.storage.ownership.remove_stale_files`), so once ``manifest.json`` is there the
    destination holds exactly the manifest's parts and the manifest. Run again after a failure, it finishes the
    job: every step can be repeated.

    :param destination: the export's destination
    :param manifest: from :func:`build_manifest`
    :return: the manifest's URI.
    :raises DestinationError: a file cannot be listed, deleted or written.
    """
    parts = [part["path"] for segment in manifest["segments"] for part in segment["parts"]]
    remove_stale_files(destination, parts)
    uri = write_manifest(destination, manifest)
    remove_marker(destination)
    return uri
