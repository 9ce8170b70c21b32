"""
An Apache Iceberg table kept equal to a DynamoDB table: loaded once, then merged window by window.

A :class:`IcebergMirror` is one table of one catalog. Every change to it is one commit of one Iceberg
transaction, and every commit records in its snapshot summary what it applied (:data:`SUMMARY_PREFIX` properties):
the operation (``load``, ``merge``, ``replace``), the window ``[start, end)`` and the export's ARN. That record is
the chain state: the next incremental window starts where the last applied one ended (:meth:`IcebergMirror.applied`
walks back from the current snapshot to the last one carrying it, past compactions by other writers). So:

* a retried or re-run commit whose window is already applied does nothing (exactly once);
* a window that does not start where the last one ended is refused (:class:`WindowOrderError`): windows are
  applied strictly in order, with no gap and no overlap;
* two commits racing on one table: the loser's commit fails with pyiceberg's ``CommitFailedException``; it reloads
  the table and starts again, finding the window applied (nothing to do) or its start moved (refused). pyiceberg's
  own rebase-and-retry is turned off on mirrors (``commit.retry.num-retries=0``), since rebasing an append would
  apply it twice;
* a process killed before or during the commit leaves the table at its last snapshot (the catalog swaps the
  metadata pointer atomically); data files it wrote are referenced by no snapshot: :meth:`IcebergMirror.orphan_files`
  lists them, :meth:`IcebergMirror.remove_orphan_files` deletes them.

A merge applies the net change of a window per key (:func:`~airflow_dynamoscan.export.native.fold_changes`): the
changed keys are deleted and their new images appended, in one transaction (pyiceberg's copy-on-write delete
rewrites the data files holding them, then the append adds one new file set).
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from airflow_dynamoscan.exceptions import DynamoScanError, InvalidScanArgumentError
from airflow_dynamoscan.export.native import MAX_INCREMENTAL_WINDOW, MIN_INCREMENTAL_WINDOW, FoldedChanges
from airflow_dynamoscan.export.schema import decimal_parameters
from airflow_dynamoscan.iceberg.schema import (
    LAYOUT_PROPERTY,
    MirrorLayout,
    arrow_rows,
    iceberg_schema,
    iceberg_type,
    key_rows,
    new_columns,
    with_columns,
)

log = logging.getLogger(__name__)

#: The prefix of the snapshot summary properties a mirror's commits record.
SUMMARY_PREFIX = "dynamoscan."
OPERATION_PROPERTY = "dynamoscan.operation"
WINDOW_START_PROPERTY = "dynamoscan.window-start"
WINDOW_END_PROPERTY = "dynamoscan.window-end"
EXPORT_ARN_PROPERTY = "dynamoscan.export-arn"
SOURCE_TABLE_PROPERTY = "dynamoscan.source-table"

#: What a commit may do: the first load, a merge of an incremental window, a full replacement.
OPERATIONS = ("load", "merge", "replace")

#: The folder, under a table's data location, of the Parquet files a load stages before its commit.
STAGING_FOLDER = "dynamoscan-staging"

DEFAULT_COMMIT_ATTEMPTS = 8
DEFAULT_ORPHAN_AGE = timedelta(hours=6)


class WindowOrderError(DynamoScanError):
    """A commit that would skip, overlap or repeat part of the mirror's chain of windows."""


@dataclass(frozen=True)
class Window:
    """
    What one commit applies.

    :param end: the moment the mirror is equal to the table as of: an incremental window's end, a full export's
        export time, or the time a scan started
    :param start: an incremental window's start (``None`` for a load or a replacement)
    :param export_arn: the native export the rows came from, if any
    """

    end: datetime
    start: datetime | None = None
    export_arn: str | None = None

    def properties(self, operation: str, source_table: str) -> dict[str, str]:
        """The snapshot summary properties recording this window."""
        properties = {
            OPERATION_PROPERTY: operation,
            WINDOW_END_PROPERTY: _iso(self.end),
            SOURCE_TABLE_PROPERTY: source_table,
        }
        if self.start is not None:
            properties[WINDOW_START_PROPERTY] = _iso(self.start)
        if self.export_arn:
            properties[EXPORT_ARN_PROPERTY] = self.export_arn
        return properties


