"""What every operator of this package shares: the AWS connection parameters and the scan hook."""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Iterator, Sequence
from functools import cached_property
from typing import Any, TypeVar

from botocore.exceptions import ClientError, ParamValidationError

from airflow_dynamoscan.compat import AirflowFailException, BaseOperator
from airflow_dynamoscan.exceptions import (
    BatchWriteError,
    DestinationBusyError,
    DestinationError,
    IncompleteExportError,
    InvalidItemError,
    InvalidScanArgumentError,
    MissingBucketError,
    ScanRequestError,
    SchemaMismatchError,
    TableNotFoundError,
    TransformError,
)
from airflow_dynamoscan.hooks.dynamodb_scan import DynamoDBScanHook
from airflow_dynamoscan.scan.pacing import validate_max_read_capacity_units, validate_read_capacity_fraction
from airflow_dynamoscan.scan.progress import DEFAULT_PROGRESS_INTERVAL, ScanStats, validate_progress_interval
from airflow_dynamoscan.scan.retry import RetryPolicy, resolve_retry_policy
from airflow_dynamoscan.scan.scanner import DEFAULT_MAX_WORKERS, ScanPage, check_item_select, check_scan_kwargs
from airflow_dynamoscan.scan.segments import validate_max_workers, validate_segment, validate_total_segments
from airflow_dynamoscan.storage.destinations import Destination, normalize_destination, open_destination


class _SameAsAwsConnId(enum.Enum):
    """The type of :data:`SAME_AS_AWS_CONN_ID`: one member, so copies and pickles stay the same object."""

    SAME_AS_AWS_CONN_ID = "SAME_AS_AWS_CONN_ID"

    def __repr__(self) -> str:
        # What help() and signatures show as the parameter's default.
        return "SAME_AS_AWS_CONN_ID"


#: Default of a connection parameter that falls back to ``aws_conn_id`` (``None`` is a valid choice of its own:
#: boto3's default credentials). The one convention of every operator and task group of this package.
SAME_AS_AWS_CONN_ID: Any = _SameAsAwsConnId.SAME_AS_AWS_CONN_ID

#: Error codes of DynamoDB and AWS that the same request meets again however often it is sent.
PERMANENT_ERROR_CODES = frozenset(
    {
        "AccessDeniedException",
        "InvalidSignatureException",
        "ResourceNotFoundException",
        "UnrecognizedClientException",
        "ValidationException",
    }
)

_PERMANENT_ERRORS = (
    IncompleteExportError,
    InvalidItemError,
    InvalidScanArgumentError,
    MissingBucketError,
    ParamValidationError,
    ScanRequestError,
    SchemaMismatchError,
    TableNotFoundError,
    TransformError,
)

_Execute = TypeVar("_Execute", bound=Callable[..., Any])


def is_permanent_error(error: BaseException) -> bool:
    """
    Return whether no retry of the task can fix ``error``: invalid arguments or expressions, a missing table, an
    incomplete export, a transform that raised or returned what cannot be stored, a request DynamoDB rejected as
    invalid, a destination refused by the package's own checks (except a refusal that may pass,
    :class:`~airflow_dynamoscan.exceptions.DestinationBusyError`) or in a bucket that does not exist, a connection
    without a region.

    Throttling, server errors and connection errors (also after the request retry policy gave up, as
    ``RetriesExhaustedError`` or a ``BatchWriteError`` about unprocessed items) are not permanent: a later try may
    succeed.
    """
    if isinstance(error, _PERMANENT_ERRORS):
        return True
    if isinstance(error, BatchWriteError):
        return isinstance(error.__cause__, ScanRequestError)  # DynamoDB rejected the batch as invalid
    if isinstance(error, DestinationBusyError):
        return False
    if isinstance(error, DestinationError):
        return error.__cause__ is None  # refused by a check of ours, not by a failing storage request
    if isinstance(error, ClientError):
        return error.response.get("Error", {}).get("Code") in PERMANENT_ERROR_CODES
    return False


