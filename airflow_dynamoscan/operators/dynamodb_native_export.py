"""
Start a DynamoDB native export (``ExportTableToPointInTime``), wait for it (deferrable), and convert its files.

:class:`DynamoDBNativeExportOperator` starts a full export at a point in time, or an incremental export of a time
window, and waits for it, in the triggerer (``deferrable=True``) or in the worker. A retry of the task never starts
a second export: the request carries a ``ClientToken`` derived from the task instance and the request itself.
:class:`DynamoDBNativeExportConvertOperator` converts data files of a finished export into the package's own
formats, as parts that :class:`~airflow_dynamoscan.operators.dynamodb_export.DynamoDBExportManifestOperator`
commits with the same manifest as a scan export.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from airflow_dynamoscan.compat import AirflowException, AirflowFailException, AirflowSkipException, conf
from airflow_dynamoscan.exceptions import DestinationError, DynamoScanError, TableNotFoundError
from airflow_dynamoscan.export.chain import WINDOW_FIELD, ExportWindow, chain_end, next_window
from airflow_dynamoscan.export.exporter import segment_prefix
from airflow_dynamoscan.export.formats import uses_schema, validate_format
from airflow_dynamoscan.export.manifest import MANIFEST_NAME
from airflow_dynamoscan.export.native import (
    EXPORT_TYPES,
    EXPORT_VIEW_TYPES,
    FILES_NAME,
    SUMMARY_NAME,
    NativeDataFile,
    batch_data_files,
    check_incremental_window,
    convert_data_files,
    export_folder,
    plan_native_schema,
    read_data_files,
    read_summary,
    utc_datetime,
)
from airflow_dynamoscan.export.schema import key_column_types
from airflow_dynamoscan.hooks.dynamodb_scan import DynamoDBScanHook
from airflow_dynamoscan.operators.base import SAME_AS_AWS_CONN_ID, AwsConnectionOperator
from airflow_dynamoscan.operators.dynamodb_export import (
    DEFAULT_MAX_FILE_BYTES,
    destination_dataset,
    dynamodb_dataset,
)
from airflow_dynamoscan.triggers.dynamodb_native_export import (
    DEFAULT_POLL_INTERVAL,
    DynamoDBNativeExportTrigger,
    DynamoDBRestorableTimeTrigger,
    json_description,
)

if TYPE_CHECKING:
    from airflow_dynamoscan.compat import Context
    from airflow_dynamoscan.storage.destinations import Destination

log = logging.getLogger(__name__)

#: How long the operator waits, by default, for an export to finish: DynamoDB's exports of big tables take hours.
DEFAULT_EXPORT_TIMEOUT = timedelta(hours=24)

#: How long the operator waits for an export time to become restorable (DynamoDB's backups lag a few minutes).
DEFAULT_RESTORABLE_WAIT = timedelta(minutes=15)

_OUTPUT_FORMATS = ("DYNAMODB_JSON", "ION")
_SSE_ALGORITHMS = ("AES256", "KMS")
_FINAL_STATUSES = ("COMPLETED", "FAILED")


def client_token(identity: dict[str, Any], request: dict[str, Any]) -> str:
    """
    Return the ``ClientToken`` of an export request: the SHA-256 (64 hex digits) of the task instance's identity
    (``dag_id``, ``task_id``, ``run_id``, ``map_index``; never the try number) and of the request.

    A retry sends the same request with the same token, so DynamoDB returns the export the first try started
    instead of starting another (within DynamoDB's 8-hour idempotency window). A changed request (another bucket,
    time or window) gets another token, so it starts its own export instead of failing with
    ``ExportConflictException``.
    """
    text = json.dumps({"identity": identity, "request": request}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _task_identity(context: Context | dict[str, Any], task_id: str, dag_id: str | None) -> dict[str, Any]:
    ti = context.get("ti") or context.get("task_instance")
    dag_run = context.get("dag_run")
    return {
        "dag_id": getattr(ti, "dag_id", None) or dag_id,
        "task_id": getattr(ti, "task_id", None) or task_id,
        "run_id": getattr(ti, "run_id", None) or getattr(dag_run, "run_id", None) or context.get("run_id"),
        "map_index": getattr(ti, "map_index", -1),
    }


def _run_time(context: Context | dict[str, Any], name: str) -> datetime | None:
    value: Any = context.get(name)
    if value is None and name == "data_interval_end":
        # A manual run may have no data interval; the time it was asked to run after is as stable across retries.
        dag_run = context.get("dag_run")
        value = getattr(dag_run, "run_after", None) or getattr(dag_run, "logical_date", None)
    return None if value is None else utc_datetime(value, name)


def _error_code(error: Exception) -> str | None:
    response = getattr(error, "response", None)
    return response.get("Error", {}).get("Code") if isinstance(response, dict) else None


def staging_dataset(bucket: str, prefix: str | None, dataset_class: Any) -> Any:
    """The OpenLineage dataset of a native export's staging place: namespace ``s3://{bucket}``, name the prefix."""
    return destination_dataset(f"s3://{bucket}/{(prefix or '').strip('/')}", dataset_class)


