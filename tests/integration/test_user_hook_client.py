"""
What a DAG author gets from ``DynamoDBScanHook().client`` / ``.conn`` / ``.get_conn()``: the plain boto3 client,
on moto and on the local DynamoDB server, before and after the hook has scanned (its own client is private).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from airflow_dynamoscan.hooks.dynamodb_scan import DynamoDBScanHook
from devtools.sample_data import create_table, put_items, sample_item
from tests.conftest import aws_connection, make_client, unique_table_name

ITEMS = [sample_item(number, padding=10) for number in range(30)]


@pytest.fixture(params=["moto", "dynalite"])
def table(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A table of 30 sample items (binary attributes and binary sets included) on moto or on the local server."""
    if request.param == "moto":
        monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", aws_connection())
        with mock_aws():
            name = unique_table_name("hook-client")
            client = make_client()
            create_table(client, name)
            put_items(client, name, ITEMS)
            yield name
        return
    endpoint = request.getfixturevalue("dynalite_endpoint")
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", aws_connection(endpoint))
    name = unique_table_name("hook-client")
    client = make_client(endpoint)
    create_table(client, name)
    put_items(client, name, ITEMS)
    yield name


def expected_raw(number: int) -> bytes:
    return number.to_bytes(4, "big") + b"\x00\xff"


def check_items(items: list[dict[str, Any]], numbers: list[int]) -> None:
    """The low-level client's items: ``B`` as bytes, ``BS`` as a list of bytes, numbers as text."""
    by_key = {item["pk"]["S"]: item for item in items}
    assert sorted(by_key) == sorted(f"order#{number:08d}" for number in numbers)
    for number in numbers:
        item = by_key[f"order#{number:08d}"]
        assert item["raw"] == {"B": expected_raw(number)}
        assert sorted(item["blobs"]["BS"]) == sorted({b"\x01", number.to_bytes(3, "big")})
        assert item["n"] == {"N": str(number)}


@pytest.mark.parametrize("scan_first", [False, True], ids=["fresh-hook", "after-a-scan"])
def test_client_conn_and_get_conn_are_plain_boto3_clients(table: str, scan_first: bool) -> None:
    hook = DynamoDBScanHook()
    if scan_first:
        # The hook's own fast scans must leave the public client alone.
        assert len(list(hook.parallel_scan(table, total_segments=3))) == 30
        assert hook.describe_table(table)["TableName"] == table
    assert hook.client is hook.conn is hook.get_conn()

    scanned = hook.client.scan(TableName=table)
    assert scanned["Count"] == 30
    check_items(scanned["Items"], list(range(30)))

    queried = hook.client.query(
        TableName=table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "order#00000007"}},
    )
    check_items(queried["Items"], [7])

    got = hook.get_conn().get_item(TableName=table, Key={"pk": {"S": "order#00000011"}})
    assert got["Item"]["raw"] == {"B": expected_raw(11)}

    paged: list[dict[str, Any]] = []
    for page in hook.conn.get_paginator("scan").paginate(TableName=table, PaginationConfig={"PageSize": 7}):
        assert len(page["Items"]) <= 7
        paged.extend(page["Items"])
    check_items(paged, list(range(30)))

    query_pages = hook.client.get_paginator("query").paginate(
        TableName=table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "order#00000003"}},
    )
    check_items([item for page in query_pages for item in page["Items"]], [3])


def test_public_client_keeps_botocore_retries_the_private_one_has_them_off(table: str) -> None:
    hook = DynamoDBScanHook()
    assert hook.client.meta.config.retries != {"mode": "standard", "total_max_attempts": 1}
    assert hook._scan_client is not hook.client
    assert hook._scan_client.meta.config.retries == {"mode": "standard", "total_max_attempts": 1}
    # One private client per hook, shared by its scan threads.
    assert hook._scan_client is hook._scan_client
    assert len(list(hook.parallel_scan(table, total_segments=4, max_workers=4))) == 30


def test_scans_of_the_hook_still_decode_binary(table: str) -> None:
    hook = DynamoDBScanHook()
    items = {item["pk"]: item for item in hook.scan(table)}
    assert items["order#00000005"]["raw"] == expected_raw(5)
    raw = {item["pk"]["S"]: item for item in hook.scan(table, deserialize=False)}
    assert raw == {item["pk"]["S"]: item for item in make_dynamodb_scan(hook, table)}


def make_dynamodb_scan(hook: DynamoDBScanHook, table: str) -> list[dict[str, Any]]:
    """Every item as botocore's own parser gives it, through the public client."""
    return [item for page in hook.client.get_paginator("scan").paginate(TableName=table) for item in page["Items"]]
