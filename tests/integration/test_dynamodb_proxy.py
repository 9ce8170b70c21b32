"""The fault-injecting proxy (devtools/dynamodb_proxy.py) in front of the real local DynamoDB server."""

from __future__ import annotations

import time
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError

from devtools.dynamodb_proxy import DynamoDBProxy, ProxyError, running_proxy
from devtools.sample_data import create_table, put_items
from tests.conftest import unique_table_name

REQUESTS = 200


def no_retry_client(endpoint_url: str) -> Any:
    """A DynamoDB client that shows every fault: no retries, short timeouts."""
    return boto3.client(
        "dynamodb",
        region_name="us-east-1",
        endpoint_url=endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=2, read_timeout=5),
    )


@pytest.fixture(scope="module")
def small_table(dynalite_client: Any) -> str:
    name = unique_table_name("proxy")
    create_table(dynalite_client, name)
    put_items(dynalite_client, name, [{"pk": f"k{number}", "n": number} for number in range(10)])
    return name


def outcomes(client: Any, table: str, count: int) -> list[str]:
    """Send ``count`` Scans one after the other; return what each got: "ok", an error code, or "dropped"."""
    seen = []
    for _ in range(count):
        try:
            response = client.scan(TableName=table)
            assert response["Count"] == 10
            seen.append("ok")
        except ClientError as error:
            seen.append(error.response["Error"]["Code"])
        except ConnectionClosedError:
            seen.append("dropped")
    return seen


def test_forwards_unchanged_and_counts_per_operation(dynalite_endpoint: str, small_table: str) -> None:
    with running_proxy(dynalite_endpoint) as proxy:
        assert proxy.endpoint_url.startswith("http://127.0.0.1:")
        client = no_retry_client(proxy.endpoint_url)
        assert client.describe_table(TableName=small_table)["Table"]["TableName"] == small_table
        items = client.scan(TableName=small_table)["Items"]
        assert sorted(item["pk"]["S"] for item in items) == sorted(f"k{number}" for number in range(10))
        stats = proxy.stats.snapshot()
    assert (stats.requests, stats.forwarded, stats.throttled, stats.dropped) == (2, 2, 0, 0)
    assert stats.operation("Scan").forwarded == stats.operation("DescribeTable").forwarded == 1
    assert stats.operation("BatchWriteItem").requests == 0


def test_adds_the_latency_to_every_request(dynalite_endpoint: str, small_table: str) -> None:
    with running_proxy(dynalite_endpoint, latency=0.1) as proxy:
        client = no_retry_client(proxy.endpoint_url)
        client.scan(TableName=small_table)  # opens the connection
        started = time.monotonic()
        for _ in range(5):
            client.scan(TableName=small_table)
        elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 1.5
    assert proxy.stats.forwarded == 6


def test_throttles_the_requested_fraction_with_dynamodbs_error(dynalite_endpoint: str, small_table: str) -> None:
    with running_proxy(dynalite_endpoint, throttle_fraction=0.3, seed=11) as proxy:
        seen = outcomes(no_retry_client(proxy.endpoint_url), small_table, REQUESTS)
        stats = proxy.stats.snapshot()
    assert set(seen) == {"ok", "ProvisionedThroughputExceededException"}
    throttled = seen.count("ProvisionedThroughputExceededException")
    assert 0.2 * REQUESTS <= throttled <= 0.4 * REQUESTS
    assert (stats.throttled, stats.forwarded, stats.dropped) == (throttled, REQUESTS - throttled, 0)
    assert stats.operation("Scan").throttled == throttled


def test_same_seed_gives_the_same_faults(dynalite_endpoint: str, small_table: str) -> None:
    runs = []
    for _ in range(2):
        with running_proxy(dynalite_endpoint, throttle_fraction=0.2, drop_fraction=0.1, seed=3) as proxy:
            runs.append(outcomes(no_retry_client(proxy.endpoint_url), small_table, 60))
    assert runs[0] == runs[1]
    assert {"ok", "ProvisionedThroughputExceededException", "dropped"} == set(runs[0])


def test_drops_connections_and_botocore_retries_them(dynalite_endpoint: str, small_table: str) -> None:
    with running_proxy(dynalite_endpoint, drop_fraction=0.25, seed=5) as proxy:
        seen = outcomes(no_retry_client(proxy.endpoint_url), small_table, REQUESTS)
        dropped = seen.count("dropped")
        assert 0.15 * REQUESTS <= dropped <= 0.35 * REQUESTS
        assert proxy.stats.dropped == dropped
        assert proxy.stats.forwarded == REQUESTS - dropped  # a dropped request never reached the server

        retrying = boto3.client(
            "dynamodb",
            region_name="us-east-1",
            endpoint_url=proxy.endpoint_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"mode": "standard", "total_max_attempts": 10}),
        )
        before = proxy.stats.snapshot()
        assert all(retrying.scan(TableName=small_table)["Count"] == 10 for _ in range(20))
        assert proxy.stats.dropped > before.dropped  # some of the 20 calls needed a retry, and got it


def test_faults_only_for_the_chosen_operations(dynalite_endpoint: str, small_table: str) -> None:
    with running_proxy(
        dynalite_endpoint, throttle_fraction=1.0, fault_operations={"Scan"}, throttle_error="ThrottlingException"
    ) as proxy:
        client = no_retry_client(proxy.endpoint_url)
        assert client.describe_table(TableName=small_table)["Table"]["ItemCount"] == 0
        with pytest.raises(ClientError) as raised:
            client.scan(TableName=small_table)
    assert raised.value.response["Error"]["Code"] == "ThrottlingException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert proxy.stats.operation("DescribeTable").forwarded == 1
    assert proxy.stats.operation("Scan").throttled == 1


def test_drop_after_forward_applies_the_write_but_loses_the_answer(dynalite_endpoint: str) -> None:
    name = unique_table_name("proxy-write")
    setup = no_retry_client(dynalite_endpoint)
    create_table(setup, name)
    with (
        running_proxy(dynalite_endpoint, drop_fraction=1.0, drop_after_forward=True) as proxy,
        pytest.raises(ConnectionClosedError),
    ):
        no_retry_client(proxy.endpoint_url).put_item(TableName=name, Item={"pk": {"S": "written"}})
    assert setup.get_item(TableName=name, Key={"pk": {"S": "written"}})["Item"] == {"pk": {"S": "written"}}
    assert (proxy.stats.forwarded, proxy.stats.dropped) == (1, 1)


def test_invalid_options_are_refused() -> None:
    with pytest.raises(ProxyError, match="must add up to at most 1"):
        DynamoDBProxy("http://127.0.0.1:1", throttle_fraction=0.7, drop_fraction=0.5)
    with pytest.raises(ProxyError, match="must be http://HOST:PORT"):
        DynamoDBProxy("https://example.invalid")
