"""DynamoDBTransformOperator and BatchWriter against the local DynamoDB server: exact table contents after each run."""

from __future__ import annotations

import copy
import threading
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from airflow_dynamoscan.exceptions import BatchWriteError, TransformError
from airflow_dynamoscan.hooks.dynamodb_scan import DynamoDBScanHook
from airflow_dynamoscan.operators.dynamodb_transform import DynamoDBTransformOperator
from airflow_dynamoscan.scan.decode import deserialize_item
from airflow_dynamoscan.write.batch import WRITE_RETRY_POLICY, BatchWriter, serialize_item
from devtools.sample_data import create_table, put_items, sample_item
from tests.conftest import fails_task, unique_table_name

pytestmark = pytest.mark.usefixtures("aws_connection_env")


def order(number: int) -> dict[str, Any]:
    """A small sample item whose status is upper-case for every third number."""
    item = sample_item(number, padding=20)
    if number % 3 == 0:
        item["status"] = item["status"].upper()
    return item


def make_table(client: Any, count: int, *, key: str = "pk") -> tuple[str, list[dict[str, Any]]]:
    name = unique_table_name("transform")
    create_table(client, name, hash_key=key)
    items = [order(number) for number in range(count)]
    put_items(client, name, items)
    return name, items


def read_table(client: Any, table_name: str, key: str = "pk") -> dict[str, dict[str, Any]]:
    """Every item of the table by key, read with botocore's own parser (not the code under test)."""
    items: dict[str, dict[str, Any]] = {}
    for page in client.get_paginator("scan").paginate(TableName=table_name):
        for raw in page["Items"]:
            item = deserialize_item(raw)
            assert item[key] not in items
            items[item[key]] = item
    return items


def lower_status(item: dict[str, Any]) -> dict[str, Any] | None:
    """Skip every seventh order, keep lower-case ones as they are, normalise the rest and double their amount."""
    if item["n"] % 7 == 0:
        return None
    status = item["status"].lower()
    if status == item["status"]:
        return item
    return {**item, "status": status, "previous_status": item["status"], "amount": item["amount"] * 2}


def expected_after(items: list[dict[str, Any]], transform: Any) -> dict[str, dict[str, Any]]:
    expected = {}
    for item in items:
        result = transform(copy.deepcopy(item))
        expected[item["pk"]] = item if result is None else result
    return expected


def run(**arguments: Any) -> dict[str, Any]:
    operator = DynamoDBTransformOperator(task_id="transform", **arguments)
    result: dict[str, Any] = operator.execute({})  # type: ignore[arg-type]
    return result


def test_in_place_transform_of_5000_items(dynalite_client: Any) -> None:
    name, items = make_table(dynalite_client, 5000)
    skipped = sum(1 for item in items if item["n"] % 7 == 0)
    changed = sum(1 for item in items if item["n"] % 7 and item["n"] % 3 == 0)

    result = run(table_name=name, transform=lower_status, max_workers=4)

    assert result == {
        "table_name": name,
        "target_table_name": name,
        "segment": None,
        "total_segments": None,
        "scanned": 5000,
        "written": changed,
        "unchanged": 5000 - skipped - changed,
        "skipped": skipped,
        "key_changed": 0,
        "dry_run": False,
        "on_conflict": "reapply",
        "conflicts": 0,
        "reapplied": 0,
        "skipped_conflicts": 0,
        "skipped_uncheckable": 0,
        "retries": 0,
        "consumed_read_capacity": None,
        "consumed_write_capacity": None,
    }
    assert read_table(dynalite_client, name) == expected_after(items, lower_status)


def test_count_in_parallel_honours_the_filter(dynalite_client: Any) -> None:
    name, items = make_table(dynalite_client, 600)
    hook = DynamoDBScanHook()
    paid = sum(1 for item in items if item["status"] == "paid")
    assert 0 < paid < 600
    by_status = {
        "FilterExpression": "#s = :s",
        "ExpressionAttributeNames": {"#s": "status"},
        "ExpressionAttributeValues": {":s": {"S": "paid"}},
    }
    assert hook.count(name, total_segments=4, max_workers=2, **by_status) == paid
    below_42 = {"FilterExpression": "n < :n", "ExpressionAttributeValues": {":n": {"N": "42"}}}
    assert hook.count(name, total_segments=9, **below_42) == 42
    assert hook.count(name, total_segments=3, FilterExpression="attribute_exists(nothing)") == 0


