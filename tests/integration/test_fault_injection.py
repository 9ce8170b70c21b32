"""
Scans, an export and batch writes through the fault-injecting proxy (devtools/dynamodb_proxy.py) in front of the
local DynamoDB server: throttled requests and dropped connections are retried, and every item arrives exactly once.

``pytest -s`` prints the figures of each run: requests, throttled, dropped, retries, items expected and read,
duplicates.
"""

from __future__ import annotations

import collections
import gzip
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config

from airflow_dynamoscan.hooks.dynamodb_scan import DynamoDBScanHook
from airflow_dynamoscan.operators.dynamodb_export import DynamoDBExportOperator
from airflow_dynamoscan.scan.progress import ScanStats
from airflow_dynamoscan.scan.retry import RetryPolicy
from airflow_dynamoscan.write.batch import BatchWriter, serialize_item
from devtools.dynamodb_proxy import DynamoDBProxy, running_proxy
from devtools.sample_data import create_table, load_sample_table
from tests.conftest import unique_table_name

ITEMS = 3000
PAGE_SIZE = 100  # small pages: many requests, so 20 % throttling hits dozens of them


@pytest.fixture(scope="module")
def sample_table(dynalite_client: Any) -> tuple[str, list[str]]:
    """A table of 3,000 sample items (about 2 MB) and the keys written, read directly (no proxy)."""
    name = unique_table_name("faults")
    items = load_sample_table(dynalite_client, name, ITEMS)
    return name, sorted(item["pk"] for item in items)


@pytest.fixture
def connect_through(monkeypatch: pytest.MonkeyPatch) -> Callable[[DynamoDBProxy], None]:
    """Point Airflow's ``aws_default`` connection at a proxy."""

    def point_at(proxy: DynamoDBProxy) -> None:
        extra = {"region_name": "us-east-1", "endpoint_url": proxy.endpoint_url}
        connection = {"conn_type": "aws", "login": "testing", "password": "testing", "extra": extra}
        monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(connection))

    return point_at


@pytest.fixture
def throttling_proxy(dynalite_endpoint: str, connect_through: Callable[[DynamoDBProxy], None]) -> Iterator[Any]:
    with running_proxy(dynalite_endpoint, throttle_fraction=0.2, seed=7) as proxy:
        connect_through(proxy)
        yield proxy


@pytest.fixture
def dropping_proxy(dynalite_endpoint: str, connect_through: Callable[[DynamoDBProxy], None]) -> Iterator[Any]:
    with running_proxy(dynalite_endpoint, throttle_fraction=0.1, drop_fraction=0.04, seed=11) as proxy:
        connect_through(proxy)
        yield proxy


def check_exactly_once(label: str, proxy: DynamoDBProxy, expected: list[str], read: list[str], retries: int) -> None:
    """Assert the keys read are the table's, each once; print the run's figures."""
    duplicates = sum(count - 1 for count in collections.Counter(read).values() if count > 1)
    scans = proxy.stats.operation("Scan")
    print(
        f"\n[{label}] Scan requests {scans.requests}, throttled {scans.throttled}, dropped {scans.dropped}; "
        f"all requests {proxy.stats.requests}, throttled {proxy.stats.throttled}, dropped {proxy.stats.dropped}; "
        f"retries counted {retries}; items expected {len(expected)}, read {len(read)}, duplicates {duplicates}"
    )
    assert duplicates == 0
    assert sorted(read) == expected
    assert scans.throttled > 0


def test_serial_scan_under_throttling(sample_table: tuple[str, list[str]], throttling_proxy: DynamoDBProxy) -> None:
    name, expected = sample_table
    stats = ScanStats()
    read = [item["pk"] for item in DynamoDBScanHook().scan(name, stats=stats, Limit=PAGE_SIZE)]
    check_exactly_once("serial, 20% throttled", throttling_proxy, expected, read, stats.retries)
    # Every throttled Scan was sent again exactly once more by this package (botocore's retries are off).
    assert stats.retries == throttling_proxy.stats.operation("Scan").throttled
    assert stats.snapshot().pages == ITEMS // PAGE_SIZE + 1


def test_parallel_scan_under_throttling(sample_table: tuple[str, list[str]], throttling_proxy: DynamoDBProxy) -> None:
    name, expected = sample_table
    stats = ScanStats()
    hook = DynamoDBScanHook()
    read = [item["pk"] for item in hook.parallel_scan(name, total_segments=8, max_workers=4, stats=stats, Limit=50)]
    check_exactly_once("parallel 8x4, 20% throttled", throttling_proxy, expected, read, stats.retries)
    assert stats.retries == throttling_proxy.stats.operation("Scan").throttled