def export_result(table_name: str, description: dict[str, Any]) -> dict[str, Any]:
    """
    The small XCom result of a native export, from its ``ExportDescription``.

    ``manifest_summary_key`` is DescribeExport's ``ExportManifest`` (else the documented place, derived from the
    ARN); ``manifest_files_key`` is ``manifest-files.json`` beside it.
    """
    description = json_description(description)
    summary_key = description.get("ExportManifest")
    arn = str(description.get("ExportArn") or "")
    if not summary_key and "/export/" in arn:
        summary_key = export_folder(description.get("S3Prefix"), arn.rpartition("/export/")[2]) + SUMMARY_NAME
    files_key = summary_key.rpartition("/")[0] + "/" + FILES_NAME if summary_key else None
    incremental = description.get("IncrementalExportSpecification") or {}
    return {
        "table_name": table_name,
        "export_arn": description.get("ExportArn"),
        "export_status": description.get("ExportStatus"),
        "export_type": description.get("ExportType"),
        "export_format": description.get("ExportFormat"),
        "export_time": description.get("ExportTime"),
        "export_from_time": incremental.get("ExportFromTime"),
        "export_to_time": incremental.get("ExportToTime"),
        "export_view_type": incremental.get("ExportViewType"),
        "item_count": description.get("ItemCount"),
        "billed_size_bytes": description.get("BilledSizeBytes"),
        "s3_bucket": description.get("S3Bucket"),
        "s3_prefix": description.get("S3Prefix"),
        "manifest_summary_key": summary_key,
        "manifest_files_key": files_key,
        "started_at": description.get("StartTime"),
        "finished_at": description.get("EndTime"),
    }


def _duration(table_name: str, name: str, value: object, *, zero_allowed: bool = False) -> timedelta:
    """
    Return a duration given as a ``timedelta`` or seconds.

    :raises ValueError: anything else, or not above zero (at zero or above, with ``zero_allowed``), naming the
        table and the parameter.
    """
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not zero_allowed):
        bound = ">= 0" if zero_allowed else "> 0"
        raise ValueError(
            f"Table {table_name!r}: {name}={value!r} is not allowed; it must be a number of seconds {bound} or a "
            "datetime.timedelta."
        )
    return timedelta(seconds=seconds)


def check_export_choices(operator: DynamoDBNativeExportOperator) -> None:
    """
    Check the fixed choices of a :class:`DynamoDBNativeExportOperator` when the DAG is parsed.

    :raises ValueError: naming the table, the parameter and the allowed values.
    """
    where = f"Table {operator.table_name!r}: "
    choices = [
        ("export_type", operator.export_type, EXPORT_TYPES),
        ("export_view_type", operator.export_view_type, EXPORT_VIEW_TYPES),
        ("export_format", operator.export_format, _OUTPUT_FORMATS),
        ("s3_sse_algorithm", operator.s3_sse_algorithm, (None, *_SSE_ALGORITHMS)),
    ]
    for name, value, allowed in choices:
        if value not in allowed:
            raise ValueError(f"{where}{name}={value!r} is not allowed; allowed: {', '.join(map(str, allowed))}.")
    window_given = operator.export_from_time is not None or operator.export_to_time is not None
    chain_given = operator.chain_destination is not None or operator.chain_start is not None
    if operator.export_type == "FULL_EXPORT" and (window_given or chain_given):
        raise ValueError(
            f"{where}export_from_time/export_to_time/chain_destination/chain_start apply to "
            "export_type='INCREMENTAL_EXPORT' only; a full export takes export_time."
        )


