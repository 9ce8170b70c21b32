"""
Task groups of native exports: export -> one mapped convert task per data file (or batch) -> manifest, and a
dispatcher between a scan export and a native export (``method="scan" | "native" | "auto"``).
"""

from __future__ import annotations

import logging
from typing import Any

from airflow_dynamoscan.compat import TaskGroup, task
from airflow_dynamoscan.export.formats import uses_schema
from airflow_dynamoscan.export.strategy import (
    DEFAULT_NATIVE_THRESHOLD_BYTES,
    choose_export_method,
    needs_recovery_status,
    validate_method,
)
from airflow_dynamoscan.hooks.dynamodb_scan import DynamoDBScanHook
from airflow_dynamoscan.operators.base import SAME_AS_AWS_CONN_ID, same_as_aws_conn_id
from airflow_dynamoscan.operators.dynamodb_export import DynamoDBExportManifestOperator
from airflow_dynamoscan.operators.dynamodb_native_export import (
    DynamoDBNativeExportConvertOperator,
    DynamoDBNativeExportOperator,
    plan_native_export_files,
    table_key_types,
)
from airflow_dynamoscan.task_groups import DEFAULT_MAX_MAPPED_SEGMENTS, GROUP_TASK_PARAMETERS, dynamodb_parallel_export

log = logging.getLogger(__name__)

_CONVERT_KEYWORDS = ("file_format", "compression", "max_file_bytes", "columns", "schema", "overwrite", "verify_md5")


def _aws_connection(
    aws_conn_id: str | None, region_name: str | None, verify: bool | str | None, botocore_config: dict[str, Any] | None
) -> dict[str, Any]:
    """The connection keywords every AWS task of a group gets."""
    return {
        "aws_conn_id": aws_conn_id,
        "region_name": region_name,
        "verify": verify,
        "botocore_config": botocore_config,
    }


def _plan_files_task(
    aws: dict[str, Any], files_per_task: int, max_tasks: int, plan_schema: bool, task_kwargs: dict[str, Any]
) -> Any:
    """The ``plan_files`` task: the batches of data files, and for CSV and Parquet the export's one schema."""

    @task(task_id="plan_files", **task_kwargs)
    def plan_files(export: dict[str, Any], file_format: str, columns: list[str] | None) -> list[dict[str, Any]]:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        key_types = None
        if plan_schema and uses_schema(file_format):
            hook = DynamoDBScanHook(
                aws_conn_id=aws["aws_conn_id"],
                region_name=aws["region_name"],
                verify=aws["verify"],
                config=aws["botocore_config"],
            )
            key_types = table_key_types(hook, str(export.get("table_name")))
        return plan_native_export_files(
            export,
            files_per_task=files_per_task,
            max_tasks=max_tasks,
            s3_client=S3Hook(aws_conn_id=aws["aws_conn_id"], verify=aws["verify"]).get_conn(),
            file_format=file_format,
            columns=columns,
            plan_schema=plan_schema,
            key_types=key_types,
        )

    return plan_files


def _convert_and_commit(
    plan: Any,
    table_name: str,
    destination: str | None,
    dest_conn_id: str | None,
    outlets: list[Any] | None,
    aws: dict[str, Any],
    convert_kwargs: dict[str, Any],
    task_kwargs: dict[str, Any],
) -> None:
    """
    The mapped ``convert_files`` task and the ``write_manifest`` task that commits its parts (``destination=None``:
    each batch of the plan names it, the window's folder of a chain).
    """
    where = {} if destination is None else {"destination": destination}
    convert = DynamoDBNativeExportConvertOperator.partial(
        task_id="convert_files",
        table_name=table_name,
        **where,
        dest_aws_conn_id=dest_conn_id,
        map_index_template="files {{ task.segment + 1 }}/{{ task.total_segments }}",
        **aws,
        **task_kwargs,
        **convert_kwargs,
    ).expand_kwargs(plan)
    DynamoDBExportManifestOperator(
        task_id="write_manifest",
        results=convert.output,
        destination=destination,
        table_name=table_name,
        dest_aws_conn_id=dest_conn_id,
        verify=aws["verify"],
        outlets=outlets or [],
        **task_kwargs,
    )


