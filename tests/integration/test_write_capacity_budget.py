"""
Write-capacity budgets of transforms against the local DynamoDB server, which reports the ConsumedCapacity of each
write as DynamoDB does (1 WCU per KB of the larger of the item before and after).

The rate is measured independently of the pacer: each write request's send time (botocore's ``before-call``
event) and the capacity its response reports. ``pytest -s`` prints the figures.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import pytest

from airflow_dynamoscan.exceptions import InvalidScanArgumentError
from airflow_dynamoscan.operators.dynamodb_transform import DynamoDBTransformOperator
from devtools.sample_data import create_table, put_items
from tests.conftest import fails_task, unique_table_name

pytestmark = pytest.mark.usefixtures("aws_connection_env")

ITEMS = 120
PROVISIONED_WRITE_CAPACITY = 80
THREADS = 4
FRACTION = 0.5  # 40 WCU/s for the whole transform, 20 for each of its two mapped tasks: about 3 s


def items(count: int) -> list[dict[str, Any]]:
    return [{"pk": f"k{n:03d}", "status": "NEW", "text": "x" * 300} for n in range(count)]


def lower(item: dict[str, Any]) -> dict[str, Any]:
    return {**item, "status": item["status"].lower()}


class WriteLog:
    """Send times and consumed capacity of every write request of the operators it watches."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.writes: list[tuple[float, float]] = []

    def watch(self, operator: DynamoDBTransformOperator) -> None:
        def started(context: dict[str, Any], **_: Any) -> None:
            context["test_sent"] = time.monotonic()

        def finished(context: dict[str, Any], parsed: dict[str, Any], **_: Any) -> None:
            capacity = parsed.get("ConsumedCapacity") or {}
            entries = capacity if isinstance(capacity, list) else [capacity]
            units = sum(float(entry.get("CapacityUnits", 0)) for entry in entries)
            with self.lock:
                self.writes.append((context["test_sent"], units))

        events = operator.hook._scan_client.meta.events
        for operation in ("UpdateItem", "PutItem", "DeleteItem", "BatchWriteItem"):
            events.register(f"before-call.dynamodb.{operation}", started)
            events.register(f"after-call.dynamodb.{operation}", finished)

    def busiest_second(self) -> float:
        """The most capacity of the writes sent within any window of one second."""
        writes = sorted(self.writes)
        most = 0.0
        for start, _ in writes:
            most = max(most, sum(units for sent, units in writes if start <= sent < start + 1.0))
        return most

    def seconds(self) -> float:
        """From the first write's send to the last one's."""
        return max(sent for sent, _ in self.writes) - min(sent for sent, _ in self.writes)

    def rate(self) -> float:
        """Capacity per second from the first write's send to the last one's."""
        writes = sorted(self.writes)
        return sum(units for _, units in writes) / (writes[-1][0] - writes[0][0])


@pytest.fixture
def provisioned_table(dynalite_client: Any) -> str:
    name = unique_table_name("wbudget")
    dynalite_client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        ProvisionedThroughput={"ReadCapacityUnits": 1000, "WriteCapacityUnits": PROVISIONED_WRITE_CAPACITY},
    )
    dynalite_client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100})
    put_items(dynalite_client, name, items(ITEMS))
    return name


