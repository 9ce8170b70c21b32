"""dynamodb_parallel_export(): plan segments -> one mapped export task per segment -> manifest, as a TaskGroup."""

from __future__ import annotations

from typing import Any, Literal

from airflow_dynamoscan.compat import TaskGroup, conf, task
from airflow_dynamoscan.exceptions import InvalidScanArgumentError
from airflow_dynamoscan.export.formats import uses_schema, validate_format
from airflow_dynamoscan.hooks.dynamodb_scan import DynamoDBScanHook
from airflow_dynamoscan.operators.base import SAME_AS_AWS_CONN_ID, fail_fast, same_as_aws_conn_id
from airflow_dynamoscan.operators.dynamodb_export import (
    DynamoDBExportManifestOperator,
    DynamoDBExportOperator,
    sample_export_schema,
)
from airflow_dynamoscan.scan.segments import DEFAULT_BYTES_PER_SEGMENT, MAX_TOTAL_SEGMENTS, validate_total_segments
from airflow_dynamoscan.storage.destinations import normalize_destination

#: Airflow's ``[core] max_map_length`` default: a plan never maps more task instances than this.
DEFAULT_MAX_MAPPED_SEGMENTS = 1024

#: BaseOperator parameters of :func:`dynamodb_parallel_export` that every task of the group gets, not only the
#: mapped export: how it is retried, where and with what resources it runs, who hears of it.
GROUP_TASK_PARAMETERS = frozenset(
    {
        "owner",
        "email",
        "email_on_failure",
        "email_on_retry",
        "retries",
        "retry_delay",
        "retry_exponential_backoff",
        "max_retry_delay",
        "execution_timeout",
        "pool",
        "pool_slots",
        "queue",
        "executor",
        "executor_config",
        "priority_weight",
        "weight_rule",
        "on_execute_callback",
        "on_failure_callback",
        "on_success_callback",
        "on_retry_callback",
        "on_skipped_callback",
        "do_xcom_push",
    }
)


def max_map_length() -> int:
    """Airflow's ``[core] max_map_length``: the most task instances one task may be mapped into."""
    return int(conf.getint("core", "max_map_length", fallback=DEFAULT_MAX_MAPPED_SEGMENTS))


def plan_export_segments(
    table_name: str,
    total_segments: int | Literal["auto"],
    *,
    aws_conn_id: str | None = "aws_default",
    region_name: str | None = None,
    verify: bool | str | None = None,
    botocore_config: dict[str, Any] | None = None,
    bytes_per_segment: int = DEFAULT_BYTES_PER_SEGMENT,
    min_segments: int = 1,
    max_segments: int = DEFAULT_MAX_MAPPED_SEGMENTS,
    file_format: str = "jsonl",
    scan_kwargs: dict[str, Any] | None = None,
    columns: list[str] | None = None,
    plan_schema: bool = True,
) -> list[dict[str, Any]]:
    """
    Return the keyword sets of the mapped export tasks: ``[{"segment": 0, "total_segments": n}, ...]``.

    For ``csv`` and ``parquet`` with ``plan_schema`` each set also holds ``"schema"``: the export's one schema,
    planned once here from a bounded sample of the table (see
    :func:`~airflow_dynamoscan.operators.dynamodb_export.sample_export_schema`, with ``scan_kwargs`` and
    ``columns``), so every mapped task writes its parts with the same columns and types.

    ``total_segments="auto"`` plans ``n`` from the table's size (one segment per ``bytes_per_segment``, at least
    ``min_segments``, at most ``max_segments``, which defaults to Airflow's ``max_map_length`` of 1024); an int
    is used as it is (the table's existence is still checked); so is its text, as a template renders it.
    Neither ever exceeds Airflow's ``[core] max_map_length``.

    :raises InvalidScanArgumentError: a fixed count above ``max_map_length`` (naming the table, the parameter and
        the limit), or out of 1..1,000,000; checked before any export task runs.
    """
    validate_format(file_format, None, table_name=table_name)
    hook = DynamoDBScanHook(aws_conn_id=aws_conn_id, region_name=region_name, verify=verify, config=botocore_config)
    if isinstance(total_segments, str) and total_segments.strip().isdigit():
        total_segments = int(total_segments)  # a templated count arrives as text
    if total_segments == "auto":
        count = hook.plan_segments(
            table_name,
            bytes_per_segment=bytes_per_segment,
            min_segments=min_segments,
            max_segments=min(max_segments, max_map_length(), MAX_TOTAL_SEGMENTS),
        )
    else:
        count = validate_total_segments(total_segments, table_name)
        limit = max_map_length()
        if count > limit:
            raise InvalidScanArgumentError(
                f"Table {table_name!r}: total_segments={count} is more segments than Airflow maps tasks: "
                f"[core] max_map_length is {limit}. Use at most {limit} segments, total_segments='auto', or raise "
                "max_map_length (AIRFLOW__CORE__MAX_MAP_LENGTH)."
            )
        hook.describe_table(table_name)
    plans: list[dict[str, Any]] = [{"segment": segment, "total_segments": count} for segment in range(count)]
    if plan_schema and uses_schema(file_format):
        schema = sample_export_schema(hook, table_name, scan_kwargs, columns=columns).to_json()
        for plan in plans:
            plan["schema"] = schema
    return plans