#: The :class:`DynamoDBNativeExportOperator` parameters :func:`dynamodb_native_export_to_files` takes directly
#: (or in ``export_kwargs``) and gives to its ``start_export`` task.
NATIVE_EXPORT_PARAMETERS = frozenset(
    {
        "export_time",
        "export_from_time",
        "export_to_time",
        "export_view_type",
        "export_format",
        "s3_bucket_owner",
        "s3_sse_algorithm",
        "s3_sse_kms_key_id",
        "poll_interval",
        "timeout",
        "restorable_wait",
        "chain_start",
    }
)


def dynamodb_native_export_to_files(
    group_id: str,
    *,
    table_name: str,
    s3_bucket: str,
    destination: str,
    s3_prefix: str | None = None,
    export_type: str = "FULL_EXPORT",
    files_per_task: int = 1,
    max_mapped_tasks: int = DEFAULT_MAX_MAPPED_SEGMENTS,
    deferrable: bool | None = None,
    export_kwargs: dict[str, Any] | None = None,
    outlets: list[Any] | None = None,
    aws_conn_id: str | None = "aws_default",
    region_name: str | None = None,
    verify: bool | str | None = None,
    botocore_config: dict[str, Any] | None = None,
    dest_aws_conn_id: str | None = SAME_AS_AWS_CONN_ID,
    **kwargs: Any,
) -> TaskGroup:
    """
    Build a native export converted to the package's formats, as a TaskGroup of four tasks.

    1. ``start_export``: :class:`DynamoDBNativeExportOperator` (full or incremental, deferrable) writes DynamoDB's
       export under ``s3://{s3_bucket}/{s3_prefix}/AWSDynamoDB/...``; an incremental export without
       ``export_from_time``/``export_to_time`` in ``export_kwargs`` is a window of the chain at ``destination``
       (see :mod:`airflow_dynamoscan.export.chain`), converted into ``{destination}/{start}_{end}/``, and a run
       with nothing to export yet skips the group;
    2. ``plan_files``: reads its manifests and cuts its data files into batches of ``files_per_task``; for CSV
       and Parquet (without ``schema``) it also plans the export's one schema from its first data files with
       records (:func:`~airflow_dynamoscan.export.native.plan_native_schema`; an export without records gets the
       table's key attributes) and gives it to every convert task;
    3. ``convert_files``: :class:`DynamoDBNativeExportConvertOperator` mapped once per batch (``files 2/8``),
       writing parts to ``destination`` exactly where a scan export's segments go;
    4. ``write_manifest``: the same ``manifest.json`` as a scan export (recording the schema), then an event of
       each asset in ``outlets``, as :func:`~airflow_dynamoscan.task_groups.dynamodb_parallel_export` records.

    :param group_id: the TaskGroup's id
    :param table_name: the table (templated)
    :param s3_bucket: the bucket DynamoDB writes its export to (templated)
    :param destination: where the converted parts and the manifest go: ``s3://bucket/prefix`` or a local
        directory (templated); keep it apart from the native export's own prefix
    :param s3_prefix: the native export's key prefix (templated)
    :param export_type: ``"FULL_EXPORT"`` or ``"INCREMENTAL_EXPORT"`` (the next window of the chain at
        ``destination``, or the window of ``export_kwargs``, giving rows with ``_op`` and ``_write_time_micros``)
    :param files_per_task: data files per convert task
    :param max_mapped_tasks: the most convert tasks (keep it within ``[core] max_map_length``); more data files
        than that are shared out with more files per task
    :param deferrable: wait for the export in the triggerer
    :param export_kwargs: more :class:`DynamoDBNativeExportOperator` parameters (``export_time``,
        ``export_view_type``, ``chain_start``, ``s3_sse_algorithm``, ``poll_interval``, ``timeout``, ...), the same
        as passing them directly (see ``kwargs``)
    :param outlets: assets (``[Asset("orders_export")]``) that get an event when the manifest is written, with the
        manifest's URI, table, format, items, bytes and parts in its ``extra``
    :param dest_aws_conn_id: the connection of an S3 destination (default: ``aws_conn_id``)
    :param kwargs: :class:`DynamoDBNativeExportOperator` parameters (:data:`NATIVE_EXPORT_PARAMETERS`:
        ``export_time``, ``export_view_type``, ``poll_interval``, ``timeout``, ``restorable_wait``...) go to
        ``start_export``; the BaseOperator parameters of
        :data:`~airflow_dynamoscan.task_groups.GROUP_TASK_PARAMETERS` (``retries``, ``retry_delay``, ``pool``,
        ``queue``...) to all four tasks; the others (``file_format``, ``compression``, ``max_file_bytes``,
        ``columns``, ``schema``, ``overwrite``, ``verify_md5``, other BaseOperator parameters) to the convert tasks
    :return: the TaskGroup.
    """
    dest_conn_id = same_as_aws_conn_id(dest_aws_conn_id, aws_conn_id)
    aws = _aws_connection(aws_conn_id, region_name, verify, botocore_config)
    task_kwargs = {name: kwargs.pop(name) for name in list(kwargs) if name in GROUP_TASK_PARAMETERS}
    start_kwargs = dict(export_kwargs or {})
    for name in [name for name in kwargs if name in NATIVE_EXPORT_PARAMETERS]:
        if name in start_kwargs:
            raise ValueError(
                f"Table {table_name!r}: {name} is given twice, directly and in export_kwargs; give it once."
            )
        start_kwargs[name] = kwargs.pop(name)
    convert_kwargs = kwargs
    chained = export_type == "INCREMENTAL_EXPORT" and not {"export_from_time", "export_to_time"} & set(start_kwargs)
    if chained:
        start_kwargs.update({"chain_destination": destination, "dest_aws_conn_id": dest_conn_id})
    with TaskGroup(group_id=group_id) as group:
        export = DynamoDBNativeExportOperator(
            task_id="start_export",
            table_name=table_name,
            s3_bucket=s3_bucket,
            s3_prefix=s3_prefix,
            export_type=export_type,
            deferrable=deferrable,
            **aws,
            **{**task_kwargs, **start_kwargs},
        )
        plan_files = _plan_files_task(
            aws, files_per_task, max_mapped_tasks, convert_kwargs.get("schema") is None, task_kwargs
        )
        plan = plan_files(export.output, convert_kwargs.get("file_format", "jsonl"), convert_kwargs.get("columns"))
        _convert_and_commit(
            plan, table_name, None if chained else destination, dest_conn_id, outlets, aws, convert_kwargs, task_kwargs
        )
    return group


