"""The token bucket, the read-capacity pacer and the budget rules (scan/pacing.py), on a fake clock."""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import pytest

from airflow_dynamoscan.exceptions import InvalidScanArgumentError
from airflow_dynamoscan.scan.pacing import (
    ReadCapacityPacer,
    TokenBucket,
    WriteCapacityPacer,
    read_capacity_budget,
    table_read_capacity,
    table_write_capacity,
    validate_read_capacity_fraction,
    write_capacity_budget,
)


class FakeClock:
    """A monotonic clock that moves only when something sleeps on it."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_bucket_reserves_then_waits_for_the_debt() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10.0, burst=5.0, clock=clock, sleep=clock.sleep)
    assert bucket.take(2.0) == pytest.approx(0.2)  # starts empty: 2 tokens at 10/s
    assert bucket.take(1.0) == pytest.approx(0.1)
    bucket.charge(3.0)  # the last take really cost 4
    assert bucket.take(0.5) == pytest.approx(0.35)
    assert clock.sleeps == pytest.approx([0.2, 0.1, 0.35])


def test_bucket_saves_at_most_its_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10.0, burst=5.0, clock=clock, sleep=clock.sleep)
    clock.now += 60  # idle for a minute: only 5 tokens saved
    assert bucket.tokens == pytest.approx(5.0)
    assert bucket.take(5.0) == 0.0
    assert bucket.take(1.0) == pytest.approx(0.1)


def test_bucket_lets_out_its_rate_whatever_the_sizes_of_the_takes() -> None:
    clock = FakeClock()
    bucket = TokenBucket(40.0, burst=20.0, clock=clock, sleep=clock.sleep)
    start = clock.now
    taken = 0.0
    for amount in [0.5, 30.0, 2.0, 128.0, 0.5, 7.0, 64.0, 1.0] * 5:
        bucket.take(amount)
        taken += amount
    assert taken / (clock.now - start) == pytest.approx(40.0)


def test_bucket_is_thread_safe() -> None:
    bucket = TokenBucket(2000.0, burst=0.0)
    started = time.monotonic()

    def take_many() -> None:
        for _ in range(100):
            bucket.take(1.0)

    threads = [threading.Thread(target=take_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    # 400 tokens at 2000/s: not before 0.2 s, and the last taker waited for the debt of all the others.
    assert elapsed >= 0.19
    assert bucket.tokens == pytest.approx(0.0, abs=1.0)


def dynamodb_scan_cost(items: int, item_bytes: int) -> float:
    """What DynamoDB charges an eventually consistent Scan: the evaluated bytes rounded up to 4 KB, 0.5 per 4 KB."""
    return max(0.5, math.ceil(items * item_bytes / 4096) * 0.5)


def simulate_scan(
    pacer: ReadCapacityPacer, clock: FakeClock, *, table_items: int, item_bytes: int, user_limit: int | None = None
) -> tuple[list[int | None], list[float], float]:
    """Scan a simulated table through ``pacer``; return the limits sent, the costs, and the elapsed seconds."""
    limits: list[int | None] = []
    costs: list[float] = []
    remaining = table_items
    page_items = 1024 * 1024 // item_bytes
    start = clock.now
    while remaining > 0:
        request = pacer.before_request(user_limit)
        limits.append(request.limit)
        scanned = min(remaining, page_items, request.limit or page_items)
        cost = dynamodb_scan_cost(scanned, item_bytes)
        clock.now += 0.005  # the request itself
        pacer.after_response(request, cost, scanned)
        costs.append(cost)
        remaining -= scanned
    return limits, costs, clock.now - start


def test_pacer_probes_one_item_then_sizes_requests_to_a_quarter_second_of_budget() -> None:
    clock = FakeClock()
    pacer = ReadCapacityPacer(40.0, clock=clock, sleep=clock.sleep)
    limits, costs, elapsed = simulate_scan(pacer, clock, table_items=30_000, item_bytes=400)
    assert limits[0] == 1
    assert all(limit is not None and limit > 1 for limit in limits[1:])
    # After a few requests the estimate has settled: each request costs about 10 RCU (0.25 s of 40 RCU/s).
    assert limits[:3] == [1, 20, 148]  # 1 item cost 0.5 RCU (the minimum), then 20 items 1 RCU: better estimates
    assert all(7.5 <= cost <= 12.5 for cost in costs[3:-1])  # the last request reads what is left
    assert sum(costs) / elapsed == pytest.approx(40.0, rel=0.03)
    # A little more than 400 bytes at 0.5 RCU per 4 KB: each request rounds up to the next 4 KB.
    assert 400 / 8192 < pacer.item_capacity < 400 / 8192 * 1.1  # type: ignore[operator]


def test_pacer_never_sends_more_than_the_callers_limit() -> None:
    clock = FakeClock()
    pacer = ReadCapacityPacer(40.0, clock=clock, sleep=clock.sleep)
    limits, costs, elapsed = simulate_scan(pacer, clock, table_items=3_000, item_bytes=400, user_limit=50)
    assert limits[:2] == [1, 20] and set(limits[2:]) == {50}
    assert sum(costs) / elapsed == pytest.approx(40.0, rel=0.1)


def test_pacer_sends_no_limit_when_a_full_page_fits_in_one_request_of_budget() -> None:
    clock = FakeClock()
    pacer = ReadCapacityPacer(2000.0, clock=clock, sleep=clock.sleep)  # 500 RCU per request: more than a page
    limits, costs, elapsed = simulate_scan(pacer, clock, table_items=100_000, item_bytes=400)
    assert set(limits) == {None}
    assert sum(costs) / elapsed == pytest.approx(2000.0, rel=0.05)  # the last page's cost is not waited for
    assert ReadCapacityPacer(2000.0).next_limit(77) == 77


def test_pacer_keeps_the_reservation_when_no_capacity_is_reported() -> None:
    clock = FakeClock()
    pacer = ReadCapacityPacer(10.0, clock=clock, sleep=clock.sleep)
    request = pacer.before_request()
    pacer.after_response(request, None, 5)
    assert pacer.item_capacity is None and request.limit == 1


@pytest.mark.parametrize("units", [0, -5, float("nan"), True])
def test_pacer_refuses_a_budget_that_is_not_positive(units: Any) -> None:
    with pytest.raises(InvalidScanArgumentError, match="read capacity budget"):
        ReadCapacityPacer(units)


PROVISIONED = {
    "TableName": "orders",
    "ProvisionedThroughput": {"ReadCapacityUnits": 100, "WriteCapacityUnits": 5},
    "GlobalSecondaryIndexes": [
        {"IndexName": "by_status", "ProvisionedThroughput": {"ReadCapacityUnits": 20, "WriteCapacityUnits": 5}}
    ],
}
ON_DEMAND = {
    "TableName": "events",
    "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"},
    "ProvisionedThroughput": {"ReadCapacityUnits": 0, "WriteCapacityUnits": 0},
}


def test_budget_of_a_provisioned_table() -> None:
    assert table_read_capacity(PROVISIONED) == ("PROVISIONED", 100.0)
    budget = read_capacity_budget
    assert budget(PROVISIONED, read_capacity_fraction=0.25, max_read_capacity_units=None) == 25.0
    assert budget(PROVISIONED, read_capacity_fraction=0.25, max_read_capacity_units=10) == 10.0
    assert budget(PROVISIONED, read_capacity_fraction=1, max_read_capacity_units=500) == 100.0
    assert budget(PROVISIONED, read_capacity_fraction=None, max_read_capacity_units=500) == 500.0
    assert budget(PROVISIONED, read_capacity_fraction=None, max_read_capacity_units=None) is None
    assert budget(PROVISIONED, read_capacity_fraction=0.5, max_read_capacity_units=None, index_name="by_status") == 10
    # A local secondary index (not among the global ones) reads the table's capacity.
    assert budget(PROVISIONED, read_capacity_fraction=0.5, max_read_capacity_units=None, index_name="local") == 50


def test_budget_of_an_on_demand_table() -> None:
    limited = {**ON_DEMAND, "OnDemandThroughput": {"MaxReadRequestUnits": 400, "MaxWriteRequestUnits": -1}}
    assert table_read_capacity(limited) == ("PAY_PER_REQUEST", 400.0)
    assert read_capacity_budget(limited, read_capacity_fraction=0.5, max_read_capacity_units=None) == 200.0
    unlimited = {**ON_DEMAND, "OnDemandThroughput": {"MaxReadRequestUnits": -1}}
    assert table_read_capacity(unlimited) == ("PAY_PER_REQUEST", None)
    assert read_capacity_budget(unlimited, read_capacity_fraction=0.5, max_read_capacity_units=60) == 60.0
    assert read_capacity_budget(ON_DEMAND, read_capacity_fraction=None, max_read_capacity_units=60) == 60.0


def test_budget_of_an_on_demand_table_without_maximum_needs_max_read_capacity_units() -> None:
    with pytest.raises(InvalidScanArgumentError) as raised:
        read_capacity_budget(ON_DEMAND, read_capacity_fraction=0.25, max_read_capacity_units=None)
    assert str(raised.value) == (
        "Table 'events': read_capacity_fraction=0.25 needs the table's read capacity, but the table has billing mode "
        "PAY_PER_REQUEST and no maximum read throughput (OnDemandThroughput.MaxReadRequestUnits). Give "
        "max_read_capacity_units, the read capacity units per second the whole scan may use."
    )


@pytest.mark.parametrize("fraction", [0, 0.0, -0.25, 1.5, float("nan"), True, "0.5"])
def test_fraction_must_be_in_zero_to_one(fraction: Any) -> None:
    with pytest.raises(InvalidScanArgumentError) as raised:
        read_capacity_budget(PROVISIONED, read_capacity_fraction=fraction, max_read_capacity_units=None)
    assert str(raised.value).startswith(f"Table 'orders': read_capacity_fraction={fraction!r} is not allowed")
    assert "greater than 0 and at most 1" in str(raised.value)
    assert validate_read_capacity_fraction(1) == 1.0


@pytest.mark.parametrize("units", [0, -1, float("inf"), "100"])
def test_max_read_capacity_units_must_be_positive(units: Any) -> None:
    with pytest.raises(InvalidScanArgumentError, match=r"max_read_capacity_units=.* is not allowed"):
        read_capacity_budget(PROVISIONED, read_capacity_fraction=None, max_read_capacity_units=units)


def test_write_pacer_holds_its_budget_in_every_second_on_a_fake_clock() -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    pacer = WriteCapacityPacer(10, clock=lambda: now[0], sleep=sleep)
    sizes = [1, 1, 3, 1, 2, 5, 1, 1, 1, 4] * 10
    released = []
    for size in sizes:
        reserved = pacer.before_write()
        released.append((now[0], size))
        now[0] += 0.01  # the request itself
        pacer.after_write(reserved, float(size))
    for start, _ in released:
        in_window = sum(size for sent, size in released if start <= sent < start + 1.0)
        # The budget, plus what the write that opens the window was found to cost beyond its reservation.
        assert in_window <= 10 + max(sizes) - 1
    elapsed = released[-1][0] - released[0][0]
    assert sum(sizes[:-1]) / elapsed == pytest.approx(10, rel=0.1)
    assert pacer.consumed == sum(sizes)
    assert pacer.item_capacity == pytest.approx(2.0, rel=0.5)


def test_write_capacity_budget_of_provisioned_and_on_demand_tables() -> None:
    provisioned = {"TableName": "orders", "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 80}}
    assert table_write_capacity(provisioned) == ("PROVISIONED", 80.0)
    assert write_capacity_budget(provisioned, write_capacity_fraction=0.25, max_write_capacity_units=None) == 20.0
    assert write_capacity_budget(provisioned, write_capacity_fraction=0.5, max_write_capacity_units=30) == 30.0
    on_demand = {
        "TableName": "orders",
        "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"},
        "OnDemandThroughput": {"MaxReadRequestUnits": -1, "MaxWriteRequestUnits": 200},
    }
    assert write_capacity_budget(on_demand, write_capacity_fraction=0.1, max_write_capacity_units=None) == 20.0
    unlimited = {**on_demand, "OnDemandThroughput": {"MaxWriteRequestUnits": -1}}
    assert write_capacity_budget(unlimited, write_capacity_fraction=None, max_write_capacity_units=7) == 7.0
    with pytest.raises(InvalidScanArgumentError, match="Give max_write_capacity_units, the write capacity units"):
        write_capacity_budget(unlimited, write_capacity_fraction=0.1, max_write_capacity_units=None)