def test_transform_only_filtered_items(dynalite_client: Any) -> None:
    name, items = make_table(dynalite_client, 200)
    result = run(
        table_name=name,
        transform=lambda item: {**item, "flag": True},
        scan_kwargs={"FilterExpression": "n < :n", "ExpressionAttributeValues": {":n": {"N": "50"}}},
    )
    assert (result["scanned"], result["written"]) == (50, 50)
    assert read_table(dynalite_client, name) == {
        item["pk"]: {**item, "flag": True} if item["n"] < 50 else item for item in items
    }


def test_copy_leaves_the_source_alone_and_fills_the_target(dynalite_client: Any) -> None:
    name, items = make_table(dynalite_client, 300)
    target = unique_table_name("copy")
    create_table(dynalite_client, target, hash_key="order_id")

    def to_target(item: dict[str, Any]) -> dict[str, Any] | None:
        result = lower_status(item)
        if result is None:
            return None
        return {"order_id": result.pop("pk"), **result}

    result = run(table_name=name, target_table_name=target, transform=to_target, max_workers=3)

    expected = {}
    for item in items:
        transformed = to_target(copy.deepcopy(item))
        if transformed is not None:
            expected[transformed["order_id"]] = transformed
    skipped = sum(1 for item in items if item["n"] % 7 == 0)
    assert result["scanned"] == 300 and result["skipped"] == skipped
    assert result["written"] == len(expected) == 300 - skipped
    assert result["unchanged"] == 0  # the key attribute changed name, so no result equals its item
    assert read_table(dynalite_client, target, key="order_id") == expected
    assert read_table(dynalite_client, name) == {item["pk"]: item for item in items}


def test_copy_writes_unchanged_items_too(dynalite_client: Any) -> None:
    name, items = make_table(dynalite_client, 90)
    target = unique_table_name("copy")
    create_table(dynalite_client, target)
    result = run(table_name=name, target_table_name=target, transform=lower_status)
    skipped = sum(1 for item in items if item["n"] % 7 == 0)
    unchanged = sum(1 for item in items if item["n"] % 7 and item["n"] % 3)
    assert (result["written"], result["unchanged"], result["skipped"]) == (90 - skipped, unchanged, skipped)
    expected = {pk: item for pk, item in expected_after(items, lower_status).items() if int(pk[6:]) % 7}
    assert read_table(dynalite_client, target) == expected


def test_copy_refuses_a_result_without_the_target_key(dynalite_client: Any) -> None:
    name, _ = make_table(dynalite_client, 10)
    target = unique_table_name("copy")
    create_table(dynalite_client, target, hash_key="order_id")
    with fails_task(TransformError) as raised:
        run(table_name=name, target_table_name=target, transform=lambda item: item)
    assert f"lacks the key attribute 'order_id'; items of table {target!r} need the key attributes order_id." in str(
        raised.value
    )
    assert read_table(dynalite_client, target, key="order_id") == {}


def test_dry_run_writes_nothing_and_counts_per_segment(dynalite_client: Any) -> None:
    name, items = make_table(dynalite_client, 300)
    results = [
        run(table_name=name, transform=lower_status, segment=segment, total_segments=4, dry_run=True)
        for segment in range(4)
    ]
    assert [(result["segment"], result["total_segments"]) for result in results] == [(0, 4), (1, 4), (2, 4), (3, 4)]
    assert all(result["written"] == 0 and result["dry_run"] is True for result in results)
    skipped = sum(1 for item in items if item["n"] % 7 == 0)
    changed = sum(1 for item in items if item["n"] % 7 and item["n"] % 3 == 0)
    totals = {key: sum(result[key] for result in results) for key in ("scanned", "would_write", "unchanged", "skipped")}
    assert totals == {"scanned": 300, "would_write": changed, "unchanged": 300 - changed - skipped, "skipped": skipped}
    assert read_table(dynalite_client, name) == {item["pk"]: item for item in items}


def test_mapped_segments_together_transform_every_item_once(dynalite_client: Any) -> None:
    name, items = make_table(dynalite_client, 300)
    results = [run(table_name=name, transform=lower_status, segment=segment, total_segments=3) for segment in range(3)]
    assert sum(result["scanned"] for result in results) == 300
    assert sum(result["written"] for result in results) == sum(1 for i in items if i["n"] % 7 and i["n"] % 3 == 0)
    assert read_table(dynalite_client, name) == expected_after(items, lower_status)