def dynamodb_parallel_export(
    group_id: str,
    *,
    table_name: str,
    destination: str,
    total_segments: int | Literal["auto"] = "auto",
    aws_conn_id: str | None = "aws_default",
    region_name: str | None = None,
    verify: bool | str | None = None,
    botocore_config: dict[str, Any] | None = None,
    dest_aws_conn_id: str | None = SAME_AS_AWS_CONN_ID,
    bytes_per_segment: int = DEFAULT_BYTES_PER_SEGMENT,
    max_mapped_segments: int = DEFAULT_MAX_MAPPED_SEGMENTS,
    outlets: list[Any] | None = None,
    **export_kwargs: Any,
) -> TaskGroup:
    """
    Build a complete parallel export of a DynamoDB table as a TaskGroup of three tasks.

    1. ``plan_segments``: the segment count, from the table's size (``total_segments="auto"``) or fixed, and the
       destination, normalised once here (an absolute path, or ``s3://bucket/prefix`` without a trailing slash);
       a destination that is not allowed fails this task, before any scan;
    2. ``export_segment``: :class:`DynamoDBExportOperator` mapped once per segment (shown as ``segment 3 of
       16``), so the executor spreads the segments over its workers; each writes into the planned destination;
    3. ``write_manifest``: :class:`DynamoDBExportManifestOperator`, which checks that every segment reported
       once, removes what is not the export's own, writes ``manifest.json`` last and then records an event of
       each asset in ``outlets``.

    :param group_id: the TaskGroup's id
    :param table_name: the DynamoDB table (templated)
    :param destination: ``s3://bucket/prefix`` or a local directory, in any spelling
        :func:`~airflow_dynamoscan.storage.destinations.normalize_destination` accepts (templated, e.g. with
        ``{{ ds }}``)
    :param total_segments: ``"auto"`` (plan from the table's size) or a fixed count
    :param dest_aws_conn_id: the connection of an S3 destination (default: ``aws_conn_id``)
    :param bytes_per_segment: the planning rule for ``"auto"``: one segment per this many bytes (2 GiB)
    :param max_mapped_segments: the most segments ``"auto"`` plans (keep it within ``[core] max_map_length``)
    :param outlets: assets (``[Asset("orders_export")]``) that get an event when the manifest is written, with the
        manifest's URI, table, format, items, bytes, segment count and scan window in its ``extra``; only a
        complete export records one
    :param export_kwargs: more :class:`DynamoDBExportOperator` parameters: ``file_format``, ``compression``,
        ``scan_kwargs``, ``max_file_bytes``, ``columns``, ``schema``, ``csv_formula_escaping``, ``overwrite``; the
        BaseOperator ones in :data:`GROUP_TASK_PARAMETERS` (``retries``, ``retry_delay``, ``pool``, ``queue``,
        ``executor_config``...) go to all three tasks. For CSV and Parquet without ``schema``, ``plan_segments``
        also plans the export's one schema from a sample of the table and gives it to every mapped task.
    :return: the TaskGroup; use it in dependencies like a task (``start >> export_group >> notify``).
    """
    # Resolved here: a task's arguments are serialised with the DAG, and the default is no value to serialise.
    dest_conn_id = same_as_aws_conn_id(dest_aws_conn_id, aws_conn_id)
    task_kwargs = {name: export_kwargs.pop(name) for name in list(export_kwargs) if name in GROUP_TASK_PARAMETERS}
    connection: dict[str, Any] = {"aws_conn_id": aws_conn_id, "region_name": region_name, "verify": verify}
    connection["botocore_config"] = botocore_config
    with TaskGroup(group_id=group_id) as group:
        plan_segments = _plan_segments_task(
            task_kwargs,
            connection,
            bytes_per_segment=bytes_per_segment,
            max_segments=max_mapped_segments,
            plan_schema=export_kwargs.get("schema") is None,
        )
        file_format = export_kwargs.get("file_format", "jsonl")
        layout = [file_format, export_kwargs.get("scan_kwargs"), export_kwargs.get("columns")]
        plan = plan_segments(table_name, total_segments, destination, *layout)
        export = DynamoDBExportOperator.partial(
            task_id="export_segment",
            table_name=table_name,
            dest_aws_conn_id=dest_conn_id,
            map_index_template="segment {{ task.segment }} of {{ task.total_segments }}",
            **connection,
            **task_kwargs,
            **export_kwargs,
        ).expand_kwargs(plan)
        DynamoDBExportManifestOperator(
            task_id="write_manifest",
            results=export.output,  # each names the planned destination
            table_name=table_name,
            dest_aws_conn_id=dest_conn_id,
            verify=verify,
            outlets=outlets or [],
            **task_kwargs,
        )
    return group


def _plan_segments_task(
    task_kwargs: dict[str, Any],
    connection: dict[str, Any],
    *,
    bytes_per_segment: int,
    max_segments: int,
    plan_schema: bool,
) -> Any:
    """The ``plan_segments`` task of :func:`dynamodb_parallel_export`, on the group's AWS ``connection``."""
    planning: dict[str, Any] = {
        "bytes_per_segment": bytes_per_segment,
        "max_segments": max_segments,
        "plan_schema": plan_schema,
    }

    @task(task_id="plan_segments", **task_kwargs)
    def plan_segments(
        table_name: str,
        total_segments: int | str,
        destination: str,
        file_format: str,
        scan_kwargs: dict[str, Any] | None,
        columns: list[str] | None,
    ) -> list[dict[str, Any]]:
        # Once, here: every segment task and the manifest then see the same normalised destination.
        normalised = fail_fast(normalize_destination)(destination)
        segments = fail_fast(plan_export_segments)(
            table_name,
            total_segments,  # type: ignore[arg-type]
            **connection,
            **planning,
            file_format=file_format,
            scan_kwargs=scan_kwargs,
            columns=columns,
        )
        return [{**segment, "destination": normalised} for segment in segments]

    return plan_segments
