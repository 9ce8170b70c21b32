"""
Serial, parallel and single-segment scans over a botocore DynamoDB client.

Every function here takes a low-level ``dynamodb`` client and reads pages by following
``LastEvaluatedKey`` until DynamoDB returns none, so each item of a segment is read exactly once.

A :class:`ScanControl` adds what a long scan needs: throttled and failed requests sent again (the same request,
same ``ExclusiveStartKey``; a page is yielded only once its request succeeded), a read-capacity budget, counters,
and progress lines in the log.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import difflib
import functools
import gc
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import ClientError

from airflow_dynamoscan.exceptions import InvalidScanArgumentError, ScanRequestError, TableNotFoundError
from airflow_dynamoscan.scan.decode import (
    WIRE_ITEMS_KEY,
    deserialize_item,
    deserialize_wire_item,
    has_fast_decoding,
    wire_item_to_client_item,
)
from airflow_dynamoscan.scan.memory import (
    ParseHandoff,
    ParseHandoffClosed,
    ParseRequest,
    memory_budget,
    parsing_on_caller,
)
from airflow_dynamoscan.scan.pacing import ReadCapacityPacer
from airflow_dynamoscan.scan.progress import ScanProgress, ScanStats
from airflow_dynamoscan.scan.retry import RetryPolicy, call_with_retries
from airflow_dynamoscan.scan.segments import validate_max_workers, validate_segment, validate_total_segments

log = logging.getLogger(__name__)

#: Scan keywords that the scanner sets itself; passing one of them is an error.
HOOK_OWNED_SCAN_KEYWORDS = frozenset({"TableName", "Segment", "TotalSegments", "ExclusiveStartKey"})

#: How many worker threads a parallel scan runs when the caller does not say.
DEFAULT_MAX_WORKERS = 8

_POLL_SECONDS = 0.05


class ScanPage:
    """
    One Scan response.

    A page read by a client with fast decoding (:func:`~airflow_dynamoscan.scan.decode.install_fast_decoding`)
    keeps its items as the HTTP body held them (:attr:`wire_items`) and decodes them only when :attr:`items` is
    first read, so pages waiting in a parallel scan hold the compact wire form, and an export that transcodes
    the wire form (:mod:`~airflow_dynamoscan.export.transcode`) never decodes them at all.

    :param items: the page's items, plain Python values or AttributeValue dicts (``deserialize=False``); ``None``
        when ``wire_items`` are given
    :param segment: the segment the page belongs to, ``None`` for a serial scan
    :param total_segments: the segment count of the scan, ``None`` for a serial scan
    :param last_evaluated_key: where the next page starts (client shape); ``None`` on the last page
    :param count: items returned (after any FilterExpression)
    :param scanned_count: items read before the FilterExpression
    :param consumed_capacity: capacity units the request consumed, when ``ReturnConsumedCapacity`` asked for it
    :param wire_items: the items in the wire shape (``B`` as base64 text), as ``orjson`` parsed them
    :param decode: turns one wire item into an item of :attr:`items` (required with ``wire_items``)
    """

    __slots__ = (
        "_decode",
        "_items",
        "consumed_capacity",
        "count",
        "last_evaluated_key",
        "scanned_count",
        "segment",
        "total_segments",
        "wire_items",
    )

    def __init__(
        self,
        items: list[dict[str, Any]] | None,
        segment: int | None,
        total_segments: int | None,
        last_evaluated_key: dict[str, Any] | None,
        count: int,
        scanned_count: int,
        consumed_capacity: float | None = None,
        *,
        wire_items: list[dict[str, Any]] | None = None,
        decode: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        if (items is None) == (wire_items is None) or (wire_items is not None and decode is None):
            raise ValueError("A ScanPage holds either items, or wire_items with their decode function.")
        self._items = items
        self._decode = decode
        self.wire_items = wire_items
        self.segment = segment
        self.total_segments = total_segments
        self.last_evaluated_key = last_evaluated_key
        self.count = count
        self.scanned_count = scanned_count
        self.consumed_capacity = consumed_capacity

    @property
    def items(self) -> list[dict[str, Any]]:
        """The page's items, decoded as the scan asked (``deserialize``); decoded once, on first read."""
        if self._items is None:
            assert self.wire_items is not None and self._decode is not None
            decode = self._decode
            self._items = [decode(item) for item in self.wire_items]
        return self._items

    def __len__(self) -> int:
        """How many items the page holds, without decoding them."""
        return len(self.wire_items if self.wire_items is not None else self.items)

    def __repr__(self) -> str:
        return (
            f"ScanPage(items={len(self)}, segment={self.segment}, total_segments={self.total_segments}, "
            f"count={self.count}, scanned_count={self.scanned_count})"
        )


