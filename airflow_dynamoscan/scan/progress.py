"""
Counters of a scan in progress, and the log lines that report them: every ``progress_interval`` seconds, and once
at the end with the read capacity the scan achieved. Nothing here imports Airflow.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from airflow_dynamoscan.exceptions import InvalidScanArgumentError
from airflow_dynamoscan.scan.retry import is_throttling

log = logging.getLogger(__name__)

#: Seconds between two progress lines of a scan, unless told otherwise.
DEFAULT_PROGRESS_INTERVAL = 30.0


def validate_progress_interval(progress_interval: object) -> float | None:
    """
    Return ``progress_interval`` as seconds, ``None`` for no progress lines (``None`` or 0 given).

    :raises InvalidScanArgumentError: not a number >= 0.
    """
    if progress_interval is None or progress_interval == 0:
        return None
    if (
        not isinstance(progress_interval, (int, float))
        or isinstance(progress_interval, bool)
        or not 0 < progress_interval < float("inf")
    ):
        raise InvalidScanArgumentError(
            f"progress_interval={progress_interval!r} is not allowed; it must be a number of seconds > 0, "
            "or None or 0 for no progress lines."
        )
    return float(progress_interval)


@dataclass(frozen=True)
class ScanStatsSnapshot:
    """
    The counters of a scan at one moment.

    :param pages: Scan responses received
    :param items: items returned (after any ``FilterExpression``)
    :param scanned: items DynamoDB read (before the filter)
    :param retries: requests sent again after a throttling or transient error (or unprocessed items)
    :param throttled: how many of the retries followed throttling
    :param consumed_read_capacity: read capacity units the responses reported, ``None`` if none reported any
    :param elapsed_seconds: seconds since the counters were created
    """

    pages: int
    items: int
    scanned: int
    retries: int
    throttled: int
    consumed_read_capacity: float | None
    elapsed_seconds: float

    @property
    def items_per_second(self) -> float:
        """Items returned per second of elapsed time."""
        return self.items / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0

    @property
    def read_capacity_per_second(self) -> float | None:
        """Consumed read capacity units per second of elapsed time, ``None`` when not known."""
        if self.consumed_read_capacity is None:
            return None
        return self.consumed_read_capacity / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0


class ScanStats:
    """
    Thread-safe counters of one scan (pages, items, scanned items, retries, consumed capacity), updated by the
    scanner's threads as responses arrive. Give each scan its own, or one per task to add up its scans.

    :param clock: seconds, monotonic (tests pass a fake); elapsed time counts from the creation
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._started = clock()
        self._lock = threading.Lock()
        self._pages = 0
        self._items = 0
        self._scanned = 0
        self._retries = 0
        self._throttled = 0
        self._consumed: float | None = None

    def record_page(
        self, *, items: int, scanned: int, consumed_capacity: float | None = None, client_retries: int = 0
    ) -> None:
        """
        Count one Scan response.

        :param client_retries: retries botocore itself made for the response (``ResponseMetadata.RetryAttempts``)
        """
        with self._lock:
            self._pages += 1
            self._items += items
            self._scanned += scanned
            self._retries += client_retries
            if consumed_capacity is not None:
                self._consumed = (self._consumed or 0.0) + consumed_capacity

    def record_retry(self, error_code: str) -> None:
        """Count one request sent again after ``error_code`` (see :func:`~airflow_dynamoscan.scan.retry`)."""
        with self._lock:
            self._retries += 1
            if is_throttling(error_code):
                self._throttled += 1

    def snapshot(self) -> ScanStatsSnapshot:
        """Return the counters now."""
        with self._lock:
            return ScanStatsSnapshot(
                pages=self._pages,
                items=self._items,
                scanned=self._scanned,
                retries=self._retries,
                throttled=self._throttled,
                consumed_read_capacity=self._consumed,
                elapsed_seconds=self._clock() - self._started,
            )

    @property
    def retries(self) -> int:
        """Requests sent again so far."""
        with self._lock:
            return self._retries

    @property
    def consumed_read_capacity(self) -> float | None:
        """Read capacity units consumed so far, ``None`` while no response reported any."""
        with self._lock:
            return self._consumed


