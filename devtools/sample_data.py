"""Sample tables of mixed-type items, created and filled over the DynamoDB API (local server or moto)."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from itertools import islice
from typing import Any

from boto3.dynamodb.types import TypeSerializer

_SERIALIZER = TypeSerializer()
STATUSES = ("pending", "paid", "shipped", "cancelled")


def sample_item(number: int, *, padding: int = 200) -> dict[str, Any]:
    """
    Return item ``number`` of a sample table: every DynamoDB type, exact decimals, unicode, nesting.

    ``padding`` characters of text make the item about ``padding + 250`` bytes.
    """
    return {
        "pk": f"order#{number:08d}",
        "n": number,
        "status": STATUSES[number % len(STATUSES)],
        "amount": Decimal(number % 1000) + Decimal("0.01") * (number % 100),
        "precise": Decimal(f"12345678901234567890.{number:09d}"),
        "paid": number % 2 == 0,
        "note": None if number % 5 == 0 else f"ünïcødé ✓ {number}",
        "raw": number.to_bytes(4, "big") + b"\x00\xff",
        "tags": {f"t{number % 7}", f"t{number % 11}", "all"},
        "scores": {Decimal(number % 13), Decimal("0.5")},
        "blobs": {b"\x01", number.to_bytes(3, "big")},
        "lines": [{"sku": f"sku-{number % 97}", "qty": number % 4 + 1}, "x", Decimal("1e-10")],
        "address": {"city": "Zürich", "zip": f"{number % 10000:04d}", "geo": {"lat": Decimal("47.3769")}},
        "text": "lorem ipsum " * (padding // 12),
    }


def create_table(
    client: Any, table_name: str, *, hash_key: str = "pk", range_key: str | None = None, wait: bool = True
) -> None:
    """Create an on-demand table keyed by ``hash_key`` (string) and, if given, ``range_key`` (string)."""
    schema = [{"AttributeName": hash_key, "KeyType": "HASH"}]
    attributes = [{"AttributeName": hash_key, "AttributeType": "S"}]
    if range_key:
        schema.append({"AttributeName": range_key, "KeyType": "RANGE"})
        attributes.append({"AttributeName": range_key, "AttributeType": "S"})
    client.create_table(
        TableName=table_name, KeySchema=schema, AttributeDefinitions=attributes, BillingMode="PAY_PER_REQUEST"
    )
    if wait:
        client.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 600})


def _chunks(items: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _write_batch(client: Any, table_name: str, batch: Sequence[dict[str, Any]]) -> None:
    requests = [{"PutRequest": {"Item": {k: _SERIALIZER.serialize(v) for k, v in item.items()}}} for item in batch]
    delay = 0.05
    while requests:
        response = client.batch_write_item(RequestItems={table_name: requests})
        requests = response.get("UnprocessedItems", {}).get(table_name, [])
        if requests:
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def put_items(client: Any, table_name: str, items: Iterable[dict[str, Any]], *, threads: int = 4) -> int:
    """Write ``items`` (plain Python values) with BatchWriteItem, 25 at a time; return how many were written."""
    written = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
        pending: set[concurrent.futures.Future[None]] = set()
        for batch in _chunks(items, 25):
            if len(pending) >= threads * 4:
                done, pending = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
                for future in done:
                    future.result()
            pending.add(pool.submit(_write_batch, client, table_name, batch))
            written += len(batch)
        for future in concurrent.futures.as_completed(pending):
            future.result()
    return written


def load_sample_table(client: Any, table_name: str, item_count: int, *, padding: int = 200) -> list[dict[str, Any]]:
    """Create ``table_name`` and fill it with ``item_count`` sample items; return the items written."""
    create_table(client, table_name)
    items = [sample_item(number, padding=padding) for number in range(item_count)]
    put_items(client, table_name, items)
    return items
