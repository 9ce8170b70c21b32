"""Export a DynamoDB table, or one segment of it, to S3 or a local directory; commit the export with a manifest."""

from __future__ import annotations

import concurrent.futures
import itertools
import logging
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_dynamoscan.compat import AirflowFailException
from airflow_dynamoscan.exceptions import DestinationError, DynamoScanError, InvalidScanArgumentError
from airflow_dynamoscan.export.chain import WINDOW_FIELD, ExportWindow, check_window_commit
from airflow_dynamoscan.export.exporter import export_pages, segment_prefix
from airflow_dynamoscan.export.formats import needs_attribute_values, uses_schema, validate_columns, validate_format
from airflow_dynamoscan.export.manifest import MANIFEST_NAME, build_manifest, commit_export
from airflow_dynamoscan.export.schema import ExportSchema, key_column_types, parse_schema, plan_schema
from airflow_dynamoscan.export.transcode import schema_sample
from airflow_dynamoscan.links.dynamodb import DynamoDBTableLink, ExportDestinationLink, persist_links
from airflow_dynamoscan.operators.base import (
    SAME_AS_AWS_CONN_ID,
    AwsConnectionOperator,
    DynamoDBScanBaseOperator,
    open_export_destination,
)
from airflow_dynamoscan.scan.memory import CALLER_PAGES, memory_budget
from airflow_dynamoscan.scan.scanner import ScanPage
from airflow_dynamoscan.storage.checkpoints import (
    ResumePlan,
    ScanCheckpoint,
    delete_checkpoint,
    export_fingerprint,
    plan_resume,
)
from airflow_dynamoscan.storage.destinations import Destination, normalize_destination
from airflow_dynamoscan.storage.ownership import ExportIdentity, check_destination_owner, claim_destination

if TYPE_CHECKING:
    from airflow_dynamoscan.compat import Context

__all__ = [
    "DynamoDBExportManifestOperator",
    "DynamoDBExportOperator",
    "asset_event_extra",
    "open_export_destination",
    "sample_export_schema",
]

log = logging.getLogger(__name__)

#: Parts rotate when they reach this size, unless ``max_file_bytes`` says otherwise.
DEFAULT_MAX_FILE_BYTES = 256 * 1024**2

#: A planned schema is sampled from the first page(s) of each segment of a scan of this many segments ...
SCHEMA_SAMPLE_SEGMENTS = 4
#: ... reading at most this many pages (of at most 1 MB) in all, and at most two per segment.
SCHEMA_SAMPLE_PAGES = 8