class DynamoDBNativeExportOperator(AwsConnectionOperator):
    """
    Export a DynamoDB table to S3 with DynamoDB's own ``ExportTableToPointInTime``, and wait until it is done.

    The table needs point-in-time recovery. A native export reads DynamoDB's backups, not the table: it uses no
    read capacity and is a consistent snapshot. DynamoDB writes it under
    ``s3://{s3_bucket}/{s3_prefix}/AWSDynamoDB/{ExportId}/`` (see :mod:`airflow_dynamoscan.export.native`).

    * ``export_type="FULL_EXPORT"``: the table as it was at ``export_time`` (default: the run's data-interval
      end; for a run without one, the time it was asked to run after).
    * ``export_type="INCREMENTAL_EXPORT"``: the changes written in ``[export_from_time, export_to_time)``,
      15 minutes to 24 hours; ``export_view_type`` ``"NEW_AND_OLD_IMAGES"`` (default) or ``"NEW_IMAGE"``. Longer
      windows: map the operator over :func:`~airflow_dynamoscan.export.native.split_export_window`.
    * ``export_type="INCREMENTAL_EXPORT"`` with ``chain_destination`` (and no ``export_from_time`` /
      ``export_to_time``): the next window of the chain of incremental exports committed there (see
      :mod:`airflow_dynamoscan.export.chain`): from where the last committed window ended (a new chain: from
      ``chain_start``, else the table's earliest restorable time) to the run's data-interval end (the time a run
      without one was asked to run after; else now), at most 24 hours. Each window is converted into its own
      folder ``{chain_destination}/{start}_{end}/``. A run whose window would be shorter than 15 minutes (a re-run
      of a window already committed, a run too soon after the last) is skipped, with the reason in its log.
    * ``export_type="INCREMENTAL_EXPORT"`` with neither: the run's data interval, when it is at least 15 minutes
      long (Airflow 2's cron schedules); Airflow 3's cron schedules give runs an empty interval, so chain instead.

    A retry never starts a second export (see :func:`client_token`). With ``deferrable=True`` the wait runs in the
    triggerer (:class:`~airflow_dynamoscan.triggers.dynamodb_native_export.DynamoDBNativeExportTrigger`) and frees
    the worker slot; otherwise the task polls every ``poll_interval`` seconds. Either way it gives up after
    ``timeout`` (a retry then waits for the same export again).

    :param table_name: the table's name or ARN (templated)
    :param s3_bucket: the bucket DynamoDB writes to (templated); it must exist
    :param s3_prefix: the key prefix of the export (templated), e.g. ``exports/orders/{{ ds }}``
    :param export_type: ``"FULL_EXPORT"`` (default) or ``"INCREMENTAL_EXPORT"``
    :param export_time: a full export's point in time: a ``datetime`` or ISO 8601 text (templated)
    :param export_from_time: an incremental export's window start (templated)
    :param export_to_time: an incremental export's window end (templated)
    :param export_view_type: an incremental export's ``"NEW_AND_OLD_IMAGES"`` or ``"NEW_IMAGE"``
    :param chain_destination: where the windows of a chain of incremental exports are committed (templated):
        ``s3://bucket/prefix`` or a local directory, as the convert step's destination root
    :param chain_start: where a new chain starts (templated): a ``datetime`` or ISO 8601 text, e.g. the export
        time of the full export the chain continues; default: the table's earliest restorable time. Once a window
        is committed, the chain continues from its end and ``chain_start`` is not read.
    :param dest_aws_conn_id: the connection of an S3 ``chain_destination`` (default: ``aws_conn_id``)
    :param export_format: ``"DYNAMODB_JSON"`` (default; what the convert step reads) or ``"ION"``
    :param s3_bucket_owner: the bucket owner's account id, for a bucket of another account
    :param s3_sse_algorithm: ``"AES256"`` or ``"KMS"``
    :param s3_sse_kms_key_id: the KMS key of ``"KMS"`` encryption
    :param deferrable: wait in the triggerer (default: ``[operators] default_deferrable``)
    :param poll_interval: seconds between two DescribeExport calls (default 60)
    :param timeout: how long to wait for the export (default 24 hours), a ``timedelta`` or seconds
    :param restorable_wait: how long to wait for an export time a few minutes old to become restorable
        (point-in-time backups lag behind the table by about five minutes); default 15 minutes. With
        ``deferrable=True`` this wait runs in the triggerer too
        (:class:`~airflow_dynamoscan.triggers.dynamodb_native_export.DynamoDBRestorableTimeTrigger`)
    :param aws_conn_id: the Airflow connection of the table (also used to check the bucket)
    :param region_name: AWS region; default: the connection's
    :param verify: SSL verification, as for the Amazon provider's operators
    :param botocore_config: ``botocore.config.Config`` options as a dict

    Returns (XCom) :func:`export_result`: ``export_arn``, ``export_status``, ``item_count``,
    ``billed_size_bytes``, ``s3_bucket``, ``s3_prefix``, ``manifest_summary_key``, ``manifest_files_key``, the
    times, and ``table_name``. Never item data.

    In a chain, the result also has ``incremental_window`` (``export_from_time``, ``export_to_time``, ``chain``)
    and ``window_destination``, the window's folder, where the convert step writes.

    :raises AirflowFailException: errors no retry fixes: no such table, point-in-time recovery disabled, an
        incremental window outside 15 minutes to 24 hours, an export time before the earliest restorable time or
        in the future, a chain whose end is before the earliest restorable time (re-base it on a full export), a
        missing bucket, a rejected request, a failed export.
    :raises AirflowSkipException: a chained run with nothing to export yet.
    """

    template_fields: Sequence[str] = (
        "table_name",
        "s3_bucket",
        "s3_prefix",
        "export_time",
        "export_from_time",
        "export_to_time",
        "chain_destination",
        "chain_start",
        "s3_bucket_owner",
        "s3_sse_kms_key_id",
        *AwsConnectionOperator.aws_template_fields,
    )
    ui_color = "#4b7bec"

    def __init__(
        self,
        *,
        table_name: str,
        s3_bucket: str,
        s3_prefix: str | None = None,
        export_type: str = "FULL_EXPORT",
        export_time: datetime | str | None = None,
        export_from_time: datetime | str | None = None,
        export_to_time: datetime | str | None = None,
        export_view_type: str = "NEW_AND_OLD_IMAGES",
        chain_destination: str | None = None,
        chain_start: datetime | str | None = None,
        dest_aws_conn_id: str | None = SAME_AS_AWS_CONN_ID,
        export_format: str = "DYNAMODB_JSON",
        s3_bucket_owner: str | None = None,
        s3_sse_algorithm: str | None = None,
        s3_sse_kms_key_id: str | None = None,
        deferrable: bool | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        timeout: timedelta | float | None = DEFAULT_EXPORT_TIMEOUT,
        restorable_wait: timedelta | float = DEFAULT_RESTORABLE_WAIT,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.table_name, self.export_type, self.export_format = table_name, export_type, export_format
        self.s3_bucket, self.s3_prefix, self.s3_bucket_owner = s3_bucket, s3_prefix, s3_bucket_owner
        self.s3_sse_algorithm, self.s3_sse_kms_key_id = s3_sse_algorithm, s3_sse_kms_key_id
        self.export_time, self.export_view_type = export_time, export_view_type
        self.export_from_time, self.export_to_time = export_from_time, export_to_time
        self.chain_destination, self.chain_start = chain_destination, chain_start
        self.dest_aws_conn_id = self.connection_or_default(dest_aws_conn_id)
        self.deferrable = (
            conf.getboolean("operators", "default_deferrable", fallback=False) if deferrable is None else deferrable
        )
        self.poll_interval = _duration(table_name, "poll_interval", poll_interval).total_seconds()
        self.export_timeout = None if timeout is None else _duration(table_name, "timeout", timeout)
        self.restorable_wait = _duration(table_name, "restorable_wait", restorable_wait, zero_allowed=True)
        self._restorable_wait_spent = False
        check_export_choices(self)

    @cached_property
    def hook(self) -> DynamoDBScanHook:
        """The hook of the table's connection."""
        return DynamoDBScanHook(
            aws_conn_id=self.aws_conn_id, region_name=self.region_name, verify=self.verify, config=self.botocore_config
        )

    def _connection(self) -> dict[str, Any]:
        """The AWS connection keywords, for the trigger."""
        keys = ("aws_conn_id", "region_name", "verify", "botocore_config")
        return {key: getattr(self, key) for key in keys}

    def _fail(self, message: str) -> AirflowFailException:
        return AirflowFailException(f"Table {self.table_name!r}: {message}")

    def _table_arn(self) -> tuple[str, str]:
        if str(self.table_name).startswith("arn:"):
            return str(self.table_name), str(self.table_name).rpartition("/")[2]
        try:
            table = self.hook.describe_table(self.table_name)
        except TableNotFoundError as error:
            raise AirflowFailException(str(error)) from error
        return str(table["TableArn"]), str(table["TableName"])

    def _recovery(self, name: str) -> dict[str, Any]:
        response = self.hook.client.describe_continuous_backups(TableName=name)
        recovery: dict[str, Any] = response["ContinuousBackupsDescription"].get("PointInTimeRecoveryDescription", {})
        if recovery.get("PointInTimeRecoveryStatus") != "ENABLED":
            raise self._fail(
                "point-in-time recovery is not enabled (PointInTimeRecoveryStatus="
                f"{recovery.get('PointInTimeRecoveryStatus')!r}); a native export needs it. Enable it with "
                "UpdateContinuousBackups PointInTimeRecoverySpecification={'PointInTimeRecoveryEnabled': true} "
                "(console: the table's Backups tab, Point-in-time recovery), or export by scan instead."
            )
        return recovery

    def _check_restorable(self, name: str, recovery: dict[str, Any], first: datetime, last: datetime) -> None:
        """Check that ``[first, last]`` lies in the restorable range; wait a little if ``last`` is just too recent."""
        now = datetime.now(timezone.utc)
        if last > now:
            raise self._fail(
                f"the export time {last.isoformat()} is in the future (now: {now.isoformat()}); DynamoDB exports "
                "only the past."
            )
        earliest = recovery.get("EarliestRestorableDateTime")
        if earliest is not None and first < utc_datetime(earliest, "EarliestRestorableDateTime"):
            raise self._fail(
                f"the export time {first.isoformat()} is before the earliest restorable time "
                f"{utc_datetime(earliest, 'EarliestRestorableDateTime').isoformat()} (point-in-time recovery keeps "
                "a limited period, RecoveryPeriodInDays); choose a later time."
            )
        deadline = time.monotonic() + self.restorable_wait.total_seconds()
        while True:
            latest = recovery.get("LatestRestorableDateTime")
            if latest is None or last <= utc_datetime(latest, "LatestRestorableDateTime"):
                return
            if time.monotonic() >= deadline or self._restorable_wait_spent:
                # Retryable: the backups catch up within minutes.
                raise AirflowException(
                    f"Table {self.table_name!r}: the export time {last.isoformat()} is after the latest restorable "
                    f"time {utc_datetime(latest, 'LatestRestorableDateTime').isoformat()}; a retry will find it "
                    "restorable."
                )
            if self.deferrable:
                self._defer_until_restorable(name, last)
            self.log.info("Waiting for %s to become restorable (latest: %s)", last.isoformat(), latest)
            time.sleep(min(30.0, self.poll_interval))
            recovery = self._recovery(name)

    def _defer_until_restorable(self, name: str, moment: datetime) -> None:
        """Hand the wait for ``moment`` to become restorable to the triggerer, for at most ``restorable_wait``."""
        wait = self.restorable_wait.total_seconds()
        self.log.info(
            "Waiting in the triggerer, for at most %s s, for %s to become restorable", wait, moment.isoformat()
        )
        self.defer(
            trigger=DynamoDBRestorableTimeTrigger(
                table_name=name,
                export_time=moment.isoformat(),
                poll_interval=min(30.0, self.poll_interval),
                timeout=wait,
                **self._connection(),
            ),
            method_name="execute_after_restorable_wait",
            timeout=self.restorable_wait + timedelta(minutes=5),
        )

    def execute_after_restorable_wait(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """
        Resume after the restorable-time trigger: start the export (its time is restorable now), or, when the wait
        ran out, fail so that a retry tries again.
        """
        event = event or {}
        if event.get("status") != "restorable":
            raise AirflowException(f"Table {self.table_name!r}: {event.get('message')}; a retry tries again.")
        self._restorable_wait_spent = True  # the time is checked once more, and never waited for twice
        result: dict[str, Any] = self.execute(context)
        return result

    def _check_bucket(self) -> None:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        s3: Any = S3Hook(aws_conn_id=self.aws_conn_id, verify=self.verify).get_conn()
        try:
            if self.s3_bucket_owner:
                s3.head_bucket(Bucket=self.s3_bucket, ExpectedBucketOwner=self.s3_bucket_owner)
            else:
                s3.head_bucket(Bucket=self.s3_bucket)
        except Exception as error:
            code = _error_code(error)
            if code in ("404", "NoSuchBucket", "NotFound"):
                raise self._fail(
                    f"the bucket s3_bucket={self.s3_bucket!r} does not exist; create it or name another."
                ) from error
            # 403 and the like: a bucket of another account may refuse HeadBucket and still accept exports.
            self.log.warning("Could not check the bucket %s (%s); starting the export anyway", self.s3_bucket, code)

    def _time_request(self, context: Context | dict[str, Any], name: str, recovery: dict[str, Any]) -> dict[str, Any]:
        """The request's ``ExportTime`` (a full export) or ``IncrementalExportSpecification``, checked."""
        if self.export_type == "FULL_EXPORT":
            moment = (
                utc_datetime(self.export_time, "export_time")
                if self.export_time
                else _run_time(context, "data_interval_end") or datetime.now(timezone.utc)
            )
            self._check_restorable(name, recovery, moment, moment)
            return {"ExportTime": moment}
        if self.chained:
            first, last = self._chain_window(context, recovery)
        else:
            first, last = self._given_window(context)
        check_incremental_window(first, last, table_name=self.table_name)
        self._check_restorable(name, recovery, first, last)
        spec = {"ExportFromTime": first, "ExportToTime": last, "ExportViewType": self.export_view_type}
        return {"IncrementalExportSpecification": spec}

    @property
    def chained(self) -> bool:
        """Whether this incremental export takes its window from the chain at ``chain_destination``."""
        return (
            self.export_type == "INCREMENTAL_EXPORT"
            and bool(self.chain_destination)
            and not self.export_from_time
            and not self.export_to_time
        )

    def _given_window(self, context: Context | dict[str, Any]) -> tuple[datetime, datetime]:
        """The window given as ``export_from_time``/``export_to_time``, else the run's data interval."""
        first = (
            utc_datetime(self.export_from_time, "export_from_time")
            if self.export_from_time
            else _run_time(context, "data_interval_start")
        )
        last = (
            utc_datetime(self.export_to_time, "export_to_time")
            if self.export_to_time
            else _run_time(context, "data_interval_end")
        )
        if first is None or last is None or (first == last and not self.export_from_time):
            interval = (
                "no data interval" if first is None or last is None else f"an empty data interval ({first.isoformat()})"
            )
            raise self._fail(
                f"an incremental export needs a window, and this run has {interval} (Airflow 3's cron schedules "
                "give each run an empty one). Give chain_destination (each window then starts where the last "
                "committed one ended), or export_from_time and export_to_time."
            )
        return first, last

    def _chain_window(self, context: Context | dict[str, Any], recovery: dict[str, Any]) -> tuple[datetime, datetime]:
        """
        The next window of the chain at ``chain_destination``.

        :raises AirflowSkipException: nothing to export yet.
        :raises AirflowFailException: the chain is broken or no longer restorable.
        """
        chain = self.open_destination(str(self.chain_destination), self.dest_aws_conn_id)
        earliest_value = recovery.get("EarliestRestorableDateTime")
        earliest = None if earliest_value is None else utc_datetime(earliest_value, "EarliestRestorableDateTime")
        last_end = chain_end(chain)
        if last_end is None:
            last_end = utc_datetime(self.chain_start, "chain_start") if self.chain_start else earliest
            if last_end is None:
                raise self._fail(
                    f"the chain at {chain.uri} is new and the table reports no earliest restorable time; give "
                    "chain_start, where the chain starts (ISO 8601)."
                )
            self.log.info("The chain at %s is new: it starts at %s", chain.uri, last_end.isoformat())
        hint = _run_time(context, "data_interval_end")
        now = datetime.now(timezone.utc)
        window = next_window(last_end, hint, now, earliest, table_name=self.table_name)
        if window is None:
            raise AirflowSkipException(
                f"Table {self.table_name!r}: nothing to export yet: the chain at {chain.uri} ends at "
                f"{last_end.isoformat()}, and this run ends at {(hint or now).isoformat()}; an incremental export "
                "needs at least 15 minutes (a run whose window is already exported has nothing to do)."
            )
        behind = (hint or now) - window[1]
        self.log.info(
            "Chain at %s: exporting %s to %s%s",
            chain.uri,
            window[0].isoformat(),
            window[1].isoformat(),
            f"; the chain is then still {behind} behind this run's end (the next runs catch up, 24 hours each)"
            if behind.total_seconds() > 0
            else "",
        )
        return window

    def build_request(self, context: Context | dict[str, Any]) -> tuple[dict[str, Any], str]:
        """
        Check the table and the times; return the ``ExportTableToPointInTime`` request (with its ``ClientToken``)
        and the table's name.

        :raises AirflowFailException: see the class docstring.
        """
        if not self.s3_bucket:
            raise self._fail("s3_bucket is empty; name the bucket the export is written to.")
        table_arn, name = self._table_arn()
        recovery = self._recovery(name)
        request: dict[str, Any] = {
            "TableArn": table_arn,
            "S3Bucket": self.s3_bucket,
            "ExportFormat": self.export_format,
            "ExportType": self.export_type,
        }
        try:
            request.update(self._time_request(context, name, recovery))
        except DestinationError:
            raise  # reading the chain's manifests may fail for a moment (S3); a retry reads them again
        except DynamoScanError as error:
            raise AirflowFailException(str(error)) from error
        optional = {
            "S3Prefix": (self.s3_prefix or "").strip("/") or None,
            "S3BucketOwner": self.s3_bucket_owner,
            "S3SseAlgorithm": self.s3_sse_algorithm,
            "S3SseKmsKeyId": self.s3_sse_kms_key_id,
        }
        request.update({key: value for key, value in optional.items() if value})
        identity = _task_identity(context, self.task_id, self.dag_id)
        if self.chained:
            # One export per window, whichever run asks: a re-triggered run reuses the export of a window that an
            # earlier run exported but did not commit.
            identity = {"dag_id": identity["dag_id"], "task_id": identity["task_id"], "chain": self.chain_destination}
        request["ClientToken"] = client_token(identity, request)
        return request, name

    def _start(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self.hook.client.export_table_to_point_in_time(**request)
        except Exception as error:
            code = _error_code(error)
            messages = {
                "PointInTimeRecoveryUnavailableException": "point-in-time recovery is not enabled; enable it "
                "(UpdateContinuousBackups PointInTimeRecoveryEnabled=true) before exporting.",
                "InvalidExportTimeException": "DynamoDB refused the export time: it must lie within the table's "
                "restorable range.",
                "ExportConflictException": "an export with this task's ClientToken and other parameters is "
                "already running; wait for it or change the task.",
                "TableNotFoundException": "the table does not exist.",
                "ValidationException": "DynamoDB rejected the export request.",
            }
            if code in messages:
                raise self._fail(f"{messages[code]} ({code}: {error})") from error
            raise
        description: dict[str, Any] = response["ExportDescription"]
        return description

    def execute(self, context: Context) -> dict[str, Any]:
        request, _ = self.build_request(context)
        self._check_bucket()
        self.log.info(
            "Starting the %s of table %s to s3://%s/%s",
            self.export_type,
            self.table_name,
            self.s3_bucket,
            request.get("S3Prefix", ""),
        )
        description = self._start(request)
        arn = description["ExportArn"]
        self.log.info("Export %s is %s", arn, description.get("ExportStatus"))
        if description.get("ExportStatus") not in _FINAL_STATUSES and self.deferrable:
            self.defer(
                trigger=DynamoDBNativeExportTrigger(
                    export_arn=arn, table_name=self.table_name, poll_interval=self.poll_interval, **self._connection()
                ),
                method_name="execute_complete",
                timeout=self.export_timeout,
            )
        return self._finish(self._wait(description))

    def _wait(self, description: dict[str, Any]) -> dict[str, Any]:
        """Poll DescribeExport in the worker until the export is completed or failed, or the timeout passes."""
        arn = description["ExportArn"]
        deadline = None if self.export_timeout is None else time.monotonic() + self.export_timeout.total_seconds()
        while description.get("ExportStatus") not in _FINAL_STATUSES:
            if deadline is not None and time.monotonic() >= deadline:
                raise AirflowException(
                    f"Table {self.table_name!r}: export {arn} is still {description.get('ExportStatus')} after "
                    f"{self.export_timeout}; a retry waits for the same export."
                )
            time.sleep(self.poll_interval)
            description = self.hook.client.describe_export(ExportArn=arn)["ExportDescription"]
        return description

    def _finish(self, description: dict[str, Any]) -> dict[str, Any]:
        if description.get("ExportStatus") == "FAILED":
            raise self._fail(
                f"export {description.get('ExportArn')} failed: {description.get('FailureCode')}: "
                f"{description.get('FailureMessage')}"
            )
        result = export_result(self.table_name, description)
        if self.chained:
            result.update(self._chain_result(result))
        self.log.info(
            "Export %s of table %s completed: %s items, %s billed bytes; manifest %s",
            result["export_arn"],
            self.table_name,
            result["item_count"],
            result["billed_size_bytes"],
            result["manifest_summary_key"],
        )
        return result

    def _chain_result(self, result: dict[str, Any]) -> dict[str, Any]:
        """The window of a chained export, and the folder its conversion is committed to."""
        from airflow_dynamoscan.storage.destinations import normalize_destination

        try:
            chain_uri = normalize_destination(str(self.chain_destination))
            window = ExportWindow(
                utc_datetime(result["export_from_time"], "ExportFromTime"),
                utc_datetime(result["export_to_time"], "ExportToTime"),
            )
        except DynamoScanError as error:
            raise self._fail(f"the finished export names no window of the chain: {error}") from error
        return {WINDOW_FIELD: window.as_dict(chain_uri), "window_destination": f"{chain_uri}/{window.folder}"}

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Lineage: the DynamoDB table in, the export's S3 prefix out (needs the OpenLineage provider)."""
        from airflow.providers.common.compat.openlineage.facet import Dataset
        from airflow.providers.openlineage.extractors import OperatorLineage

        return OperatorLineage(
            inputs=[dynamodb_dataset(self.hook, str(self.table_name).rpartition("/")[2], Dataset)],
            outputs=[staging_dataset(self.s3_bucket, self.s3_prefix, Dataset)],
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the trigger: return the result, or fail as the event says."""
        status = event.get("status")
        description = event.get("description")
        if status in ("success", "failed") and description:
            return self._finish(description)
        # A timeout or an error checking the status: a retry sends the same request and waits for the same export.
        raise AirflowException(f"Table {self.table_name!r}: {event.get('message')}")


def table_key_types(hook: DynamoDBScanHook, table_name: str) -> dict[str, str]:
    """
    Return the column types of the table's key attributes (see
    :func:`~airflow_dynamoscan.export.schema.key_column_types`), or ``{}`` when DescribeTable is not possible: a
    native export outlives its table, and converting it needs no access to the table.
    """
    try:
        return key_column_types(hook.describe_table(table_name))
    except (DynamoScanError, ClientError, BotoCoreError) as error:
        log.warning(
            "Table %s: the key attributes are not known (%s); a converted export without records gets only the "
            "extra column",
            table_name,
            type(error).__name__,
        )
        return {}


def plan_native_export_files(
    export: dict[str, Any],
    *,
    files_per_task: int = 1,
    max_tasks: int | None = None,
    s3_client: Any,
    file_format: str = "jsonl",
    columns: list[str] | None = None,
    plan_schema: bool = True,
    key_types: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """
    Read a finished export's manifests and return the keyword sets of the mapped convert tasks.

    :param export: the result of :class:`DynamoDBNativeExportOperator` (``s3_bucket``, ``manifest_summary_key``)
    :param files_per_task: data files per convert task
    :param max_tasks: the most convert tasks, e.g. Airflow's ``[core] max_map_length``: an export with more data
        files gets more files per task (``None``: no limit)
    :param s3_client: a boto3 S3 client that can read the export
    :param file_format: the format the convert tasks write
    :param columns: for CSV and Parquet, the attributes to convert, in this order
    :param plan_schema: for CSV and Parquet, plan the export's one schema here
        (:func:`~airflow_dynamoscan.export.native.plan_native_schema`), once, and give it to every convert task
    :param key_types: the table's key attributes and their column types (see :func:`table_key_types`): the
        columns of the schema of an export without any record
    :return: ``[{"data_files": [...], "segment": i, "total_segments": n, "incremental": bool,
        "source_bucket": ..., "source_prefix": ...}, ...]``, one per batch (with ``"schema"`` when planned, and for
        an export of a chain its ``"destination"``, the window's folder, and its ``"incremental_window"``); an
        export without data files gives one empty batch.
    :raises AirflowFailException: the manifests are missing, malformed, in ``ION``, or disagree.
    """
    bucket, key = export.get("s3_bucket"), export.get("manifest_summary_key")
    if not bucket or not key:
        raise AirflowFailException(
            f"Table {export.get('table_name')!r}: the export result names no s3_bucket or manifest_summary_key: "
            f"{sorted(export)}."
        )
    try:
        validate_format(file_format, None, table_name=export.get("table_name"))
        summary = read_summary(s3_client, bucket, key)
        data_files = read_data_files(s3_client, summary)
        batches = batch_data_files(data_files, files_per_task, max_batches=max_tasks)
        shared: dict[str, Any] = {
            "incremental": summary.incremental,
            "source_bucket": bucket,
            "source_prefix": export.get("s3_prefix"),
        }
        if export.get(WINDOW_FIELD):
            shared.update({"destination": export["window_destination"], WINDOW_FIELD: export[WINDOW_FIELD]})
        if plan_schema and uses_schema(file_format):
            schema = plan_native_schema(
                s3_client, bucket, data_files, incremental=summary.incremental, columns=columns, key_types=key_types
            )
            shared["schema"] = schema.to_json()
    except DynamoScanError as error:
        raise AirflowFailException(str(error)) from error
    return [
        {
            "data_files": [data_file.as_dict() for data_file in batch],
            "segment": number,
            "total_segments": len(batches),
            **shared,
        }
        for number, batch in enumerate(batches)
    ]


class DynamoDBNativeExportConvertOperator(AwsConnectionOperator):
    """
    Convert data files of a native export into parts of the package's formats, as one segment of an export.

    The parts go to ``{destination}/segment-{segment}-of-{total_segments}/`` exactly as a scan export's do, and the
    result has the same shape, so :class:`~airflow_dynamoscan.operators.dynamodb_export.DynamoDBExportManifestOperator`
    writes the same ``manifest.json``: a reader cannot tell a scan from a native export. An incremental export
    gives one row per change, with ``_op`` (``upsert``/``delete``) and ``_write_time_micros`` (see
    :func:`~airflow_dynamoscan.export.native.convert_data_files`). Every file's record count is checked against
    the export's manifest.

    :param table_name: the exported table, recorded in the result (templated)
    :param source_bucket: the export's bucket (templated)
    :param source_prefix: the export's ``S3Prefix``, for lineage: the staging prefix the native export wrote
    :param data_files: the files to convert, as :func:`plan_native_export_files` lists them (mappable)
    :param incremental: the files hold change records (mappable)
    :param segment: this task's number among the convert tasks (mappable)
    :param total_segments: the number of convert tasks (mappable)
    :param destination: ``s3://bucket/prefix`` or a local directory (templated)
    :param file_format: ``"jsonl"`` (default), ``"dynamodb_json"``, ``"csv"`` or ``"parquet"``
    :param compression: as for :class:`~airflow_dynamoscan.operators.dynamodb_export.DynamoDBExportOperator`
    :param max_file_bytes: start a new part when a part reaches this size (default 256 MiB)
    :param columns: CSV and Parquet columns, in order
    :param schema: for CSV and Parquet, the export's one schema (JSON form), as :func:`plan_native_export_files`
        plans it for every convert task (mappable); ``None`` plans one from this task's first rows
    :param incremental_window: the window of an export of a chain (mappable), recorded in the result and so in the
        manifest, which checks it against the chain before committing
    :param overwrite: write even if the destination already holds a complete export
    :param verify_md5: also check each file's ``md5Checksum`` (see :mod:`airflow_dynamoscan.export.native`)
    :param aws_conn_id: the connection that reads the export's bucket
    :param dest_aws_conn_id: the connection of an S3 destination (default: ``aws_conn_id``)
    :param verify: SSL verification, as for the Amazon provider's operators
    """

    template_fields: Sequence[str] = (
        "table_name",
        "source_bucket",
        "destination",
        "file_format",
        "compression",
        "columns",
        *AwsConnectionOperator.aws_template_fields,
        "dest_aws_conn_id",
    )
    ui_color = "#4b7bec"

    def __init__(
        self,
        *,
        table_name: str,
        source_bucket: str,
        data_files: list[dict[str, Any]],
        source_prefix: str | None = None,
        incremental: bool,
        segment: int,
        total_segments: int,
        destination: str,
        file_format: str = "jsonl",
        compression: str | None = None,
        max_file_bytes: int | None = DEFAULT_MAX_FILE_BYTES,
        columns: list[str] | None = None,
        schema: dict[str, Any] | None = None,
        incremental_window: dict[str, Any] | None = None,
        overwrite: bool = False,
        verify_md5: bool = False,
        dest_aws_conn_id: str | None = SAME_AS_AWS_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.table_name, self.destination, self.overwrite = table_name, destination, overwrite
        self.incremental_window = incremental_window
        self.source_bucket, self.source_prefix = source_bucket, source_prefix
        self.data_files, self.incremental, self.verify_md5 = data_files, incremental, verify_md5
        self.segment, self.total_segments = segment, total_segments
        self.file_format, self.compression, self.max_file_bytes = file_format, compression, max_file_bytes
        self.columns, self.schema = columns, schema
        self.dest_aws_conn_id = self.connection_or_default(dest_aws_conn_id)

    @cached_property
    def hook(self) -> DynamoDBScanHook:
        """The hook of the table's connection (its key attributes, for the schema of an export without records)."""
        return DynamoDBScanHook(
            aws_conn_id=self.aws_conn_id, region_name=self.region_name, verify=self.verify, config=self.botocore_config
        )

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        started_at = datetime.now(timezone.utc).isoformat()
        try:
            compression = validate_format(self.file_format, self.compression, table_name=self.table_name)
            prefix = segment_prefix(self.segment, self.total_segments, table_name=self.table_name)
            destination = self._open_destination()
            s3_client = S3Hook(aws_conn_id=self.aws_conn_id, verify=self.verify).get_conn()
            data_files = [NativeDataFile.from_dict(data_file) for data_file in self.data_files]
            schema: Any = self.schema
            if schema is None and uses_schema(self.file_format):
                schema = plan_native_schema(
                    s3_client,
                    self.source_bucket,
                    data_files,
                    incremental=self.incremental,
                    columns=self.columns,
                    key_types=table_key_types(self.hook, self.table_name),
                )
            written = convert_data_files(
                s3_client,
                self.source_bucket,
                data_files,
                destination,
                incremental=self.incremental,
                file_format=self.file_format,
                compression=compression,
                prefix=prefix,
                max_file_bytes=self.max_file_bytes,
                columns=self.columns,
                schema=schema,
                verify_md5=self.verify_md5,
            )
        except DestinationError:
            raise  # may be transient (S3); a retry rewrites this segment's parts
        except DynamoScanError as error:
            raise AirflowFailException(str(error)) from error
        self.log.info(
            "Converted %s native-export files of table %s into %s records, %s parts",
            len(self.data_files),
            self.table_name,
            written["items"],
            len(written["parts"]),
        )
        return self._result(written, destination.uri, compression, started_at)

    def _open_destination(self) -> Destination:
        destination = self.open_destination(self.destination, self.dest_aws_conn_id)
        if self.incremental_window and destination.exists(MANIFEST_NAME):
            # Another run computed the same window and committed it first: the changes are there, once.
            raise AirflowSkipException(
                f"Table {self.table_name!r}: the window {self.incremental_window.get('export_from_time')} to "
                f"{self.incremental_window.get('export_to_time')} is already committed at {destination.uri}."
            )
        if not self.overwrite and destination.exists(MANIFEST_NAME):
            raise DestinationError(
                f"Table {self.table_name!r}: destination {destination.uri} already holds a complete export "
                f"({MANIFEST_NAME} is there); choose another destination or pass overwrite=True."
            )
        return destination

    def _result(
        self, written: dict[str, Any], destination_uri: str, compression: str | None, started_at: str
    ) -> dict[str, Any]:
        """The segment result :class:`DynamoDBExportManifestOperator` commits, shaped as a scan export's."""
        layout: dict[str, Any] = {}
        if "schema" in written:
            layout["schema"] = written["schema"]
        if self.file_format == "csv":
            layout["csv_formula_escaping"] = False
        if self.incremental_window:
            layout[WINDOW_FIELD] = self.incremental_window
        return {
            "table_name": self.table_name,
            "segment": self.segment,
            "total_segments": self.total_segments,
            "items": written["items"],
            "bytes": written["bytes"],
            "parts": written["parts"],
            "destination": destination_uri,
            "file_format": self.file_format,
            "compression": compression,
            "started_at": started_at,
            "finished_at": datetime.now(timezone.utc).isoformat(),
            "source_files": len(self.data_files),
            **layout,
        }

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """
        Lineage: the native export's staging prefix in (the dataset the export task wrote, so the graph reads
        table -> staging prefix -> destination), the converted export's destination out.
        """
        from airflow.providers.common.compat.openlineage.facet import Dataset
        from airflow.providers.openlineage.extractors import OperatorLineage

        return OperatorLineage(
            inputs=[staging_dataset(self.source_bucket, self.source_prefix, Dataset)],
            outputs=[destination_dataset(self.destination, Dataset)],
        )
