"""DynamoDBScanHook: read every item of a DynamoDB table through the Airflow ``aws`` connection."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

from airflow_dynamoscan.scan.decode import install_fast_decoding
from airflow_dynamoscan.scan.scanner import (
    DEFAULT_MAX_WORKERS,
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
)


class DynamoDBScanHook(AwsBaseHook):
    """
    Read every item of a DynamoDB table: serial, parallel (threads, bounded memory), one segment, or a count.

    Uses the low-level ``dynamodb`` client of the Airflow ``aws`` connection. Items come as plain Python values
    (``N`` as ``decimal.Decimal``, ``B`` as ``bytes``, sets as ``set``), or as AttributeValue dicts exactly as the
    low-level client returns them with ``deserialize=False``.

    Any Scan keyword passes through (``FilterExpression``, ``ProjectionExpression``,
    ``ExpressionAttributeNames``/``ExpressionAttributeValues``, ``ConsistentRead``, ``IndexName``, ``Limit`` as
    the page size, ``ReturnConsumedCapacity``). ``TableName``, ``Segment``, ``TotalSegments`` and
    ``ExclusiveStartKey`` are set by the hook and refused if passed.

    :param fast_decoding: read Scan responses with ``orjson`` and decode them in one pass (default), instead of
        botocore's generic parser followed by a deserializer. Both give the same items; the fast path is several
        times quicker. Requests, signing, retries and errors are botocore's either way.

    Additional arguments (``aws_conn_id``, ``region_name``, ``verify``, ``config``) are passed to
    :class:`~airflow.providers.amazon.aws.hooks.base_aws.AwsBaseHook`.
    """

    def __init__(self, *args: Any, fast_decoding: bool = True, **kwargs: Any) -> None:
        kwargs["client_type"] = "dynamodb"
        super().__init__(*args, **kwargs)
        self.fast_decoding = fast_decoding

    @cached_property
    def client(self) -> Any:
        """The low-level ``dynamodb`` client this hook scans with (created once, shared by its threads)."""
        client = self.get_conn()
        if self.fast_decoding:
            install_fast_decoding(client)
        return client

    def describe_table(self, table_name: str) -> dict[str, Any]:
        """
        Return DescribeTable's ``Table`` description.

        :raises TableNotFoundError: naming the table, the region and the endpoint.
        """
        response = call_dynamodb(self.client, "describe_table", table_name, {"TableName": table_name})
        table: dict[str, Any] = response["Table"]
        return table

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
        size = int(self.describe_table(table_name).get("TableSizeBytes", 0))
        planned = plan_segment_count(
            size, bytes_per_segment=bytes_per_segment, min_segments=min_segments, max_segments=max_segments
        )
        self.log.info("Table %s holds %s bytes: planned %s segment(s)", table_name, size, planned)
        return planned

    def scan(self, table_name: str, *, deserialize: bool = True, **scan_kwargs: Any) -> Iterator[dict[str, Any]]:
        """Yield every item of the table with a serial scan, page by page, as the pages arrive."""
        return scan_items(self.client, table_name, deserialize=deserialize, scan_kwargs=scan_kwargs)

    def parallel_scan(
        self,
        table_name: str,
        *,
        total_segments: int | None = None,
        max_workers: int | None = None,
        deserialize: bool = True,
        max_pages_in_flight: int | None = None,
        **scan_kwargs: Any,
    ) -> Iterator[dict[str, Any]]:
        """
        Yield every item of the table exactly once, read by ``max_workers`` threads over ``total_segments``.

        :param total_segments: segment count; ``None`` plans it from the table's size (:meth:`plan_segments`),
            never fewer than the workers
        :param max_workers: threads (default: ``min(8, total_segments)``)
        :param max_pages_in_flight: pages waiting for the caller at most (default: ``max_workers``); each worker
            holds one more, so memory stays bounded whatever the table size
        :raises InvalidScanArgumentError: bad ``total_segments``/``max_workers`` or a hook-owned scan keyword.
        :raises TableNotFoundError: the table does not exist.

        The first error of any worker is raised here; closing the generator stops the workers.
        """
        if max_workers is not None:
            validate_max_workers(max_workers, table_name)
        if total_segments is None:
            total_segments = self.plan_segments(table_name, min_segments=max_workers or DEFAULT_MAX_WORKERS)
        return parallel_scan_items(
            self.client,
            table_name,
            total_segments=total_segments,
            max_workers=max_workers,
            deserialize=deserialize,
            scan_kwargs=scan_kwargs,
            max_pages_in_flight=max_pages_in_flight,
        )

    def scan_segment(
        self, table_name: str, segment: int, total_segments: int, *, deserialize: bool = True, **scan_kwargs: Any
    ) -> Iterator[dict[str, Any]]:
        """
        Yield the items of one segment (``0 <= segment < total_segments``), e.g. in one mapped task.

        :raises InvalidScanArgumentError: ``segment`` or ``total_segments`` out of range.
        """
        return scan_items(
            self.client,
            table_name,
            segment=segment,
            total_segments=total_segments,
            deserialize=deserialize,
            scan_kwargs=scan_kwargs,
        )

    def scan_segment_pages(
        self,
        table_name: str,
        segment: int | None,
        total_segments: int | None,
        *,
        deserialize: bool = True,
        exclusive_start_key: dict[str, Any] | None = None,
        **scan_kwargs: Any,
    ) -> Iterator[ScanPage]:
        """Yield the pages of one segment (or of a serial scan with ``None``), with each page's ``LastEvaluatedKey``."""
        return scan_pages(
            self.client,
            table_name,
            segment=segment,
            total_segments=total_segments,
            deserialize=deserialize,
            exclusive_start_key=exclusive_start_key,
            scan_kwargs=scan_kwargs,
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
        **scan_kwargs: Any,
    ) -> Iterator[ScanPage]:
        """
        Yield the pages of a parallel scan, each naming its segment and ``LastEvaluatedKey`` (see
        :meth:`parallel_scan`). ``start_keys`` resumes a scan: only the segments it names are read, each from its
        key (``None``: from its start).
        """
        return parallel_scan_pages(
            self.client,
            table_name,
            total_segments=total_segments,
            max_workers=max_workers,
            deserialize=deserialize,
            scan_kwargs=scan_kwargs,
            max_pages_in_flight=max_pages_in_flight,
            start_keys=start_keys,
        )

    def count(
        self, table_name: str, *, total_segments: int = 1, max_workers: int | None = None, **scan_kwargs: Any
    ) -> int:
        """
        Return how many items match (``Select='COUNT'``; a ``FilterExpression`` is honoured), in parallel when
        ``total_segments > 1``.
        """
        return count_items(
            self.client, table_name, total_segments=total_segments, max_workers=max_workers, scan_kwargs=scan_kwargs
        )