@dataclass(frozen=True)
class AppliedWindow:
    """The last window a mirror applied, as its snapshot summary records it."""

    operation: str
    end: datetime
    start: datetime | None
    export_arn: str | None
    snapshot_id: int

    def same_as(self, operation: str, window: Window) -> bool:
        """Whether this records exactly ``window`` applied by ``operation``."""
        return (self.operation, self.end, self.start, self.export_arn or None) == (
            operation,
            window.end,
            window.start,
            window.export_arn or None,
        )


@dataclass(frozen=True)
class CommitResult:
    """
    What one commit did (or found already done).

    :ivar rows_added: rows appended for new or changed items
    :ivar rows_deleted: keys deleted (items deleted in the window)
    :ivar rows_rewritten: rows copied into new data files by the copy-on-write delete (unchanged rows of files
        that held a changed key)
    :ivar bytes_written: bytes of the data files the commit added (its rows and the rewritten ones)
    :ivar already_applied: the window was applied by an earlier commit; this one did nothing
    """

    catalog: str
    table: str
    operation: str
    snapshot_id: int | None
    window_start: str | None
    window_end: str
    export_arn: str | None
    rows_added: int
    rows_deleted: int
    rows_rewritten: int
    bytes_written: int
    already_applied: bool
    attempts: int

    def as_dict(self) -> dict[str, Any]:
        """A small JSON-compatible dict (for XCom and asset events)."""
        return asdict(self)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat()


def _parse_time(text: str | None) -> datetime | None:
    return None if not text else datetime.fromisoformat(text).astimezone(timezone.utc)


def applied_window(table: Any) -> AppliedWindow | None:
    """
    The last window applied to ``table``: the newest snapshot, from the current one back through its parents, whose
    summary records one; ``None`` when no commit of a mirror ever landed.
    """
    snapshot = table.current_snapshot()
    while snapshot is not None:
        summary = snapshot.summary
        operation = summary.get(OPERATION_PROPERTY) if summary is not None else None
        if operation is not None and summary is not None:
            end = _parse_time(summary.get(WINDOW_END_PROPERTY))
            assert end is not None
            return AppliedWindow(
                operation=operation,
                end=end,
                start=_parse_time(summary.get(WINDOW_START_PROPERTY)),
                export_arn=summary.get(EXPORT_ARN_PROPERTY),
                snapshot_id=snapshot.snapshot_id,
            )
        parent = snapshot.parent_snapshot_id
        snapshot = table.snapshot_by_id(parent) if parent is not None else None
    return None


def next_window(
    applied: AppliedWindow | None,
    now: datetime,
    *,
    max_length: timedelta = MAX_INCREMENTAL_WINDOW,
    min_length: timedelta = MIN_INCREMENTAL_WINDOW,
) -> tuple[datetime, datetime] | None:
    """
    The next incremental window after ``applied``: from its end to ``now`` (a run's hint of where to stop), at most
    ``max_length`` long; ``None`` when it would be shorter than ``min_length`` (nothing to do yet).

    :raises WindowOrderError: nothing was applied yet (the mirror needs its load first).
    """
    if applied is None:
        raise WindowOrderError("The mirror has no load yet: load the table before merging incremental windows.")
    start = applied.end
    end = min(now.astimezone(timezone.utc), start + max_length)
    if end - start < min_length:
        return None
    return start, end