@dataclass
class ScanControl:
    """
    How one scan retries, paces and reports itself. Give each scan its own (its counters are the scan's, and a
    pacer's budget is meant for one task).

    :param retry_policy: throttled and transient failures are sent again under this policy; ``None``: only the
        client's own retries apply
    :param pacer: keeps the scan within a read-capacity budget; ``None``: as fast as DynamoDB answers. With a
        pacer, requests ask for ``ReturnConsumedCapacity="TOTAL"`` (``"INDEXES"`` is kept) and get a ``Limit``
        (never above the caller's)
    :param stats: counters the scan updates: pages, items, retries, consumed capacity
    :param progress_interval: seconds between progress lines in the log; ``None`` or 0 for none (the end of a scan
        is logged anyway)
    :param expected_items: returns about how many items the scan reads, for a percentage in progress lines, or
        ``None``; called at most once, when the first line is due
    :param log_summary: log the scan's summary line at INFO (``False``: at DEBUG)
    :param relaxed_collector: while the scan runs, collect the young generation less often (see
        :func:`relaxed_collector`); the default is ``True`` unless the environment variable
        :data:`RELAXED_COLLECTOR_ENV` is ``0``/``false``/``no``/``off``
    """

    retry_policy: RetryPolicy | None = None
    pacer: ReadCapacityPacer | None = None
    stats: ScanStats = field(default_factory=ScanStats)
    progress_interval: float | None = None
    expected_items: Callable[[], int | None] | None = None
    relaxed_collector: bool = field(default_factory=lambda: relaxed_collector_default())
    log_summary: bool = True


class _ScanStopped(Exception):
    """Raised in a worker's pause when the parallel scan it belongs to is closed."""


@dataclass(frozen=True)
class _ScanRun:
    control: ScanControl
    progress: ScanProgress
    sleep: Callable[[float], None] = time.sleep


def _start_run(control: ScanControl | None, table_name: str, scope: str) -> _ScanRun:
    control = control if control is not None else ScanControl()
    progress = ScanProgress(
        control.stats,
        table_name=table_name,
        scope=scope,
        interval=control.progress_interval,
        expected_items=control.expected_items,
        read_capacity_budget=control.pacer.units_per_second if control.pacer is not None else None,
        summary_level=logging.INFO if control.log_summary else logging.DEBUG,
    )
    return _ScanRun(control, progress)


def _apply_control(request: dict[str, Any], control: ScanControl | None) -> None:
    # The pacer learns what requests cost from ConsumedCapacity; INDEXES reports the total as well.
    paced = control is not None and control.pacer is not None
    if paced and request.get("ReturnConsumedCapacity") not in ("TOTAL", "INDEXES"):
        request["ReturnConsumedCapacity"] = "TOTAL"


def _reported(pages: Generator[ScanPage, None, None], run: _ScanRun) -> Generator[ScanPage, None, None]:
    complete = False
    try:
        yield from pages
        complete = True
    finally:
        pages.close()
        run.progress.finish(complete=complete)


#: Every parameter of DynamoDB's Scan request (botocore's service model), those the scanner sets included.
SCAN_KEYWORDS = frozenset(
    {
        "AttributesToGet",
        "ConditionalOperator",
        "ConsistentRead",
        "ExclusiveStartKey",
        "ExpressionAttributeNames",
        "ExpressionAttributeValues",
        "FilterExpression",
        "IndexName",
        "Limit",
        "ProjectionExpression",
        "ReturnConsumedCapacity",
        "ScanFilter",
        "Segment",
        "Select",
        "TableName",
        "TotalSegments",
    }
)

#: The type keys of an AttributeValue.
ATTRIBUTE_VALUE_TAGS = frozenset({"S", "N", "B", "SS", "NS", "BS", "M", "L", "NULL", "BOOL"})

_serializer = TypeSerializer()