def choose_table_export_method(
    table_name: str,
    method: str,
    *,
    native_threshold_bytes: int = DEFAULT_NATIVE_THRESHOLD_BYTES,
    aws_conn_id: str | None = "aws_default",
    region_name: str | None = None,
    verify: bool | str | None = None,
    botocore_config: dict[str, Any] | None = None,
) -> str:
    """
    Return ``"scan"`` or ``"native"`` for the table, from DescribeTable's ``TableSizeBytes`` and
    DescribeContinuousBackups' point-in-time recovery status (see :mod:`airflow_dynamoscan.export.strategy`); the
    status is asked only when it decides (``"native"``, or ``"auto"`` for a table of at least
    ``native_threshold_bytes``), so a scan of a smaller table needs no permission for it.

    :raises InvalidScanArgumentError: an unknown method, or ``"native"`` without point-in-time recovery.
    :raises TableNotFoundError: the table does not exist.
    """
    validate_method(method, table_name=table_name)
    hook = DynamoDBScanHook(aws_conn_id=aws_conn_id, region_name=region_name, verify=verify, config=botocore_config)
    table = hook.describe_table(table_name)
    recovery = None
    if needs_recovery_status(method, table.get("TableSizeBytes"), native_threshold_bytes):
        backups = hook.client.describe_continuous_backups(TableName=table_name)["ContinuousBackupsDescription"]
        recovery = backups.get("PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus") == "ENABLED"
    choice = choose_export_method(
        method,
        table_name=table_name,
        table_size_bytes=table.get("TableSizeBytes"),
        point_in_time_recovery=recovery,
        native_threshold_bytes=native_threshold_bytes,
    )
    log.info("Table %s: exporting by %s, because %s", table_name, choice.method, choice.reason)
    return choice.method


def _check_table_export(table_name: str, method: str, native_s3_bucket: str | None, format_options: Any) -> None:
    validate_method(method, table_name=table_name)
    if method != "scan" and not native_s3_bucket:
        raise ValueError(
            f"Table {table_name!r}: method={method!r} needs native_s3_bucket, the bucket DynamoDB writes its own "
            "export to before it is converted."
        )
    unknown = sorted(set(format_options) - set(_CONVERT_KEYWORDS) - GROUP_TASK_PARAMETERS)
    if unknown:
        raise ValueError(
            f"Table {table_name!r}: {unknown} are not format options nor task parameters; allowed: "
            f"{', '.join(_CONVERT_KEYWORDS)} and {', '.join(sorted(GROUP_TASK_PARAMETERS))}. Pass scan options in "
            "scan_options and native-export options in native_options."
        )