def _balanced(operator: Callable[[Any, Any], Any], terms: Sequence[Any]) -> Any:
    """Combine ``terms`` into a tree of depth log2(n), so pyiceberg's recursive visitors stay shallow."""
    if len(terms) == 1:
        return terms[0]
    middle = len(terms) // 2
    return operator(_balanced(operator, terms[:middle]), _balanced(operator, terms[middle:]))


def key_filter(layout: MirrorLayout, keys: Sequence[tuple[Any, ...]]) -> Any:
    """
    The row filter matching exactly ``keys`` (cells in the layout's key order): ``In(pk, ...)`` for a partition
    key alone, else ``In(pk, ...)`` (for file pruning) and an ``Or`` of ``pk = .. and sk = ..``.
    """
    from pyiceberg import expressions

    # pyiceberg's expressions are pydantic models whose positional constructors mypy does not see.
    And: Any = expressions.And
    EqualTo: Any = expressions.EqualTo
    In: Any = expressions.In
    Or: Any = expressions.Or
    names = layout.keys
    partition_values = {key[0] for key in keys}
    partition_filter = In(names[0], partition_values) if len(partition_values) > 1 else EqualTo(names[0], keys[0][0])
    if len(names) == 1:
        return partition_filter
    pairs = [And(EqualTo(names[0], key[0]), EqualTo(names[1], key[1])) for key in keys]
    return And(partition_filter, _balanced(Or, pairs))


