"""
dynamodb_to_iceberg(): an Apache Iceberg table kept equal to a DynamoDB table, as a TaskGroup that each run of a
scheduled DAG moves forward: the first run loads the table, every later run merges the next incremental window.

The engine is :mod:`airflow_dynamoscan.iceberg`; the tasks here only plan, scan or read exports, and commit.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from airflow_dynamoscan.compat import AirflowFailException, TaskGroup, get_current_context, task
from airflow_dynamoscan.exceptions import InvalidScanArgumentError, SchemaMismatchError, TableNotFoundError
from airflow_dynamoscan.export.native import (
    MAX_INCREMENTAL_WINDOW,
    MIN_INCREMENTAL_WINDOW,
    NativeExportError,
    utc_datetime,
)
from airflow_dynamoscan.hooks.dynamodb_scan import DynamoDBScanHook
from airflow_dynamoscan.iceberg.schema import check_new_attributes
from airflow_dynamoscan.operators.dynamodb_native_export import DynamoDBNativeExportOperator
from airflow_dynamoscan.task_groups import DEFAULT_MAX_MAPPED_SEGMENTS, GROUP_TASK_PARAMETERS, plan_export_segments

#: What a run does: ``incremental`` (load once, then merge incremental native exports: needs point-in-time
#: recovery) or ``replace`` (every run scans the whole table and replaces the mirror's contents).
MODES = ("incremental", "replace")

#: How the first load reads the table: a parallel scan (mapped segments) or a native full export.
LOAD_METHODS = ("scan", "native")

#: Rows per staged Parquet file of a load.
DEFAULT_ROWS_PER_FILE = 250_000

_SAMPLE_PAGES = 2

log = logging.getLogger(__name__)


def _fail_fast(error: Exception) -> AirflowFailException:
    failure = AirflowFailException(str(error))
    failure.__cause__ = error
    return failure


def _run_hint(window_end: str | datetime | None) -> datetime:
    """Where this run should end: ``window_end`` if given, else the run's data interval end, else now; never later
    than now."""
    now = datetime.now(timezone.utc)
    if window_end not in (None, ""):
        assert window_end is not None
        return min(utc_datetime(window_end, "window_end"), now)
    context: Any = get_current_context()
    value = context.get("data_interval_end")
    if value is None:
        dag_run = context.get("dag_run")
        value = getattr(dag_run, "run_after", None) or getattr(dag_run, "logical_date", None)
    return now if value is None else min(utc_datetime(value, "data_interval_end"), now)


def _load_id(as_of: datetime) -> str:
    context: Any = get_current_context()
    run_id = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(context.get("run_id") or "run"))
    return f"{as_of.strftime('%Y%m%dT%H%M%S')}-{run_id}"[:120]


def _key_schema(hook: DynamoDBScanHook, table_name: str) -> list[dict[str, str]]:
    description = hook.describe_table(table_name)
    types = {item["AttributeName"]: item["AttributeType"] for item in description["AttributeDefinitions"]}
    ordered = sorted(description["KeySchema"], key=lambda key: key["KeyType"] != "HASH")
    return [{"AttributeName": key["AttributeName"], "AttributeType": types[key["AttributeName"]]} for key in ordered]


def _sample(hook: DynamoDBScanHook, table_name: str) -> list[dict[str, Any]]:
    """The first pages of a serial scan: the sample a new mirror's column types are planned from."""
    items: list[dict[str, Any]] = []
    pages = hook.scan_segment_pages(table_name, None, None, deserialize=True)
    try:
        for _, page in zip(range(_SAMPLE_PAGES), pages, strict=False):
            items.extend(page.items)
    finally:
        close = getattr(pages, "close", None)
        if close is not None:
            close()
    return items


