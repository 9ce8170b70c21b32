"""DynamoDBScanHook against a real DynamoDB wire protocol (the local dynalite server), exact item sets."""

from __future__ import annotations

import threading
import time
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest

from airflow_dynamoscan.exceptions import ScanRequestError, TableNotFoundError
from airflow_dynamoscan.hooks.dynamodb_scan import DynamoDBScanHook
from devtools.sample_data import create_table, put_items
from tests.conftest import unique_table_name
from tests.integration.conftest import LARGE_TABLE_ITEMS

pytestmark = pytest.mark.usefixtures("aws_connection_env")


def by_key(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    counts = Counter(item["pk"] for item in items)
    duplicates = [key for key, seen in counts.items() if seen > 1]
    assert not duplicates, f"duplicated items: {duplicates[:5]}"
    return {item["pk"]: item for item in items}


def scanner_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("dynamoscan-")]


@pytest.mark.parametrize("fast_decoding", [True, False], ids=["fast", "botocore"])
def test_large_table_serial_parallel_segments_equal_what_was_written(
    large_table: tuple[str, list[dict[str, Any]]], fast_decoding: bool
) -> None:
    name, written = large_table
    expected = by_key(written)
    hook = DynamoDBScanHook(fast_decoding=fast_decoding)
    assert by_key(list(hook.scan(name))) == expected
    assert by_key(list(hook.parallel_scan(name, total_segments=16, max_workers=4))) == expected
    union = [item for segment in range(7) for item in hook.scan_segment(name, segment, 7)]
    assert by_key(union) == expected
    assert hook.count(name) == hook.count(name, total_segments=8) == LARGE_TABLE_ITEMS


def test_large_table_reads_several_pages(large_table: tuple[str, list[dict[str, Any]]]) -> None:
    name, _ = large_table
    pages = list(DynamoDBScanHook().scan_segment_pages(name, None, None))
    assert len(pages) >= 5
    assert sum(page.count for page in pages) == LARGE_TABLE_ITEMS
    assert [page.last_evaluated_key is None for page in pages] == [False] * (len(pages) - 1) + [True]


@pytest.mark.parametrize("table", ["empty_table", "single_item_table"])
def test_empty_and_single_item_tables(table: str, request: pytest.FixtureRequest) -> None:
    fixture = request.getfixturevalue(table)
    name, written = (fixture, []) if isinstance(fixture, str) else fixture
    hook = DynamoDBScanHook()
    assert by_key(list(hook.scan(name))) == by_key(written)
    assert by_key(list(hook.parallel_scan(name, total_segments=4))) == by_key(written)
    assert by_key([i for s in range(3) for i in hook.scan_segment(name, s, 3)]) == by_key(written)
    assert hook.count(name, total_segments=3) == len(written)


def test_every_type_round_trips_exactly(dynalite_client: Any) -> None:
    name = unique_table_name("types")
    create_table(dynalite_client, name)
    nested: dict[str, Any] = {"depth": Decimal(10)}
    for depth in range(9, 0, -1):
        nested = {"depth": Decimal(depth), "child": nested}
    item = {
        "pk": "every-type",
        "decimal": Decimal("12345678901234567890.123456789"),
        "max_digits": Decimal("-9.9999999999999999999999999999999999999E+125"),
        "tiny": Decimal("1E-130"),
        "text": "ünïcødé ✓ 😀",
        "binary": b"\x00\x01\xfe\xff",
        "string_set": {"a", "b", "ünï"},
        "number_set": {Decimal("1.5"), Decimal("-2"), Decimal("12345678901234567890.1")},
        "binary_set": {b"\x00", b"\xff\xfe", b"abc"},
        "yes": True,
        "no": False,
        "nothing": None,
        "list": ["x", Decimal(1), [b"\x02"], {"k": None}],
        "empty_list": [],
        "empty_map": {},
        "empty_string": "",
        "nested": nested,
    }
    put_items(dynalite_client, name, [item])
    for fast_decoding in (True, False):
        hook = DynamoDBScanHook(fast_decoding=fast_decoding)
        (scanned,) = list(hook.scan(name))
        assert scanned == item
        assert str(scanned["decimal"]) == "12345678901234567890.123456789"
        assert type(scanned["binary"]) is bytes
    raw_fast = list(DynamoDBScanHook(fast_decoding=True).scan(name, deserialize=False))
    assert raw_fast == dynalite_client.scan(TableName=name)["Items"]


def test_early_close_stops_every_worker(large_table: tuple[str, list[dict[str, Any]]]) -> None:
    name, _ = large_table
    before = scanner_threads()
    # 128 MB allows the 6 workers whichever parser reads the pages (64 MB: 6 with fast decoding, 2 without).
    items = DynamoDBScanHook().parallel_scan(name, total_segments=32, max_workers=6, max_memory_mb=128, Limit=50)
    taken = [next(items) for _ in range(10)]
    assert len(taken) == 10
    assert len(scanner_threads()) == len(before) + 6
    started = time.monotonic()
    items.close()  # type: ignore[attr-defined]
    assert time.monotonic() - started < 5
    assert scanner_threads() == before


def test_worker_error_reaches_the_caller_and_stops_the_others(dynalite_client: Any) -> None:
    name = unique_table_name("vanishing")
    create_table(dynalite_client, name)
    put_items(dynalite_client, name, [{"pk": f"k{number}", "pad": "x" * 500} for number in range(2000)])
    items = DynamoDBScanHook().parallel_scan(name, total_segments=8, max_workers=4, max_pages_in_flight=1, Limit=20)
    next(items)
    dynalite_client.delete_table(TableName=name)
    with pytest.raises(TableNotFoundError, match=f"Table '{name}' was not found"):
        for _ in items:
            pass
    assert scanner_threads() == []


def test_invalid_expressions_and_missing_table(large_table: tuple[str, list[dict[str, Any]]]) -> None:
    name, _ = large_table
    hook = DynamoDBScanHook()
    with pytest.raises(ScanRequestError, match=f"'{name}': DynamoDB rejected the request: .*"):
        list(hook.scan(name, FilterExpression="#missing = :value"))
    with pytest.raises(ScanRequestError, match="expression attribute value used in expression is not defined"):
        list(hook.parallel_scan(name, total_segments=2, FilterExpression="pk = :value"))
    with pytest.raises(
        TableNotFoundError, match=r"'no-such-table' was not found \(region 'us-east-1', endpoint 'http://127"
    ):
        list(hook.scan("no-such-table"))


def test_filter_and_projection_through_parallel_scan(large_table: tuple[str, list[dict[str, Any]]]) -> None:
    name, written = large_table
    hook = DynamoDBScanHook()
    kwargs: dict[str, Any] = {
        "FilterExpression": "#s = :s AND amount > :a",
        "ExpressionAttributeNames": {"#s": "status"},
        "ExpressionAttributeValues": {":s": {"S": "paid"}, ":a": {"N": "500"}},
    }
    expected = sorted(i["pk"] for i in written if i["status"] == "paid" and i["amount"] > 500)
    items = list(hook.parallel_scan(name, total_segments=5, ProjectionExpression="pk, amount", **kwargs))
    assert sorted(i["pk"] for i in items) == expected
    assert all(set(i) == {"pk", "amount"} for i in items)
    assert hook.count(name, total_segments=5, **kwargs) == len(expected)
