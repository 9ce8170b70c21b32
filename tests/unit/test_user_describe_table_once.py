"""
One DescribeTable per task: an export or a transform that checks the table, plans its segments, takes a share of
the read capacity and estimates its progress asks DynamoDB about the table once, not four times.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from airflow_dynamoscan.operators.base import DynamoDBScanBaseOperator
from airflow_dynamoscan.operators.dynamodb_export import DynamoDBExportOperator
from airflow_dynamoscan.operators.dynamodb_transform import DynamoDBTransformOperator
from devtools.sample_data import put_items, sample_item
from tests.conftest import make_client

TABLE = "provisioned-orders"
TARGET = "orders-copy"


@pytest.fixture
def provisioned_table(moto_connection_env: str) -> Iterator[Any]:
    with mock_aws():
        client = make_client()
        for name in (TABLE, TARGET):
            client.create_table(
                TableName=name,
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                ProvisionedThroughput={"ReadCapacityUnits": 4000, "WriteCapacityUnits": 4000},
            )
        put_items(client, TABLE, [sample_item(number, padding=20) for number in range(50)])
        yield client


def count_describe_calls(operator: DynamoDBScanBaseOperator) -> list[str]:
    """The table names of every DescribeTable request sent by the operator's hook, on any of its clients."""
    described: list[str] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        described.append(params["TableName"])

    for client in (operator.hook.client, operator.hook._scan_client):
        client.meta.events.register("provide-client-params.dynamodb.DescribeTable", record)
    return described


# Every DescribeTable use at once: total_segments=None plans, read_capacity_fraction budgets, a tiny
# progress_interval estimates a percentage, and the operator checks the table exists.
EVERY_USE: dict[str, Any] = {"read_capacity_fraction": 0.5, "progress_interval": 1e-6, "max_workers": 2}


def test_a_whole_table_export_describes_the_table_once(provisioned_table: Any, tmp_path: Path) -> None:
    operator = DynamoDBExportOperator(task_id="export", table_name=TABLE, destination=str(tmp_path), **EVERY_USE)
    described = count_describe_calls(operator)
    result = operator.execute({})  # type: ignore[arg-type]
    assert result["items"] == 50
    assert described == [TABLE]


def test_a_segment_export_describes_the_table_once(provisioned_table: Any, tmp_path: Path) -> None:
    operator = DynamoDBExportOperator(
        task_id="export", table_name=TABLE, destination=str(tmp_path), segment=1, total_segments=3, **EVERY_USE
    )
    described = count_describe_calls(operator)
    operator.execute({})  # type: ignore[arg-type]
    assert described == [TABLE]


def bump(item: dict[str, Any]) -> dict[str, Any]:
    return {**item, "n": item["n"] + 1}


def test_an_in_place_transform_describes_the_table_once(provisioned_table: Any) -> None:
    operator = DynamoDBTransformOperator(task_id="transform", table_name=TABLE, transform=bump, **EVERY_USE)
    described = count_describe_calls(operator)
    result = operator.execute({})  # type: ignore[arg-type]
    assert result["written"] == 50
    assert described == [TABLE]


def test_a_copy_describes_each_table_once(provisioned_table: Any) -> None:
    arguments = {"table_name": TABLE, "target_table_name": TARGET, "segment": 0, "total_segments": 2, **EVERY_USE}
    operator = DynamoDBTransformOperator(task_id="copy", transform=bump, **arguments)
    described = count_describe_calls(operator)
    operator.execute({})  # type: ignore[arg-type]
    assert sorted(described) == sorted([TABLE, TARGET])
