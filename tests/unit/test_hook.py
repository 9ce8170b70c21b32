"""DynamoDBScanHook against moto's in-process DynamoDB (fast checks of the contract)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from moto import mock_aws

from airflow_dynamoscan.exceptions import InvalidScanArgumentError, ScanRequestError, TableNotFoundError
from airflow_dynamoscan.hooks.dynamodb_scan import DynamoDBScanHook
from devtools.sample_data import load_sample_table
from tests.conftest import make_client

TABLE = "orders"


@pytest.fixture
def moto_table(moto_connection_env: str) -> Iterator[list[dict[str, Any]]]:
    with mock_aws():
        yield load_sample_table(make_client(), TABLE, 120, padding=20)


def keys(items: list[dict[str, Any]]) -> list[str]:
    return sorted(item["pk"] for item in items)


@pytest.mark.parametrize("fast_decoding", [True, False])
def test_serial_parallel_and_segments_return_every_item_once(
    moto_table: list[dict[str, Any]], fast_decoding: bool
) -> None:
    hook = DynamoDBScanHook(fast_decoding=fast_decoding)
    expected = sorted(moto_table, key=lambda item: item["pk"])
    assert sorted(hook.scan(TABLE), key=lambda item: item["pk"]) == expected
    assert sorted(hook.parallel_scan(TABLE, total_segments=5, max_workers=3), key=lambda i: i["pk"]) == expected
    union = [item for segment in range(4) for item in hook.scan_segment(TABLE, segment, 4)]
    assert sorted(union, key=lambda item: item["pk"]) == expected


def test_raw_items_equal_the_low_level_client(moto_table: list[dict[str, Any]]) -> None:
    raw = make_client().scan(TableName=TABLE)["Items"]
    assert raw, "the table must not be empty"
    fast = list(DynamoDBScanHook(fast_decoding=True).scan(TABLE, deserialize=False))
    slow = list(DynamoDBScanHook(fast_decoding=False).scan(TABLE, deserialize=False))
    by_key = lambda item: item["pk"]["S"]  # noqa: E731
    assert sorted(fast, key=by_key) == sorted(raw, key=by_key) == sorted(slow, key=by_key)
    assert isinstance(fast[0]["raw"]["B"], bytes)


def test_scan_keywords_pass_through(moto_table: list[dict[str, Any]]) -> None:
    hook = DynamoDBScanHook()
    paid = list(
        hook.scan(
            TABLE,
            FilterExpression="#s = :s",
            ProjectionExpression="pk, #s",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": {"S": "paid"}},
            Limit=7,
        )
    )
    assert keys(paid) == keys([item for item in moto_table if item["status"] == "paid"])
    assert all(set(item) == {"pk", "status"} for item in paid)


def test_count_serial_and_parallel_with_filter(moto_table: list[dict[str, Any]]) -> None:
    hook = DynamoDBScanHook()
    shipped = sum(1 for item in moto_table if item["status"] == "shipped")
    assert hook.count(TABLE) == 120
    assert hook.count(TABLE, total_segments=6, max_workers=3) == 120
    kwargs = {"FilterExpression": "#s = :s", "ExpressionAttributeNames": {"#s": "status"}}
    values = {":s": {"S": "shipped"}}
    assert hook.count(TABLE, total_segments=4, ExpressionAttributeValues=values, **kwargs) == shipped == 30


@pytest.mark.parametrize("keyword", ["TableName", "Segment", "TotalSegments", "ExclusiveStartKey"])
def test_hook_owned_keywords_are_refused(moto_table: list[dict[str, Any]], keyword: str) -> None:
    hook = DynamoDBScanHook()
    with pytest.raises(
        InvalidScanArgumentError, match=f"'{TABLE}': scan keyword\\(s\\) {keyword} are set by the scanner"
    ):
        hook.scan(TABLE, **{keyword: 1})
    with pytest.raises(InvalidScanArgumentError, match=keyword):
        hook.parallel_scan(TABLE, total_segments=2, **{keyword: 1})


def test_select_is_owned_by_count_and_count_select_refused_in_scans(moto_table: list[dict[str, Any]]) -> None:
    hook = DynamoDBScanHook()
    with pytest.raises(InvalidScanArgumentError, match="Select"):
        hook.count(TABLE, Select="ALL_ATTRIBUTES")
    with pytest.raises(InvalidScanArgumentError, match="call count"):
        hook.scan(TABLE, Select="COUNT")
    assert len(list(hook.scan(TABLE, Select="ALL_ATTRIBUTES"))) == 120


def test_bad_segment_arguments(moto_table: list[dict[str, Any]]) -> None:
    hook = DynamoDBScanHook()
    with pytest.raises(InvalidScanArgumentError, match="segment=4 is not allowed with total_segments=4"):
        hook.scan_segment(TABLE, 4, 4)
    with pytest.raises(InvalidScanArgumentError, match="total_segments=0"):
        hook.parallel_scan(TABLE, total_segments=0)
    with pytest.raises(InvalidScanArgumentError, match="total_segments=1000001"):
        hook.count(TABLE, total_segments=1_000_001)
    with pytest.raises(InvalidScanArgumentError, match="max_workers=0"):
        hook.parallel_scan(TABLE, total_segments=4, max_workers=0)


def test_missing_table_names_table_and_region(moto_table: list[dict[str, Any]]) -> None:
    hook = DynamoDBScanHook()
    with pytest.raises(TableNotFoundError, match=r"Table 'missing' was not found \(region 'us-east-1', endpoint"):
        list(hook.scan("missing"))
    with pytest.raises(TableNotFoundError, match="'missing'"):
        list(hook.parallel_scan("missing", total_segments=3))
    with pytest.raises(TableNotFoundError, match="'missing'"):
        hook.plan_segments("missing")


def test_invalid_expression_surfaces_dynamodb_message(moto_table: list[dict[str, Any]]) -> None:
    with pytest.raises(ScanRequestError, match=r"'orders': DynamoDB rejected the request: .*Filter Expression"):
        list(DynamoDBScanHook().scan(TABLE, FilterExpression="bad (("))


def test_plan_segments_from_table_size(moto_table: list[dict[str, Any]]) -> None:
    hook = DynamoDBScanHook()
    reported = {"TableSizeBytes": 5 * 2 * 1024**3 + 1}

    def report_size(parsed: dict[str, Any], **_: Any) -> None:
        parsed["Table"].update(reported)

    hook._scan_client.meta.events.register("after-call.dynamodb.DescribeTable", report_size)
    assert hook.plan_segments(TABLE) == 6
    assert hook.plan_segments(TABLE, bytes_per_segment=1024**3) == 11
    assert hook.plan_segments(TABLE, max_segments=4) == 4
    reported["TableSizeBytes"] = 0
    assert hook.plan_segments(TABLE) == 6  # the hook describes a table once
    fresh = DynamoDBScanHook()
    fresh._scan_client.meta.events.register("after-call.dynamodb.DescribeTable", report_size)
    assert fresh.plan_segments(TABLE) == 1
    # parallel_scan without total_segments plans at least as many segments as workers.
    items = list(fresh.parallel_scan(TABLE, max_workers=3))
    assert keys(items) == keys(moto_table)


def test_decimal_precision_survives_moto(moto_table: list[dict[str, Any]]) -> None:
    items = {item["pk"]: item for item in DynamoDBScanHook().scan(TABLE)}
    assert items["order#00000007"]["precise"] == Decimal("12345678901234567890.000000007")
    assert items["order#00000007"]["blobs"] == {b"\x01", (7).to_bytes(3, "big")}


def test_region_and_partition_come_from_the_scan_client_without_a_second_client(
    moto_table: list[dict[str, Any]],
) -> None:
    hook = DynamoDBScanHook(region_name="eu-west-1")
    assert (hook.conn_region_name, hook.conn_partition) == ("eu-west-1", "aws")
    # Reading them set up only the scan client; the plain boto3 client is made when it is asked for.
    assert "conn" not in vars(hook) and "_scan_client" in vars(hook)
    assert hook.client.meta.region_name == hook.conn_region_name
    assert hook.client is not hook._scan_client