def fail_fast(execute: _Execute) -> _Execute:
    """
    Wrap an operator's ``execute`` so that an error no retry can fix (:func:`is_permanent_error`) ends the task
    at once as :class:`AirflowFailException`, with the same message and the original error as its cause, and
    ``retries`` are not spent on it. Other errors propagate unchanged, so Airflow retries them.
    """

    @functools.wraps(execute)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return execute(*args, **kwargs)
        except AirflowFailException:
            raise
        except Exception as error:
            if is_permanent_error(error):
                raise AirflowFailException(str(error)) from error
            raise

    wrapper.fails_fast = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


class FailFastMixin:
    """
    Makes the ``execute`` of every subclass :func:`fail_fast`: the one place where this package decides which
    errors end a task without its retries.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        execute = cls.__dict__.get("execute")
        if callable(execute) and not getattr(execute, "fails_fast", False):
            cls.execute = fail_fast(execute)  # type: ignore[attr-defined]


def same_as_aws_conn_id(conn_id: str | None, aws_conn_id: str | None) -> str | None:
    """``conn_id``, or ``aws_conn_id`` when ``conn_id`` was left at :data:`SAME_AS_AWS_CONN_ID`."""
    return aws_conn_id if conn_id is SAME_AS_AWS_CONN_ID else conn_id


def open_export_destination(uri: str, dest_aws_conn_id: str | None, *, verify: bool | str | None = None) -> Destination:
    """
    Return the destination at ``uri``, normalised; an ``s3://`` one uses the S3 client of ``dest_aws_conn_id``.

    :raises InvalidScanArgumentError: a destination that is not allowed (see
        :func:`~airflow_dynamoscan.storage.destinations.normalize_destination`), before any connection is made.
    """
    s3_client = None
    if normalize_destination(uri).startswith("s3://"):
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        s3_client = S3Hook(aws_conn_id=dest_aws_conn_id, verify=verify).get_conn()
    return open_destination(uri, s3_client=s3_client)


class AwsConnectionOperator(FailFastMixin, BaseOperator):
    """
    Base of every operator of this package: the four AWS connection parameters, templated, and one convention
    for a second connection (an S3 destination, a checkpoint store) that defaults to the first.

    A subclass lists ``*AwsConnectionOperator.aws_template_fields`` in its ``template_fields``, passes the four
    parameters through ``**kwargs``, and gives a parameter of another connection the default
    :data:`SAME_AS_AWS_CONN_ID`, resolved with :meth:`connection_or_default` in its ``__init__`` (so the template
    field holds a connection id, never the sentinel); :meth:`open_destination` then opens a destination on it. Its
    ``execute`` is :func:`fail_fast` (see :class:`FailFastMixin`).

    :param aws_conn_id: the Airflow connection; ``None`` uses boto3's default credentials
    :param region_name: AWS region; default: the connection's
    :param verify: whether to verify SSL certificates, or a CA bundle path; default: the connection's
    :param botocore_config: a dict of ``botocore.config.Config`` options, e.g. ``{"retries": {"max_attempts": 10}}``
    """

    aws_template_fields: Sequence[str] = ("aws_conn_id", "region_name", "verify", "botocore_config")

    def __init__(
        self,
        *,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.verify = verify
        self.botocore_config = botocore_config

    def connection_or_default(self, conn_id: str | None) -> str | None:
        """``conn_id``, or this operator's ``aws_conn_id`` when it was left at :data:`SAME_AS_AWS_CONN_ID`."""
        return same_as_aws_conn_id(conn_id, self.aws_conn_id)

    def open_destination(self, uri: str, conn_id: str | None) -> Destination:
        """The destination at ``uri`` (normalised); an ``s3://`` one on connection ``conn_id``, with ``verify``."""
        return open_export_destination(uri, conn_id, verify=self.verify)