def rename_key(item: dict[str, Any]) -> dict[str, Any]:
    return {**item, "pk": item["pk"].replace("order#", "moved#")}


def test_in_place_key_change_is_refused(dynalite_client: Any) -> None:
    name, items = make_table(dynalite_client, 40)
    with fails_task(TransformError) as raised:
        run(table_name=name, transform=rename_key)
    message = str(raised.value)
    assert message.startswith(f"Table {name!r}: the transform changed the key attribute 'pk' of the item with key ")
    assert "pass allow_key_change=True to write the new item and delete the old one." in message
    assert message.endswith(f"0 item(s) had been written to table {name!r} (every item transformed before it).")
    assert "lorem" not in message and "Zürich" not in message
    assert read_table(dynalite_client, name) == {item["pk"]: item for item in items}


def test_in_place_key_change_moves_items_when_allowed(dynalite_client: Any) -> None:
    name, items = make_table(dynalite_client, 120)
    result = run(table_name=name, transform=rename_key, allow_key_change=True, max_workers=2)
    assert (result["scanned"], result["written"], result["key_changed"]) == (120, 120, 120)
    assert read_table(dynalite_client, name) == {
        item["pk"].replace("order#", "moved#"): rename_key(item) for item in items
    }


def test_in_place_key_swap_keeps_both_items(dynalite_client: Any) -> None:
    name = unique_table_name("swap")
    create_table(dynalite_client, name)
    put_items(dynalite_client, name, [{"pk": "a", "v": 1}, {"pk": "b", "v": 2}, {"pk": "c", "v": 3}])
    swap = {"a": "b", "b": "a"}
    result = run(
        table_name=name, transform=lambda item: {**item, "pk": swap.get(item["pk"], item["pk"])}, allow_key_change=True
    )
    assert (result["key_changed"], result["unchanged"]) == (2, 1)
    assert read_table(dynalite_client, name) == {
        "a": {"pk": "a", "v": Decimal(2)},
        "b": {"pk": "b", "v": Decimal(1)},
        "c": {"pk": "c", "v": Decimal(3)},
    }


def test_two_items_moved_to_one_key_is_an_error(dynalite_client: Any) -> None:
    name = unique_table_name("merge")
    create_table(dynalite_client, name)
    put_items(dynalite_client, name, [{"pk": "a", "v": 1}, {"pk": "b", "v": 2}])
    with fails_task(TransformError, match=r"the same new key pk='z'; one would overwrite the other\."):
        run(table_name=name, transform=lambda item: {**item, "pk": "z"}, allow_key_change=True)
    assert sorted(read_table(dynalite_client, name)) == ["a", "b"]


def test_transform_exception_names_the_key_and_what_was_written(dynalite_client: Any) -> None:
    name, items = make_table(dynalite_client, 300)

    def fails_on_150(item: dict[str, Any]) -> dict[str, Any]:
        if item["n"] == 150:
            raise ValueError(f"cannot handle {item['text']}")
        return {**item, "seen": True}

    with fails_task(TransformError) as raised:
        run(table_name=name, transform=fails_on_150, max_workers=2)
    message = str(raised.value)
    after = read_table(dynalite_client, name)
    written = sum(1 for item in after.values() if item.get("seen"))
    assert written < 300
    assert message == (
        f"Table {name!r}: the transform raised ValueError on the item with key pk='order#00000150'. "
        f"{written} item(s) had been written to table {name!r} (every item transformed before it)."
    )
    transform_error = raised.value.__cause__
    assert transform_error.__cause__ is not None and transform_error.__cause__.type_name == "ValueError"
    assert "lorem" not in message
    assert after["order#00000150"] == items[150]


@pytest.mark.parametrize(
    ("transform", "expected"),
    [
        (
            lambda item: {**item, "address": {**item["address"], "geo": {"lat": 47.3769}}},
            "attribute 'address.geo.lat' of the transform's result for the item with key pk='order#000000",
        ),
        (lambda item: [item], "the transform returned a list for the item with key pk='order#000000"),
        (lambda item: {**item, "pk": 5.0}, "has a key attribute 'pk' of type float; key attributes must be str"),
    ],
    ids=["float", "not-a-dict", "float-key"],
)
def test_unwritable_results_are_refused(dynalite_client: Any, transform: Any, expected: str) -> None:
    name, items = make_table(dynalite_client, 30)
    with fails_task(TransformError) as raised:
        run(table_name=name, transform=transform)
    assert expected in str(raised.value)
    assert "47.3769" not in str(raised.value)
    assert read_table(dynalite_client, name) == {item["pk"]: item for item in items}


