"""Write scanned pages as numbered part files under one prefix of a destination, safely against retries."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from airflow_dynamoscan.exceptions import InvalidScanArgumentError
from airflow_dynamoscan.export.checkpoint import ScanCheckpoint, write_checkpoint
from airflow_dynamoscan.export.destinations import Destination
from airflow_dynamoscan.export.formats import open_encoder, part_extension, validate_columns, validate_format
from airflow_dynamoscan.scan.scanner import ScanPage
from airflow_dynamoscan.scan.segments import validate_segment

log = logging.getLogger(__name__)


def segment_prefix(segment: int | None, total_segments: int | None, *, table_name: str | None = None) -> str:
    """
    Return the folder of one segment's parts: ``segment-00003-of-00016``.

    A whole-table export in one task (``segment`` and ``total_segments`` both ``None``) is segment 0 of 1:
    ``segment-00000-of-00001``.

    :param segment: the segment, from 0
    :param total_segments: the segment count of the scan
    :param table_name: the table, named in the error message
    :raises InvalidScanArgumentError: only one of the two given, or values outside DynamoDB's limits.
    """
    if segment is None and total_segments is None:
        segment, total_segments = 0, 1
    segment, total_segments = validate_segment(segment, total_segments, table_name or "(not named)")
    return f"segment-{segment:05d}-of-{total_segments:05d}"


def _check_export_arguments(prefix: str, max_file_bytes: int | None) -> str:
    if not isinstance(prefix, str) or not prefix.strip("/"):
        raise InvalidScanArgumentError(
            f"prefix={prefix!r} is not allowed; it must name a folder under the destination, e.g. "
            f"'segment-00000-of-00001' (its files are deleted before the export writes there)."
        )
    if max_file_bytes is not None and (
        not isinstance(max_file_bytes, int) or isinstance(max_file_bytes, bool) or max_file_bytes < 1
    ):
        raise InvalidScanArgumentError(
            f"max_file_bytes={max_file_bytes!r} is not allowed; it must be None or an integer >= 1."
        )
    return prefix.strip("/")


def export_pages(
    pages: Iterable[ScanPage],
    destination: Destination,
    *,
    file_format: str,
    compression: str | None,
    prefix: str,
    max_file_bytes: int | None = None,
    columns: Sequence[str] | None = None,
    checkpoint: ScanCheckpoint | None = None,
    replaces: Sequence[str] = (),
    claim: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """
    Write the items of ``pages`` as parts ``{prefix}/part-00000{ext}``, ``{prefix}/part-00001{ext}``, ...

    Once the scan's first page has arrived (so a request DynamoDB rejects changes nothing), every file under
    ``{prefix}/`` that the checkpoint does not keep (left by an earlier, failed attempt) is deleted, so a retry
    never leaves duplicate items. Each part is committed whole when it is complete (see
    :meth:`Destination.open_part`); if an error ends the export, the part being written is not committed. A new
    part starts when the current one reaches ``max_file_bytes`` (checked after each page, so a part holds at
    least one page's items and may exceed the limit by up to one page). Pages without items are skipped; an
    export without any item writes exactly one valid empty part (an empty ``jsonl``/``dynamodb_json`` file or
    gzip stream; a header-only CSV with ``columns``, an empty one without; a Parquet file with no rows, whose
    schema is empty or ``columns`` typed null). Memory holds the page being written and at
    most one part's buffer. If ``pages`` is a generator it is closed when the export ends, which stops the
    workers of a parallel scan.

    :param pages: scanned pages: plain items, or AttributeValue items for ``dynamodb_json``
        (see :func:`~airflow_dynamoscan.export.formats.needs_attribute_values`)
    :param destination: where the parts go
    :param file_format: one of :data:`~airflow_dynamoscan.export.formats.FILE_FORMATS`
    :param compression: see :func:`~airflow_dynamoscan.export.formats.validate_format`
    :param prefix: the folder of the parts under the destination, e.g. from :func:`segment_prefix`; everything
        under it is replaced
    :param max_file_bytes: start a new part once a part holds this many bytes; ``None`` writes one part
    :param columns: for ``csv`` and ``parquet``, the attributes to write, in this order
    :param checkpoint: resume and record progress (see :mod:`~airflow_dynamoscan.export.checkpoint`): the parts
        it lists are kept and numbering continues after them; ``pages`` must then start where it says. After
        each part is committed, the checkpoint is updated and written at the destination.
    :param replaces: files deleted once the first page has arrived, before any other, e.g. the manifest of a
        complete export being overwritten
    :param claim: called once the first page has arrived, before any file is deleted or written, e.g. to mark the
        destination as this export's (see :mod:`~airflow_dynamoscan.export.ownership`)
    :return: ``{"items": int, "bytes": int, "parts": [{"uri", "path", "items", "bytes"}, ...]}``, ``path``
        being relative to the destination and ``bytes`` the exact size of the files.
    :raises InvalidScanArgumentError: an invalid format, compression, prefix, ``max_file_bytes`` or ``columns``.
    :raises DestinationError: a file cannot be written, committed, listed or deleted.
    """
    validate_format(file_format, compression, table_name=None)
    validate_columns(file_format, columns)
    prefix = _check_export_arguments(prefix, max_file_bytes)
    extension = part_extension(file_format, compression)
    parts: list[dict[str, Any]] = list(checkpoint.parts) if checkpoint is not None else []
    kept = {part["path"] for part in parts}
    stale = [name for name in destination.list(f"{prefix}/") if name not in kept]
    if parts:
        log.info("Resuming after %s committed part(s) under %s", len(parts), destination.child_uri(prefix))

    iterator = iter(pages)

    def recorded(pages: Iterator[ScanPage]) -> Iterator[ScanPage]:
        # Every page pulled before a part is committed is in that part (or had no items), so the progress
        # recorded here is exactly what the committed parts hold when the checkpoint is written.
        for page in pages:
            if checkpoint is not None:
                checkpoint.record_page(page.segment, page.last_evaluated_key)
            if page.items:
                yield page

    try:
        nonempty_pages = recorded(iterator)
        pending = next(nonempty_pages, None)
        # Only now that DynamoDB has answered: a request it rejects (an invalid expression) leaves the files of an
        # earlier attempt, or of a complete export being overwritten, as they were.
        if claim is not None:
            claim()
        if replaces:
            destination.delete(replaces)
        if stale:
            log.info("Deleting %s file(s) left under %s", len(stale), destination.child_uri(prefix))
            destination.delete(stale)
        # An export without any item still gets one (empty, valid) part, unless earlier attempts wrote some.
        while pending is not None or not parts:
            path = f"{prefix}/part-{len(parts):05d}{extension}"
            with destination.open_part(path) as part_file:
                encoder = open_encoder(file_format, part_file, compression=compression, columns=columns)
                while pending is not None:
                    encoder.write_items(pending.items)
                    pending = None
                    if max_file_bytes is not None and encoder.bytes_written >= max_file_bytes:
                        break
                    pending = next(nonempty_pages, None)
                encoder.close()
            part = {
                "uri": destination.child_uri(path),
                "path": path,
                "items": encoder.items,
                "bytes": encoder.bytes_written,
            }
            parts.append(part)
            log.info("Wrote %s: %s items, %s bytes", part["uri"], part["items"], part["bytes"])
            if checkpoint is not None:
                checkpoint.parts = list(parts)
                write_checkpoint(destination, checkpoint)
            if pending is None:
                pending = next(nonempty_pages, None)
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
    return {
        "items": sum(part["items"] for part in parts),
        "bytes": sum(part["bytes"] for part in parts),
        "parts": parts,
    }