class DynamoDBScanBaseOperator(AwsConnectionOperator):
    """
    Base of the operators that scan a DynamoDB table, the whole of it or one segment.

    Errors no retry can fix (invalid arguments or expressions, a missing table, a transform that raises...; see
    :func:`is_permanent_error`) end the task as :class:`AirflowFailException`, whatever its ``retries``;
    throttling, server and connection errors that outlast the request retry policy raise as they are, and Airflow
    retries the task.

    With ``segment`` and ``total_segments`` both given (e.g. ``.partial(total_segments=4).expand(segment=[0, 1,
    2, 3])``) the task reads only that segment. With ``segment=None`` it reads the whole table by a parallel scan
    of ``max_workers`` threads over ``total_segments`` segments (default: planned from the table's size, at least
    ``max_workers``).

    :param table_name: the DynamoDB table to read (templated)
    :param segment: the segment this task reads, ``0 <= segment < total_segments`` (mappable)
    :param total_segments: the segment count (see above)
    :param scan_kwargs: Scan keywords, e.g. ``FilterExpression``, ``ConsistentRead``, ``Limit`` (templated);
        ``ExpressionAttributeValues`` as plain Python values (``{":s": "paid"}``) or AttributeValues
    :param max_workers: threads of a whole-table read in one task (default ``min(8, total_segments)``, fewer if
        the memory budget holds fewer: 6 within the default ``max_memory_mb=64``, 8 from 80)
    :param aws_conn_id: the Airflow connection of the DynamoDB table; ``None`` uses boto3's default credentials
    :param region_name: AWS region; default: the connection's
    :param verify: whether to verify SSL certificates, or a CA bundle path; default: the connection's
    :param botocore_config: a dict of ``botocore.config.Config`` options, e.g. ``{"retries": {"max_attempts": 10}}``
    :param fast_decoding: read Scan responses with the fast decoder (default) rather than botocore's parser
    :param request_retry_policy: how often and after which pauses a throttled or failed DynamoDB request is sent
        again, an :class:`~airflow_dynamoscan.scan.retry.RetryPolicy` (default ``RetryPolicy()``: 10 attempts,
        exponential backoff with full jitter); see :class:`~airflow_dynamoscan.hooks.dynamodb_scan.DynamoDBScanHook`
        for how it combines with botocore's. Not to be confused with Airflow's own ``retry_policy`` and
        ``retries``, which decide about the whole task.
    :param request_max_attempts: shorthand for ``request_retry_policy=RetryPolicy(max_attempts=...)``; give one or
        the other
    :param read_capacity_fraction: share of the table's read capacity the whole scan may use, ``0 < f <= 1``
        (e.g. ``0.25``); a task reading one of ``total_segments`` segments uses ``1/total_segments`` of it
    :param max_read_capacity_units: the most read capacity units per second the whole scan may use; required with
        ``read_capacity_fraction`` for an on-demand table without a maximum read throughput
    :param progress_interval: seconds between progress lines in the task log (default 30); ``None`` or 0 for none
    """

    def __init__(
        self,
        *,
        table_name: str,
        segment: int | None = None,
        total_segments: int | None = None,
        scan_kwargs: dict[str, Any] | None = None,
        max_workers: int | None = None,
        fast_decoding: bool = True,
        request_retry_policy: RetryPolicy | None = None,
        request_max_attempts: int | None = None,
        read_capacity_fraction: float | None = None,
        max_read_capacity_units: float | None = None,
        progress_interval: float | None = DEFAULT_PROGRESS_INTERVAL,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.table_name = table_name
        self.segment = segment
        self.total_segments = total_segments
        self.scan_kwargs = scan_kwargs
        self.max_workers = max_workers
        self.fast_decoding = fast_decoding
        # Checked here too, so a DAG with an impossible value fails when it is parsed, not when the task runs.
        resolve_retry_policy(
            request_retry_policy, request_max_attempts, names=("request_retry_policy", "request_max_attempts")
        )
        self.request_retry_policy = request_retry_policy
        self.request_max_attempts = request_max_attempts
        self.read_capacity_fraction = validate_read_capacity_fraction(read_capacity_fraction, table_name)
        self.max_read_capacity_units = validate_max_read_capacity_units(max_read_capacity_units, table_name)
        self.progress_interval = validate_progress_interval(progress_interval)
        self.scan_stats: ScanStats | None = None

    @cached_property
    def hook(self) -> DynamoDBScanHook:
        """The scan hook built from this operator's connection parameters."""
        return DynamoDBScanHook(
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            verify=self.verify,
            config=self.botocore_config,
            fast_decoding=self.fast_decoding,
            retry_policy=self.request_retry_policy,
            max_attempts=self.request_max_attempts,
            read_capacity_fraction=self.read_capacity_fraction,
            max_read_capacity_units=self.max_read_capacity_units,
            progress_interval=self.progress_interval,
        )

    def validated_segment(self) -> tuple[int | None, int | None]:
        """
        Return ``(segment, total_segments)`` after checking them and ``max_workers``.

        :raises InvalidScanArgumentError: naming the table, the parameter and the allowed values.
        """
        if self.max_workers is not None:
            validate_max_workers(self.max_workers, self.table_name)
        if self.segment is None:
            if self.total_segments is not None:
                validate_total_segments(self.total_segments, self.table_name)
            return None, self.total_segments
        if self.total_segments is None:
            raise InvalidScanArgumentError(
                f"Table {self.table_name!r}: segment={self.segment!r} needs total_segments, which is None; give both "
                "(one task per segment, e.g. .partial(total_segments=4).expand(segment=[0, 1, 2, 3])) or neither."
            )
        return validate_segment(self.segment, self.total_segments, self.table_name)

    def validated_scan_kwargs(self) -> dict[str, Any]:
        """
        Return a copy of ``scan_kwargs`` after refusing the keywords the scanner sets itself.

        :raises InvalidScanArgumentError: ``scan_kwargs`` is not a dict, or holds a scanner-owned keyword.
        """
        if self.scan_kwargs is not None and not isinstance(self.scan_kwargs, dict):
            raise InvalidScanArgumentError(
                f"Table {self.table_name!r}: scan_kwargs must be a dict of Scan keywords; "
                f"got a {type(self.scan_kwargs).__name__}."
            )
        scan_kwargs = check_scan_kwargs(self.table_name, self.scan_kwargs)
        check_item_select(self.table_name, scan_kwargs)
        return scan_kwargs

    def planned_total_segments(self, total_segments: int | None) -> int:
        """``total_segments``, or for ``None`` a count planned from the table's size (at least ``max_workers``)."""
        if total_segments is not None:
            return total_segments
        return self.hook.plan_segments(self.table_name, min_segments=self.max_workers or DEFAULT_MAX_WORKERS)

    def read_pages(
        self,
        segment: int | None,
        total_segments: int | None,
        scan_kwargs: dict[str, Any],
        *,
        deserialize: bool,
        start_keys: dict[int, dict[str, Any] | None] | None = None,
        max_memory_mb: int | None = None,
    ) -> Iterator[ScanPage]:
        """
        Yield the pages of this task's segment, or of the whole table read by a parallel scan.

        :param start_keys: resume: the segments still to read, each from its key (``None``: from its start); a
            segment left out is done. ``None`` reads everything.
        :param max_memory_mb: the memory budget of a whole-table read (see :mod:`~airflow_dynamoscan.scan.memory`)

        The scan's counters (retries, consumed capacity...) go to :attr:`scan_stats`; see :meth:`scan_statistics`.
        """
        self.scan_stats = ScanStats()
        if segment is not None:
            if start_keys is not None and segment not in start_keys:
                return iter(())
            return self.hook.scan_segment_pages(
                self.table_name,
                segment,
                total_segments,
                deserialize=deserialize,
                exclusive_start_key=None if start_keys is None else start_keys[segment],
                stats=self.scan_stats,
                **scan_kwargs,
            )
        total_segments = self.planned_total_segments(total_segments)
        self.log.info("Reading table %s with %s segments in this task", self.table_name, total_segments)
        return self.hook.parallel_scan_pages(
            self.table_name,
            total_segments=total_segments,
            max_workers=self.max_workers,
            deserialize=deserialize,
            start_keys=start_keys,
            stats=self.scan_stats,
            max_memory_mb=max_memory_mb,
            **scan_kwargs,
        )

    def scan_statistics(self, *, extra_retries: int = 0) -> dict[str, Any]:
        """
        Return the ``retries`` and ``consumed_read_capacity`` of this task's scan, for its XCom result.

        ``retries``: requests sent again after throttling or a transient error (plus ``extra_retries``, e.g. those
        of the task's writes); ``consumed_read_capacity``: read capacity units the scan consumed, ``None`` unless
        the responses reported it (a read-capacity budget, or ``ReturnConsumedCapacity`` in ``scan_kwargs``).
        """
        stats = self.scan_stats
        return {
            "retries": (stats.retries if stats is not None else 0) + extra_retries,
            "consumed_read_capacity": stats.consumed_read_capacity if stats is not None else None,
        }
