"""
Read-capacity budgets against the local DynamoDB server, which reports ConsumedCapacity as DynamoDB does for a
Scan: the evaluated items' bytes rounded up to 4 KB, 0.5 RCU per 4 KB.

The rate is measured independently of the pacer: the sum of the ConsumedCapacity of the pages over the wall-clock
time of the scan. ``pytest -s`` prints it. A loaded machine can only slow a scan down, never speed it up: the rate
must stay at or below the budget, and the time beyond what the budget demands must be time spent in the requests
themselves (measured around each Scan call), not waits of the pacer.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_dynamoscan.exceptions import InvalidScanArgumentError
from airflow_dynamoscan.hooks.dynamodb_scan import DynamoDBScanHook
from airflow_dynamoscan.operators.dynamodb_export import DynamoDBExportOperator
from airflow_dynamoscan.operators.dynamodb_transform import DynamoDBTransformOperator
from devtools.sample_data import create_table, put_items, sample_item
from tests.conftest import fails_task, unique_table_name

pytestmark = pytest.mark.usefixtures("aws_connection_env")

ITEMS = 2500
PROVISIONED_READ_CAPACITY = 160
FRACTION = 0.25  # 40 RCU/s: a full scan of the table (about 120 RCU) takes about 3 s


def fill(dynalite_client: Any, name: str) -> list[str]:
    items = [sample_item(number) for number in range(ITEMS)]
    put_items(dynalite_client, name, items)
    return sorted(item["pk"] for item in items)


# Waits beyond the budget that the pacer may add in a whole scan: a sleep wakes a little late, threads take turns.
WAIT_SLACK_SECONDS = 0.5


def seconds_in_scan_requests(hook: DynamoDBScanHook) -> list[float]:
    """Record how long each Scan call of the hook takes (building, sending, parsing; retries included)."""
    durations: list[float] = []

    def started(context: dict[str, Any], **_: Any) -> None:
        context["test_started"] = time.monotonic()

    def finished(context: dict[str, Any], **_: Any) -> None:
        durations.append(time.monotonic() - context["test_started"])

    events = hook._scan_client.meta.events
    events.register("before-call.dynamodb.Scan", started)
    events.register("after-call.dynamodb.Scan", finished)
    return durations


def assert_paced_to(budget: float, consumed: float, elapsed: float, in_requests: list[float]) -> None:
    """
    ``consumed`` RCU in ``elapsed`` s kept to ``budget`` RCU/s (within the bucket's burst and the last request),
    and the pacer waited no longer than the budget demands: outside the requests, at most ``consumed / budget`` s.
    """
    assert consumed / elapsed <= budget * 1.2, (consumed, elapsed)
    waited = elapsed - sum(in_requests)
    assert waited <= consumed / budget * 1.1 + WAIT_SLACK_SECONDS, (consumed, elapsed, in_requests)


@pytest.fixture(scope="module")
def provisioned_table(dynalite_client: Any) -> tuple[str, list[str]]:
    name = unique_table_name("budget")
    dynalite_client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        ProvisionedThroughput={"ReadCapacityUnits": PROVISIONED_READ_CAPACITY, "WriteCapacityUnits": 1000},
    )
    dynalite_client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100})
    return name, fill(dynalite_client, name)


@pytest.fixture(scope="module")
def on_demand_table(dynalite_client: Any) -> tuple[str, list[str]]:
    name = unique_table_name("budget-od")
    create_table(dynalite_client, name)
    return name, fill(dynalite_client, name)


def test_a_paced_scan_stays_within_its_share_of_provisioned_capacity(
    provisioned_table: tuple[str, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    name, expected = provisioned_table
    hook = DynamoDBScanHook(read_capacity_fraction=FRACTION, progress_interval=1)
    target = PROVISIONED_READ_CAPACITY * FRACTION
    in_requests = seconds_in_scan_requests(hook)  # the client is made before the clock starts
    with caplog.at_level(logging.INFO, logger="airflow_dynamoscan"):
        started = time.monotonic()
        pages = list(hook.scan_segment_pages(name, None, None))
        elapsed = time.monotonic() - started
    consumed = sum(page.consumed_capacity or 0.0 for page in pages)
    rate = consumed / elapsed
    largest = max(page.consumed_capacity or 0.0 for page in pages)
    print(
        f"\n[paced serial scan] target {target:.1f} RCU/s; consumed {consumed:.1f} RCU in {elapsed:.2f} s = "
        f"{rate:.1f} RCU/s ({100 * (rate / target - 1):+.1f} %); {len(pages)} requests "
        f"({sum(in_requests):.2f} s in them), the largest {largest} RCU"
    )
    assert sorted(item["pk"] for page in pages for item in page.items) == expected
    assert_paced_to(target, consumed, elapsed, in_requests)
    assert len(in_requests) == len(pages)
    # Limit keeps each request near half a second of budget; without it one request would cost a whole page.
    assert largest <= target
    messages = [record.getMessage() for record in caplog.records]
    assert any(message.endswith(f"(budget {target:.2f} RCU/s)") and "scan finished" in message for message in messages)
    assert any("RCU/s consumed" in message and "(serial scan)" in message for message in messages)


def test_four_concurrent_segments_share_the_budget_of_an_on_demand_table(
    on_demand_table: tuple[str, list[str]],
) -> None:
    name, expected = on_demand_table
    budget, total_segments = 40.0, 4
    # One hook per segment, as in four mapped tasks.
    hooks = [DynamoDBScanHook(max_read_capacity_units=budget) for _ in range(total_segments)]
    in_requests = [seconds_in_scan_requests(hook) for hook in hooks]
    results: dict[int, tuple[float, list[str]]] = {}
    segment_seconds: dict[int, float] = {}

    def read(segment: int) -> None:
        segment_started = time.monotonic()
        pages = list(hooks[segment].scan_segment_pages(name, segment, total_segments))
        segment_seconds[segment] = time.monotonic() - segment_started
        keys = [item["pk"] for page in pages for item in page.items]
        results[segment] = (sum(page.consumed_capacity or 0.0 for page in pages), keys)

    threads = [threading.Thread(target=read, args=(segment,)) for segment in range(total_segments)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    consumed = sum(capacity for capacity, _ in results.values())
    rate = consumed / elapsed
    print(
        f"\n[4 concurrent segments, each 1/4 of {budget:.0f} RCU/s] consumed {consumed:.1f} RCU in {elapsed:.2f} s = "
        f"{rate:.1f} RCU/s; per segment "
        + ", ".join(f"{capacity:.1f} RCU" for capacity, _ in (results[segment] for segment in range(total_segments)))
    )
    assert sorted(key for _, keys in results.values() for key in keys) == expected
    assert rate <= budget * 1.1
    # Each segment keeps to its quarter of the budget, however long the others take.
    for segment, (capacity, _) in results.items():
        assert_paced_to(budget / total_segments, capacity, segment_seconds[segment], in_requests[segment])


def test_fraction_of_an_on_demand_table_without_maximum_is_refused(
    on_demand_table: tuple[str, list[str]], tmp_path: Path
) -> None:
    name, _ = on_demand_table
    expected = (
        f"Table {name!r}: read_capacity_fraction=0.5 needs the table's read capacity, but the table has billing mode "
        "PAY_PER_REQUEST and no maximum read throughput (OnDemandThroughput.MaxReadRequestUnits). Give "
        "max_read_capacity_units, the read capacity units per second the whole scan may use."
    )
    with pytest.raises(InvalidScanArgumentError) as raised:
        DynamoDBScanHook(read_capacity_fraction=0.5).scan(name)
    assert str(raised.value) == expected
    operator = DynamoDBExportOperator(
        task_id="export",
        table_name=name,
        destination=str(tmp_path),
        read_capacity_fraction=0.5,
        segment=0,
        total_segments=2,
    )
    with fails_task(InvalidScanArgumentError) as raised:
        operator.execute({})  # type: ignore[arg-type]
    assert str(raised.value) == expected
    assert not list(tmp_path.rglob("part-*"))


@pytest.mark.parametrize("fraction", [0, 1.5, -0.25])
def test_fraction_outside_zero_to_one_is_refused(fraction: float) -> None:
    with pytest.raises(InvalidScanArgumentError) as raised:
        DynamoDBScanHook(read_capacity_fraction=fraction)
    assert str(raised.value).startswith(f"read_capacity_fraction={fraction!r} is not allowed")
    with pytest.raises(InvalidScanArgumentError) as raised:
        DynamoDBExportOperator(
            task_id="export", table_name="orders", destination="/tmp/x", read_capacity_fraction=fraction
        )
    assert str(raised.value).startswith(f"Table 'orders': read_capacity_fraction={fraction!r} is not allowed")


def test_operators_report_consumed_capacity_and_retries(
    provisioned_table: tuple[str, list[str]], tmp_path: Path
) -> None:
    name, expected = provisioned_table
    export = DynamoDBExportOperator(
        task_id="export",
        table_name=name,
        destination=str(tmp_path),
        segment=1,
        total_segments=2,
        max_read_capacity_units=2000,
        request_max_attempts=3,
    )
    result = export.execute({})  # type: ignore[arg-type]
    assert result["retries"] == 0
    assert result["consumed_read_capacity"] == export.scan_stats.snapshot().consumed_read_capacity  # type: ignore[union-attr]
    assert 20 < result["consumed_read_capacity"] < 100  # about half of the table's 120 RCU
    assert 0 < result["items"] < len(expected)
    transform = DynamoDBTransformOperator(
        task_id="transform",
        table_name=name,
        transform=lambda item: None,
        dry_run=True,
        scan_kwargs={"ReturnConsumedCapacity": "INDEXES"},
    )
    counts = transform.execute({})  # type: ignore[arg-type]
    assert counts["scanned"] == len(expected)
    assert counts["retries"] == 0 and counts["consumed_read_capacity"] > 100


def test_closing_a_paced_parallel_scan_stops_workers_waiting_for_budget(
    on_demand_table: tuple[str, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    name, _ = on_demand_table
    # 2 RCU/s over 4 workers: after their first requests, each waits seconds for its share.
    hook = DynamoDBScanHook(max_read_capacity_units=2)
    with caplog.at_level(logging.INFO, logger="airflow_dynamoscan.scan.progress"):
        pages = hook.parallel_scan_pages(name, total_segments=4, max_workers=4)
        first = next(iter(pages))
        started = time.monotonic()
        pages.close()  # type: ignore[attr-defined]
        closing = time.monotonic() - started
    print(f"\n[close a paced parallel scan] close() returned after {closing:.3f} s")
    assert first.items
    assert closing < 0.5
    assert "(4 segments): scan stopped early: " in caplog.records[-1].getMessage()