class IcebergMirror:
    """
    The Iceberg mirror of one DynamoDB table: one table of a pyiceberg catalog.

    :param catalog: a pyiceberg catalog (see :func:`~airflow_dynamoscan.iceberg.catalog.open_catalog`)
    :param identifier: the table's identifier, ``"namespace.table"``
    :param source_table: the DynamoDB table, named in errors and recorded in every commit
    :param commit_attempts: how often a commit that lost a race is tried again
    :param retry_wait: seconds before the first new attempt (doubling, with jitter)
    """

    def __init__(
        self,
        catalog: Any,
        identifier: str,
        *,
        source_table: str,
        commit_attempts: int = DEFAULT_COMMIT_ATTEMPTS,
        retry_wait: float = 0.2,
    ) -> None:
        if not isinstance(identifier, str) or "." not in identifier.strip("."):
            raise InvalidScanArgumentError(
                f"Table {source_table!r}: table_identifier={identifier!r} is not allowed; name the Iceberg table as "
                "'namespace.table'."
            )
        self.catalog = catalog
        self.identifier = identifier
        self.source_table = source_table
        self.commit_attempts = commit_attempts
        self.retry_wait = retry_wait

    # -- the table ------------------------------------------------------------------------------------------------

    def exists(self) -> bool:
        """Whether the Iceberg table exists."""
        return bool(self.catalog.table_exists(self.identifier))

    def table(self) -> Any:
        """The table, as the catalog has it now."""
        return self.catalog.load_table(self.identifier)

    def create(
        self,
        layout: MirrorLayout,
        *,
        bucket_count: int | None = None,
        location: str | None = None,
        properties: Mapping[str, str] | None = None,
    ) -> Any:
        """
        Create the table (and its namespace) for ``layout``, unless it exists; return it.

        A table that exists is kept as it is (its own layout wins), so tasks racing to create it agree.

        :param bucket_count: partition by ``bucket(bucket_count, partition key)``, so a merge rewrites only the
            data files of the buckets holding changed keys; ``None``: unpartitioned
        :param location: the table's location (default: the catalog's warehouse)
        :param properties: more table properties
        """
        from pyiceberg.exceptions import NamespaceAlreadyExistsError, TableAlreadyExistsError
        from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC, PartitionField, PartitionSpec
        from pyiceberg.transforms import BucketTransform

        if bucket_count is not None and (not isinstance(bucket_count, int) or bucket_count < 1):
            raise InvalidScanArgumentError(
                f"Table {self.source_table!r}: bucket_count={bucket_count!r} is not allowed; give an integer >= 1 "
                "or None (unpartitioned)."
            )
        if self.exists():
            return self.table()
        namespace = self.identifier.rsplit(".", 1)[0]
        with contextlib.suppress(NamespaceAlreadyExistsError):  # created by a task racing this one
            self.catalog.create_namespace_if_not_exists(namespace)
        schema = iceberg_schema(layout)
        spec = UNPARTITIONED_PARTITION_SPEC
        if bucket_count is not None:
            source = schema.find_field(layout.keys[0])
            spec = PartitionSpec(
                PartitionField(
                    source_id=source.field_id,
                    field_id=1000,
                    transform=BucketTransform(bucket_count),
                    name=f"{layout.keys[0]}_bucket",
                )
            )
        table_properties = {
            LAYOUT_PROPERTY: layout.to_json(),
            # A rebased retry of an append would apply it twice; this class retries by starting over instead.
            "commit.retry.num-retries": "0",
            **(properties or {}),
        }
        try:
            table = self.catalog.create_table(
                self.identifier,
                schema=schema,
                location=location,
                partition_spec=spec,
                properties=table_properties,
            )
        except TableAlreadyExistsError:
            return self.table()
        log.info("Created the Iceberg table %s for table %s", self.identifier, self.source_table)
        return table

    def layout(self, table: Any | None = None) -> MirrorLayout:
        """
        The layout the table was created with.

        :raises WindowOrderError: the table is not a mirror (it has no layout property).
        """
        table = table if table is not None else self.table()
        text = table.properties.get(LAYOUT_PROPERTY)
        if not text:
            raise WindowOrderError(
                f"The Iceberg table {self.identifier} has no {LAYOUT_PROPERTY!r} property: it was not created as "
                f"the mirror of table {self.source_table!r}; name another table or create it with the mirror."
            )
        return MirrorLayout.from_json(text)

    def applied(self) -> AppliedWindow | None:
        """The last window applied (see :func:`applied_window`); ``None`` if the table is missing or not loaded."""
        if not self.exists():
            return None
        return applied_window(self.table())

    def arrow_schema(self, table: Any | None = None, *, field_ids: bool = True) -> Any:
        """The table's Arrow schema; ``field_ids=False`` drops the field ids, as files for ``add_files`` need."""
        import pyarrow as pa

        schema = (table if table is not None else self.table()).schema().as_arrow()
        if field_ids:
            return schema
        return pa.schema([field.remove_metadata() for field in schema])

    # -- staging (the mapped load tasks) --------------------------------------------------------------------------

    def staging_location(self, load_id: str, table: Any | None = None) -> str:
        """Where a load stages its Parquet files: ``{table location}/data/dynamoscan-staging/{load_id}``."""
        location = str((table if table is not None else self.table()).location()).rstrip("/")
        return f"{location}/data/{STAGING_FOLDER}/{load_id}"

    def stage_items(self, items: Iterable[Mapping[str, Any]], *, load_id: str, name: str) -> dict[str, Any]:
        """
        Write items as one Parquet file of the table's schema in the load's staging folder, for
        :meth:`commit_load`; a file of the same name (a retried task) is replaced.

        :return: ``{"path": ..., "rows": ..., "bytes": ...}``; ``path`` is ``None`` when there were no items.
        """
        import pyarrow.parquet as pq

        table = self.table()
        layout = self.layout(table)
        rows = arrow_rows(
            layout, self.arrow_schema(table, field_ids=False), items, where=f"Table {self.source_table!r}"
        )
        if rows.num_rows == 0:
            return {"path": None, "rows": 0, "bytes": 0}
        path = f"{self.staging_location(load_id, table)}/{name}.parquet"
        with table.io.new_output(path).create(overwrite=True) as stream:
            pq.write_table(rows, stream, compression="zstd")  # as pyiceberg writes its own files
        size = len(table.io.new_input(path))
        log.info("Staged %s rows of table %s in %s (%s bytes)", rows.num_rows, self.source_table, path, size)
        return {"path": path, "rows": rows.num_rows, "bytes": size}

    # -- commits --------------------------------------------------------------------------------------------------

    def load(
        self, window: Window, *, paths: Sequence[str] = (), rows: Any | None = None, replace: bool = False
    ) -> CommitResult:
        """
        Commit a whole table in one transaction: staged Parquet files (``paths``, from :meth:`stage_items`) and/or
        an Arrow table of rows (``rows``).

        The first load needs a table without a load; ``replace=True`` replaces the table's contents instead (a
        full scan of a table without point-in-time recovery), always allowed after a load, never twice for the
        same ``window``. A partitioned table reads the staged files and appends their rows (``add_files`` cannot
        tell the bucket of a file), an unpartitioned one adds the files as they are.

        :raises WindowOrderError: a load (not a replacement) of a table already loaded from another window.
        """
        operation = "replace" if replace else "load"
        staged = [str(path) for path in paths if path]

        def build(table: Any, transaction: Any, properties: dict[str, str]) -> tuple[int, int]:
            import pyarrow as pa
            import pyarrow.parquet as pq
            from pyiceberg.expressions import AlwaysTrue

            if replace and table.current_snapshot() is not None:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    transaction.delete(AlwaysTrue(), snapshot_properties=properties)
            added = 0
            parts: list[Any] = [] if rows is None else [rows]
            if staged and table.spec().is_unpartitioned():
                transaction.add_files(staged, snapshot_properties=properties)
                for path in staged:
                    with table.io.new_input(path).open() as stream:
                        added += pq.ParquetFile(stream).metadata.num_rows
            else:
                for path in staged:
                    with table.io.new_input(path).open() as stream:
                        parts.append(pq.read_table(stream))
            schema = self.arrow_schema(table)
            if parts or not staged:
                combined = pa.concat_tables([part.cast(schema) for part in parts]) if parts else schema.empty_table()
                transaction.append(combined, snapshot_properties=properties)
                added += combined.num_rows
            return added, 0

        return self._commit(operation, window, build)

    def merge(self, changes: FoldedChanges, window: Window) -> CommitResult:
        """
        Apply the net changes of one incremental window in one transaction: delete every changed key, append the
        new images; a new attribute adds a column first (``new_attributes="evolve"``) or goes to the extra column.

        A quiet window (no changes) still commits an empty snapshot, recording that the window was applied.

        :raises WindowOrderError: ``window.start`` is not where the last applied window ended.
        """
        if window.start is None:
            raise InvalidScanArgumentError(f"Table {self.source_table!r}: a merged window needs its start.")
        where = f"Table {self.source_table!r}"

        def build(table: Any, transaction: Any, properties: dict[str, str]) -> tuple[int, int]:
            layout = self.layout(table)
            added_columns = new_columns(layout, changes.upserts)
            if added_columns:
                with transaction.update_schema() as update:
                    for column in added_columns:
                        update.add_column(column.name, iceberg_type(column.type))
                layout = with_columns(layout, added_columns)
                transaction.set_properties({LAYOUT_PROPERTY: layout.to_json()})
                log.info("Table %s: new columns %s", self.identifier, [column.name for column in added_columns])
            keys = _unique(key_rows(layout, [*changes.deletes, *changes.upserts], where=where), _decimal_scales(layout))
            if keys and table.current_snapshot() is not None:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # "did not match any records": new keys only
                    transaction.delete(key_filter(layout, keys), snapshot_properties=properties)
            schema = transaction.table_metadata.schema().as_arrow()
            rows = arrow_rows(layout, schema, changes.upserts, where=where)
            transaction.append(rows, snapshot_properties=properties)
            return rows.num_rows, len(changes.deletes)

        return self._commit("merge", window, build)

    def _check_order(self, operation: str, applied: AppliedWindow | None, window: Window) -> None:
        if operation == "load" and applied is not None:
            raise WindowOrderError(
                f"The Iceberg table {self.identifier} already holds a load of table {self.source_table!r} (as of "
                f"{_iso(applied.end)}); merge incremental windows into it, or replace its contents."
            )
        if operation == "merge":
            if applied is None:
                raise WindowOrderError(
                    f"The Iceberg table {self.identifier} has no load of table {self.source_table!r} yet: load it "
                    "before merging incremental windows."
                )
            assert window.start is not None
            if window.start != applied.end:
                raise WindowOrderError(
                    f"Table {self.source_table!r}: the window {_iso(window.start)} to {_iso(window.end)} does not "
                    f"start where the last applied one ended ({_iso(applied.end)}, snapshot {applied.snapshot_id}); "
                    "windows are applied strictly in order."
                )
        if operation == "replace" and applied is not None and window.end <= applied.end:
            raise WindowOrderError(
                f"Table {self.source_table!r}: a replacement as of {_iso(window.end)} is not newer than the table's "
                f"last applied window ({_iso(applied.end)})."
            )

    def _commit(
        self, operation: str, window: Window, build: Callable[[Any, Any, dict[str, str]], tuple[int, int]]
    ) -> CommitResult:
        """Commit ``build``'s transaction once, unless its window is applied; start over after a lost race."""
        from pyiceberg.exceptions import CommitFailedException

        properties = window.properties(operation, self.source_table)
        for attempt in range(1, self.commit_attempts + 1):
            table = self.table()
            applied = applied_window(table)
            if applied is not None and applied.same_as(operation, window):
                log.info(
                    "Table %s: the %s of %s is already applied (snapshot %s); nothing to do",
                    self.identifier,
                    operation,
                    _iso(window.end),
                    applied.snapshot_id,
                )
                return self._result(operation, window, applied.snapshot_id, (0, 0), None, attempt, True)
            self._check_order(operation, applied, window)
            base = table.current_snapshot()
            transaction = table.transaction()
            counts = build(table, transaction, properties)
            try:
                committed = transaction.commit_transaction()
            except CommitFailedException as error:
                if attempt == self.commit_attempts:
                    raise
                wait = self.retry_wait * 2 ** (attempt - 1) * (1 + 0.1 * (uuid.uuid4().int % 10) / 10)
                log.warning(
                    "Table %s: commit attempt %s lost a race (%s); starting over in %.2f s",
                    self.identifier,
                    attempt,
                    error,
                    wait,
                )
                time.sleep(wait)
                continue
            snapshot = committed.current_snapshot()
            result = self._result(operation, window, snapshot.snapshot_id, counts, (committed, base), attempt, False)
            log.info(
                "Table %s: committed the %s of %s as snapshot %s (%s rows added, %s deleted, %s rewritten)",
                self.identifier,
                operation,
                _iso(window.end),
                result.snapshot_id,
                result.rows_added,
                result.rows_deleted,
                result.rows_rewritten,
            )
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _result(
        self,
        operation: str,
        window: Window,
        snapshot_id: int | None,
        counts: tuple[int, int],
        tables: tuple[Any, Any] | None,
        attempts: int,
        already_applied: bool,
    ) -> CommitResult:
        written = rewritten = 0
        if tables is not None:
            committed, base = tables
            base_id = base.snapshot_id if base is not None else None
            snapshot = committed.current_snapshot()
            while snapshot is not None and snapshot.snapshot_id != base_id:
                summary = snapshot.summary
                written += int(summary.get("added-files-size") or 0) if summary is not None else 0
                rewritten += int(summary.get("added-records") or 0) if summary is not None else 0
                parent = snapshot.parent_snapshot_id
                snapshot = committed.snapshot_by_id(parent) if parent is not None else None
            rewritten -= counts[0]
        return CommitResult(
            catalog=str(getattr(self.catalog, "name", "")),
            table=self.identifier,
            operation=operation,
            snapshot_id=snapshot_id,
            window_start=_iso(window.start) if window.start is not None else None,
            window_end=_iso(window.end),
            export_arn=window.export_arn,
            rows_added=counts[0],
            rows_deleted=counts[1],
            rows_rewritten=max(rewritten, 0),
            bytes_written=written,
            already_applied=already_applied,
            attempts=attempts,
        )

    # -- maintenance ----------------------------------------------------------------------------------------------

    def orphan_files(self, *, older_than: timedelta = DEFAULT_ORPHAN_AGE) -> list[str]:
        """
        The data files under the table's data folder that no snapshot references and that are older than
        ``older_than`` (younger ones may belong to a commit still running): what failed or killed attempts left.

        Staged load files count once their load is committed or abandoned.
        """
        from pyarrow import fs as pafs

        table = self.table()
        referenced = {_path_of(path) for path in table.inspect.all_files().column("file_path").to_pylist()}
        location = str(table.location()).rstrip("/") + "/data"
        io = table.io
        if hasattr(io, "fs_by_scheme") and hasattr(io, "parse_location"):
            # The table's own file system, with the catalog's credentials (s3.* properties).
            scheme, netloc, root = io.parse_location(location)
            filesystem = io.fs_by_scheme(scheme, netloc)
        else:
            filesystem, root = (
                pafs.FileSystem.from_uri(location) if "://" in location else (pafs.LocalFileSystem(), location)
            )
        try:
            infos = filesystem.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
        except FileNotFoundError:
            return []
        limit = datetime.now(timezone.utc) - older_than
        orphans = []
        for info in infos:
            if info.type != pafs.FileType.File or _path_of(info.path) in referenced:
                continue
            modified = info.mtime
            if modified is not None and modified.replace(tzinfo=modified.tzinfo or timezone.utc) > limit:
                continue
            orphans.append(location + info.path[len(root.rstrip("/")) :] if info.path.startswith(root) else info.path)
        return sorted(orphans)

    def remove_orphan_files(self, *, older_than: timedelta = DEFAULT_ORPHAN_AGE) -> list[str]:
        """Delete the files :meth:`orphan_files` lists; return them."""
        table = self.table()
        orphans = self.orphan_files(older_than=older_than)
        for path in orphans:
            table.io.delete(path)
        log.info("Table %s: removed %s orphan data files", self.identifier, len(orphans))
        return orphans


