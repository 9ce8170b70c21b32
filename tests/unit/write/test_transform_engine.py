"""The transform engine's pieces without a server: serialization, comparison, keys, batching (moto), arguments."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from moto import mock_aws

from airflow_dynamoscan.exceptions import InvalidItemError, InvalidScanArgumentError
from airflow_dynamoscan.get_provider_info import get_provider_info
from airflow_dynamoscan.operators.dynamodb_transform import DynamoDBTransformOperator
from airflow_dynamoscan.scan.decode import deserialize_item
from airflow_dynamoscan.write.batch import BatchWriter, describe_key, serialize_item
from airflow_dynamoscan.write.transform import (
    check_in_place_scan_kwargs,
    key_attribute_names,
    transform_items,
    values_equal,
)
from devtools.sample_data import create_table, sample_item
from tests.conftest import fails_task, make_client


def serialize(item: dict[str, Any]) -> dict[str, Any]:
    return serialize_item(item, table_name="orders", item_description="the item with key pk='a'")


def test_serialize_item_round_trips_every_type() -> None:
    item = sample_item(7)
    assert deserialize_item(serialize(item)) == item


@pytest.mark.parametrize(
    ("value", "path", "reason"),
    [
        (1.5, "value", "holds a float; DynamoDB numbers must be int or decimal.Decimal"),
        ({"geo": {"lat": 47.3}}, "value.geo.lat", "holds a float"),
        (["x", {"qty": 0.5}], "value[1].qty", "holds a float"),
        ({Decimal(1), 0.5}, "value", "holds a float"),
        (set(), "value", "is an empty set"),
        ({"tags": frozenset()}, "value.tags", "is an empty set"),
        (Decimal("1." + "3" * 40), "value", "cannot store exactly"),
        ({"when": object()}, "value.when", "has type object, which DynamoDB cannot store"),
        ({1, "a"}, "value", "has type set of int, str"),
    ],
)
def test_serialize_item_names_the_attribute_not_the_value(value: Any, path: str, reason: str) -> None:
    with pytest.raises(InvalidItemError) as raised:
        serialize({"pk": "a", "value": value})
    message = str(raised.value)
    assert message.startswith(f"Table 'orders': attribute {path!r} of the item with key pk='a' ")
    assert reason in message
    assert "47.3" not in message and "0.5" not in message
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_values_equal_compares_stored_values() -> None:
    item = sample_item(3)
    assert values_equal(item, sample_item(3))
    assert values_equal({"n": 1, "l": ("a",)}, {"n": Decimal("1.0"), "l": ["a"]})
    assert not values_equal({"paid": True}, {"paid": Decimal(1)})
    assert not values_equal({"paid": False}, {"paid": 0})
    assert not values_equal({"x": None}, {"x": False})
    assert not values_equal({"amount": Decimal("0.5")}, {"amount": 0.5})
    assert not values_equal({"a": 1}, {"a": 1, "b": None})
    assert not values_equal({"s": "1"}, {"s": 1})
    assert not values_equal({"raw": b"a"}, {"raw": "a"})
    assert values_equal({"raw": b"a", "tags": {"x"}}, {"raw": bytearray(b"a"), "tags": frozenset({"x"})})


def test_describe_key_shows_key_values_of_either_shape() -> None:
    assert describe_key({"pk": "order#1", "sk": Decimal("3")}) == "pk='order#1', sk=3"
    assert describe_key({"pk": {"S": "order#1"}, "sk": {"B": b"\x00"}}) == "pk='order#1', sk=b'\\x00'"


def test_key_attribute_names_puts_the_hash_key_first() -> None:
    description = {
        "KeySchema": [{"AttributeName": "sk", "KeyType": "RANGE"}, {"AttributeName": "pk", "KeyType": "HASH"}]
    }
    assert key_attribute_names(description) == ["pk", "sk"]


def test_in_place_refuses_partial_item_keywords() -> None:
    check_in_place_scan_kwargs("orders", {"FilterExpression": "a = :a", "Select": "ALL_ATTRIBUTES"})
    with pytest.raises(InvalidScanArgumentError) as raised:
        check_in_place_scan_kwargs("orders", {"ProjectionExpression": "pk", "IndexName": "by_status"})
    assert str(raised.value).startswith("Table 'orders': scan keyword(s) IndexName, ProjectionExpression read")
    assert "Allowed: FilterExpression" in str(raised.value)


@pytest.fixture
def moto_client() -> Iterator[Any]:
    with mock_aws():
        client = make_client()
        create_table(client, "orders")
        yield client


class CountingClient:
    """A real client that records the request count of every BatchWriteItem call."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.batch_sizes: list[int] = []
        self.lock = threading.Lock()

    def batch_write_item(self, **kwargs: Any) -> Any:
        with self.lock:
            self.batch_sizes.append(sum(len(requests) for requests in kwargs["RequestItems"].values()))
        return self.client.batch_write_item(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def table_keys(client: Any) -> list[str]:
    return sorted(item["pk"]["S"] for item in client.scan(TableName="orders")["Items"])


def test_batch_writer_sends_at_most_25_and_never_a_key_twice(moto_client: Any) -> None:
    client = CountingClient(moto_client)
    with BatchWriter(client, "orders", ["pk"]) as writer:
        for number in range(60):
            writer.put(serialize({"pk": f"k{number}", "version": 1}))
        writer.flush()
        writer.put(serialize({"pk": "k0", "version": 2}))
        writer.put(serialize({"pk": "k0", "version": 3}))
        writer.delete({"pk": {"S": "k1"}})
    assert client.batch_sizes == [25, 25, 10, 1, 2]
    assert (writer.written, writer.deleted) == (62, 1)
    assert table_keys(moto_client) == sorted(f"k{number}" for number in range(60) if number != 1)
    item = moto_client.get_item(TableName="orders", Key={"pk": {"S": "k0"}})["Item"]
    assert item["version"] == {"N": "3"}


def test_batch_writer_with_threads_writes_everything(moto_client: Any) -> None:
    client = CountingClient(moto_client)
    with BatchWriter(client, "orders", ["pk"], threads=4) as writer:
        for number in range(260):
            writer.put(serialize({"pk": f"k{number:03d}"}))
    assert sorted(client.batch_sizes) == [10] + [25] * 10
    assert writer.written == 260
    assert table_keys(moto_client) == [f"k{number:03d}" for number in range(260)]


def test_batch_writer_refuses_an_item_without_its_key(moto_client: Any) -> None:
    with BatchWriter(moto_client, "orders", ["pk"]) as writer, pytest.raises(InvalidItemError) as raised:
        writer.put({"id": {"S": "x"}})
    assert str(raised.value) == (
        "Table 'orders': an item or key lacks the key attribute 'pk'; every item needs the key attributes pk."
    )


def test_dry_run_counts_without_a_writer() -> None:
    items = [serialize({"pk": f"k{number}", "status": "PAID" if number % 2 else "paid"}) for number in range(10)]

    def lower(item: dict[str, Any]) -> dict[str, Any] | None:
        if item["pk"] == "k9":
            return None
        return {**item, "status": item["status"].lower()}

    counts = transform_items(iter(items), lower, table_name="orders", key_names=["pk"], writer=None)
    assert counts.as_dict() == {
        "scanned": 10,
        "unchanged": 5,
        "skipped": 1,
        "to_write": 4,
        "key_changed": 0,
        "written": 0,
        "deleted": 0,
        "conflicts": 0,
        "reapplied": 0,
        "skipped_conflicts": 0,
        "skipped_uncheckable": 0,
    }


def identity(item: dict[str, Any]) -> dict[str, Any]:
    return item


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            {"segment": 1},
            "Table 'orders': segment=1 needs total_segments, which is None; give both",
        ),
        (
            {"segment": 4, "total_segments": 4},
            "Table 'orders': segment=4 is not allowed with total_segments=4; it must be an integer from 0 to 3.",
        ),
        ({"max_workers": 0}, "Table 'orders': max_workers=0 is not allowed; it must be an integer >= 1."),
        ({"scan_kwargs": {"ProjectionExpression": "pk"}}, "Table 'orders': scan keyword(s) ProjectionExpression"),
        ({"scan_kwargs": {"Segment": 1}}, "Table 'orders': scan keyword(s) Segment are set by the scanner"),
    ],
)
def test_operator_refuses_bad_arguments_before_reading(arguments: dict[str, Any], message: str) -> None:
    operator = DynamoDBTransformOperator(task_id="t", table_name="orders", transform=identity, **arguments)
    # The arguments are refused before any request: no table exists, so a request would fail differently.
    with mock_aws(), fails_task(InvalidScanArgumentError) as raised:
        operator.execute({})  # type: ignore[arg-type]
    assert str(raised.value).startswith(message)


def test_operator_refuses_a_transform_that_is_not_callable() -> None:
    with pytest.raises(TypeError, match=r"Table 'orders': transform must be a callable .*; got a str\."):
        DynamoDBTransformOperator(task_id="t", table_name="orders", transform="lower")  # type: ignore[arg-type]


def test_operator_declares_its_template_fields_and_provider_lists_it() -> None:
    assert DynamoDBTransformOperator.template_fields[:3] == ("table_name", "target_table_name", "scan_kwargs")
    modules = [module for entry in get_provider_info()["operators"] for module in entry["python-modules"]]
    assert "airflow_dynamoscan.operators.dynamodb_transform" in modules
