"""
Keep a scan within a read-capacity budget, in read capacity units (RCU) per second.

The budget of a whole scan is the smallest of ``read_capacity_fraction`` times the table's read capacity and
``max_read_capacity_units`` (:func:`read_capacity_budget`). A task that reads ``k`` of ``N`` segments gets ``k/N``
of it, so ``N`` mapped tasks together stay inside the budget. Each task paces its Scan requests with a
:class:`ReadCapacityPacer`: a token bucket charged with the ``ConsumedCapacity`` each response reports, and a
``Limit`` chosen from the capacity an item was seen to cost, so that one request costs about a quarter of a second
of the budget instead of up to 128 RCU (a full 1 MB page).

DynamoDB charges a Scan request for the total size of the items it evaluated (before any ``FilterExpression``),
rounded up to 4 KB, at 0.5 RCU per 4 KB (eventually consistent) or 1 RCU (``ConsistentRead``); so the cost of an
item is estimated as consumed capacity over ``ScannedCount``, which ``Limit`` also counts. Nothing here imports
Airflow.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_dynamoscan.exceptions import InvalidScanArgumentError

log = logging.getLogger(__name__)

#: A paced request aims to cost about this many seconds of the budget.
DEFAULT_REQUEST_SECONDS = 0.25

#: The most a Scan request can cost: a 1 MB page read with ``ConsistentRead`` (256 RCU; 128 eventually consistent).
FULL_PAGE_CAPACITY = 256.0

#: The least DynamoDB charges for a Scan request, even one that reads nothing.
MIN_REQUEST_CAPACITY = 0.5

# How much the item-cost estimate remembers of earlier requests, per request: it follows items that grow or shrink.
_ESTIMATE_DECAY = 0.8

PROVISIONED = "PROVISIONED"
PAY_PER_REQUEST = "PAY_PER_REQUEST"


def _where(table_name: str | None) -> str:
    return f"Table {table_name!r}: " if table_name else ""


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class _CapacityKind:
    # The names of one side's parameters and DescribeTable fields: reads and writes are budgeted alike.
    side: str  # "read" or "write"
    units: str  # "RCU" or "WCU"
    provisioned_field: str
    on_demand_field: str

    @property
    def fraction_parameter(self) -> str:
        return f"{self.side}_capacity_fraction"

    @property
    def ceiling_parameter(self) -> str:
        return f"max_{self.side}_capacity_units"


_READ = _CapacityKind("read", "RCU", "ReadCapacityUnits", "MaxReadRequestUnits")
_WRITE = _CapacityKind("write", "WCU", "WriteCapacityUnits", "MaxWriteRequestUnits")


def _validate_fraction(kind: _CapacityKind, value: object, table_name: str | None) -> float | None:
    if value is None:
        return None
    if not _is_number(value) or not 0 < value <= 1:  # type: ignore[operator]
        raise InvalidScanArgumentError(
            f"{_where(table_name)}{kind.fraction_parameter}={value!r} is not allowed; it must be a number greater "
            f"than 0 and at most 1, the share of the table's {kind.side} capacity the "
            f"{'scan' if kind is _READ else 'transform'} may use (e.g. 0.25), or None."
        )
    return float(value)  # type: ignore[arg-type]


def _validate_ceiling(kind: _CapacityKind, value: object, table_name: str | None) -> float | None:
    if value is None:
        return None
    if not _is_number(value) or value <= 0:  # type: ignore[operator]
        raise InvalidScanArgumentError(
            f"{_where(table_name)}{kind.ceiling_parameter}={value!r} is not allowed; it must be a number greater "
            f"than 0, the {kind.side} capacity units per second the whole "
            f"{'scan' if kind is _READ else 'transform'} may use, or None."
        )
    return float(value)  # type: ignore[arg-type]


def validate_read_capacity_fraction(value: object, table_name: str | None = None) -> float | None:
    """
    Return ``value`` as a float after checking it is ``None`` or a number in ``(0, 1]``.

    :raises InvalidScanArgumentError: naming the table (if given), the value and the allowed range.
    """
    return _validate_fraction(_READ, value, table_name)


def validate_max_read_capacity_units(value: object, table_name: str | None = None) -> float | None:
    """
    Return ``value`` as a float after checking it is ``None`` or a number greater than 0.

    :raises InvalidScanArgumentError: naming the table (if given), the value and the allowed range.
    """
    return _validate_ceiling(_READ, value, table_name)


def validate_write_capacity_fraction(value: object, table_name: str | None = None) -> float | None:
    """
    Return ``value`` as a float after checking it is ``None`` or a number in ``(0, 1]``.

    :raises InvalidScanArgumentError: naming the table (if given), the value and the allowed range.
    """
    return _validate_fraction(_WRITE, value, table_name)


def validate_max_write_capacity_units(value: object, table_name: str | None = None) -> float | None:
    """
    Return ``value`` as a float after checking it is ``None`` or a number greater than 0.

    :raises InvalidScanArgumentError: naming the table (if given), the value and the allowed range.
    """
    return _validate_ceiling(_WRITE, value, table_name)


def _table_capacity(
    kind: _CapacityKind, description: Mapping[str, Any], index_name: str | None
) -> tuple[str, float | None]:
    billing_mode = str((description.get("BillingModeSummary") or {}).get("BillingMode") or PROVISIONED)
    source: Mapping[str, Any] = description
    for index in description.get("GlobalSecondaryIndexes") or ():
        if index_name is not None and index.get("IndexName") == index_name:
            source = index
    if billing_mode == PAY_PER_REQUEST:
        units: Any = (source.get("OnDemandThroughput") or {}).get(kind.on_demand_field)
    else:
        units = (source.get("ProvisionedThroughput") or {}).get(kind.provisioned_field)
    # On-demand tables report capacity units 0, and a maximum of -1 for "no maximum".
    return billing_mode, float(units) if _is_number(units) and units > 0 else None


def table_read_capacity(description: Mapping[str, Any], *, index_name: str | None = None) -> tuple[str, float | None]:
    """
    Return the billing mode of a table and its read capacity in RCU per second, from DescribeTable's ``Table``.

    Provisioned: ``ProvisionedThroughput.ReadCapacityUnits``. On-demand: ``OnDemandThroughput.MaxReadRequestUnits``
    if the table has such a maximum, else ``None``. With ``index_name`` naming a global secondary index, that
    index's own throughput; a local secondary index reads the table's.
    """
    return _table_capacity(_READ, description, index_name)


def table_write_capacity(description: Mapping[str, Any]) -> tuple[str, float | None]:
    """
    Return the billing mode of a table and its write capacity in WCU per second, from DescribeTable's ``Table``.

    Provisioned: ``ProvisionedThroughput.WriteCapacityUnits``. On-demand:
    ``OnDemandThroughput.MaxWriteRequestUnits`` if the table has such a maximum, else ``None``.
    """
    return _table_capacity(_WRITE, description, None)


def _capacity_budget(
    kind: _CapacityKind,
    description: Mapping[str, Any],
    fraction_value: float | None,
    ceiling_value: float | None,
    index_name: str | None,
) -> float | None:
    table_name = str(description.get("TableName", "")) or None
    fraction = _validate_fraction(kind, fraction_value, table_name)
    ceiling = _validate_ceiling(kind, ceiling_value, table_name)
    if fraction is None:
        return ceiling
    billing_mode, capacity = _table_capacity(kind, description, index_name)
    work = "scan" if kind is _READ else "transform"
    if capacity is None:
        if ceiling is None:
            raise InvalidScanArgumentError(
                f"{_where(table_name)}{kind.fraction_parameter}={fraction!r} needs the table's {kind.side} capacity, "
                f"but the table{'' if index_name is None else f' (index {index_name!r})'} has billing mode "
                f"{billing_mode} and no maximum {kind.side} throughput (OnDemandThroughput.{kind.on_demand_field}). "
                f"Give {kind.ceiling_parameter}, the {kind.side} capacity units per second the whole {work} may use."
            )
        log.info(
            "Table %s has billing mode %s without a maximum %s throughput: the %s may use %s=%s %s/s; %s does not "
            "apply",
            table_name,
            billing_mode,
            kind.side,
            work,
            kind.ceiling_parameter,
            ceiling,
            kind.units,
            kind.fraction_parameter,
        )
        return ceiling
    budget = fraction * capacity
    return budget if ceiling is None else min(budget, ceiling)


def read_capacity_budget(
    description: Mapping[str, Any],
    *,
    read_capacity_fraction: float | None,
    max_read_capacity_units: float | None,
    index_name: str | None = None,
) -> float | None:
    """
    Return the read capacity units per second a whole scan of the table may use, or ``None`` for no limit.

    The budget is the smallest of ``read_capacity_fraction`` times the table's read capacity (see
    :func:`table_read_capacity`) and ``max_read_capacity_units``. An on-demand table without a maximum read
    throughput has no capacity to take a share of: there ``max_read_capacity_units`` is the budget, and must be given.

    :param description: DescribeTable's ``Table``
    :param read_capacity_fraction: share of the table's read capacity, in ``(0, 1]``, or ``None``
    :param max_read_capacity_units: the most RCU per second the scan may use, or ``None``
    :param index_name: the index the scan reads, if any
    :raises InvalidScanArgumentError: a parameter out of range, or a fraction of an on-demand table without a
        maximum read throughput and no ``max_read_capacity_units``; the message names the table, its billing mode
        and the parameter to give.
    """
    return _capacity_budget(_READ, description, read_capacity_fraction, max_read_capacity_units, index_name)


def write_capacity_budget(
    description: Mapping[str, Any],
    *,
    write_capacity_fraction: float | None,
    max_write_capacity_units: float | None,
) -> float | None:
    """
    Return the write capacity units per second a whole transform may use in the table, or ``None`` for no limit.

    The twin of :func:`read_capacity_budget`: the smallest of ``write_capacity_fraction`` times the table's write
    capacity (see :func:`table_write_capacity`) and ``max_write_capacity_units``. An on-demand table without a
    maximum write throughput has no capacity to take a share of: there ``max_write_capacity_units`` is the
    budget, and must be given.

    :param description: DescribeTable's ``Table`` of the table written
    :param write_capacity_fraction: share of the table's write capacity, in ``(0, 1]``, or ``None``
    :param max_write_capacity_units: the most WCU per second the transform may use, or ``None``
    :raises InvalidScanArgumentError: a parameter out of range, or a fraction of an on-demand table without a
        maximum write throughput and no ``max_write_capacity_units``; the message names the table, its billing
        mode and the parameter to give.
    """
    return _capacity_budget(_WRITE, description, write_capacity_fraction, max_write_capacity_units, None)


class TokenBucket:
    """
    A thread-safe token bucket: ``rate`` tokens per second, at most ``burst`` saved up.

    :meth:`take` reserves tokens and waits until they are covered; the balance may go below zero, so a take larger
    than what is saved is allowed and later takers wait for the debt: over time, at most ``rate`` tokens per second
    go out, whatever the sizes of the takes. :meth:`charge` settles a take whose true size became known later.

    :param rate: tokens added per second, > 0
    :param burst: the most tokens saved while nobody takes any, >= 0
    :param clock: seconds, monotonic (tests pass a fake)
    :param sleep: waits; :meth:`take` can be given another one
    """

    def __init__(
        self,
        rate: float,
        *,
        burst: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not _is_number(rate) or rate <= 0 or not _is_number(burst) or burst < 0:
            raise InvalidScanArgumentError(
                f"rate={rate!r}, burst={burst!r} are not allowed; the rate must be > 0 and the burst >= 0."
            )
        self.rate = float(rate)
        self.burst = float(burst)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = 0.0
        self._updated = clock()

    def _refill(self) -> None:
        now = self._clock()
        # Time saves up to ``burst``; a refund (a take found to cost less than reserved) is kept above it.
        if self._tokens < self.burst:
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    @property
    def tokens(self) -> float:
        """The balance now; below zero while takers wait for their reservations."""
        with self._lock:
            self._refill()
            return self._tokens

    def take(self, amount: float, *, sleep: Callable[[float], None] | None = None) -> float:
        """
        Reserve ``amount`` tokens and wait until the balance covers them; return the seconds waited.

        :param sleep: waits instead of the bucket's own ``sleep``, e.g. one that raises when a scan is stopped
        """
        with self._lock:
            self._refill()
            self._tokens -= amount
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            (sleep or self._sleep)(wait)
        return wait

    def charge(self, amount: float) -> None:
        """Take ``amount`` more tokens without waiting (a refund if negative); later takers wait for any debt."""
        with self._lock:
            self._refill()
            self._tokens -= amount


@dataclass(frozen=True)
class PacedRequest:
    """
    What :meth:`ReadCapacityPacer.before_request` decided for one Scan request.

    :param limit: the ``Limit`` to send, ``None`` for none
    :param expected_capacity: the capacity reserved for the request, settled when its response arrives
    """

    limit: int | None
    expected_capacity: float


class ReadCapacityPacer:
    """
    Pace the Scan requests of one task (any number of threads) to ``units_per_second`` consumed read capacity.

    Before each request, :meth:`before_request` picks its ``Limit`` (about ``request_seconds`` of the budget at the
    capacity an item was seen to cost; one item for the first request, which has seen none) and waits for the
    capacity in the token bucket. After it, :meth:`after_response` charges the bucket with what the response says
    it consumed, so the average stays at the budget even when the estimate was off.

    :param units_per_second: the budget of this task, in RCU per second
    :param request_seconds: seconds of budget one request aims to cost
    :param clock: seconds, monotonic (tests pass a fake)
    :param sleep: waits (tests pass a fake)
    :raises InvalidScanArgumentError: a budget or ``request_seconds`` that is not a positive number.
    """

    def __init__(
        self,
        units_per_second: float,
        *,
        request_seconds: float = DEFAULT_REQUEST_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not _is_number(units_per_second) or units_per_second <= 0:
            raise InvalidScanArgumentError(
                f"A read capacity budget of {units_per_second!r} RCU/s is not allowed; it must be a number > 0."
            )
        if not _is_number(request_seconds) or request_seconds <= 0:
            raise InvalidScanArgumentError(f"request_seconds={request_seconds!r} must be a number > 0.")
        self.units_per_second = float(units_per_second)
        self.request_capacity = self.units_per_second * request_seconds
        self.bucket = TokenBucket(self.units_per_second, burst=self.request_capacity, clock=clock, sleep=sleep)
        self._lock = threading.Lock()
        self._seen_capacity = 0.0
        self._seen_items = 0.0

    @property
    def item_capacity(self) -> float | None:
        """The capacity one scanned item was seen to cost, weighted towards recent requests; ``None`` before any."""
        with self._lock:
            return self._seen_capacity / self._seen_items if self._seen_items else None

    def next_limit(self, user_limit: int | None) -> int | None:
        """
        Return the ``Limit`` of the next request: about ``request_seconds`` of the budget, never above the caller's.

        ``None`` (no ``Limit``) when even a full 1 MB page costs less than one request's share.
        """
        if self.request_capacity >= FULL_PAGE_CAPACITY:
            return user_limit
        item_capacity = self.item_capacity
        if item_capacity is None:
            limit: int | None = 1
        elif item_capacity <= 0:
            limit = None
        else:
            limit = max(1, int(self.request_capacity / item_capacity))
        if user_limit is None:
            return limit
        return user_limit if limit is None else min(limit, user_limit)

    def before_request(
        self, user_limit: int | None = None, *, sleep: Callable[[float], None] | None = None
    ) -> PacedRequest:
        """
        Choose the next request's ``Limit``, reserve its expected capacity and wait until the budget allows it.

        :param user_limit: the caller's own ``Limit``, which the request never exceeds
        :param sleep: waits instead of the pacer's own ``sleep``
        """
        limit = self.next_limit(user_limit)
        item_capacity = self.item_capacity
        expected = MIN_REQUEST_CAPACITY
        if limit is not None and item_capacity is not None:
            expected = max(MIN_REQUEST_CAPACITY, min(FULL_PAGE_CAPACITY, limit * item_capacity))
        self.bucket.take(expected, sleep=sleep)
        return PacedRequest(limit=limit, expected_capacity=expected)

    def after_response(self, request: PacedRequest, consumed_capacity: float | None, scanned_count: int) -> None:
        """
        Settle ``request`` with the capacity its response reports (``None``: the reservation stands) and learn the
        capacity of an item from it.
        """
        if consumed_capacity is None:
            return
        with self._lock:
            if scanned_count > 0:
                self._seen_capacity = self._seen_capacity * _ESTIMATE_DECAY + consumed_capacity
                self._seen_items = self._seen_items * _ESTIMATE_DECAY + scanned_count
        self.bucket.charge(consumed_capacity - request.expected_capacity)


class WriteCapacityPacer:
    """
    Pace the writes of one task (any number of threads) to ``units_per_second`` consumed write capacity.

    Before each request, :meth:`before_write` reserves what the request is expected to cost (its items times the
    capacity a written item was seen to cost; 1 WCU per item before any was seen) in a :class:`TokenBucket` that
    saves up nothing, and waits until the budget allows it. After it, :meth:`after_write` charges the bucket with
    the ``ConsumedCapacity`` the response reports, so the average stays at the budget even when the estimate was
    off. A request that fails (a conditional check, throttling) keeps its reservation: DynamoDB charges a failed
    conditional write too. Requests are released one after another at the budget's pace, so over any window of one
    second the writes started cost at most the budget plus the one request that opened the window.

    :param units_per_second: the budget of this task, in WCU per second
    :param clock: seconds, monotonic (tests pass a fake)
    :param sleep: waits (tests pass a fake)
    :raises InvalidScanArgumentError: a budget that is not a positive number.
    """

    def __init__(
        self,
        units_per_second: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not _is_number(units_per_second) or units_per_second <= 0:
            raise InvalidScanArgumentError(
                f"A write capacity budget of {units_per_second!r} WCU/s is not allowed; it must be a number > 0."
            )
        self.units_per_second = float(units_per_second)
        self.bucket = TokenBucket(self.units_per_second, burst=0.0, clock=clock, sleep=sleep)
        self._clock = clock
        self._lock = threading.Lock()
        self._seen_capacity = 0.0
        self._seen_items = 0.0
        self._consumed = 0.0
        self._first_write: float | None = None
        self._last_write: float | None = None

    @property
    def item_capacity(self) -> float:
        """The capacity one written item was seen to cost, weighted towards recent writes; 1 WCU before any."""
        with self._lock:
            return self._seen_capacity / self._seen_items if self._seen_items else 1.0

    def before_write(self, items: int = 1) -> float:
        """Reserve the expected capacity of a request writing ``items`` items, wait for it; return the reservation."""
        expected = max(1.0, items * self.item_capacity)
        self.bucket.take(expected)
        with self._lock:
            if self._first_write is None:
                self._first_write = self._clock()
        return expected

    def after_write(self, expected: float, consumed_capacity: float | None, items: int = 1) -> None:
        """Settle a request that reserved ``expected`` with what its response reports (``None``: it stands)."""
        with self._lock:
            self._last_write = self._clock()
            if consumed_capacity is None:
                self._consumed += expected
                return
            self._consumed += consumed_capacity
            if items > 0:
                self._seen_capacity = self._seen_capacity * _ESTIMATE_DECAY + consumed_capacity
                self._seen_items = self._seen_items * _ESTIMATE_DECAY + items
        self.bucket.charge(consumed_capacity - expected)

    @property
    def consumed(self) -> float:
        """The write capacity the task's writes consumed (reservations of requests that reported none)."""
        with self._lock:
            return self._consumed

    def achieved(self) -> float | None:
        """WCU per second from the first write's release to the last response, ``None`` before two such times."""
        with self._lock:
            if self._first_write is None or self._last_write is None or self._last_write <= self._first_write:
                return None
            return self._consumed / (self._last_write - self._first_write)
