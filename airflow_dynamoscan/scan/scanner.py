"""
Serial, parallel and single-segment scans over a botocore DynamoDB client.

Every function here takes a low-level ``dynamodb`` client and reads pages by following
``LastEvaluatedKey`` until DynamoDB returns none, so each item of a segment is read exactly once.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from airflow_dynamoscan.exceptions import InvalidScanArgumentError, ScanRequestError, TableNotFoundError
from airflow_dynamoscan.scan.decode import (
    WIRE_ITEMS_KEY,
    deserialize_item,
    deserialize_wire_item,
    wire_item_to_client_item,
)
from airflow_dynamoscan.scan.segments import validate_max_workers, validate_segment, validate_total_segments

log = logging.getLogger(__name__)

#: Scan keywords that the scanner sets itself; passing one of them is an error.
HOOK_OWNED_SCAN_KEYWORDS = frozenset({"TableName", "Segment", "TotalSegments", "ExclusiveStartKey"})

#: How many worker threads a parallel scan runs when the caller does not say.
DEFAULT_MAX_WORKERS = 8

_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class ScanPage:
    """
    One Scan response, decoded.

    :param items: the page's items, plain Python values or AttributeValue dicts (``deserialize=False``)
    :param segment: the segment the page belongs to, ``None`` for a serial scan
    :param total_segments: the segment count of the scan, ``None`` for a serial scan
    :param last_evaluated_key: where the next page starts (client shape); ``None`` on the last page
    :param count: items returned (after any FilterExpression)
    :param scanned_count: items read before the FilterExpression
    :param consumed_capacity: capacity units the request consumed, when ``ReturnConsumedCapacity`` asked for it
    """

    items: list[dict[str, Any]]
    segment: int | None
    total_segments: int | None
    last_evaluated_key: dict[str, Any] | None
    count: int
    scanned_count: int
    consumed_capacity: float | None = None


def check_scan_kwargs(
    table_name: str, scan_kwargs: Mapping[str, Any] | None, *, owned: frozenset[str] = HOOK_OWNED_SCAN_KEYWORDS
) -> dict[str, Any]:
    """
    Return a copy of the caller's scan keywords after refusing those the scanner sets itself.

    :raises InvalidScanArgumentError: naming the table and the refused keywords.
    """
    kwargs = dict(scan_kwargs or {})
    refused = sorted(owned.intersection(kwargs))
    if refused:
        raise InvalidScanArgumentError(
            f"Table {table_name!r}: scan keyword(s) {', '.join(refused)} are set by the scanner and may not be "
            f"passed; use the table_name, segment and total_segments parameters instead."
        )
    return kwargs


def _check_item_select(table_name: str, kwargs: Mapping[str, Any]) -> None:
    if kwargs.get("Select") == "COUNT":
        raise InvalidScanArgumentError(
            f"Table {table_name!r}: Select='COUNT' returns no items; call count() to count them."
        )


def describe_client(client: Any) -> str:
    """Return where ``client`` sends requests, for error messages: region and endpoint."""
    meta = getattr(client, "meta", None)
    return f"region {getattr(meta, 'region_name', None)!r}, endpoint {getattr(meta, 'endpoint_url', None)!r}"


def call_dynamodb(client: Any, operation: str, table_name: str, request: dict[str, Any]) -> dict[str, Any]:
    """
    Call ``operation`` on ``client``, turning DynamoDB's "no such table" and "invalid request" errors into ours.

    :raises TableNotFoundError: the table does not exist where the client looks.
    :raises ScanRequestError: DynamoDB answered ValidationException; its message is kept.
    """
    try:
        response: dict[str, Any] = getattr(client, operation)(**request)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        message = error.response.get("Error", {}).get("Message", "")
        if code == "ResourceNotFoundException":
            raise TableNotFoundError(
                f"Table {table_name!r} was not found ({describe_client(client)}): {message}"
            ) from error
        if code == "ValidationException":
            raise ScanRequestError(f"Table {table_name!r}: DynamoDB rejected the request: {message}") from error
        raise
    return response


def _page_items(response: Mapping[str, Any], deserialize: bool) -> list[dict[str, Any]]:
    wire_items = response.get(WIRE_ITEMS_KEY)
    if wire_items is not None:
        if deserialize:
            return [deserialize_wire_item(item) for item in wire_items]
        return [wire_item_to_client_item(item) for item in wire_items]
    items = response.get("Items", [])
    if deserialize:
        return [deserialize_item(item) for item in items]
    return list(items)


def scan_pages(
    client: Any,
    table_name: str,
    *,
    segment: int | None = None,
    total_segments: int | None = None,
    deserialize: bool = True,
    exclusive_start_key: dict[str, Any] | None = None,
    scan_kwargs: Mapping[str, Any] | None = None,
    owned: frozenset[str] = HOOK_OWNED_SCAN_KEYWORDS,
) -> Generator[ScanPage, None, None]:
    """
    Yield the pages of a serial scan (no segment) or of one segment, from ``exclusive_start_key`` if given.

    :raises InvalidScanArgumentError: bad segment arguments or a scanner-owned keyword in ``scan_kwargs``.
    :raises TableNotFoundError: the table does not exist.
    :raises ScanRequestError: DynamoDB rejected the request, e.g. an invalid expression.
    """
    request = check_scan_kwargs(table_name, scan_kwargs, owned=owned)
    request["TableName"] = table_name
    if segment is not None or total_segments is not None:
        segment, total_segments = validate_segment(segment, total_segments, table_name)
        request["Segment"] = segment
        request["TotalSegments"] = total_segments
    return _read_pages(client, table_name, request, segment, total_segments, deserialize, exclusive_start_key)


def _read_pages(
    client: Any,
    table_name: str,
    request: dict[str, Any],
    segment: int | None,
    total_segments: int | None,
    deserialize: bool,
    start_key: dict[str, Any] | None,
) -> Generator[ScanPage, None, None]:
    while True:
        if start_key is not None:
            request["ExclusiveStartKey"] = start_key
        response = call_dynamodb(client, "scan", table_name, request)
        start_key = response.get("LastEvaluatedKey") or None
        capacity = response.get("ConsumedCapacity")
        yield ScanPage(
            items=_page_items(response, deserialize),
            segment=segment,
            total_segments=total_segments,
            last_evaluated_key=start_key,
            count=int(response.get("Count", 0)),
            scanned_count=int(response.get("ScannedCount", 0)),
            consumed_capacity=float(capacity["CapacityUnits"]) if capacity else None,
        )
        if start_key is None:
            return


def scan_items(
    client: Any,
    table_name: str,
    *,
    segment: int | None = None,
    total_segments: int | None = None,
    deserialize: bool = True,
    scan_kwargs: Mapping[str, Any] | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield the items of a serial scan, or of one segment when ``segment``/``total_segments`` are given."""
    _check_item_select(table_name, scan_kwargs or {})
    pages = scan_pages(
        client,
        table_name,
        segment=segment,
        total_segments=total_segments,
        deserialize=deserialize,
        scan_kwargs=scan_kwargs,
    )
    return _items_of(pages)