def _choose_method_task(
    group_id: str, native_threshold_bytes: int, aws: dict[str, Any], task_kwargs: dict[str, Any]
) -> Any:
    """The branch of ``method="auto"``: the first task of the ``native`` or of the ``scan`` group."""

    @task.branch(task_id="choose_method", **task_kwargs)
    def choose_method(table_name: str) -> str:
        chosen = choose_table_export_method(table_name, "auto", native_threshold_bytes=native_threshold_bytes, **aws)
        return f"{group_id}.native.start_export" if chosen == "native" else f"{group_id}.scan.plan_segments"

    return choose_method


def dynamodb_table_export(
    group_id: str,
    *,
    table_name: str,
    destination: str,
    method: str = "scan",
    native_s3_bucket: str | None = None,
    native_s3_prefix: str | None = None,
    native_threshold_bytes: int = DEFAULT_NATIVE_THRESHOLD_BYTES,
    scan_options: dict[str, Any] | None = None,
    native_options: dict[str, Any] | None = None,
    aws_conn_id: str | None = "aws_default",
    region_name: str | None = None,
    verify: bool | str | None = None,
    botocore_config: dict[str, Any] | None = None,
    outlets: list[Any] | None = None,
    dest_aws_conn_id: str | None = SAME_AS_AWS_CONN_ID,
    **export_kwargs: Any,
) -> TaskGroup:
    """
    Export a whole table to ``destination`` by scan or by native export; either gives the same parts and manifest.

    * ``method="scan"``: :func:`~airflow_dynamoscan.task_groups.dynamodb_parallel_export` (group ``scan``);
    * ``method="native"``: :func:`dynamodb_native_export_to_files` (group ``native``), a full export at the run's
      data-interval end, staged under ``s3://{native_s3_bucket}/{native_s3_prefix}``;
    * ``method="auto"``: a ``choose_method`` task picks one when the run starts (native when point-in-time
      recovery is enabled and the table holds at least ``native_threshold_bytes``, 1 GiB by default) and the
      other group is skipped.

    :param scan_options: more :func:`~airflow_dynamoscan.task_groups.dynamodb_parallel_export` parameters
        (``total_segments``, ``scan_kwargs``, ...)
    :param native_options: more :func:`dynamodb_native_export_to_files` parameters (``files_per_task``,
        ``deferrable``, ``export_kwargs``...)
    :param outlets: assets that get an event when the manifest of whichever way ran is written
    :param export_kwargs: format options shared by both ways (``file_format``, ``compression``,
        ``max_file_bytes``, ``columns``, ``overwrite``), and the BaseOperator parameters of
        :data:`~airflow_dynamoscan.task_groups.GROUP_TASK_PARAMETERS` (``retries``, ``retry_delay``, ``pool``,
        ``queue``...), which every task of the group gets
    :raises ValueError: an unknown method, or ``native``/``auto`` without ``native_s3_bucket``.
    """
    _check_table_export(table_name, method, native_s3_bucket, export_kwargs)
    task_kwargs = {name: value for name, value in export_kwargs.items() if name in GROUP_TASK_PARAMETERS}
    aws = _aws_connection(aws_conn_id, region_name, verify, botocore_config)
    shared: dict[str, Any] = {
        "table_name": table_name,
        "destination": destination,
        "dest_aws_conn_id": dest_aws_conn_id,
        "outlets": outlets,
        **aws,
    }
    with TaskGroup(group_id=group_id) as group:
        groups = []
        if method in ("scan", "auto"):
            format_options = {name: value for name, value in export_kwargs.items() if name != "verify_md5"}
            groups.append(dynamodb_parallel_export("scan", **shared, **format_options, **(scan_options or {})))
        if method in ("native", "auto"):
            groups.append(
                dynamodb_native_export_to_files(
                    "native",
                    s3_bucket=str(native_s3_bucket),
                    s3_prefix=native_s3_prefix,
                    **shared,
                    **export_kwargs,
                    **(native_options or {}),
                )
            )
        if len(groups) == 2:
            choose_method = _choose_method_task(str(group.group_id), native_threshold_bytes, aws, task_kwargs)
            choose_method(table_name) >> groups
    return group
