"""dynamodb_parallel_export(): plan segments -> one mapped export task per segment -> manifest, as a TaskGroup."""

from __future__ import annotations

from typing import Any, Literal

from airflow_dynamoscan.compat import TaskGroup, task
from airflow_dynamoscan.export.destinations import normalize_destination
from airflow_dynamoscan.hooks.dynamodb_scan import DynamoDBScanHook
from airflow_dynamoscan.operators.dynamodb_export import DynamoDBExportManifestOperator, DynamoDBExportOperator
from airflow_dynamoscan.scan.segments import DEFAULT_BYTES_PER_SEGMENT, MAX_TOTAL_SEGMENTS, validate_total_segments

#: Airflow's ``[core] max_map_length`` default: a plan never maps more task instances than this.
DEFAULT_MAX_MAPPED_SEGMENTS = 1024


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
) -> list[dict[str, int]]:
    """
    Return the keyword sets of the mapped export tasks: ``[{"segment": 0, "total_segments": n}, ...]``.

    ``total_segments="auto"`` plans ``n`` from the table's size (one segment per ``bytes_per_segment``, at least
    ``min_segments``, at most ``max_segments``, which defaults to Airflow's ``max_map_length`` of 1024); an int
    is used as it is (the table's existence is still checked); so is its text, as a template renders it.
    """
    hook = DynamoDBScanHook(aws_conn_id=aws_conn_id, region_name=region_name, verify=verify, config=botocore_config)
    if isinstance(total_segments, str) and total_segments.strip().isdigit():
        total_segments = int(total_segments)  # a templated count arrives as text
    if total_segments == "auto":
        count = hook.plan_segments(
            table_name,
            bytes_per_segment=bytes_per_segment,
            min_segments=min_segments,
            max_segments=min(max_segments, MAX_TOTAL_SEGMENTS),
        )
    else:
        count = validate_total_segments(total_segments, table_name)
        hook.describe_table(table_name)
    return [{"segment": segment, "total_segments": count} for segment in range(count)]


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
    dest_aws_conn_id: str | None = None,
    bytes_per_segment: int = DEFAULT_BYTES_PER_SEGMENT,
    max_mapped_segments: int = DEFAULT_MAX_MAPPED_SEGMENTS,
    **export_kwargs: Any,
) -> TaskGroup:
    """
    Build a complete parallel export of a DynamoDB table as a TaskGroup of three tasks.

    1. ``plan_segments``: the segment count, from the table's size (``total_segments="auto"``) or fixed, and the
       destination, normalised once here (an absolute path, or ``s3://bucket/prefix`` without a trailing slash);
       a destination that is not allowed fails this task, before any scan;
    2. ``export_segment``: :class:`DynamoDBExportOperator` mapped once per segment (shown as ``segment 3/16``),
       so the executor spreads the segments over its workers; each writes into the planned destination;
    3. ``write_manifest``: :class:`DynamoDBExportManifestOperator`, which checks that every segment reported
       once, removes what is not the export's own and writes ``manifest.json`` last.

    :param group_id: the TaskGroup's id
    :param table_name: the DynamoDB table (templated)
    :param destination: ``s3://bucket/prefix`` or a local directory, in any spelling
        :func:`~airflow_dynamoscan.export.destinations.normalize_destination` accepts (templated, e.g. with
        ``{{ ds }}``)
    :param total_segments: ``"auto"`` (plan from the table's size) or a fixed count
    :param dest_aws_conn_id: the connection of an S3 destination (default: ``aws_conn_id``)
    :param bytes_per_segment: the planning rule for ``"auto"``: one segment per this many bytes (2 GiB)
    :param max_mapped_segments: the most segments ``"auto"`` plans (keep it within ``[core] max_map_length``)
    :param export_kwargs: more :class:`DynamoDBExportOperator` parameters: ``file_format``, ``compression``,
        ``scan_kwargs``, ``max_file_bytes``, ``columns``, ``overwrite``, and BaseOperator ones such as ``retries``
    :return: the TaskGroup; use it in dependencies like a task (``start >> export_group >> notify``).
    """
    dest_conn_id = aws_conn_id if dest_aws_conn_id is None else dest_aws_conn_id
    with TaskGroup(group_id=group_id) as group:

        @task(task_id="plan_segments")
        def plan_segments(table_name: str, total_segments: int | str, destination: str) -> list[dict[str, Any]]:
            # Once, here: every segment task and the manifest then see the same normalised destination.
            normalised = normalize_destination(destination)
            segments = plan_export_segments(
                table_name,
                total_segments,  # type: ignore[arg-type]
                aws_conn_id=aws_conn_id,
                region_name=region_name,
                verify=verify,
                botocore_config=botocore_config,
                bytes_per_segment=bytes_per_segment,
                max_segments=max_mapped_segments,
            )
            return [{**segment, "destination": normalised} for segment in segments]

        plan = plan_segments(table_name, total_segments, destination)
        export = DynamoDBExportOperator.partial(
            task_id="export_segment",
            table_name=table_name,
            botocore_config=botocore_config,
            dest_aws_conn_id=dest_conn_id,
            map_index_template="segment {{ task.segment }}/{{ task.total_segments }}",
            aws_conn_id=aws_conn_id,
            region_name=region_name,
            verify=verify,
            **export_kwargs,
        ).expand_kwargs(plan)
        DynamoDBExportManifestOperator(
            task_id="write_manifest",
            results=export.output,  # each names the planned destination
            table_name=table_name,
            dest_aws_conn_id=dest_conn_id,
            verify=verify,
        )
    return group