def _items_of(pages: Generator[ScanPage, None, None]) -> Iterator[dict[str, Any]]:
    try:
        for page in pages:
            yield from page.items
    finally:
        pages.close()


class _WorkerDone:
    pass


_WORKER_DONE = _WorkerDone()


@dataclass(frozen=True)
class _WorkerFailed:
    error: BaseException


def parallel_scan_pages(
    client: Any,
    table_name: str,
    *,
    total_segments: int,
    max_workers: int | None = None,
    deserialize: bool = True,
    scan_kwargs: Mapping[str, Any] | None = None,
    max_pages_in_flight: int | None = None,
    owned: frozenset[str] = HOOK_OWNED_SCAN_KEYWORDS,
    start_keys: Mapping[int, dict[str, Any] | None] | None = None,
) -> Generator[ScanPage, None, None]:
    """
    Yield the pages of all ``total_segments`` segments, read by ``max_workers`` threads.

    ``start_keys`` resumes an interrupted scan: only the segments it names are read, each from its
    ``ExclusiveStartKey`` (``None``: from the segment's start); the segments it leaves out count as done.

    Each segment is read by exactly one worker, from its first page to its last. Memory is bounded: at most
    ``max_pages_in_flight`` pages (default: ``max_workers``) wait for the caller, and each worker holds one more.
    The first error of any worker stops the others and is raised to the caller. Closing the generator stops the
    workers: each finishes at most the request it is in, and all have exited when ``close()`` returns.

    :raises InvalidScanArgumentError: bad ``total_segments``, ``max_workers`` or scan keywords.
    """
    validate_segment(0, total_segments, table_name)
    if start_keys is None:
        start_keys = dict.fromkeys(range(total_segments))
    for segment in start_keys:
        validate_segment(segment, total_segments, table_name)
    workers = validate_max_workers(
        min(DEFAULT_MAX_WORKERS, total_segments) if max_workers is None else max_workers, table_name
    )
    workers = max(1, min(workers, len(start_keys)))
    kwargs = check_scan_kwargs(table_name, scan_kwargs, owned=owned)
    in_flight = workers if max_pages_in_flight is None else validate_max_workers(max_pages_in_flight, table_name)
    return _run_parallel(
        client, table_name, total_segments, dict(start_keys), workers, deserialize, kwargs, in_flight, owned
    )