def sample_export_schema(
    hook: Any,
    table_name: str,
    scan_kwargs: dict[str, Any] | None = None,
    *,
    columns: list[str] | None = None,
    max_memory_mb: int | None = None,
) -> ExportSchema:
    """
    Plan the schema of a CSV or Parquet export of ``table_name`` from a bounded sample of the table.

    The sample is the first page with items (of at most two) of each segment of a scan of
    :data:`SCHEMA_SAMPLE_SEGMENTS` segments, with the export's scan keywords (so a ``FilterExpression`` or
    ``ProjectionExpression`` shapes it as it shapes the export): at most :data:`SCHEMA_SAMPLE_PAGES` pages. It
    does not depend on the export's own segment count, so every task that samples an unchanged table plans the
    same schema; :func:`~airflow_dynamoscan.task_groups.dynamodb_parallel_export` samples once and gives the
    schema to every mapped task. The segments are read at once, by as many threads as half the memory budget's
    pages (at least two; each holds one page at a time).

    :param hook: a :class:`~airflow_dynamoscan.hooks.dynamodb_scan.DynamoDBScanHook`
    :param scan_kwargs: the export's scan keywords
    :param columns: the attributes to export (the others omitted), see
        :func:`~airflow_dynamoscan.export.schema.plan_schema`
    :param max_memory_mb: the memory budget (see :mod:`~airflow_dynamoscan.scan.memory`)
    """
    key_types = key_column_types(hook.describe_table(table_name))

    def sample_segment(segment: int) -> list[dict[str, Any]]:
        pages = hook.scan_segment_pages(
            table_name,
            segment,
            SCHEMA_SAMPLE_SEGMENTS,
            deserialize=True,
            log_summary=False,
            **dict(scan_kwargs or {}),
        )
        try:
            for _ in range(SCHEMA_SAMPLE_PAGES // SCHEMA_SAMPLE_SEGMENTS):
                page = next(pages, None)
                if page is None:
                    break
                if page.wire_items:
                    # What the values plan, without decoding them: a few small items.
                    return schema_sample(page.wire_items)
                if page.wire_items is None and page.items:
                    decoded: list[dict[str, Any]] = page.items
                    return decoded
        finally:
            close = getattr(pages, "close", None)
            if close is not None:
                close()
        return []

    # Each thread holds a parsed page at a time: no more pages at once than the budget holds beside the export's.
    threads = min(SCHEMA_SAMPLE_SEGMENTS, max(CALLER_PAGES, memory_budget(max_memory_mb).pages // 2))
    with concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="dynamoscan-schema-sample") as pool:
        samples = list(pool.map(sample_segment, range(SCHEMA_SAMPLE_SEGMENTS)))
    items = list(itertools.chain.from_iterable(samples))
    schema = plan_schema(items, columns=columns, key_types=key_types)
    if items:
        log.info(
            "Table %s: planned the export's schema from a sample (the first page with items of each of %s sample "
            "segments, read and then stopped): %s",
            table_name,
            SCHEMA_SAMPLE_SEGMENTS,
            ", ".join(f"{column.name} {column.type}" for column in schema.columns),
        )
    else:
        log.info(
            "Table %s: the schema sample found no items (an empty table, or a filter that matches nothing in the "
            "sample); the export's columns are the table's key attributes %s and %s",
            table_name,
            ", ".join(f"{column.name} {column.type}" for column in schema.columns) or "(not known)",
            schema.extra_column,
        )
    return schema


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _run_of(context: Any) -> str | None:
    """``dag_id/run_id/task_id`` of the running task: the same for its mapped instances and its tries."""
    task_instance = context.get("ti") if isinstance(context, Mapping) else None
    if task_instance is None:
        return None
    return f"{task_instance.dag_id}/{task_instance.run_id}/{task_instance.task_id}"


class DynamoDBExportOperator(DynamoDBScanBaseOperator):
    """
    Export every item of a DynamoDB table, or of one segment of it, as part files to S3 or a local directory.

    With ``segment`` and ``total_segments`` both ``None`` the whole table is read in this task by a parallel scan
    of ``max_workers`` threads. With both given (e.g. ``.partial(...).expand(segment=[0, 1, 2, 3])``) only that
    segment is read, so one mapped task instance per segment spreads a big table over the executor's workers.

    Parts are named deterministically, ``{destination}/segment-00003-of-00016/part-00000.jsonl.gz``, written
    aside and committed atomically, so readers never see half a part and a retried task overwrites its parts
    instead of adding to them. Numbers keep every digit in every format.

    :param table_name: the DynamoDB table (templated)
    :param destination: ``s3://bucket/prefix``, a local directory (absolute, relative or with ``~``) or
        ``file:///path`` (templated, e.g. ``s3://bucket/exports/{{ ds }}``); normalised once when the task starts
        (no trailing slash, an absolute path: see
        :func:`~airflow_dynamoscan.storage.destinations.normalize_destination`), and only that form is used,
        stored and returned
    :param file_format: ``"jsonl"`` (default), ``"dynamodb_json"``, ``"csv"`` or ``"parquet"``
    :param compression: ``"gzip"`` or ``None`` for the text formats; ``"snappy"`` (default), ``"zstd"``,
        ``"gzip"`` or ``"none"`` for Parquet
    :param segment: the segment to export, ``0 <= segment < total_segments`` (mappable)
    :param total_segments: the segment count of the mapped export; with ``segment=None``, the segment count of the
        in-task parallel scan (default: planned from the table's size, at least ``max_workers``)
    :param max_file_bytes: the largest size of a part file, compressed (default 256 MiB): parts rotate within a
        page too, so a part is within the limit unless it holds a single item larger than it
    :param columns: for CSV and Parquet, the attributes to export, in this order; the others are left out (as with
        a ``ProjectionExpression``). The columns' types are planned from a sample, as for ``schema=None``.
    :param schema: for CSV and Parquet, the export's schema, the same for every part of the export and recorded in
        the manifest: its JSON form (``{"columns": [{"name": "pk", "type": "string"}, ...], "extra_column":
        "_extra"}``, see :mod:`~airflow_dynamoscan.export.schema`). Default: planned from a bounded sample of the
        table (see :func:`sample_export_schema`); :func:`~airflow_dynamoscan.task_groups.dynamodb_parallel_export`
        plans it once and gives it to every mapped task. A value that does not fit its column, or an attribute
        without one, goes to the extra column ``_extra`` as JSON, never dropped.
    :param csv_formula_escaping: for CSV, put ``'`` in front of header names and string or binary cells that start
        with ``=``, ``+``, ``-``, ``@``, a tab, a carriage return or ``'``, so spreadsheets show them as text
        (remove one leading ``'`` to read the value back). Default ``False``: the values stay exactly as stored,
        as the programs that read exports expect; turn it on for files people open in a spreadsheet.
    :param overwrite: replace what the destination holds of another export: a complete one (``manifest.json``)
        or the unfinished export of another table, format, compression, segment count or Airflow run. Without it
        such a destination is refused before the scan. The other export stays readable until this one's first
        page arrives (then its manifest goes); its remaining files are deleted when this export is committed.
        Files that no export writes are never deleted: a destination holding them is refused either way (see
        :mod:`~airflow_dynamoscan.storage.ownership`).
    :param resume: a retry continues from the checkpoint the failed try left (``_checkpoints/`` at the
        destination, written after each part): it keeps the committed parts and reads only what they do not hold
        (default). ``False`` starts afresh.
    :param dest_aws_conn_id: the Airflow connection for an S3 destination (default: ``aws_conn_id``)
    :param max_memory_mb: memory for the pages the export holds and its Parquet row groups, in MB (default 64,
        at least 32): it caps the workers and pages in flight of a whole-table export (fewer workers read less at
        once) and sizes Parquet row groups (a quarter of it); see :mod:`~airflow_dynamoscan.scan.memory`

    ``scan_kwargs``, ``max_workers``, ``aws_conn_id``, ``region_name``, ``verify``, ``botocore_config`` and
    ``fast_decoding`` are those of :class:`~airflow_dynamoscan.operators.base.DynamoDBScanBaseOperator`.

    Returns (XCom) a small dict: ``table_name``, ``segment``, ``total_segments``, ``items``, ``bytes``,
    ``parts`` (URI, path and item count of each), ``destination`` (normalised), ``file_format``, ``compression``,
    ``dest_aws_conn_id`` (so that the manifest task uses the same connection) and the ``started_at``/``finished_at``
    times. A whole-table export reports itself as segment 0 of 1. Also ``retries``
    (requests sent again after throttling or transient errors) and ``consumed_read_capacity`` (RCU, or ``None``
    when not known), see :meth:`~airflow_dynamoscan.operators.base.DynamoDBScanBaseOperator.scan_statistics`.
    """

    template_fields: Sequence[str] = (
        "table_name",
        "destination",
        "file_format",
        "compression",
        "scan_kwargs",
        "columns",
        *DynamoDBScanBaseOperator.aws_template_fields,
        "dest_aws_conn_id",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"scan_kwargs": "json"}
    ui_color = "#4b7bec"
    operator_extra_links = (DynamoDBTableLink(), ExportDestinationLink())

    def __init__(
        self,
        *,
        table_name: str,
        destination: str,
        file_format: str = "jsonl",
        compression: str | None = None,
        segment: int | None = None,
        total_segments: int | None = None,
        max_file_bytes: int | None = DEFAULT_MAX_FILE_BYTES,
        columns: list[str] | None = None,
        schema: dict[str, Any] | None = None,
        csv_formula_escaping: bool = False,
        overwrite: bool = False,
        resume: bool = True,
        dest_aws_conn_id: str | None = SAME_AS_AWS_CONN_ID,
        max_memory_mb: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(table_name=table_name, segment=segment, total_segments=total_segments, **kwargs)
        self.destination = destination
        self.file_format = file_format
        self.compression = compression
        self.max_file_bytes = max_file_bytes
        self.columns = columns
        self.schema = schema
        self.csv_formula_escaping = csv_formula_escaping
        self.overwrite = overwrite
        self.resume = resume
        self.dest_aws_conn_id = self.connection_or_default(dest_aws_conn_id)
        self.max_memory_mb = max_memory_mb

    def execute(self, context: Context) -> dict[str, Any]:
        # First: a task that fails on its arguments still has its links, and Airflow finds the XCom it looks for.
        self._persist_links(context, self.destination)
        compression = validate_format(self.file_format, self.compression, table_name=self.table_name)
        segment, total_segments = self.validated_segment()
        scan_kwargs = self.validated_scan_kwargs()
        destination = self.open_destination(self.destination, self.dest_aws_conn_id)
        validate_columns(self.file_format, self.columns)
        memory_budget(self.max_memory_mb, self.table_name)
        schema = self._export_schema()
        # A whole-table export in one task is segment 0 of 1 of the export's layout, whatever its scan's count.
        exported_segment = 0 if segment is None else segment
        exported_total = 1 if segment is None or total_segments is None else total_segments
        identity = ExportIdentity(
            table_name=self.table_name,
            file_format=self.file_format,
            compression=compression,
            total_segments=exported_total,
            run=_run_of(context),
        )
        check_destination_owner(destination, identity, overwrite=self.overwrite)
        self.hook.describe_table(self.table_name)  # a missing table fails before anything is written
        if destination.uri != self.destination:
            self._persist_links(context, destination.uri)
        if schema is None and uses_schema(self.file_format):
            schema = sample_export_schema(
                self.hook, self.table_name, scan_kwargs, columns=self.columns, max_memory_mb=self.max_memory_mb
            )
        prefix = segment_prefix(exported_segment, exported_total, table_name=self.table_name)
        plan = self._plan_resume(destination, prefix, segment, total_segments, compression, scan_kwargs, schema)
        started_at = _now()
        self.log.info("Exporting table %s (segment %s of %s)", self.table_name, exported_segment, exported_total)
        self.log.info("Writing %s/%s as %s", destination.uri, prefix, self.file_format)
        pages = self.read_pages(
            segment,
            plan.total_segments,
            scan_kwargs,
            deserialize=not needs_attribute_values(self.file_format),
            start_keys=plan.start_keys,
            max_memory_mb=self.max_memory_mb,
        )
        written = self._write_parts(pages, destination, identity, plan.checkpoint, schema)
        delete_checkpoint(destination, prefix)
        return self._result(written, destination, identity, exported_segment, started_at)

    def _persist_links(self, context: Context, destination: str) -> None:
        persist_links(
            context,
            self,
            self.hook,
            (DynamoDBTableLink, {"table_name": self.table_name}),
            (ExportDestinationLink, {"destination": destination}),
        )

    def _plan_resume(
        self,
        destination: Destination,
        prefix: str,
        segment: int | None,
        total_segments: int | None,
        compression: str | None,
        scan_kwargs: dict[str, Any],
        schema: ExportSchema | None,
    ) -> ResumePlan:
        fingerprint = export_fingerprint(
            table_name=self.table_name,
            segment=segment,
            total_segments=total_segments,
            file_format=self.file_format,
            compression=compression,
            columns=self.columns,
            scan_kwargs=scan_kwargs,
            schema=None if schema is None else schema.to_json(),
            csv_formula_escaping=self.csv_formula_escaping,
        )
        plan = plan_resume(
            destination,
            prefix,
            fingerprint,
            segment=segment,
            total_segments=total_segments,
            plan_total_segments=lambda: self.planned_total_segments(total_segments),
            resume=self.resume,
        )
        if plan.resumed:
            self.log.info(
                "Resuming the export of table %s from its checkpoint: %s part(s) kept, %s segment(s) left to read",
                self.table_name,
                len(plan.checkpoint.parts),
                len(plan.start_keys or {}),
            )
        return plan

    def _write_parts(
        self,
        pages: Iterator[ScanPage],
        destination: Destination,
        identity: ExportIdentity,
        checkpoint: ScanCheckpoint,
        schema: ExportSchema | None,
    ) -> dict[str, Any]:
        return export_pages(
            pages,
            destination,
            file_format=self.file_format,
            compression=identity.compression,
            prefix=checkpoint.prefix,
            max_file_bytes=self.max_file_bytes,
            schema=schema,
            csv_formula_escaping=self.csv_formula_escaping,
            checkpoint=checkpoint,
            # Overwriting: the export is not complete again until the manifest task commits it.
            replaces=[MANIFEST_NAME] if self.overwrite else [],
            claim=lambda: claim_destination(destination, identity, overwrite=self.overwrite),
            max_memory_mb=self.max_memory_mb,
        )

    def _result(
        self,
        written: dict[str, Any],
        destination: Destination,
        identity: ExportIdentity,
        exported_segment: int,
        started_at: str,
    ) -> dict[str, Any]:
        self.log.info(
            "Exported %s items (%s bytes, %s parts) of table %s segment %s of %s",
            written["items"],
            written["bytes"],
            len(written["parts"]),
            self.table_name,
            exported_segment,
            identity.total_segments,
        )
        extra: dict[str, Any] = {}
        if "schema" in written:
            extra["schema"] = written["schema"]
        if self.file_format == "csv":
            extra["csv_formula_escaping"] = self.csv_formula_escaping
        return {
            "table_name": self.table_name,
            "segment": exported_segment,
            "total_segments": identity.total_segments,
            "items": written["items"],
            "bytes": written["bytes"],
            "parts": written["parts"],
            "destination": destination.uri,
            "file_format": self.file_format,
            "compression": identity.compression,
            "dest_aws_conn_id": self.dest_aws_conn_id,
            "started_at": started_at,
            "finished_at": _now(),
            **extra,
            **self.scan_statistics(),
        }

    def _export_schema(self) -> ExportSchema | None:
        """The schema given (checked), or ``None`` when it is to be planned or the format has none."""
        if self.csv_formula_escaping and self.file_format != "csv":
            raise InvalidScanArgumentError(
                f"Table {self.table_name!r}: csv_formula_escaping=True is not allowed with "
                f"file_format={self.file_format!r}; it applies to csv only."
            )
        if self.schema is None:
            return None
        if not uses_schema(self.file_format):
            raise InvalidScanArgumentError(
                f"Table {self.table_name!r}: schema is not allowed with file_format={self.file_format!r}; it applies "
                f"to csv and parquet only."
            )
        schema = parse_schema(self.schema, table_name=self.table_name)
        # The plan step of dynamodb_parallel_export gives the schema it planned for these columns.
        if self.columns is not None and schema.names != list(self.columns):
            raise InvalidScanArgumentError(
                f"Table {self.table_name!r}: columns={self.columns!r} and a schema with other columns are not allowed "
                f"together; give the columns in the schema."
            )
        return schema

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Lineage: the DynamoDB table in, the export's destination out (needs the OpenLineage provider)."""
        from airflow.providers.common.compat.openlineage.facet import Dataset
        from airflow.providers.openlineage.extractors import OperatorLineage

        return OperatorLineage(
            inputs=[dynamodb_dataset(self.hook, self.table_name, Dataset)],
            outputs=[destination_dataset(self.destination, Dataset)],
        )


def dynamodb_dataset(hook: Any, table_name: str, dataset_class: Any) -> Any:
    """The OpenLineage dataset of a DynamoDB table: namespace ``awsdynamodb://{region}``, name = the table."""
    return dataset_class(namespace=f"awsdynamodb://{hook.conn_region_name}", name=table_name)


def destination_dataset(destination: str, dataset_class: Any) -> Any:
    """The OpenLineage dataset of an export destination: ``s3://bucket`` + key prefix, or ``file`` + path."""
    destination = normalize_destination(destination)
    if destination.startswith("s3://"):
        bucket, _, prefix = destination[len("s3://") :].partition("/")
        return dataset_class(namespace=f"s3://{bucket}", name=prefix or "/")
    return dataset_class(namespace="file", name=destination)


def _materialize(results: Any) -> list[Any]:
    # An unmapped export returns one dict; a mapped one a lazy XCom sequence, which indexing up to its length
    # reads without probing past its end.
    if results is None:
        return []
    if isinstance(results, Mapping):
        return [results]
    if hasattr(results, "__len__") and hasattr(results, "__getitem__"):
        return [results[index] for index in range(len(results))]
    return list(results)


class DynamoDBExportManifestOperator(AwsConnectionOperator):
    """
    Commit an export: check that every segment reported exactly once, then write ``manifest.json`` last.

    The manifest lists every part with its item count and size, the totals, the format, the table and the scan's
    time window; its presence at the destination means "export complete". Fails, writing nothing, if a segment
    is missing, reported twice, or belongs to another table or segment count. Committing also deletes what is not
    the export's own (the parts of an export it overwrote, leftover checkpoints and the export's marker): the
    destination then holds exactly the manifest's parts and ``manifest.json``.

    :param results: the results of the export tasks, e.g. ``export.output`` of a mapped export, or the single
        dict of an unmapped one (templated, so an XComArg resolves at run time)
    :param destination: the export's destination, in any spelling the export accepts; default: the one the
        results name (templated)
    :param table_name: the exported table; default: the one the results name (templated)
    :param total_segments: the expected segment count; default: the one the results name
    :param dest_aws_conn_id: the Airflow connection for an S3 destination; default: the export's (the one its
        results name), else ``aws_conn_id``
    :param aws_conn_id: the connection of an S3 destination whose results name none (default ``aws_default``)
    :param verify: SSL verification for S3, as for the Amazon provider's operators

    With ``outlets=[Asset(...)]`` each asset gets one event when the manifest is written (a task that fails
    writes none); the event's ``extra`` is :func:`asset_event_extra` of the manifest: ``manifest`` (its URI),
    ``table_name``, ``file_format``, ``compression``, ``items``, ``bytes``, ``parts``, ``total_segments``,
    ``scan_started_at`` and ``scan_finished_at``. A DAG scheduled on the asset finds it in
    ``triggering_asset_events``.
    """

    template_fields: Sequence[str] = (
        "results",
        "destination",
        "table_name",
        "total_segments",
        "dest_aws_conn_id",
        *AwsConnectionOperator.aws_template_fields,
    )
    ui_color = "#20bf6b"

    def __init__(
        self,
        *,
        results: Any,
        destination: str | None = None,
        table_name: str | None = None,
        total_segments: int | None = None,
        dest_aws_conn_id: str | None = SAME_AS_AWS_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.results = results
        self.destination = destination
        self.table_name = table_name
        self.total_segments = total_segments
        # Not given: the export's connection, which its results name (a sentinel is no value for a template field).
        self.connection_from_results = dest_aws_conn_id is SAME_AS_AWS_CONN_ID
        self.dest_aws_conn_id = None if self.connection_from_results else dest_aws_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        results = [dict(result) for result in _materialize(self.results) if result is not None]
        if not results:
            raise InvalidScanArgumentError(
                f"Table {self.table_name!r}: no export results reached the manifest task; nothing to commit."
            )
        first = results[0]
        table_name = self.table_name or first["table_name"]
        destination_uri: Any = first.get("destination") if self.destination is None else self.destination
        total_segments = self.total_segments or first["total_segments"]
        dest_aws_conn_id = (
            first.get("dest_aws_conn_id", self.aws_conn_id) if self.connection_from_results else self.dest_aws_conn_id
        )
        manifest = build_manifest(
            results,
            table_name=table_name,
            destination_uri=destination_uri,
            file_format=str(first.get("file_format", "jsonl")),
            compression=first.get("compression"),
            total_segments=total_segments,
            started_at=None,
            finished_at=None,
        )
        destination = self.open_destination(manifest["destination"], dest_aws_conn_id)
        if manifest.get(WINDOW_FIELD):
            self._check_chain(manifest[WINDOW_FIELD], dest_aws_conn_id)
        manifest_uri = commit_export(destination, manifest)
        extra = asset_event_extra(manifest, manifest_uri)
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = extra
        parts = extra["parts"]
        self.log.info(
            "Export of table %s complete: %s items, %s bytes, %s parts in %s segments; manifest %s",
            table_name,
            manifest["items"],
            manifest["bytes"],
            parts,
            total_segments,
            manifest_uri,
        )
        return {
            "table_name": table_name,
            "manifest": manifest_uri,
            "items": manifest["items"],
            "bytes": manifest["bytes"],
            "parts": parts,
            "total_segments": total_segments,
        }

    def _check_chain(self, window: dict[str, Any], conn_id: str | None) -> None:
        """Refuse to commit a window of a chain that does not start where the chain ends (another run's)."""
        try:
            chain = self.open_destination(window["chain"], conn_id)
            check_window_commit(chain, ExportWindow.from_dict(window, "the export results"))
        except DestinationError:
            raise  # may be transient (S3)
        except DynamoScanError as error:
            raise AirflowFailException(f"Table {self.table_name or window.get('chain')!r}: {error}") from error


def asset_event_extra(manifest: dict[str, Any], manifest_uri: str) -> dict[str, Any]:
    """
    Return the ``extra`` of the asset event of a committed export: what a consumer needs to find and check it.

    :param manifest: the manifest, as :func:`~airflow_dynamoscan.export.manifest.build_manifest` returns it
    :param manifest_uri: where the manifest was written
    :return: ``manifest`` (the URI), ``table_name``, ``destination``, ``file_format``, ``compression``, ``items``,
        ``bytes``, ``parts``, ``total_segments``, ``scan_started_at`` and ``scan_finished_at``; never item data.
    """
    return {
        "manifest": manifest_uri,
        "table_name": manifest["table_name"],
        "destination": manifest["destination"],
        "file_format": manifest["file_format"],
        "compression": manifest["compression"],
        "items": manifest["items"],
        "bytes": manifest["bytes"],
        "parts": manifest["part_count"],
        "total_segments": manifest["total_segments"],
        "scan_started_at": manifest["scan_started_at"],
        "scan_finished_at": manifest["scan_finished_at"],
    }