def is_attribute_value(value: object) -> bool:
    """Return whether ``value`` is already an AttributeValue: a dict of exactly one type key (``{"S": "x"}``)."""
    return isinstance(value, Mapping) and len(value) == 1 and next(iter(value)) in ATTRIBUTE_VALUE_TAGS


def serialize_expression_values(table_name: str, values: object) -> dict[str, Any]:
    """
    Return ``ExpressionAttributeValues`` as AttributeValues: a value that already is one (a dict of one type key,
    ``{":s": {"S": "paid"}}``) is kept, any other is serialized from plain Python (``{":s": "paid"}``,
    ``{":n": 5}``, ``Decimal``, ``bytes``, sets, lists, dicts, ``True``, ``None``) as boto3's ``TypeSerializer``
    does. A dict meant as a map whose only key is a type tag (``{"S": "x"}``) is read as an AttributeValue: write
    such a map as ``{"M": {"S": {"S": "x"}}}``.

    :raises InvalidScanArgumentError: ``values`` is not a dict, a placeholder does not start with ``:``, or a value
        cannot be stored (a ``float``: use ``decimal.Decimal``; an empty set...); the message names the table,
        the parameter and the placeholder, never the value.
    """
    if not isinstance(values, Mapping):
        raise InvalidScanArgumentError(
            f"Table {table_name!r}: scan keyword ExpressionAttributeValues must be a dict of placeholders "
            f"(':name') to values; got a {type(values).__name__}."
        )
    serialized: dict[str, Any] = {}
    for placeholder, value in values.items():
        if not isinstance(placeholder, str) or not placeholder.startswith(":"):
            raise InvalidScanArgumentError(
                f"Table {table_name!r}: ExpressionAttributeValues placeholder {placeholder!r} must be a string "
                "starting with ':', e.g. {':status': 'paid'}."
            )
        if is_attribute_value(value):
            serialized[placeholder] = dict(value)
            continue
        if isinstance(value, str) and _NUMBER_TEXT.fullmatch(value.strip()):
            # A template renders as text: "{{ params.min }}" gives "5", a string, which never equals a number.
            log.warning(
                "Table %s: ExpressionAttributeValues[%r] is a string that looks like a number; it is sent as a "
                'string ({"S": ...}), which matches no number attribute. A templated value renders as text: for a '
                'number, write {"%s": {"N": "{{ ... }}"}} or set render_template_as_native_obj=True on the DAG '
                "(see docs/troubleshooting.md)",
                table_name,
                placeholder,
                placeholder,
            )
        problem = _unstorable(value)
        if problem is None:
            try:
                serialized[placeholder] = _serializer.serialize(value)
                continue
            except (TypeError, ValueError) as error:
                problem = "use decimal.Decimal or int" if isinstance(value, float) else str(error)
            except ArithmeticError:  # decimal.Inexact, decimal.Rounded: more digits than DynamoDB keeps
                problem = f"a number of more than {_MAX_NUMBER_DIGITS} significant digits"
        raise InvalidScanArgumentError(
            f"Table {table_name!r}: ExpressionAttributeValues[{placeholder!r}] is a {type(value).__name__}, which "
            f"DynamoDB cannot store ({problem}). Allowed: str, int, decimal.Decimal (at most {_MAX_NUMBER_DIGITS} "
            "significant digits), bytes, bool, None, non-empty sets, lists, dicts, or an AttributeValue such as "
            '{"S": "paid"}.'
        ) from None
    return serialized


#: Text a template renders from a number: "5", "-2.50", "1e3".
_NUMBER_TEXT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")

#: DynamoDB keeps numbers of up to 38 significant digits.
_MAX_NUMBER_DIGITS = 38


def _unstorable(value: object) -> str | None:
    """What DynamoDB refuses in a plain Python value that boto3's serializer lets through (an empty set), or None."""
    if isinstance(value, (set, frozenset)):
        return "an empty set; DynamoDB sets hold at least one element" if not value else None
    if isinstance(value, Mapping):
        values: Any = value.values()
    elif isinstance(value, (list, tuple)):
        values = value
    else:
        return None
    for element in values:
        problem = _unstorable(element)
        if problem is not None:
            return problem
    return None