class ScanProgress:
    """
    Log the progress of one scan every ``interval`` seconds (checked as pages arrive) and a summary at its end.

    A progress line has the items, pages, items per second, consumed read capacity units per second (when the
    responses report it) and, when ``expected_items`` gives a count, an estimated percentage of the scan's items.

    :param stats: the scan's counters
    :param table_name: the table, for the log lines
    :param scope: what the scan reads, for the log lines, e.g. ``"segment 3 of 16"``
    :param interval: seconds between progress lines; ``None`` or 0 for none (the summary is logged anyway)
    :param expected_items: returns about how many items the scan reads (e.g. from DescribeTable's ``ItemCount``),
        or ``None``; called at most once, when the first progress line is due
    :param read_capacity_budget: the scan's budget in RCU per second, for the summary, or ``None``
    :param clock: seconds, monotonic (tests pass a fake)
    :param summary_level: the log level of the summary line (INFO; DEBUG for a sample its caller reports)
    """

    def __init__(
        self,
        stats: ScanStats,
        *,
        table_name: str,
        scope: str,
        interval: float | None = DEFAULT_PROGRESS_INTERVAL,
        expected_items: Callable[[], int | None] | None = None,
        read_capacity_budget: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        summary_level: int = logging.INFO,
    ) -> None:
        self.stats = stats
        self.summary_level = summary_level
        self.table_name = table_name
        self.scope = scope
        self.interval = interval or None
        self.read_capacity_budget = read_capacity_budget
        self._expected_items = expected_items
        self._expected: int | None = None
        self._expected_known = expected_items is None
        self._clock = clock
        self._lock = threading.Lock()
        self._next_report = clock() + self.interval if self.interval else float("inf")

    def page_read(self) -> None:
        """Log a progress line if one is due; cheap otherwise. Safe to call from any thread."""
        if self._clock() < self._next_report or not self._lock.acquire(blocking=False):
            return
        try:
            now = self._clock()
            if now < self._next_report:
                return
            self._next_report = now + (self.interval or float("inf"))
            self._report()
        finally:
            self._lock.release()

    def _expected_count(self) -> int | None:
        if not self._expected_known:
            self._expected_known = True
            assert self._expected_items is not None
            self._expected = self._expected_items()
        return self._expected

    def _report(self) -> None:
        snapshot = self.stats.snapshot()
        expected = self._expected_count()
        message = "Table %s (%s): %s items (%s scanned) in %s pages, %.0f items/s"
        arguments: list[object] = [
            self.table_name,
            self.scope,
            snapshot.items,
            snapshot.scanned,
            snapshot.pages,
            snapshot.items_per_second,
        ]
        if snapshot.read_capacity_per_second is not None:
            message += ", %.1f RCU/s consumed"
            arguments.append(snapshot.read_capacity_per_second)
        if snapshot.retries:
            message += ", %s retries"
            arguments.append(snapshot.retries)
        if expected:
            message += ", about %.0f%% of an estimated %s items"
            arguments.extend((min(100.0, 100.0 * snapshot.scanned / expected), expected))
        log.info(message, *arguments)

    def finish(self, *, complete: bool) -> ScanStatsSnapshot:
        """Log the summary of the scan (``complete=False``: it was stopped early) and return its counters."""
        snapshot = self.stats.snapshot()
        message = "Table %s (%s): scan %s: %s items (%s scanned) in %s pages, %.1f s, %.0f items/s, %s retries"
        arguments: list[object] = [
            self.table_name,
            self.scope,
            "finished" if complete else "stopped early",
            snapshot.items,
            snapshot.scanned,
            snapshot.pages,
            snapshot.elapsed_seconds,
            snapshot.items_per_second,
            snapshot.retries,
        ]
        if snapshot.throttled:
            message += " (%s after throttling)"
            arguments.append(snapshot.throttled)
        if snapshot.consumed_read_capacity is not None:
            message += "; consumed %.1f RCU, %.2f RCU/s"
            arguments.extend((snapshot.consumed_read_capacity, snapshot.read_capacity_per_second))
        if self.read_capacity_budget is not None:
            message += " (budget %.2f RCU/s)"
            arguments.append(self.read_capacity_budget)
        log.log(self.summary_level, message, *arguments)
        return snapshot