class UnprocessingClient:
    """
    A real client, except that its first ``times`` BatchWriteItem calls send only the first half of the requests
    and return the other half as ``UnprocessedItems``, as DynamoDB does when a table runs out of write capacity.
    """

    def __init__(self, client: Any, times: float) -> None:
        self.client = client
        self.times = times
        self.calls = 0
        self.lock = threading.Lock()

    def batch_write_item(self, **kwargs: Any) -> Any:
        with self.lock:
            self.calls += 1
            hold_back = self.calls <= self.times
        if not hold_back:
            return self.client.batch_write_item(**kwargs)
        ((table_name, requests),) = kwargs["RequestItems"].items()
        sent, held = requests[: len(requests) // 2], requests[len(requests) // 2 :]
        response = self.client.batch_write_item(RequestItems={table_name: sent}) if sent else {}
        unprocessed = response.get("UnprocessedItems", {}).get(table_name, []) + held
        return {**response, "UnprocessedItems": {table_name: unprocessed}}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def test_writer_retries_unprocessed_items_with_growing_pauses(dynalite_client: Any) -> None:
    name = unique_table_name("retry")
    create_table(dynalite_client, name)
    client = UnprocessingClient(dynalite_client, times=5)
    pauses: list[float] = []
    items = [{"pk": f"k{number:02d}", "v": number} for number in range(25)]
    with BatchWriter(
        client,
        name,
        ["pk"],
        retry_policy=replace(WRITE_RETRY_POLICY, base_delay=0.1),
        sleep=pauses.append,
        jitter=lambda: 1.0,
    ) as writer:
        for item in items:
            writer.put(serialize_item(item, table_name=name, item_description=item["pk"]))
    # 25 -> 12 sent, 13 left -> 6 sent, 7 left -> 3, 4 -> 2, 2 -> 1, 1 -> the sixth call sends the last one.
    assert client.calls == 6
    assert pauses == [0.1, 0.2, 0.4, 0.8, 1.6]
    assert writer.written == 25
    assert read_table(dynalite_client, name) == {item["pk"]: {**item, "v": Decimal(item["v"])} for item in items}


def test_writer_gives_up_after_max_attempts(dynalite_client: Any) -> None:
    name = unique_table_name("retry")
    create_table(dynalite_client, name)
    client = UnprocessingClient(dynalite_client, times=float("inf"))
    pauses: list[float] = []
    writer = BatchWriter(
        client,
        name,
        ["pk"],
        retry_policy=replace(WRITE_RETRY_POLICY, max_attempts=3),
        sleep=pauses.append,
        jitter=lambda: 0.5,
    )
    for number in range(8):
        writer.put({"pk": {"S": f"k{number}"}})
    with pytest.raises(BatchWriteError) as raised:
        writer.flush()
    writer.close()
    # 8 -> 4 written, 4 left -> 2 written, 2 left -> 1 written: one item never gets through.
    assert str(raised.value) == (
        f"Table {name!r}: 1 item(s) were still unprocessed after 3 BatchWriteItem attempts (keys (pk='k7')). "
        "The table's write capacity is probably exhausted: raise it, or write with fewer threads (max_workers)."
    )
    assert pauses == [0.025, 0.05]
    assert writer.written == 7 and len(read_table(dynalite_client, name)) == 7


def test_operator_retries_unprocessed_items(dynalite_client: Any) -> None:
    name, items = make_table(dynalite_client, 400)
    operator = DynamoDBTransformOperator(
        task_id="transform", table_name=name, transform=lower_status, max_workers=2, on_conflict="overwrite"
    )
    client = UnprocessingClient(operator.hook._scan_client, times=8)
    operator.hook.__dict__["_scan_client"] = client  # the hook caches its client; this one holds back some writes
    result = operator.execute({})  # type: ignore[arg-type]
    changed = sum(1 for item in items if item["n"] % 7 and item["n"] % 3 == 0)
    assert result["written"] == changed
    assert client.calls > 8
    assert read_table(dynalite_client, name) == expected_after(items, lower_status)
