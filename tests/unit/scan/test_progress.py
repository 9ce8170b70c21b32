"""Scan counters and progress lines (scan/progress.py), on a fake clock."""

from __future__ import annotations

import logging
import threading

import pytest

from airflow_dynamoscan.exceptions import InvalidScanArgumentError
from airflow_dynamoscan.scan.progress import ScanProgress, ScanStats, validate_progress_interval


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_counters_are_exact_under_concurrent_updates() -> None:
    stats = ScanStats()

    def record() -> None:
        for _ in range(1000):
            stats.record_page(items=3, scanned=4, consumed_capacity=0.5)
            stats.record_retry("ProvisionedThroughputExceededException")
        stats.record_retry("ConnectionClosedError")

    threads = [threading.Thread(target=record) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    snapshot = stats.snapshot()
    assert (snapshot.pages, snapshot.items, snapshot.scanned) == (8000, 24000, 32000)
    assert (snapshot.retries, snapshot.throttled) == (8008, 8000)
    assert snapshot.consumed_read_capacity == 4000.0
    assert stats.retries == 8008 and stats.consumed_read_capacity == 4000.0


def test_consumed_capacity_is_unknown_until_a_response_reports_it() -> None:
    stats = ScanStats()
    stats.record_page(items=5, scanned=5, client_retries=2)
    assert stats.consumed_read_capacity is None and stats.retries == 2
    assert stats.snapshot().read_capacity_per_second is None


def test_progress_lines_every_interval_with_rates_and_an_estimated_percentage(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    stats = ScanStats(clock=clock)
    described: list[str] = []

    def expected_items() -> int:
        described.append("DescribeTable")
        return 4000

    progress = ScanProgress(
        stats,
        table_name="orders",
        scope="segment 1 of 4",
        interval=30,
        expected_items=expected_items,
        read_capacity_budget=10.0,
        clock=clock,
    )
    with caplog.at_level(logging.INFO, logger="airflow_dynamoscan.scan.progress"):
        for _ in range(10):
            clock.now += 5
            stats.record_page(items=100, scanned=100, consumed_capacity=5.0)
            progress.page_read()
        stats.record_retry("ThrottlingException")
        progress.finish(complete=True)
    lines = [record.getMessage() for record in caplog.records]
    assert lines == [
        "Table orders (segment 1 of 4): 600 items (600 scanned) in 6 pages, 20 items/s, 1.0 RCU/s consumed, "
        "about 15% of an estimated 4000 items",
        "Table orders (segment 1 of 4): scan finished: 1000 items (1000 scanned) in 10 pages, 50.0 s, 20 items/s, "
        "1 retries (1 after throttling); consumed 50.0 RCU, 1.00 RCU/s (budget 10.00 RCU/s)",
    ]
    assert described == ["DescribeTable"]


def test_no_progress_lines_without_an_interval_but_a_summary(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    stats = ScanStats(clock=clock)
    progress = ScanProgress(stats, table_name="orders", scope="serial scan", interval=None, clock=clock)
    with caplog.at_level(logging.INFO, logger="airflow_dynamoscan.scan.progress"):
        clock.now += 3600
        stats.record_page(items=7, scanned=9)
        progress.page_read()
        progress.finish(complete=False)
    assert [record.getMessage() for record in caplog.records] == [
        "Table orders (serial scan): scan stopped early: 7 items (9 scanned) in 1 pages, 3600.0 s, 0 items/s, 0 retries"
    ]


def test_progress_interval_validation() -> None:
    assert validate_progress_interval(None) is None
    assert validate_progress_interval(0) is None
    assert validate_progress_interval(2) == 2.0
    for value in (-1, float("nan"), "30", True):
        with pytest.raises(InvalidScanArgumentError, match=r"progress_interval=.* is not allowed"):
            validate_progress_interval(value)