def _run_parallel(
    client: Any,
    table_name: str,
    total_segments: int,
    start_keys: dict[int, dict[str, Any] | None],
    workers: int,
    deserialize: bool,
    kwargs: dict[str, Any],
    in_flight: int,
    owned: frozenset[str],
) -> Generator[ScanPage, None, None]:
    pages: queue.Queue[ScanPage | _WorkerDone | _WorkerFailed] = queue.Queue(maxsize=in_flight)
    stop = threading.Event()
    segment_numbers = iter(sorted(start_keys))
    segment_lock = threading.Lock()

    def next_segment() -> int | None:
        with segment_lock:
            return next(segment_numbers, None)

    def put(message: ScanPage | _WorkerDone | _WorkerFailed) -> bool:
        while not stop.is_set():
            try:
                pages.put(message, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            while not stop.is_set():
                segment = next_segment()
                if segment is None:
                    break
                for page in scan_pages(
                    client,
                    table_name,
                    segment=segment,
                    total_segments=total_segments,
                    deserialize=deserialize,
                    exclusive_start_key=start_keys[segment],
                    scan_kwargs=kwargs,
                    owned=owned,
                ):
                    if not put(page):
                        return
            put(_WORKER_DONE)
        except BaseException as error:  # noqa: BLE001 - every failure must reach the caller
            put(_WorkerFailed(error))

    threads = [
        threading.Thread(target=work, name=f"dynamoscan-{table_name}-{number}", daemon=True)
        for number in range(workers)
    ]
    log.debug("Parallel scan of %s: %s segments, %s workers", table_name, total_segments, workers)
    for thread in threads:
        thread.start()
    finished = 0
    try:
        while finished < len(threads):
            message = pages.get()
            if isinstance(message, _WorkerDone):
                finished += 1
            elif isinstance(message, _WorkerFailed):
                raise message.error
            else:
                yield message
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def parallel_scan_items(
    client: Any,
    table_name: str,
    *,
    total_segments: int,
    max_workers: int | None = None,
    deserialize: bool = True,
    scan_kwargs: Mapping[str, Any] | None = None,
    max_pages_in_flight: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield every item of the table, read by a parallel scan (see :func:`parallel_scan_pages`)."""
    _check_item_select(table_name, scan_kwargs or {})
    pages = parallel_scan_pages(
        client,
        table_name,
        total_segments=total_segments,
        max_workers=max_workers,
        deserialize=deserialize,
        scan_kwargs=scan_kwargs,
        max_pages_in_flight=max_pages_in_flight,
    )
    return _items_of(pages)


def count_items(
    client: Any,
    table_name: str,
    *,
    total_segments: int = 1,
    max_workers: int | None = None,
    scan_kwargs: Mapping[str, Any] | None = None,
) -> int:
    """
    Count the items of the table that match the scan keywords (``Select='COUNT'``), in parallel if
    ``total_segments > 1``.

    :raises InvalidScanArgumentError: ``Select`` or a scanner-owned keyword passed, or bad segment arguments.
    """
    validate_total_segments(total_segments, table_name)
    owned = HOOK_OWNED_SCAN_KEYWORDS | {"Select"}
    kwargs = check_scan_kwargs(table_name, scan_kwargs, owned=owned)
    kwargs["Select"] = "COUNT"
    if total_segments == 1:
        pages: Iterator[ScanPage] = scan_pages(client, table_name, scan_kwargs=kwargs, owned=HOOK_OWNED_SCAN_KEYWORDS)
    else:
        pages = parallel_scan_pages(
            client,
            table_name,
            total_segments=total_segments,
            max_workers=max_workers,
            scan_kwargs=kwargs,
            owned=HOOK_OWNED_SCAN_KEYWORDS,
        )
    return sum(page.count for page in pages)