def _path_of(location: str) -> str:
    """A file's location without its scheme (``file:///a/b`` and ``/a/b`` compare equal; ``s3://b/k`` -> ``b/k``)."""
    return location.split("://", 1)[1].lstrip("/") if "://" in location else location.lstrip("/")


def _decimal_scales(layout: MirrorLayout) -> list[int | None]:
    scales: list[int | None] = []
    columns = {column.name: column.type for column in layout.schema.columns}
    for name in layout.keys:
        column_type = columns[name]
        scales.append(decimal_parameters(column_type)[1] if column_type.startswith("decimal") else None)
    return scales


def _unique(keys: list[tuple[Any, ...]], scales: list[int | None]) -> list[tuple[Any, ...]]:
    """Distinct keys, decimals at their column's scale (as Iceberg compares them)."""
    seen: dict[tuple[Any, ...], None] = {}
    for key in keys:
        normalised = tuple(
            Decimal(cell).quantize(Decimal(1).scaleb(-scale)) if scale is not None else cell
            for cell, scale in zip(key, scales, strict=True)
        )
        seen.setdefault(normalised, None)
    return list(seen)


__all__ = [
    "DEFAULT_COMMIT_ATTEMPTS",
    "OPERATIONS",
    "SUMMARY_PREFIX",
    "AppliedWindow",
    "CommitResult",
    "IcebergMirror",
    "Window",
    "WindowOrderError",
    "applied_window",
    "key_filter",
    "next_window",
]