def check_scan_kwargs(
    table_name: str, scan_kwargs: Mapping[str, Any] | None, *, owned: frozenset[str] = HOOK_OWNED_SCAN_KEYWORDS
) -> dict[str, Any]:
    """
    Return a copy of the caller's scan keywords, checked before any request: keywords the scanner sets itself and
    keywords Scan does not know are refused, and ``ExpressionAttributeValues`` given as plain Python values are
    serialized (:func:`serialize_expression_values`).

    :raises InvalidScanArgumentError: naming the table, the keyword, the closest allowed one and every allowed one.
    """
    kwargs = dict(scan_kwargs or {})
    refused = sorted(owned.intersection(kwargs))
    if refused:
        raise InvalidScanArgumentError(
            f"Table {table_name!r}: scan keyword(s) {', '.join(refused)} are set by the scanner and may not be "
            f"passed; use the table_name, segment and total_segments parameters instead."
        )
    allowed = sorted(SCAN_KEYWORDS - owned)
    for name in kwargs:
        if name not in SCAN_KEYWORDS:
            close = difflib.get_close_matches(str(name), allowed, n=1)
            suggestion = f" Did you mean {close[0]!r}?" if close else ""
            raise InvalidScanArgumentError(
                f"Table {table_name!r}: {name!r} is not a Scan keyword.{suggestion} "
                f"Allowed in scan_kwargs: {', '.join(allowed)}."
            )
    if "ExpressionAttributeValues" in kwargs:
        kwargs["ExpressionAttributeValues"] = serialize_expression_values(
            table_name, kwargs["ExpressionAttributeValues"]
        )
    return kwargs


def check_item_select(table_name: str, kwargs: Mapping[str, Any]) -> None:
    """:raises InvalidScanArgumentError: ``Select='COUNT'`` given to a scan that must return items."""
    if kwargs.get("Select") == "COUNT":
        raise InvalidScanArgumentError(
            f"Table {table_name!r}: Select='COUNT' returns no items; call count() to count them."
        )


def describe_client(client: Any) -> str:
    """Return where ``client`` sends requests, for error messages: region and endpoint."""
    meta = getattr(client, "meta", None)
    return f"region {getattr(meta, 'region_name', None)!r}, endpoint {getattr(meta, 'endpoint_url', None)!r}"


def api_operation_name(client: Any, operation: str) -> str:
    """Return the DynamoDB name of a client method, e.g. ``Scan`` for ``scan``, for logs and messages."""
    mapping = getattr(getattr(client, "meta", None), "method_to_api_mapping", None) or {}
    return str(mapping.get(operation, operation))


def call_dynamodb(
    client: Any,
    operation: str,
    table_name: str,
    request: dict[str, Any],
    *,
    retry_policy: RetryPolicy | None = None,
    segment: int | None = None,
    on_retry: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """
    Call ``operation`` on ``client``, turning DynamoDB's "no such table" and "invalid request" errors into ours.

    With a ``retry_policy``, the same request is sent again after throttling and transient errors (see
    :func:`~airflow_dynamoscan.scan.retry.call_with_retries`; ``segment``, ``on_retry`` and ``sleep`` go there).

    :raises TableNotFoundError: the table does not exist where the client looks.
    :raises ScanRequestError: DynamoDB answered ValidationException; its message is kept.
    :raises RetriesExhaustedError: every attempt the retry policy allows failed with a retryable error.
    """
    method = getattr(client, operation)
    try:
        if retry_policy is None:
            response: dict[str, Any] = method(**request)
        else:
            response = call_with_retries(
                lambda: method(**request),
                retry_policy,
                table_name=table_name,
                operation=api_operation_name(client, operation),
                segment=segment,
                on_retry=on_retry,
                sleep=sleep,
            )
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


def _page_of(
    response: Mapping[str, Any], deserialize: bool, segment: int | None, total_segments: int | None
) -> ScanPage:
    start_key = response.get("LastEvaluatedKey") or None
    capacity = response.get("ConsumedCapacity")
    consumed = float(capacity["CapacityUnits"]) if capacity else None
    count, scanned = int(response.get("Count", 0)), int(response.get("ScannedCount", 0))
    wire_items = response.get(WIRE_ITEMS_KEY)
    if wire_items is not None:
        decode = deserialize_wire_item if deserialize else wire_item_to_client_item
        return ScanPage(
            None, segment, total_segments, start_key, count, scanned, consumed, wire_items=wire_items, decode=decode
        )
    items = response.get("Items", [])
    items = [deserialize_item(item) for item in items] if deserialize else list(items)
    return ScanPage(items, segment, total_segments, start_key, count, scanned, consumed)


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
    control: ScanControl | None = None,
) -> Generator[ScanPage, None, None]:
    """
    Yield the pages of a serial scan (no segment) or of one segment, from ``exclusive_start_key`` if given.

    :param control: retries, read-capacity pacing, counters and progress lines (see :class:`ScanControl`)
    :raises InvalidScanArgumentError: bad segment arguments or a scanner-owned keyword in ``scan_kwargs``.
    :raises TableNotFoundError: the table does not exist.
    :raises ScanRequestError: DynamoDB rejected the request, e.g. an invalid expression.
    :raises RetriesExhaustedError: a request kept being throttled or failing after every retry.
    """
    request = check_scan_kwargs(table_name, scan_kwargs, owned=owned)
    request["TableName"] = table_name
    scope = "serial scan"
    if segment is not None or total_segments is not None:
        segment, total_segments = validate_segment(segment, total_segments, table_name)
        request["Segment"] = segment
        request["TotalSegments"] = total_segments
        scope = f"segment {segment} of {total_segments}"
    _apply_control(request, control)
    run = _start_run(control, table_name, scope)
    pages = _read_pages(client, table_name, request, segment, total_segments, deserialize, exclusive_start_key, run)
    return _reported(pages, run)


