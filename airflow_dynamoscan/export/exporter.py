"""Write scanned pages as numbered part files under one prefix of a destination, safely against retries."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from airflow_dynamoscan.exceptions import InvalidScanArgumentError
from airflow_dynamoscan.export.formats import (
    PartEncoder,
    open_encoder,
    part_extension,
    uses_schema,
    validate_columns,
    validate_format,
)
from airflow_dynamoscan.export.schema import ExportSchema, parse_schema, plan_schema
from airflow_dynamoscan.scan.memory import memory_budget
from airflow_dynamoscan.scan.scanner import ScanPage
from airflow_dynamoscan.scan.segments import validate_segment
from airflow_dynamoscan.storage.checkpoints import ScanCheckpoint, SegmentProgress, write_checkpoint
from airflow_dynamoscan.storage.destinations import Destination

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
    schema: ExportSchema | dict[str, Any] | None = None,
    columns: Sequence[str] | None = None,
    csv_formula_escaping: bool = False,
    checkpoint: ScanCheckpoint | None = None,
    replaces: Sequence[str] = (),
    claim: Callable[[], None] | None = None,
    max_memory_mb: int | None = None,
) -> dict[str, Any]:
    """
    Write the items of ``pages`` as parts ``{prefix}/part-00000{ext}``, ``{prefix}/part-00001{ext}``, ...

    Once the scan's first page has arrived (so a request DynamoDB rejects changes nothing), every file under
    ``{prefix}/`` that the checkpoint does not keep (left by an earlier, failed attempt) is deleted, so a retry
    never leaves duplicate items. Each part is committed whole when it is complete (see
    :meth:`Destination.open_part`); if an error ends the export, the part being written is not committed. With
    ``max_file_bytes`` a part takes items, within a page too, while the finished file stays within the limit, so
    every part is within ``max_file_bytes`` or holds a single item (which may be larger). Pages without items are
    skipped; an export without any item writes exactly one valid empty part (an empty ``jsonl``/``dynamodb_json``
    file or gzip stream, a header-only CSV, a Parquet file with the schema and no rows). Memory holds the page
    being written and at most one Parquet row group. If ``pages`` is a generator it is closed when the export
    ends, which stops the workers of a parallel scan.

    CSV and Parquet parts all have one schema (:mod:`~airflow_dynamoscan.export.schema`): ``schema`` if given
    (every part of an export, in every mapped task, should get the same one), else planned from the first page
    with items (only ``columns`` if given, the other attributes omitted).

    :param pages: scanned pages: plain items, or AttributeValue items for ``dynamodb_json``
        (see :func:`~airflow_dynamoscan.export.formats.needs_attribute_values`)
    :param destination: where the parts go
    :param file_format: one of :data:`~airflow_dynamoscan.export.formats.FILE_FORMATS`
    :param compression: see :func:`~airflow_dynamoscan.export.formats.validate_format`
    :param prefix: the folder of the parts under the destination, e.g. from :func:`segment_prefix`; everything
        under it is replaced
    :param max_file_bytes: the largest size of a part (compressed) that holds more than one item; ``None`` writes
        one part
    :param schema: for ``csv`` and ``parquet``, the export's schema, or its JSON form
    :param columns: for ``csv`` and ``parquet`` without ``schema``, the attributes to write, in this order
    :param csv_formula_escaping: for ``csv``, escape cells a spreadsheet would read as formulas
        (see :mod:`~airflow_dynamoscan.export.formats`)
    :param checkpoint: resume and record progress (see :mod:`~airflow_dynamoscan.storage.checkpoints`): the parts
        it lists are kept and numbering continues after them; ``pages`` must then start where it says, and
        ``schema`` must be the one those parts have. After each part is committed, the checkpoint records each
        segment's position (the last written page's key, and how many items of the page after it a part that
        ended within that page holds) and is written at the destination.
    :param replaces: files deleted once the first page has arrived, before any other, e.g. the manifest of a
        complete export being overwritten
    :param claim: called once the first page has arrived, before any file is deleted or written, e.g. to mark the
        destination as this export's (see :mod:`~airflow_dynamoscan.storage.ownership`)
    :param max_memory_mb: the memory budget (see :mod:`~airflow_dynamoscan.scan.memory`), which sizes Parquet row
        groups
    :return: ``{"items": int, "bytes": int, "parts": [{"uri", "path", "items", "bytes"}, ...]}``, ``path``
        being relative to the destination and ``bytes`` the exact size of the files, and for ``csv`` and
        ``parquet`` ``"schema"``, the JSON form of the parts' schema.
    :raises InvalidScanArgumentError: an invalid format, compression, prefix, ``max_file_bytes``, ``columns`` or
        ``schema``, both ``columns`` and ``schema``, or a resume without ``schema`` for ``csv``/``parquet``.
    :raises SchemaMismatchError: an item does not fit a schema without an extra column.
    :raises DestinationError: a file cannot be written, committed, listed or deleted.
    """
    validate_format(file_format, compression, table_name=None)
    validate_columns(file_format, columns)
    prefix = _check_export_arguments(prefix, max_file_bytes)
    writer = _PartWriter(
        destination,
        file_format=file_format,
        compression=compression,
        prefix=prefix,
        max_file_bytes=max_file_bytes,
        schema=_check_schema(file_format, schema, columns, csv_formula_escaping, checkpoint),
        csv_formula_escaping=csv_formula_escaping,
        checkpoint=checkpoint,
        pages=iter(pages),
        row_group_bytes=memory_budget(max_memory_mb).row_group_bytes,
    )
    try:
        writer.current = writer.next_page()
        # Only now that DynamoDB has answered: a request it rejects (an invalid expression) leaves the files of an
        # earlier attempt, or of a complete export being overwritten, as they were.
        if uses_schema(file_format) and writer.schema is None:
            writer.schema = plan_schema(writer.current[0].items if writer.current else (), columns=columns)
        if claim is not None:
            claim()
        if replaces:
            destination.delete(replaces)
        writer.delete_stale()
        # An export without any item still gets one (empty, valid) part, unless earlier attempts wrote some.
        while writer.current is not None or not writer.parts:
            writer.write_part()
    finally:
        close = getattr(writer.pages, "close", None)
        if close is not None:
            close()
    return writer.result()


class _PartWriter:
    """The state of one export under one prefix: its parts, where each segment stands, the page being written."""

    def __init__(
        self,
        destination: Destination,
        *,
        file_format: str,
        compression: str | None,
        prefix: str,
        max_file_bytes: int | None,
        schema: ExportSchema | None,
        csv_formula_escaping: bool,
        checkpoint: ScanCheckpoint | None,
        pages: Iterator[ScanPage],
        row_group_bytes: int | None = None,
    ) -> None:
        self.destination = destination
        self.file_format = file_format
        self.compression = compression
        self.prefix = prefix
        self.max_file_bytes = max_file_bytes
        self.schema = schema
        self.csv_formula_escaping = csv_formula_escaping
        self.checkpoint = checkpoint
        self.pages = pages
        self.row_group_bytes = row_group_bytes
        self.extension = part_extension(file_format, compression)
        self.parts: list[dict[str, Any]] = list(checkpoint.parts) if checkpoint is not None else []
        kept = {part["path"] for part in self.parts}
        self.stale = [name for name in destination.list(f"{prefix}/") if name not in kept]
        if self.parts:
            log.info("Resuming after %s committed part(s) under %s", len(self.parts), destination.child_uri(prefix))
        # Where each segment stands: the key its next page starts after, and items of that page already in parts.
        self.progress: dict[int, SegmentProgress] = checkpoint.scan_segments if checkpoint is not None else {}
        self.to_skip = {segment: state.skip_items for segment, state in self.progress.items() if state.skip_items}
        #: The page being written and the index of its next item to write; ``None`` once every page is written.
        self.current: tuple[ScanPage, int] | None = None

    def result(self) -> dict[str, Any]:
        """What :func:`export_pages` returns: the totals, the parts and the parts' schema."""
        result: dict[str, Any] = {
            "items": sum(part["items"] for part in self.parts),
            "bytes": sum(part["bytes"] for part in self.parts),
            "parts": self.parts,
        }
        if self.schema is not None:
            result["schema"] = self.schema.to_json()
        return result

    def next_page(self) -> tuple[ScanPage, int] | None:
        """The next page with items still to write, and the index of its first such item."""
        for page in self.pages:
            segment = page.segment or 0
            skip = self.to_skip.pop(segment, 0)
            if skip < len(page):
                return page, skip
            # Every item of this page is in committed parts already (or it has none).
            left = skip - len(page)
            if left:
                self.to_skip[segment] = left
            self.progress[segment] = SegmentProgress(page.last_evaluated_key, page.last_evaluated_key is None, left)
        return None

    def delete_stale(self) -> None:
        """Delete the files under the prefix that no kept part is (left by an earlier, failed attempt)."""
        if self.stale:
            log.info("Deleting %s file(s) left under %s", len(self.stale), self.destination.child_uri(self.prefix))
            self.destination.delete(self.stale)

    def write_part(self) -> None:
        """Write and commit the next part, from the current page on, until it is full or the pages end."""
        path = f"{self.prefix}/part-{len(self.parts):05d}{self.extension}"
        with self.destination.open_part(path) as part_file:
            encoder = open_encoder(
                self.file_format,
                part_file,
                compression=self.compression,
                schema=self.schema,
                csv_formula_escaping=self.csv_formula_escaping,
                where=self.destination.child_uri(path),
                row_group_bytes=self.row_group_bytes,
            )
            try:
                self._fill(encoder)
            except BaseException:
                # Released here, not by the garbage collector at some later moment (a Parquet writer's
                # finaliser then reports errors about a file that is long gone).
                encoder.discard()
                raise
            encoder.close()
        part = {
            "uri": self.destination.child_uri(path),
            "path": path,
            "items": encoder.items,
            "bytes": encoder.bytes_written,
        }
        self.parts.append(part)
        log.info("Wrote %s: %s items, %s bytes", part["uri"], part["items"], part["bytes"])
        self._record()

    def _fill(self, encoder: PartEncoder) -> None:
        while self.current is not None:
            page, offset = self.current
            # Pages read with fast decoding are transcoded from the wire shape, never decoded.
            wire = page.wire_items is not None
            items = page.wire_items if page.wire_items is not None else page.items
            offset += encoder.write_items(items[offset:] if offset else items, max_bytes=self.max_file_bytes, wire=wire)
            if offset < len(items):
                self.current = (page, offset)  # the part is full
                return
            segment = page.segment or 0
            self.progress[segment] = SegmentProgress(page.last_evaluated_key, page.last_evaluated_key is None)
            # Let go of the written page before the next is read, so that only one is held at a time.
            self.current = None
            del page, items
            self.current = self.next_page()

    def _record(self) -> None:
        if self.checkpoint is None:
            return
        if self.current is not None:
            # The part ended within this page: a retry reads it again and leaves out what parts hold.
            page, offset = self.current
            segment = page.segment or 0
            start = self.progress.get(segment, SegmentProgress()).last_evaluated_key
            self.progress[segment] = SegmentProgress(start, False, offset)
        self.checkpoint.scan_segments = self.progress
        self.checkpoint.parts = list(self.parts)
        write_checkpoint(self.destination, self.checkpoint)


def _check_schema(
    file_format: str,
    schema: ExportSchema | dict[str, Any] | None,
    columns: Sequence[str] | None,
    csv_formula_escaping: bool,
    checkpoint: ScanCheckpoint | None,
) -> ExportSchema | None:
    if csv_formula_escaping and file_format != "csv":
        raise InvalidScanArgumentError(
            f"csv_formula_escaping=True is not allowed with file_format={file_format!r}; it applies to csv only."
        )
    if schema is None:
        if uses_schema(file_format) and checkpoint is not None and checkpoint.parts:
            raise InvalidScanArgumentError(
                f"file_format={file_format!r}: resuming after committed parts needs the schema they were written "
                f"with (schema=...), so that every part of the export has the same columns."
            )
        return None
    if not uses_schema(file_format):
        raise InvalidScanArgumentError(
            f"schema is not allowed with file_format={file_format!r}; it applies to csv and parquet only."
        )
    parsed = parse_schema(schema)
    if columns is not None and parsed.names != list(columns):
        raise InvalidScanArgumentError(
            f"columns={list(columns)!r} and a schema with other columns are not allowed together; give the columns "
            f"in the schema."
        )
    return parsed
