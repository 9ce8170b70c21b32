"""DynamoDBScanHook: read every item of a DynamoDB table through the Airflow ``aws`` connection."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import cached_property
from typing import Any, TypeVar

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoRegionError

from airflow_dynamoscan.exceptions import DynamoScanError, MissingRegionError
from airflow_dynamoscan.scan.decode import install_fast_decoding
from airflow_dynamoscan.scan.pacing import (
    ReadCapacityPacer,
    WriteCapacityPacer,
    read_capacity_budget,
    validate_max_read_capacity_units,
    validate_max_write_capacity_units,
    validate_read_capacity_fraction,
    validate_write_capacity_fraction,
    write_capacity_budget,
)
from airflow_dynamoscan.scan.progress import DEFAULT_PROGRESS_INTERVAL, ScanStats, validate_progress_interval
from airflow_dynamoscan.scan.retry import RetryPolicy, resolve_retry_policy
from airflow_dynamoscan.scan.scanner import (
    DEFAULT_MAX_WORKERS,
    ScanControl,
    ScanPage,
    call_dynamodb,
    count_items,
    parallel_scan_items,
    parallel_scan_pages,
    scan_items,
    scan_pages,
)
from airflow_dynamoscan.scan.segments import (
    DEFAULT_BYTES_PER_SEGMENT,
    MAX_TOTAL_SEGMENTS,
    plan_segment_count,
    validate_max_workers,
    validate_segment,
)
from airflow_dynamoscan.write.batch import BatchWriter
from airflow_dynamoscan.write.conditional import DEFAULT_MAX_CONFLICT_RETRIES, REAPPLY, ConditionalWriter

_T = TypeVar("_T")


class DynamoDBScanHook(AwsBaseHook):
    """
    Read every item of a DynamoDB table: serial, parallel (threads, bounded memory), one segment, or a count.

    Uses the low-level ``dynamodb`` client of the Airflow ``aws`` connection. Items come as plain Python values
    (``N`` as ``decimal.Decimal``, ``B`` as ``bytes``, sets as ``set``), or as AttributeValue dicts exactly as the
    low-level client returns them with ``deserialize=False``.

    Any Scan keyword passes through (``FilterExpression``, ``ProjectionExpression``,
    ``ExpressionAttributeNames``/``ExpressionAttributeValues``, ``ConsistentRead``, ``IndexName``, ``Limit`` as
    the page size, ``ReturnConsumedCapacity``). ``TableName``, ``Segment``, ``TotalSegments`` and
    ``ExclusiveStartKey`` are set by the hook and refused if passed; a keyword Scan does not know is refused
    before any request, naming the closest allowed one. ``ExpressionAttributeValues`` may hold plain Python values
    (``{":s": "paid"}``) as well as AttributeValues (``{":s": {"S": "paid"}}``); see
    :func:`~airflow_dynamoscan.scan.scanner.serialize_expression_values`.

    **Retries.** Every request of the hook (Scan, DescribeTable) that DynamoDB throttles
    (``ProvisionedThroughputExceededException``, ``ThrottlingException``, ``RequestLimitExceeded``), that fails on
    the server (``InternalServerError``, HTTP 5xx) or whose connection fails (reset, closed, read timeout) is sent
    again, the very same request (a Scan with the same ``ExclusiveStartKey``), after a pause of exponential
    backoff with full jitter, per segment, up to ``max_attempts`` requests in all; a page is yielded only once its
    request succeeded, so nothing is lost or read twice. Each retry is logged at WARNING (table, segment, error code,
    attempt, pause) and counted. This layer replaces botocore's: the hook's client is made with botocore retries
    off (``retries={"mode": "standard", "total_max_attempts": 1}``), so that one policy, which knows the table and
    segment, decides, logs and counts every retry, and the attempts of two layers do not multiply. That client is
    the hook's own, private one (it also carries the fast decoder); :attr:`client`, :attr:`conn` and
    :meth:`get_conn` are the plain boto3 client :class:`AwsBaseHook` makes, with botocore's defaults. If the botocore
    config (``config``, or ``config_kwargs`` in the connection's extra) sets ``retries`` itself, that setting is
    kept: botocore retries first, this layer retries what botocore gave up on, and botocore's retries are counted
    too (``ResponseMetadata.RetryAttempts``). ``AWS_RETRY_MODE``/``AWS_MAX_ATTEMPTS`` do not apply to the private
    client.

    **DescribeTable** is asked once per hook and table (:meth:`describe_table`), however many of existence check,
    segment planning, budget and progress estimate a task needs.

    **Read-capacity budget.** With ``read_capacity_fraction`` and/or ``max_read_capacity_units``, a scan uses at
    most the smaller of ``read_capacity_fraction`` times the table's read capacity (provisioned:
    ``ReadCapacityUnits``; on-demand: ``OnDemandThroughput.MaxReadRequestUnits``; of the index for a scan of a
    global secondary index) and ``max_read_capacity_units``, in RCU per second; an on-demand table without such a
    maximum has no capacity to take a share of, so there ``max_read_capacity_units`` is the budget and must be
    given with a fraction (else ``InvalidScanArgumentError``). The budget is for the whole scan:
    a scan of one segment of ``total_segments`` (one mapped task) gets ``1/total_segments`` of it, so the mapped
    tasks together stay within it, and a parallel scan of all segments in one task gets all of it, shared by its
    threads. Requests then ask for ``ReturnConsumedCapacity="TOTAL"`` and get a ``Limit`` (never above the
    caller's) sized to cost about a quarter of a second of budget; the end of each scan logs the RCU/s achieved.

    **Progress.** Every ``progress_interval`` seconds a scan logs its items, pages, items/s, consumed RCU/s (when
    known) and, when DescribeTable's ``ItemCount`` is above 0, an estimated percentage; the table is described for
    that only when the first line is due. Pass ``stats=ScanStats()`` to a scan method to read its counters
    (pages, items, retries, consumed capacity) afterwards.

    :param fast_decoding: read Scan responses with ``orjson`` and decode them in one pass (default), instead of
        botocore's generic parser followed by a deserializer. Both give the same items; the fast path is several
        times quicker. Requests, signing and errors are botocore's either way.
    :param retry_policy: how often and after which pauses a failed request is sent again (default:
        ``RetryPolicy()``, 10 attempts, pauses up to 0.1 s doubling to at most 20 s)
    :param max_attempts: shorthand for ``retry_policy=RetryPolicy(max_attempts=...)``; give one or the other
    :param read_capacity_fraction: share of the table's read capacity a scan may use, ``0 < f <= 1`` (e.g.
        ``0.25``); ``None``: no share
    :param max_read_capacity_units: the most read capacity units per second a whole scan may use; required with
        ``read_capacity_fraction`` for an on-demand table without a maximum read throughput
    :param progress_interval: seconds between progress lines of a scan (default 30); ``None`` or 0 for none
    :raises InvalidScanArgumentError: a parameter out of range, or both ``retry_policy`` and ``max_attempts``.

    Additional arguments (``aws_conn_id``, ``region_name``, ``verify``, ``config``) are passed to
    :class:`~airflow.providers.amazon.aws.hooks.base_aws.AwsBaseHook`.
    """

    def __init__(
        self,
        *args: Any,
        fast_decoding: bool = True,
        retry_policy: RetryPolicy | None = None,
        max_attempts: int | None = None,
        read_capacity_fraction: float | None = None,
        max_read_capacity_units: float | None = None,
        progress_interval: float | None = DEFAULT_PROGRESS_INTERVAL,
        **kwargs: Any,
    ) -> None:
        kwargs["client_type"] = "dynamodb"
        super().__init__(*args, **kwargs)
        self.fast_decoding = fast_decoding
        self.retry_policy = resolve_retry_policy(retry_policy, max_attempts)
        self.read_capacity_fraction = validate_read_capacity_fraction(read_capacity_fraction)
        self.max_read_capacity_units = validate_max_read_capacity_units(max_read_capacity_units)
        self.progress_interval = validate_progress_interval(progress_interval)
        self._descriptions: dict[str, dict[str, Any]] = {}
        self._descriptions_lock = threading.Lock()

    def get_client_type(
        self, region_name: str | None = None, config: Config | None = None, deferrable: bool = False
    ) -> Any:
        """
        :meth:`AwsBaseHook.get_client_type`, refusing a connection that names no region in words that say which
        connection and how to give it one.

        :raises MissingRegionError: neither ``region_name``, the connection's extra nor the environment name a
            region.
        """
        try:
            return super().get_client_type(region_name=region_name, config=config, deferrable=deferrable)
        except NoRegionError:
            raise MissingRegionError(
                f"Connection {self.aws_conn_id!r} names no AWS region: set region_name in its extra "
                '({"region_name": "us-east-1"}), pass region_name= to the task, or set AWS_DEFAULT_REGION where it '
                "runs."
            ) from None

    @property
    def client(self) -> Any:
        """
        The connection's low-level ``dynamodb`` client, exactly as :class:`AwsBaseHook` gives it (the same object
        as :attr:`conn` and :meth:`get_conn`): botocore's parser and retry settings, ``Items`` as boto3 returns them.
        """
        return self.conn

    @property
    def conn_client_meta(self) -> Any:
        """
        The connection's client metadata (region, partition, endpoint), as :class:`AwsBaseHook` gives it; read off
        the client the hook's scans already use, so that asking for the region (extra links, lineage) does not set
        up a second client.
        """
        return self._scan_client.meta

    @cached_property
    def _scan_client(self) -> Any:
        # The client of the hook's own requests (Scan, DescribeTable, the transform's writes), created once and
        # shared by the scan threads: botocore retries off unless the botocore config sets them (one retry policy,
        # see the class documentation), and the fast decoder, which leaves a Scan's items where only the scanner
        # looks. Nobody else gets this client, so callers of ``client`` find boto3's usual responses.
        config = self.config
        if getattr(config, "retries", None) is None:
            config = config.merge(Config(retries={"mode": "standard", "total_max_attempts": 1}))
        client = self.get_client_type(region_name=self.region_name, config=config)
        if self.fast_decoding:
            install_fast_decoding(client)
        return client

    def describe_table(self, table_name: str) -> dict[str, Any]:
        """
        Return DescribeTable's ``Table`` description, asked once per hook and table: the existence check, the
        segment plan, the read-capacity budget and the progress estimate of one task share one request.

        :raises TableNotFoundError: naming the table, the region and the endpoint (not cached: a table created
            later is found).
        :raises MissingRegionError: the connection names no region.
        """
        with self._descriptions_lock:
            cached = self._descriptions.get(table_name)
            if cached is None:
                try:
                    client = self._scan_client
                except MissingRegionError as error:
                    raise MissingRegionError(f"Table {table_name!r}: {error}") from None
                response = call_dynamodb(
                    client,
                    "describe_table",
                    table_name,
                    {"TableName": table_name},
                    retry_policy=self.retry_policy,
                )
                cached = self._descriptions[table_name] = response["Table"]
        table: dict[str, Any] = cached
        return table

    def batch_writer(
        self,
        table_name: str,
        key_names: Sequence[str],
        *,
        threads: int,
        pacer: WriteCapacityPacer | None = None,
    ) -> BatchWriter:
        """
        Return a :class:`~airflow_dynamoscan.write.batch.BatchWriter` into ``table_name`` on the hook's own client,
        whose retries follow the hook's ``retry_policy`` (botocore's stay off, as for scans).

        :param key_names: the table's key attribute names
        :param threads: how many BatchWriteItem requests may be in flight at once
        :param pacer: keeps the writes within a write-capacity budget (:meth:`write_capacity_pacer`), or ``None``
        """
        return BatchWriter(
            self._scan_client, table_name, key_names, threads=threads, retry_policy=self.retry_policy, pacer=pacer
        )

    def conditional_writer(
        self,
        table_name: str,
        key_names: Sequence[str],
        *,
        threads: int,
        on_conflict: str = REAPPLY,
        max_conflict_retries: int = DEFAULT_MAX_CONFLICT_RETRIES,
        version_attribute: str | None = None,
        pacer: WriteCapacityPacer | None = None,
    ) -> ConditionalWriter:
        """
        Return a :class:`~airflow_dynamoscan.write.conditional.ConditionalWriter` into ``table_name`` on the hook's
        own client: each item written only if unchanged since read, conflicts handled by ``on_conflict``.

        :param key_names: the table's key attribute names
        :param threads: how many requests may be in flight at once
        :param on_conflict: ``"reapply"`` or ``"skip"``
        :param max_conflict_retries: conflicts of one item re-applied before it is skipped
        :param version_attribute: the attribute holding each item's version, or ``None`` to compare every attribute
        :param pacer: keeps the writes within a write-capacity budget (:meth:`write_capacity_pacer`), or ``None``
        """
        return ConditionalWriter(
            self._scan_client,
            table_name,
            key_names,
            threads=threads,
            on_conflict=on_conflict,
            max_conflict_retries=max_conflict_retries,
            version_attribute=version_attribute,
            retry_policy=self.retry_policy,
            pacer=pacer,
        )

    def write_capacity_pacer(
        self,
        table_name: str,
        *,
        write_capacity_fraction: float | None,
        max_write_capacity_units: float | None,
        segments_written: int = 1,
        total_segments: int = 1,
    ) -> WriteCapacityPacer | None:
        """
        Return the pacer of a task that writes what it read from ``segments_written`` of ``total_segments``
        segments: ``segments_written / total_segments`` of the whole transform's write-capacity budget (see
        :func:`~airflow_dynamoscan.scan.pacing.write_capacity_budget`), or ``None`` for no budget. DescribeTable is
        called only when ``write_capacity_fraction`` is set.

        :raises InvalidScanArgumentError: a parameter out of range, or a fraction of an on-demand table without a
            maximum write throughput and no ``max_write_capacity_units``.
        :raises TableNotFoundError: the table does not exist.
        """
        fraction = validate_write_capacity_fraction(write_capacity_fraction, table_name)
        ceiling = validate_max_write_capacity_units(max_write_capacity_units, table_name)
        budget = (
            ceiling
            if fraction is None
            else write_capacity_budget(
                self.describe_table(table_name),
                write_capacity_fraction=fraction,
                max_write_capacity_units=ceiling,
            )
        )
        if budget is None:
            return None
        share = segments_written / total_segments if total_segments else 1.0
        pacer = WriteCapacityPacer(budget * share)
        self.log.info(
            "Table %s: write capacity budget %.2f WCU/s for the whole transform; this task writes %s of %s "
            "segment(s) and may use %.2f WCU/s",
            table_name,
            budget,
            segments_written,
            total_segments,
            pacer.units_per_second,
        )
        return pacer

    def read_capacity_budget(self, table_name: str, *, index_name: str | None = None) -> float | None:
        """
        Return the read capacity units per second a whole scan of the table may use, ``None`` for no budget.

        DescribeTable is called only when ``read_capacity_fraction`` is set (see the class documentation).

        :raises InvalidScanArgumentError: a fraction of an on-demand table without a maximum read throughput and
            no ``max_read_capacity_units``; the message names the table, its billing mode and the parameter.
        :raises TableNotFoundError: the table does not exist.
        """
        if self.read_capacity_fraction is None:
            return self.max_read_capacity_units
        return read_capacity_budget(
            self.describe_table(table_name),
            read_capacity_fraction=self.read_capacity_fraction,
            max_read_capacity_units=self.max_read_capacity_units,
            index_name=index_name,
        )

    def scan_control(
        self,
        table_name: str,
        *,
        segments_read: int = 1,
        total_segments: int = 1,
        scan_kwargs: Mapping[str, Any] | None = None,
        stats: ScanStats | None = None,
    ) -> ScanControl:
        """
        Return the retries, pacing and progress reporting of one scan that reads ``segments_read`` of the
        table's ``total_segments`` segments (a serial scan: 1 of 1), with ``segments_read / total_segments`` of
        the read-capacity budget.

        :param scan_kwargs: the scan's keywords; ``IndexName`` selects the index whose capacity counts
        :param stats: counters to update (default: new ones)
        """
        index_name = (scan_kwargs or {}).get("IndexName")
        budget = self.read_capacity_budget(table_name, index_name=index_name if isinstance(index_name, str) else None)
        share = segments_read / total_segments if total_segments else 1.0
        pacer = None
        if budget is not None:
            pacer = ReadCapacityPacer(budget * share)
            self.log.info(
                "Table %s: read capacity budget %.2f RCU/s for the whole scan; this scan reads %s of %s segment(s) "
                "and may use %.2f RCU/s",
                table_name,
                budget,
                segments_read,
                total_segments,
                pacer.units_per_second,
            )

        def expected_items() -> int | None:
            try:
                item_count = int(self.describe_table(table_name).get("ItemCount") or 0)
            except (ClientError, BotoCoreError, DynamoScanError) as error:
                # Progress lines are a courtesy: a role without DescribeTable still scans.
                self.log.debug("Table %s: no ItemCount for progress lines: %s", table_name, type(error).__name__)
                return None
            return round(item_count * share) if item_count > 0 else None

        return ScanControl(
            retry_policy=self.retry_policy,
            pacer=pacer,
            stats=stats if stats is not None else ScanStats(),
            progress_interval=self.progress_interval,
            expected_items=expected_items if self.progress_interval else None,
        )

    def plan_segments(
        self,
        table_name: str,
        *,
        bytes_per_segment: int = DEFAULT_BYTES_PER_SEGMENT,
        min_segments: int = 1,
        max_segments: int = MAX_TOTAL_SEGMENTS,
    ) -> int:
        """
        Return a segment count for the table from its size in DescribeTable (``TableSizeBytes``).

        The rule: ``ceil(TableSizeBytes / bytes_per_segment)`` (one segment per 2 GiB by default, as AWS
        suggests), at least ``min_segments`` and at most ``max_segments`` (never more than 1,000,000).
        DynamoDB refreshes ``TableSizeBytes`` about every six hours.

        :raises TableNotFoundError: the table does not exist.
        :raises InvalidScanArgumentError: a bound is not a positive integer or the bounds cross.
        """
        table = self.describe_table(table_name)
        size = int(table.get("TableSizeBytes", 0))
        planned = plan_segment_count(
            size, bytes_per_segment=bytes_per_segment, min_segments=min_segments, max_segments=max_segments
        )
        self.log.info(
            "Table %s: planned %s segment(s), one per %s bytes (at least %s, at most %s), from DescribeTable's "
            "TableSizeBytes=%s and ItemCount=%s",
            table_name,
            planned,
            bytes_per_segment,
            min_segments,
            max_segments,
            size,
            table.get("ItemCount"),
        )
        if size == 0:
            self.log.info(
                "Table %s: DynamoDB refreshes TableSizeBytes and ItemCount about every six hours, so a new or "
                "recently filled table may show 0 bytes while it holds items; give total_segments to choose the "
                "count yourself",
                table_name,
            )
        return planned

    def scan(
        self, table_name: str, *, deserialize: bool = True, stats: ScanStats | None = None, **scan_kwargs: Any
    ) -> Iterator[dict[str, Any]]:
        """
        Yield every item of the table with a serial scan, page by page, as the pages arrive.

        :param stats: counters the scan updates (pages, items, retries, consumed capacity)
        """
        control = self.scan_control(table_name, scan_kwargs=scan_kwargs, stats=stats)
        return scan_items(
            self._scan_client, table_name, deserialize=deserialize, scan_kwargs=scan_kwargs, control=control
        )

    def parallel_scan(
        self,
        table_name: str,
        *,
        total_segments: int | None = None,
        max_workers: int | None = None,
        deserialize: bool = True,
        max_pages_in_flight: int | None = None,
        stats: ScanStats | None = None,
        max_memory_mb: int | None = None,
        **scan_kwargs: Any,
    ) -> Iterator[dict[str, Any]]:
        """
        Yield every item of the table exactly once, read by ``max_workers`` threads over ``total_segments``.

        :param total_segments: segment count; ``None`` plans it from the table's size (:meth:`plan_segments`),
            never fewer than the workers
        :param max_workers: threads (default: ``min(8, total_segments)``, fewer if the memory budget holds fewer:
            6 within the default ``max_memory_mb=64``, 8 from 80)
        :param max_pages_in_flight: what waits for the caller at most (default: one per worker). With fast
            decoding the workers hand over bodies, which the caller's side parses one page ahead, so at most one
            parsed page waits; without it, each waiting page is parsed and each worker holds one more. Memory
            stays bounded whatever the table size
        :param stats: counters the scan updates (pages, items, retries, consumed capacity)
        :param max_memory_mb: memory for the pages the scan holds, in MB (default 64, at least 32); it caps
            ``max_workers`` and ``max_pages_in_flight`` (see :mod:`~airflow_dynamoscan.scan.memory`)
        :raises InvalidScanArgumentError: bad ``total_segments``/``max_workers``/``max_memory_mb`` or a hook-owned
            scan keyword.
        :raises TableNotFoundError: the table does not exist.

        The first error of any worker is raised here; closing the generator stops the workers.
        """
        if max_workers is not None:
            validate_max_workers(max_workers, table_name)
        if total_segments is None:
            total_segments = self.plan_segments(table_name, min_segments=max_workers or DEFAULT_MAX_WORKERS)
        options: dict[str, Any] = {"max_workers": max_workers, "deserialize": deserialize}
        options["max_pages_in_flight"] = max_pages_in_flight
        options["max_memory_mb"] = max_memory_mb
        return self._whole_table(parallel_scan_items, table_name, total_segments, scan_kwargs, stats, **options)

    def _whole_table(
        self,
        scanner: Callable[..., _T],
        table_name: str,
        total_segments: int,
        scan_kwargs: dict[str, Any],
        stats: ScanStats | None,
        **options: Any,
    ) -> _T:
        """Call ``scanner`` (parallel scan, pages or count) on every segment, with the whole read budget."""
        control = self._whole_table_control(table_name, total_segments, scan_kwargs, stats)
        options.update(total_segments=total_segments, scan_kwargs=scan_kwargs)
        return scanner(self._scan_client, table_name, control=control, **options)

    def _one_segment(
        self,
        scanner: Callable[..., _T],
        table_name: str,
        segment: int | None,
        total_segments: int | None,
        scan_kwargs: dict[str, Any],
        stats: ScanStats | None,
        **options: Any,
    ) -> _T:
        """Call ``scanner`` (items or pages) on one segment (or a serial scan), with that segment's read budget."""
        control = self._segment_control(table_name, segment, total_segments, scan_kwargs, stats)
        control.log_summary = options.pop("log_summary", True)
        where = {"segment": segment, "total_segments": total_segments}
        return scanner(self._scan_client, table_name, control=control, scan_kwargs=scan_kwargs, **where, **options)

    def _whole_table_control(
        self, table_name: str, total_segments: object, scan_kwargs: Mapping[str, Any], stats: ScanStats | None
    ) -> ScanControl:
        # One task reads every segment (or resumes them): it has the whole budget, whatever the segment count.
        segments = total_segments if isinstance(total_segments, int) and total_segments > 0 else 1
        return self.scan_control(
            table_name, segments_read=segments, total_segments=segments, scan_kwargs=scan_kwargs, stats=stats
        )

    def _segment_control(
        self,
        table_name: str,
        segment: int | None,
        total_segments: int | None,
        scan_kwargs: Mapping[str, Any],
        stats: ScanStats | None,
    ) -> ScanControl:
        if segment is None or not isinstance(total_segments, int) or total_segments < 1:
            # A serial scan reads the table's one segment; bad segment arguments are refused by the scanner.
            return self.scan_control(table_name, scan_kwargs=scan_kwargs, stats=stats)
        return self.scan_control(
            table_name, segments_read=1, total_segments=total_segments, scan_kwargs=scan_kwargs, stats=stats
        )

    def scan_segment(
        self,
        table_name: str,
        segment: int,
        total_segments: int,
        *,
        deserialize: bool = True,
        stats: ScanStats | None = None,
        **scan_kwargs: Any,
    ) -> Iterator[dict[str, Any]]:
        """
        Yield the items of one segment (``0 <= segment < total_segments``), e.g. in one mapped task, with
        ``1/total_segments`` of the read-capacity budget.

        :param stats: counters the scan updates (pages, items, retries, consumed capacity)
        :raises InvalidScanArgumentError: ``segment`` or ``total_segments`` out of range.
        """
        validate_segment(segment, total_segments, table_name)
        return self._one_segment(
            scan_items, table_name, segment, total_segments, scan_kwargs, stats, deserialize=deserialize
        )

    def scan_segment_pages(
        self,
        table_name: str,
        segment: int | None,
        total_segments: int | None,
        *,
        deserialize: bool = True,
        exclusive_start_key: dict[str, Any] | None = None,
        stats: ScanStats | None = None,
        log_summary: bool = True,
        **scan_kwargs: Any,
    ) -> Iterator[ScanPage]:
        """
        Yield the pages of one segment (or of a serial scan with ``None``), with each page's ``LastEvaluatedKey``.

        :param stats: counters the scan updates (pages, items, retries, consumed capacity)
        :param log_summary: log the scan's summary line at INFO (``False``: at DEBUG, e.g. for a sample the caller
            reports itself)
        """
        if segment is not None or total_segments is not None:
            validate_segment(segment, total_segments, table_name)
        return self._one_segment(
            scan_pages,
            table_name,
            segment,
            total_segments,
            scan_kwargs,
            stats,
            deserialize=deserialize,
            exclusive_start_key=exclusive_start_key,
            log_summary=log_summary,
        )

    def parallel_scan_pages(
        self,
        table_name: str,
        *,
        total_segments: int,
        max_workers: int | None = None,
        deserialize: bool = True,
        max_pages_in_flight: int | None = None,
        start_keys: dict[int, dict[str, Any] | None] | None = None,
        stats: ScanStats | None = None,
        max_memory_mb: int | None = None,
        **scan_kwargs: Any,
    ) -> Iterator[ScanPage]:
        """
        Yield the pages of a parallel scan, each naming its segment and ``LastEvaluatedKey`` (see
        :meth:`parallel_scan`). ``start_keys`` resumes a scan: only the segments it names are read, each from its
        key (``None``: from its start); the task keeps the whole read-capacity budget.

        :param stats: counters the scan updates (pages, items, retries, consumed capacity)
        :param max_memory_mb: memory for the pages the scan holds, in MB (see :meth:`parallel_scan`)
        """
        options: dict[str, Any] = {"max_workers": max_workers, "deserialize": deserialize}
        options["max_pages_in_flight"] = max_pages_in_flight
        options["start_keys"] = start_keys
        options["max_memory_mb"] = max_memory_mb
        return self._whole_table(parallel_scan_pages, table_name, total_segments, scan_kwargs, stats, **options)

    def count(
        self,
        table_name: str,
        *,
        total_segments: int = 1,
        max_workers: int | None = None,
        stats: ScanStats | None = None,
        **scan_kwargs: Any,
    ) -> int:
        """
        Return how many items match (``Select='COUNT'``; a ``FilterExpression`` is honoured), in parallel when
        ``total_segments > 1``. A count reads the whole table, and costs the same read capacity as a scan.

        :param stats: counters the scan updates (pages, items, retries, consumed capacity)
        """
        return self._whole_table(count_items, table_name, total_segments, scan_kwargs, stats, max_workers=max_workers)