#: Allocations between two collections of the young generation while a scan runs (Python's default is 700).
SCAN_GC_THRESHOLD = 100_000

#: Set to ``0`` (or ``false``, ``no``, ``off``) to keep Python's collector thresholds while scanning.
RELAXED_COLLECTOR_ENV = "DYNAMOSCAN_RELAXED_GC"

_collector_lock = threading.Lock()
_collector_scans = 0
_collector_thresholds: tuple[int, int, int] = gc.get_threshold()


def relaxed_collector_default() -> bool:
    """Whether scans relax the collector unless told otherwise: yes, unless :data:`RELAXED_COLLECTOR_ENV` says no."""
    return os.environ.get(RELAXED_COLLECTOR_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


@contextlib.contextmanager
def relaxed_collector() -> Iterator[None]:
    """
    Collect the young generation only every :data:`SCAN_GC_THRESHOLD` allocations while scanning.

    Decoding a page creates about 100,000 objects that live until the page is consumed; at Python's default
    threshold the collector walks them (and, in an Airflow worker, a few hundred thousand more) many times per
    page, which costs a third to a half of a scan's CPU. They have no reference cycles, so collecting less often
    frees nothing later. Concurrent scans share the setting; the last one to end restores the previous thresholds.
    The setting is process-wide: turn it off per scan with ``ScanControl(relaxed_collector=False)``, or for
    every scan with the environment variable :data:`RELAXED_COLLECTOR_ENV` set to ``0``.
    """
    global _collector_scans, _collector_thresholds
    with _collector_lock:
        if _collector_scans == 0:
            _collector_thresholds = gc.get_threshold()
            gc.set_threshold(max(SCAN_GC_THRESHOLD, _collector_thresholds[0]), *_collector_thresholds[1:])
        _collector_scans += 1
    try:
        yield
    finally:
        with _collector_lock:
            _collector_scans -= 1
            if _collector_scans == 0:
                gc.set_threshold(*_collector_thresholds)


def _read_pages(
    client: Any,
    table_name: str,
    request: dict[str, Any],
    segment: int | None,
    total_segments: int | None,
    deserialize: bool,
    start_key: dict[str, Any] | None,
    run: _ScanRun,
) -> Generator[ScanPage, None, None]:
    collector = relaxed_collector() if run.control.relaxed_collector else contextlib.nullcontext()
    user_limit = request.get("Limit")
    with collector:
        while True:
            if start_key is not None:
                request["ExclusiveStartKey"] = start_key
            response = _request_page(client, table_name, request, user_limit, segment, run)
            page = _page_of(response, deserialize, segment, total_segments)
            del response
            run.progress.page_read()
            yield page
            start_key = page.last_evaluated_key
            # Not held while the next page is read: the caller decides how long a page lives.
            del page
            if start_key is None:
                return


def _request_page(
    client: Any,
    table_name: str,
    request: dict[str, Any],
    user_limit: int | None,
    segment: int | None,
    run: _ScanRun,
) -> dict[str, Any]:
    """Send one Scan request (paced within the caller's ``Limit``, retried), record its counters, return it."""
    control = run.control
    pacer = control.pacer
    paced = None
    if pacer is not None:
        paced = pacer.before_request(user_limit, sleep=run.sleep)
        if paced.limit is None:
            request.pop("Limit", None)
        else:
            request["Limit"] = paced.limit
    # A failed attempt sends this same request (same ExclusiveStartKey); nothing is yielded before success.
    response = call_dynamodb(
        client,
        "scan",
        table_name,
        request,
        retry_policy=control.retry_policy,
        segment=segment,
        on_retry=control.stats.record_retry,
        sleep=run.sleep,
    )
    capacity = response.get("ConsumedCapacity")
    consumed = float(capacity["CapacityUnits"]) if capacity else None
    scanned = int(response.get("ScannedCount", 0))
    if paced is not None and pacer is not None:
        pacer.after_response(paced, consumed, scanned)
    control.stats.record_page(
        items=int(response.get("Count", 0)),
        scanned=scanned,
        consumed_capacity=consumed,
        client_retries=int(response.get("ResponseMetadata", {}).get("RetryAttempts", 0)),
    )
    return response


def scan_items(
    client: Any,
    table_name: str,
    *,
    segment: int | None = None,
    total_segments: int | None = None,
    deserialize: bool = True,
    scan_kwargs: Mapping[str, Any] | None = None,
    control: ScanControl | None = None,
) -> Iterator[dict[str, Any]]:
    """
    Yield the items of a serial scan, or of one segment when ``segment``/``total_segments`` are given.

    :param control: retries, read-capacity pacing, counters and progress lines (see :class:`ScanControl`)
    """
    options = {"segment": segment, "total_segments": total_segments, "deserialize": deserialize, "control": control}
    return _items_of_scan(scan_pages, client, table_name, scan_kwargs, **options)


def _items_of_scan(
    scanner: Callable[..., Generator[ScanPage, None, None]],
    client: Any,
    table_name: str,
    scan_kwargs: Mapping[str, Any] | None,
    **options: Any,
) -> Iterator[dict[str, Any]]:
    """The items of the pages ``scanner`` (:func:`scan_pages` or :func:`parallel_scan_pages`) reads."""
    check_item_select(table_name, scan_kwargs or {})
    return _items_of(scanner(client, table_name, scan_kwargs=scan_kwargs, **options))


def _items_of(pages: Generator[ScanPage, None, None]) -> Iterator[dict[str, Any]]:
    try:
        for page in pages:
            yield from page.items
    finally:
        pages.close()


def _plan_workers(
    table_name: str,
    segments: int,
    max_workers: int | None,
    max_pages_in_flight: int | None,
    max_memory_mb: int | None,
    *,
    parsed_by_caller: bool,
) -> tuple[int, int]:
    """
    The workers and the messages in flight of a parallel scan over ``segments`` segments, within the budget.

    :param parsed_by_caller: the client reads with fast decoding, so the caller's side parses the pages
    """
    budget = memory_budget(max_memory_mb, table_name)
    requested = validate_max_workers(
        min(DEFAULT_MAX_WORKERS, segments) if max_workers is None else max_workers, table_name
    )
    wanted = max(1, min(requested, segments))
    workers = budget.max_workers(wanted, parsed_by_caller=parsed_by_caller)
    if workers < wanted:
        # By default a scan runs as many workers (up to DEFAULT_MAX_WORKERS) as its memory budget holds; only
        # workers asked for by name, and not run, are worth a line at INFO.
        log.log(
            logging.DEBUG if max_workers is None else logging.INFO,
            "Parallel scan of %s: %s workers instead of the %s asked for: max_memory_mb=%s holds the pages of %s; "
            "max_memory_mb=%s runs %s",
            table_name,
            workers,
            wanted,
            budget.max_memory_mb,
            workers,
            budget.memory_for_workers(wanted, parsed_by_caller=parsed_by_caller),
            wanted,
        )
    in_flight = budget.pages_in_flight(workers, parsed_by_caller=parsed_by_caller)
    if max_pages_in_flight is None:
        return workers, in_flight
    return workers, min(validate_max_workers(max_pages_in_flight, table_name), in_flight)


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
    control: ScanControl | None = None,
    max_memory_mb: int | None = None,
) -> Generator[ScanPage, None, None]:
    """
    Yield the pages of all ``total_segments`` segments, read by ``max_workers`` threads.

    ``start_keys`` resumes an interrupted scan: only the segments it names are read, each from its
    ``ExclusiveStartKey`` (``None``: from the segment's start); the segments it leaves out count as done.

    Each segment is read by exactly one worker, from its first page to its last. Memory is bounded: with fast
    decoding (:func:`~airflow_dynamoscan.scan.decode.install_fast_decoding`) the workers only read, each holding at
    most one body, and the caller's thread parses each page one page ahead of what it consumes; without it each
    worker holds a parsed page and at most ``max_pages_in_flight`` more wait for the caller. ``max_memory_mb``
    (default :data:`~airflow_dynamoscan.scan.memory.DEFAULT_MAX_MEMORY_MB`) caps both, ``max_workers`` included
    (see :mod:`~airflow_dynamoscan.scan.memory`). A caller holds less if it lets go of a page before it asks for
    the next.
    The first error of any worker stops the others and is raised to the caller. Closing the generator stops the
    workers: each finishes at most the request it is in (a pause before a retry, or for the read-capacity budget,
    ends at once), and all have exited when ``close()`` returns.

    :param control: retries, read-capacity pacing, counters and progress lines, shared by the workers (see
        :class:`ScanControl`)
    :param max_memory_mb: the memory budget of the pages the scan holds, MB
    :raises InvalidScanArgumentError: bad ``total_segments``, ``max_workers``, ``max_pages_in_flight``,
        ``max_memory_mb`` or scan keywords.
    """
    validate_segment(0, total_segments, table_name)
    if start_keys is None:
        start_keys = dict.fromkeys(range(total_segments))
    for segment in start_keys:
        validate_segment(segment, total_segments, table_name)
    segments = min(total_segments, len(start_keys))
    workers, in_flight = _plan_workers(
        table_name,
        segments,
        max_workers,
        max_pages_in_flight,
        max_memory_mb,
        parsed_by_caller=has_fast_decoding(client),
    )
    kwargs = check_scan_kwargs(table_name, scan_kwargs, owned=owned)
    _apply_control(kwargs, control)
    scope = (
        f"{total_segments} segments"
        if len(start_keys) == total_segments
        else f"{len(start_keys)} of {total_segments} segments"
    )
    run = _start_run(control, table_name, scope)
    read = _ParallelRead(client, table_name, total_segments, dict(start_keys), deserialize, kwargs)
    return _reported(_ParallelRun(read, in_flight, run).pages(workers), run)