@pytest.mark.parametrize("on_conflict", ["reapply", "overwrite"])
def test_mapped_tasks_share_the_write_budget_of_a_provisioned_table(
    provisioned_table: str, dynalite_client: Any, on_conflict: str
) -> None:
    budget = PROVISIONED_WRITE_CAPACITY * FRACTION
    log = WriteLog()
    logs = [WriteLog(), WriteLog()]
    results: list[dict[str, Any]] = []
    operators = [
        DynamoDBTransformOperator(
            task_id="transform",
            table_name=provisioned_table,
            transform=lower,
            segment=segment,
            total_segments=2,
            max_workers=THREADS,
            write_capacity_fraction=FRACTION,
            on_conflict=on_conflict,
        )
        for segment in range(2)
    ]
    for operator, own in zip(operators, logs, strict=True):
        log.watch(operator)
        own.watch(operator)
    tasks = [threading.Thread(target=lambda o=o: results.append(o.execute({}))) for o in operators]
    for task in tasks:
        task.start()
    for task in tasks:
        task.join()

    consumed = sum(result["consumed_write_capacity"] for result in results)
    rates = [own.rate() for own in logs]
    print(
        f"\n[{on_conflict}] budget {budget} WCU/s, {len(log.writes)} write requests, {consumed} WCU, busiest second "
        f"{log.busiest_second()} WCU, each task's rate {', '.join(f'{rate:.1f}' for rate in rates)} WCU/s; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    assert sum(result["written"] for result in results) == ITEMS
    assert consumed == sum(units for _, units in log.writes) == ITEMS
    if on_conflict == "reapply":
        assert len(log.writes) == ITEMS
        # Each task writes at its half of the budget over its run, and the two never above the budget in any second
        # but for the write each task may release as a window opens.
        assert all(rate <= 1.1 * budget / 2 for rate in rates)
        if os.getloadavg()[0] < (os.cpu_count() or 1):
            assert log.busiest_second() <= budget + 2
            assert all(rate >= 0.9 * budget / 2 for rate in rates)
        else:
            # A loaded machine wakes threads late: requests released apart may be sent together, and the writes
            # can only be slower (which says nothing of the pacer).
            assert log.busiest_second() <= 1.1 * budget + 2
    else:
        # 25 items a request: a batch is the unit of pacing.
        assert len(log.writes) == 6
        assert log.busiest_second() <= budget + 2 * 25
    after = {
        item["pk"]["S"]: item["status"]["S"] for item in dynalite_client.scan(TableName=provisioned_table)["Items"]
    }
    assert after == {item["pk"]: "new" for item in items(ITEMS)}


def test_an_on_demand_table_without_a_maximum_needs_max_write_capacity_units(dynalite_client: Any) -> None:
    name = unique_table_name("wbudget-od")
    create_table(dynalite_client, name)
    put_items(dynalite_client, name, items(10))
    with fails_task(InvalidScanArgumentError) as raised:
        DynamoDBTransformOperator(
            task_id="transform", table_name=name, transform=lower, write_capacity_fraction=0.5
        ).execute({})  # type: ignore[arg-type]
    assert str(raised.value) == (
        f"Table {name!r}: write_capacity_fraction=0.5 needs the table's write capacity, but the table has billing "
        "mode PAY_PER_REQUEST and no maximum write throughput (OnDemandThroughput.MaxWriteRequestUnits). Give "
        "max_write_capacity_units, the write capacity units per second the whole transform may use."
    )
    assert {item["status"]["S"] for item in dynalite_client.scan(TableName=name)["Items"]} == {"NEW"}

    result = DynamoDBTransformOperator(
        task_id="transform", table_name=name, transform=lower, write_capacity_fraction=0.5, max_write_capacity_units=50
    ).execute({})  # type: ignore[arg-type]
    assert (result["written"], result["consumed_write_capacity"]) == (10, 10.0)


def test_a_dry_run_uses_no_write_capacity(provisioned_table: str) -> None:
    result = DynamoDBTransformOperator(
        task_id="transform", table_name=provisioned_table, transform=lower, dry_run=True, max_write_capacity_units=1
    ).execute({})  # type: ignore[arg-type]
    assert (result["would_write"], result["written"], result["consumed_write_capacity"]) == (ITEMS, 0, None)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"write_capacity_fraction": 1.5}, "write_capacity_fraction=1.5 is not allowed; it must be a number greater"),
        ({"max_write_capacity_units": 0}, "max_write_capacity_units=0 is not allowed; it must be a number greater"),
    ],
)
def test_bad_write_budgets_are_refused_when_the_dag_is_parsed(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidScanArgumentError, match=message):
        DynamoDBTransformOperator(task_id="transform", table_name="orders", transform=lower, **arguments)