def _chunks(items: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _record_assets(outlets: list[Any], result: dict[str, Any], source_table: str) -> None:
    """One event per asset, its extra naming the catalog, table, snapshot, rows and window."""
    if not outlets:
        return
    extra = {
        "source_table": source_table,
        "catalog": result["catalog"],
        "table": result["table"],
        "operation": result["operation"],
        "snapshot_id": result["snapshot_id"],
        "rows_added": result["rows_added"],
        "rows_deleted": result["rows_deleted"],
        "window_start": result["window_start"],
        "window_end": result["window_end"],
        "export_arn": result["export_arn"],
        "already_applied": result["already_applied"],
    }
    context: Any = get_current_context()
    for outlet in outlets:
        context["outlet_events"][outlet].extra = extra


def check_mirror_options(
    table_name: str,
    *,
    mode: str,
    load_method: str,
    native_s3_bucket: str | None,
    bucket_count: int | None,
    new_attributes: str,
    max_window: timedelta,
    rows_per_file: int,
) -> None:
    """
    Check the group's options when the DAG is parsed.

    :raises InvalidScanArgumentError: naming the table, the parameter and what is allowed.
    """
    where = f"Table {table_name!r}: "
    if mode not in MODES:
        raise InvalidScanArgumentError(f"{where}mode={mode!r} is not allowed; use one of {', '.join(MODES)}.")
    if load_method not in LOAD_METHODS:
        raise InvalidScanArgumentError(
            f"{where}load_method={load_method!r} is not allowed; use one of {', '.join(LOAD_METHODS)}."
        )
    if (mode == "incremental" or load_method == "native") and not native_s3_bucket:
        raise InvalidScanArgumentError(
            f"{where}mode={mode!r} with load_method={load_method!r} needs native_s3_bucket, the bucket DynamoDB "
            "writes its exports to; or use mode='replace' with load_method='scan' for a table without "
            "point-in-time recovery."
        )
    if bucket_count is not None and (isinstance(bucket_count, bool) or not isinstance(bucket_count, int)):
        raise InvalidScanArgumentError(f"{where}bucket_count={bucket_count!r} must be an integer >= 1 or None.")
    if bucket_count is not None and bucket_count < 1:
        raise InvalidScanArgumentError(f"{where}bucket_count={bucket_count!r} must be an integer >= 1 or None.")
    check_new_attributes(new_attributes, table_name=table_name)
    if not MIN_INCREMENTAL_WINDOW <= max_window <= MAX_INCREMENTAL_WINDOW:
        raise InvalidScanArgumentError(
            f"{where}max_window={max_window} is not allowed; DynamoDB's incremental exports last 15 minutes to 24 "
            "hours."
        )
    if isinstance(rows_per_file, bool) or not isinstance(rows_per_file, int) or rows_per_file < 1:
        raise InvalidScanArgumentError(f"{where}rows_per_file={rows_per_file!r} must be an integer >= 1.")


def dynamodb_to_iceberg(
    group_id: str,
    *,
    table_name: str,
    table_identifier: str,
    iceberg_conn_id: str = "iceberg_default",
    mode: Literal["incremental", "replace"] = "incremental",
    load_method: Literal["scan", "native"] = "scan",
    native_s3_bucket: str | None = None,
    native_s3_prefix: str | None = None,
    native_options: dict[str, Any] | None = None,
    total_segments: int | Literal["auto"] = "auto",
    max_mapped_segments: int = DEFAULT_MAX_MAPPED_SEGMENTS,
    rows_per_file: int = DEFAULT_ROWS_PER_FILE,
    bucket_count: int | None = None,
    new_attributes: Literal["evolve", "extra"] = "evolve",
    max_window: timedelta = MAX_INCREMENTAL_WINDOW,
    window_end: str | None = None,
    table_location: str | None = None,
    outlets: list[Any] | None = None,
    aws_conn_id: str | None = "aws_default",
    region_name: str | None = None,
    verify: bool | str | None = None,
    botocore_config: dict[str, Any] | None = None,
    **task_kwargs: Any,
) -> TaskGroup:
    """
    Keep the Iceberg table ``table_identifier`` equal to the DynamoDB table ``table_name``; each run moves it on.

    1. ``plan``: opens the catalog (connection ``iceberg_conn_id``, see
       :class:`~airflow_dynamoscan.hooks.iceberg_catalog.IcebergCatalogHook`) and reads the mirror's chain state,
       its last snapshot summary. Without a load yet (or in ``replace`` mode) it plans a load: the table is
       created from the key schema and a sample of items if missing, and the scan's segments are planned (or a
       native full export at the run's time). Otherwise it plans the next incremental window: from the last
       applied window's end to the run's end (``window_end``, else the data interval's end, else now), at most
       ``max_window``; a window shorter than 15 minutes plans nothing and the run skips the rest;
    2. load by scan: ``load_segment`` mapped once per segment writes Parquet files in the table's schema into a
       staging folder of the table, then ``commit_load`` commits them all in one transaction (the table's first
       snapshot, or with ``mode="replace"`` an overwrite of its contents); by native export: ``export_full``
       (:class:`DynamoDBNativeExportOperator`) then ``load_export`` stages its items and commits them;
    3. merge: ``export_window`` (an incremental native export of the planned window), then ``merge_window`` folds
       its change records to the net change per key and commits delete-then-append of the changed keys in one
       transaction, recording the window in the snapshot summary: a retry or re-run that finds the window
       applied does nothing, a window that does not follow the last one is refused.

    Each commit records an event of each asset in ``outlets``, its ``extra`` naming the catalog, the table, the
    snapshot id, the rows added and deleted, and the window.

    :param group_id: the TaskGroup's id
    :param table_name: the DynamoDB table
    :param table_identifier: the Iceberg table, ``"namespace.table"``
    :param iceberg_conn_id: the Airflow connection of the Iceberg catalog
    :param mode: ``"incremental"`` (load once, then merge incremental native exports; needs point-in-time
        recovery) or ``"replace"`` (every run scans the table and replaces the mirror's contents)
    :param load_method: how the first load (or every replacement) reads the table: ``"scan"`` or ``"native"``
    :param native_s3_bucket: the bucket DynamoDB writes its exports to (``incremental`` or ``native``)
    :param native_s3_prefix: their key prefix
    :param native_options: more :class:`DynamoDBNativeExportOperator` parameters (``deferrable``,
        ``poll_interval``, ``export_timeout``...)
    :param total_segments: the load scan's segments, ``"auto"`` from the table's size
    :param max_mapped_segments: the most segments ``"auto"`` plans
    :param rows_per_file: rows per staged Parquet file of a load
    :param bucket_count: partition the new table by ``bucket(bucket_count, partition key)``; ``None``: unpartitioned
    :param new_attributes: ``"evolve"`` (an attribute the table has no column for adds one) or ``"extra"`` (it goes
        to the ``_extra`` JSON column); nothing is ever dropped
    :param max_window: the longest window one run merges (15 minutes to 24 hours)
    :param window_end: where a run's window should end (templated; default: the data interval's end, or now)
    :param table_location: the new table's location (default: the catalog's warehouse)
    :param outlets: assets that get an event per commit
    :param task_kwargs: BaseOperator parameters of every task (:data:`GROUP_TASK_PARAMETERS`: ``retries``...)
    :raises InvalidScanArgumentError: an option that is not allowed, when the DAG is parsed.
    """
    check_mirror_options(
        table_name,
        mode=mode,
        load_method=load_method,
        native_s3_bucket=native_s3_bucket,
        bucket_count=bucket_count,
        new_attributes=new_attributes,
        max_window=max_window,
        rows_per_file=rows_per_file,
    )
    unknown = sorted(set(task_kwargs) - GROUP_TASK_PARAMETERS)
    if unknown:
        raise InvalidScanArgumentError(
            f"Table {table_name!r}: {unknown} are not parameters of dynamodb_to_iceberg; task parameters allowed: "
            f"{', '.join(sorted(GROUP_TASK_PARAMETERS))}."
        )
    aws: dict[str, Any] = {
        "aws_conn_id": aws_conn_id,
        "region_name": region_name,
        "verify": verify,
        "botocore_config": botocore_config,
    }
    export_options: dict[str, Any] = {
        "table_name": table_name,
        "s3_bucket": native_s3_bucket,
        "s3_prefix": native_s3_prefix,
        **aws,
        **task_kwargs,
        **(native_options or {}),
    }

    def open_mirror(source_table: str) -> Any:
        from airflow_dynamoscan.hooks.iceberg_catalog import IcebergCatalogHook
        from airflow_dynamoscan.iceberg import IcebergMirror

        catalog = IcebergCatalogHook(iceberg_conn_id).get_catalog()
        try:
            return IcebergMirror(catalog, table_identifier, source_table=source_table)
        except InvalidScanArgumentError as error:
            raise _fail_fast(error) from error

    with TaskGroup(group_id=group_id) as group:

        @task(task_id="plan_load", **task_kwargs)
        def plan_load(source_table: str, run_end: str | None) -> list[dict[str, Any]]:
            """The load's mapped keywords (scan segments, or one full export), or none when the mirror is loaded."""
            from airflow_dynamoscan.iceberg import WindowOrderError, plan_layout

            mirror = open_mirror(source_table)
            if mode == "incremental" and mirror.applied() is not None:
                return []
            hook = DynamoDBScanHook(
                aws_conn_id=aws_conn_id, region_name=region_name, verify=verify, config=botocore_config
            )
            try:
                if not mirror.exists():
                    layout = plan_layout(
                        _sample(hook, source_table),
                        _key_schema(hook, source_table),
                        new_attributes=new_attributes,
                        table_name=source_table,
                    )
                    mirror.create(layout, bucket_count=bucket_count, location=table_location)
                else:
                    mirror.layout()  # a table that is not a mirror is refused before any scan
                if load_method == "native":
                    return [{"export_time": _run_hint(run_end).isoformat()}]
                as_of = datetime.now(timezone.utc)  # before the first page is read
                segments = plan_export_segments(
                    source_table, total_segments, max_segments=max_mapped_segments, plan_schema=False, **aws
                )
            except (InvalidScanArgumentError, TableNotFoundError, WindowOrderError) as error:
                raise _fail_fast(error) from error
            load_id = _load_id(as_of)
            return [{**segment, "load_id": load_id, "as_of": as_of.isoformat()} for segment in segments]

        @task(task_id="plan_window", **task_kwargs)
        def plan_window(source_table: str, run_end: str | None, load: list[dict[str, Any]]) -> list[dict[str, Any]]:
            """The next incremental window, or none (a load is planned, or the window would be too short)."""
            from airflow_dynamoscan.iceberg import WindowOrderError, next_window

            if list(load):
                return []
            mirror = open_mirror(source_table)
            applied = mirror.applied()
            hint = _run_hint(run_end)
            try:
                window = next_window(applied, hint, max_length=max_window)
            except WindowOrderError as error:
                raise _fail_fast(error) from error
            if window is None:
                log.info(
                    "Table %s: the window from the last applied end to %s is shorter than %s; nothing to merge",
                    source_table,
                    hint.isoformat(),
                    MIN_INCREMENTAL_WINDOW,
                )
                return []
            start, end = window
            return [{"export_from_time": start.isoformat(), "export_to_time": end.isoformat()}]

        load_plan = plan_load(table_name, window_end)

        if load_method == "scan":

            @task(task_id="load_segment", map_index_template="segment {{ task.op_kwargs['segment'] }}", **task_kwargs)
            def load_segment(
                source_table: str, segment: int, total_segments: int, load_id: str, as_of: str
            ) -> dict[str, Any]:
                mirror = open_mirror(source_table)
                hook = DynamoDBScanHook(
                    aws_conn_id=aws_conn_id, region_name=region_name, verify=verify, config=botocore_config
                )
                staged = []
                items = hook.scan_segment(source_table, segment, total_segments)
                for number, chunk in enumerate(_chunks(items, rows_per_file)):
                    try:
                        written = mirror.stage_items(chunk, load_id=load_id, name=f"segment-{segment:05d}-{number:04d}")
                    except SchemaMismatchError as error:
                        raise _fail_fast(error) from error
                    staged.append(written)
                return {
                    "segment": segment,
                    "total_segments": total_segments,
                    "as_of": as_of,
                    "paths": [written["path"] for written in staged],
                    "rows": sum(written["rows"] for written in staged),
                    "bytes": sum(written["bytes"] for written in staged),
                }

            @task(task_id="commit_load", outlets=outlets or [], **task_kwargs)
            def commit_load(source_table: str, staged: list[dict[str, Any]]) -> dict[str, Any]:
                from airflow_dynamoscan.iceberg import Window, WindowOrderError

                # By index: iterating a mapped task's results asks for one past the last.
                staged = [staged[index] for index in range(len(staged))]
                segments = sorted(result["segment"] for result in staged)
                total = staged[0]["total_segments"] if staged else 0
                if segments != list(range(total)):
                    raise _fail_fast(
                        InvalidScanArgumentError(
                            f"Table {source_table!r}: the load's segments {segments} are not all of 0..{total - 1}."
                        )
                    )
                mirror = open_mirror(source_table)
                paths = [path for result in staged for path in result["paths"]]
                try:
                    result = mirror.load(
                        Window(end=utc_datetime(staged[0]["as_of"], "as_of")), paths=paths, replace=mode == "replace"
                    ).as_dict()
                except WindowOrderError as error:
                    raise _fail_fast(error) from error
                _record_assets(outlets or [], result, source_table)
                return dict(result)

            segments = load_segment.partial(source_table=table_name).expand_kwargs(load_plan)
            commit_load(table_name, segments)  # type: ignore[arg-type]
        else:
            export_full = DynamoDBNativeExportOperator.partial(
                task_id="export_full", export_type="FULL_EXPORT", **export_options
            ).expand_kwargs(load_plan)

            @task(task_id="load_export", outlets=outlets or [], **task_kwargs)
            def load_export(
                source_table: str, plans: list[dict[str, Any]], exports: list[dict[str, Any]]
            ) -> dict[str, Any]:
                from airflow.providers.amazon.aws.hooks.s3 import S3Hook

                from airflow_dynamoscan.iceberg import Window, WindowOrderError
                from airflow_dynamoscan.iceberg.exports import export_items, summary_of

                export, as_of = exports[0], utc_datetime(plans[0]["export_time"], "export_time")
                mirror = open_mirror(source_table)
                s3 = S3Hook(aws_conn_id=aws_conn_id, verify=verify).get_conn()
                load_id = _load_id(as_of)
                try:
                    items = export_items(s3, summary_of(s3, export))
                    paths = [
                        mirror.stage_items(chunk, load_id=load_id, name=f"export-{number:04d}")["path"]
                        for number, chunk in enumerate(_chunks(items, rows_per_file))
                    ]
                    window = Window(end=as_of, export_arn=export["export_arn"])
                    result = mirror.load(window, paths=paths, replace=mode == "replace").as_dict()
                except (NativeExportError, SchemaMismatchError, WindowOrderError) as error:
                    raise _fail_fast(error) from error
                _record_assets(outlets or [], result, source_table)
                return dict(result)

            load_export(table_name, load_plan, export_full.output)  # type: ignore[arg-type]

        if mode == "incremental":
            window_plan = plan_window(table_name, window_end, load_plan)  # type: ignore[arg-type]
            export_window = DynamoDBNativeExportOperator.partial(
                task_id="export_window", export_type="INCREMENTAL_EXPORT", **export_options
            ).expand_kwargs(window_plan)

            @task(task_id="merge_window", outlets=outlets or [], **task_kwargs)
            def merge_window(
                source_table: str, windows: list[dict[str, Any]], exports: list[dict[str, Any]]
            ) -> dict[str, Any]:
                from airflow.providers.amazon.aws.hooks.s3 import S3Hook

                from airflow_dynamoscan.iceberg import Window, WindowOrderError
                from airflow_dynamoscan.iceberg.exports import export_changes, summary_of

                planned_window, export = windows[0], exports[0]
                mirror = open_mirror(source_table)
                s3 = S3Hook(aws_conn_id=aws_conn_id, verify=verify).get_conn()
                window = Window(
                    end=utc_datetime(planned_window["export_to_time"], "export_to_time"),
                    start=utc_datetime(planned_window["export_from_time"], "export_from_time"),
                    export_arn=export.get("export_arn"),
                )
                try:
                    changes = export_changes(s3, summary_of(s3, export))
                    result = mirror.merge(changes, window).as_dict()
                except (NativeExportError, SchemaMismatchError, WindowOrderError) as error:
                    raise _fail_fast(error) from error
                _record_assets(outlets or [], result, source_table)
                return dict(result)

            merge_window(table_name, window_plan, export_window.output)  # type: ignore[arg-type]
    return group


__all__ = ["LOAD_METHODS", "MODES", "check_mirror_options", "dynamodb_to_iceberg"]