def test_segments_and_count_under_throttling(
    sample_table: tuple[str, list[str]], throttling_proxy: DynamoDBProxy
) -> None:
    name, expected = sample_table
    hook = DynamoDBScanHook()
    stats = ScanStats()
    read = [item["pk"] for segment in range(3) for item in hook.scan_segment(name, segment, 3, stats=stats, Limit=200)]
    assert hook.count(name, total_segments=4, stats=stats, Limit=200) == ITEMS
    check_exactly_once("3 segments + count, 20% throttled", throttling_proxy, expected, read, stats.retries)
    assert stats.retries == throttling_proxy.stats.operation("Scan").throttled


@pytest.mark.parametrize("mode", ["serial", "parallel"])
def test_scans_with_dropped_connections(
    sample_table: tuple[str, list[str]], dropping_proxy: DynamoDBProxy, mode: str
) -> None:
    name, expected = sample_table
    hook = DynamoDBScanHook()
    stats = ScanStats()
    if mode == "serial":
        items = hook.scan(name, stats=stats, Limit=PAGE_SIZE)
    else:
        items = hook.parallel_scan(name, total_segments=6, max_workers=3, stats=stats, Limit=PAGE_SIZE)
    read = [item["pk"] for item in items]
    check_exactly_once(f"{mode}, 4% dropped + 10% throttled", dropping_proxy, expected, read, stats.retries)
    scans = dropping_proxy.stats.operation("Scan")
    assert scans.dropped > 0
    # A pooled connection that the server closed may add a retry of its own, never remove one.
    assert stats.retries >= scans.throttled + scans.dropped


def read_jsonl_keys(destination: Path, result: dict[str, Any]) -> list[str]:
    keys = []
    for part in result["parts"]:
        data = (destination / part["path"]).read_bytes()
        keys.extend(json.loads(line)["pk"] for line in gzip.decompress(data).splitlines() if line)
    return keys


def test_export_operator_under_throttling(
    sample_table: tuple[str, list[str]], throttling_proxy: DynamoDBProxy, tmp_path: Path
) -> None:
    name, expected = sample_table
    operator = DynamoDBExportOperator(
        task_id="export",
        table_name=name,
        destination=str(tmp_path),
        compression="gzip",
        total_segments=4,
        max_workers=4,
        scan_kwargs={"Limit": PAGE_SIZE},
    )
    result = operator.execute({})  # type: ignore[arg-type]
    read = read_jsonl_keys(tmp_path, result)
    check_exactly_once("export operator 4x4, 20% throttled", throttling_proxy, expected, read, result["retries"])
    assert result["items"] == ITEMS
    assert result["retries"] == throttling_proxy.stats.operation("Scan").throttled
    assert result["consumed_read_capacity"] is None  # no budget and no ReturnConsumedCapacity: not reported


@pytest.mark.parametrize("drop_after_forward", [False, True], ids=["throttled", "answers-lost"])
def test_batch_writer_under_throttling_writes_every_item_once(
    dynalite_endpoint: str, dynalite_client: Any, drop_after_forward: bool
) -> None:
    name = unique_table_name("writes")
    create_table(dynalite_client, name)
    items = [{"pk": f"k{number:05d}", "n": number} for number in range(1000)]
    with running_proxy(
        dynalite_endpoint,
        throttle_fraction=0.2,
        drop_fraction=0.05 if drop_after_forward else 0.0,
        drop_after_forward=drop_after_forward,
        fault_operations={"BatchWriteItem"},
        seed=3,
    ) as proxy:
        import boto3

        client = boto3.client(
            "dynamodb",
            region_name="us-east-1",
            endpoint_url=proxy.endpoint_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
        )
        with BatchWriter(client, name, ["pk"], threads=4, retry_policy=RetryPolicy(base_delay=0.02)) as writer:
            for item in items:
                writer.put(serialize_item(item, table_name=name, item_description=item["pk"]))
    writes = proxy.stats.operation("BatchWriteItem")
    stored = [item for page in dynalite_client.get_paginator("scan").paginate(TableName=name) for item in page["Items"]]
    keys = [item["pk"]["S"] for item in stored]
    print(
        f"\n[BatchWriter, 20% throttled{', 5% answers lost' if drop_after_forward else ''}] BatchWriteItem requests "
        f"{writes.requests}, throttled {writes.throttled}, dropped {writes.dropped}; retries counted {writer.retries}; "
        f"items expected {len(items)}, stored {len(set(keys))}, confirmed written {writer.written}"
    )
    assert writes.throttled > 0
    assert sorted(keys) == [item["pk"] for item in items]
    assert {item["pk"]["S"]: int(item["n"]["N"]) for item in stored} == {item["pk"]: item["n"] for item in items}
    assert writer.written == len(items)
    assert writer.retries >= writes.throttled + writes.dropped
    if not drop_after_forward:
        assert writer.retries == writes.throttled
