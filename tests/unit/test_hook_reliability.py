"""DynamoDBScanHook's retries, read-capacity budget and progress settings, against moto's in-process DynamoDB."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from airflow_dynamoscan.exceptions import InvalidScanArgumentError
from airflow_dynamoscan.hooks.dynamodb_scan import DynamoDBScanHook
from airflow_dynamoscan.operators.dynamodb_export import DynamoDBExportOperator
from airflow_dynamoscan.scan.progress import ScanStats
from airflow_dynamoscan.scan.retry import RetryPolicy
from devtools.sample_data import load_sample_table, put_items, sample_item
from tests.conftest import make_client

TABLE = "orders"
PROVISIONED = "provisioned"


@pytest.fixture
def moto_tables(moto_connection_env: str) -> Iterator[None]:
    with mock_aws():
        client = make_client()
        load_sample_table(client, TABLE, 120, padding=20)
        client.create_table(
            TableName=PROVISIONED,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            ProvisionedThroughput={"ReadCapacityUnits": 400, "WriteCapacityUnits": 5},
        )
        put_items(client, PROVISIONED, [sample_item(number, padding=20) for number in range(60)])
        yield


def scan_requests(hook: DynamoDBScanHook) -> list[dict[str, Any]]:
    """Record the parameters of every Scan request the hook's client sends."""
    sent: list[dict[str, Any]] = []
    events = hook._scan_client.meta.events
    events.register("provide-client-params.dynamodb.Scan", lambda params, **_: sent.append(params))
    return sent


def test_botocore_retries_are_off_unless_the_config_sets_them(moto_tables: None) -> None:
    hook = DynamoDBScanHook()
    assert hook._scan_client.meta.config.retries == {"mode": "standard", "total_max_attempts": 1}
    assert hook.get_conn().meta.config.retries != {"mode": "standard", "total_max_attempts": 1}
    assert hook.client is hook.conn is hook.get_conn()
    assert hook.retry_policy == RetryPolicy()
    configured = DynamoDBScanHook(config={"retries": {"mode": "adaptive", "max_attempts": 7}}, max_attempts=3)
    assert configured._scan_client.meta.config.retries == {"mode": "adaptive", "total_max_attempts": 8}
    assert configured.retry_policy == RetryPolicy(max_attempts=3)


def test_hook_refuses_conflicting_or_impossible_settings() -> None:
    with pytest.raises(InvalidScanArgumentError, match="were both given; give one"):
        DynamoDBScanHook(retry_policy=RetryPolicy(), max_attempts=3)
    with pytest.raises(InvalidScanArgumentError, match="max_attempts=0 is not allowed"):
        DynamoDBScanHook(max_attempts=0)
    with pytest.raises(InvalidScanArgumentError, match="max_read_capacity_units=0 is not allowed"):
        DynamoDBScanHook(max_read_capacity_units=0)
    with pytest.raises(InvalidScanArgumentError, match="progress_interval=-1 is not allowed"):
        DynamoDBScanHook(progress_interval=-1)


def test_operator_request_retries_do_not_touch_airflows_task_retry_policy(moto_tables: None) -> None:
    operator = DynamoDBExportOperator(task_id="export", table_name=TABLE, destination="/tmp/x", request_max_attempts=3)
    # Airflow 3's own ``retry_policy`` (about the whole task; absent on Airflow 2) stays untouched.
    assert getattr(operator, "retry_policy", None) is None
    assert operator.hook.retry_policy == RetryPolicy(max_attempts=3)
    policy = RetryPolicy(max_attempts=4, base_delay=0.5)
    operator = DynamoDBExportOperator(task_id="export", table_name=TABLE, destination="/x", request_retry_policy=policy)
    assert operator.hook.retry_policy is policy
    with pytest.raises(InvalidScanArgumentError, match=r"request_retry_policy=.* and request_max_attempts=2 were both"):
        DynamoDBExportOperator(
            task_id="export", table_name=TABLE, destination="/x", request_retry_policy=policy, request_max_attempts=2
        )


def test_a_budget_asks_for_consumed_capacity_and_sends_limits(moto_tables: None) -> None:
    hook = DynamoDBScanHook(read_capacity_fraction=0.05)  # 20 RCU/s of 400
    sent = scan_requests(hook)
    stats = ScanStats()
    items = list(hook.scan(PROVISIONED, stats=stats, Limit=25, ReturnConsumedCapacity="INDEXES"))
    assert sorted(item["pk"] for item in items) == sorted(f"order#{number:08d}" for number in range(60))
    assert sent[0]["Limit"] == 1  # the probe
    assert all(1 <= request["Limit"] <= 25 for request in sent)
    assert {request["ReturnConsumedCapacity"] for request in sent} == {"INDEXES"}
    assert stats.consumed_read_capacity is not None and stats.consumed_read_capacity > 0
    unpaced = DynamoDBScanHook()
    sent = scan_requests(unpaced)
    assert len(list(unpaced.scan(PROVISIONED))) == 60
    assert "Limit" not in sent[0] and "ReturnConsumedCapacity" not in sent[0]


def test_each_segment_gets_its_share_of_the_budget(moto_tables: None, caplog: pytest.LogCaptureFixture) -> None:
    hook = DynamoDBScanHook(read_capacity_fraction=0.5, max_read_capacity_units=100)
    with caplog.at_level(logging.INFO, logger="airflow_dynamoscan.scan.progress"):
        assert len(list(hook.scan_segment(PROVISIONED, 1, 4))) > 0
        assert hook.count(PROVISIONED, total_segments=4) == 60
    # Only the scan's own lines: Airflow 2 also logs the connection lookup at INFO.
    summaries = [record.getMessage() for record in caplog.records if record.name == "airflow_dynamoscan.scan.progress"]
    assert len(summaries) == 2
    assert summaries[0].startswith(f"Table {PROVISIONED} (segment 1 of 4): scan finished: ")
    assert summaries[0].endswith("(budget 25.00 RCU/s)")  # min(0.5 * 400, 100) / 4
    assert summaries[1].startswith(f"Table {PROVISIONED} (4 segments): scan finished: 60 items (60 scanned)")
    assert summaries[1].endswith("(budget 100.00 RCU/s)")


def test_progress_lines_estimate_a_percentage_from_the_item_count(
    moto_tables: None, caplog: pytest.LogCaptureFixture
) -> None:
    hook = DynamoDBScanHook(progress_interval=1e-6)
    described: list[str] = []
    hook._scan_client.meta.events.register("after-call.dynamodb.DescribeTable", lambda **_: described.append("called"))
    with caplog.at_level(logging.INFO, logger="airflow_dynamoscan.scan.progress"):
        assert len(list(hook.scan(TABLE, Limit=30))) == 120
    lines = [record.getMessage() for record in caplog.records if record.name == "airflow_dynamoscan.scan.progress"]
    assert lines[0].startswith(f"Table {TABLE} (serial scan): 30 items (30 scanned) in 1 pages, ")
    assert lines[0].endswith("about 25% of an estimated 120 items")
    assert lines[-1].startswith(f"Table {TABLE} (serial scan): scan finished: 120 items (120 scanned) in 4 pages")
    assert described == ["called"]  # once, when the first line was due