@dataclass(frozen=True)
class _ParallelRead:
    """What every worker of one parallel scan reads: the table, the scan's keywords and where each segment starts."""

    client: Any
    table_name: str
    total_segments: int
    start_keys: dict[int, dict[str, Any] | None]
    deserialize: bool
    kwargs: dict[str, Any]


_Message = ScanPage | _WorkerDone | _WorkerFailed | ParseRequest


class _ParallelRun:
    """
    The workers of one parallel scan, the bounded queue of what they hand to the caller's side, and the stop
    signal. With fast decoding the workers only read: the caller's side parses each body
    (:class:`~airflow_dynamoscan.scan.memory.ParseHandoff`), one page ahead of what the caller consumes.
    """

    def __init__(self, read: _ParallelRead, in_flight: int, run: _ScanRun) -> None:
        self._read = read
        self._messages: queue.Queue[tuple[int, _Message]] = queue.Queue(maxsize=in_flight)
        self._stop = threading.Event()
        self._run = dataclasses.replace(run, sleep=self._pause)
        self._segments = iter(sorted(read.start_keys))
        self._segment_lock = threading.Lock()
        self._handoff = ParseHandoff(deliver=lambda request: self._put(request.worker, request), stopped=self._stop)

    def _pause(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            raise _ScanStopped

    def _next_segment(self) -> int | None:
        with self._segment_lock:
            return next(self._segments, None)

    def _put(self, worker: int, message: _Message) -> bool:
        while not self._stop.is_set():
            try:
                self._messages.put((worker, message), timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def _segment_pages(self, segment: int) -> Generator[ScanPage, None, None]:
        read = self._read
        request = {
            **read.kwargs,
            "TableName": read.table_name,
            "Segment": segment,
            "TotalSegments": read.total_segments,
        }
        return _read_pages(
            read.client,
            read.table_name,
            request,
            segment,
            read.total_segments,
            read.deserialize,
            read.start_keys[segment],
            self._run,
        )

    def _work(self, worker: int) -> None:
        try:
            with parsing_on_caller(self._handoff, worker):
                while not self._stop.is_set():
                    segment = self._next_segment()
                    if segment is None:
                        break
                    for page in self._segment_pages(segment):
                        if not self._put(worker, page):
                            return
                        del page  # the caller's now
            self._put(worker, _WORKER_DONE)
        except (_ScanStopped, ParseHandoffClosed):
            return
        except BaseException as error:  # noqa: BLE001 - every failure must reach the caller
            self._put(worker, _WorkerFailed(error))

    def pages(self, workers: int) -> Generator[ScanPage, None, None]:
        """Start ``workers`` threads; yield their pages until all are done; stop them when closed or failed."""
        table_name = self._read.table_name
        threads = [
            threading.Thread(target=self._work, args=(number,), name=f"dynamoscan-{table_name}-{number}", daemon=True)
            for number in range(workers)
        ]
        log.debug("Parallel scan of %s: %s segments, %s workers", table_name, self._read.total_segments, workers)
        for thread in threads:
            thread.start()
        finished = 0
        # Bodies waiting to be parsed, and the worker whose parsed page is on its way (one at a time).
        waiting: collections.deque[ParseRequest] = collections.deque()
        parsed_for: int | None = None
        try:
            while finished < len(threads):
                if parsed_for is None and waiting:
                    request = waiting.popleft()
                    parsed_for = request.worker
                    request.run()
                    del request
                    continue
                worker, message = self._messages.get()
                if worker == parsed_for:
                    parsed_for = None  # its page, or what ended its request, has arrived
                if isinstance(message, ParseRequest):
                    waiting.append(message)
                elif isinstance(message, _WorkerDone):
                    finished += 1
                elif isinstance(message, _WorkerFailed):
                    raise message.error
                else:
                    if parsed_for is None and waiting:
                        # Parsed before the caller takes this page, so that its worker reads on meanwhile.
                        request = waiting.popleft()
                        parsed_for = request.worker
                        request.run()
                        del request
                    yield message
                    del message
        finally:
            self._stop.set()
            for thread in threads:
                thread.join()


def parallel_scan_items(
    client: Any,
    table_name: str,
    *,
    total_segments: int,
    scan_kwargs: Mapping[str, Any] | None = None,
    deserialize: bool = True,
    control: ScanControl | None = None,
    max_workers: int | None = None,
    max_pages_in_flight: int | None = None,
    max_memory_mb: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield every item of the table, read by a parallel scan (see :func:`parallel_scan_pages`)."""
    options: dict[str, Any] = {"max_workers": max_workers, "max_pages_in_flight": max_pages_in_flight}
    options.update(max_memory_mb=max_memory_mb, total_segments=total_segments, deserialize=deserialize, control=control)
    return _items_of_scan(parallel_scan_pages, client, table_name, scan_kwargs, **options)


def count_items(
    client: Any,
    table_name: str,
    *,
    total_segments: int = 1,
    max_workers: int | None = None,
    scan_kwargs: Mapping[str, Any] | None = None,
    control: ScanControl | None = None,
) -> int:
    """
    Count the items of the table that match the scan keywords (``Select='COUNT'``), in parallel if
    ``total_segments > 1``.

    :param control: retries, read-capacity pacing, counters and progress lines (see :class:`ScanControl`)
    :raises InvalidScanArgumentError: ``Select`` or a scanner-owned keyword passed, or bad segment arguments.
    """
    validate_total_segments(total_segments, table_name)
    owned = HOOK_OWNED_SCAN_KEYWORDS | {"Select"}
    kwargs = check_scan_kwargs(table_name, scan_kwargs, owned=owned)
    kwargs["Select"] = "COUNT"
    read: Callable[..., Iterator[ScanPage]] = scan_pages
    if total_segments > 1:
        read = functools.partial(parallel_scan_pages, total_segments=total_segments, max_workers=max_workers)
    pages = read(client, table_name, scan_kwargs=kwargs, owned=HOOK_OWNED_SCAN_KEYWORDS, control=control)
    return sum(page.count for page in pages)
