"""The console links of the export and transform tasks: URLs per partition and region, and their registration."""

from __future__ import annotations

import importlib

import pytest

from airflow_dynamoscan.get_provider_info import get_provider_info
from airflow_dynamoscan.links.dynamodb import (
    DynamoDBTableLink,
    DynamoDBTargetTableLink,
    ExportDestinationLink,
    console_domain,
)
from airflow_dynamoscan.operators.dynamodb_export import DynamoDBExportOperator
from airflow_dynamoscan.operators.dynamodb_transform import DynamoDBTransformOperator


@pytest.mark.parametrize(
    ("partition", "region", "url"),
    [
        (
            "aws",
            "eu-west-1",
            "https://console.aws.amazon.com/dynamodbv2/home?region=eu-west-1#table?name=orders",
        ),
        (
            "aws-cn",
            "cn-north-1",
            "https://console.amazonaws.cn/dynamodbv2/home?region=cn-north-1#table?name=orders",
        ),
        (
            "aws-us-gov",
            "us-gov-west-1",
            "https://console.amazonaws-us-gov.com/dynamodbv2/home?region=us-gov-west-1#table?name=orders",
        ),
    ],
)
def test_table_link_names_partition_console_and_region(partition: str, region: str, url: str) -> None:
    fields = {"region_name": region, "aws_domain": console_domain(partition), "table_name": "orders"}
    assert DynamoDBTableLink().format_link(**fields) == url
    assert DynamoDBTargetTableLink().format_link(**fields) == url


def test_table_names_are_quoted_and_unknown_partitions_give_no_link() -> None:
    link = DynamoDBTableLink()
    fields = {"region_name": "us-east-1", "aws_domain": "aws.amazon.com"}
    assert link.format_link(**fields, table_name="orders.v2-2026") == (
        "https://console.aws.amazon.com/dynamodbv2/home?region=us-east-1#table?name=orders.v2-2026"
    )
    assert link.format_link(**fields, table_name="a#b&c").endswith("#table?name=a%23b%26c")
    assert link.format_link(region_name="xx-1", aws_domain=console_domain("aws-iso"), table_name="orders") == ""
    assert link.format_link(**fields) == ""  # no table stored


@pytest.mark.parametrize(
    ("destination", "partition", "url"),
    [
        (
            "s3://my-bucket/exports/orders/2026-01-31",
            "aws",
            "https://console.aws.amazon.com/s3/buckets/my-bucket?region=eu-west-1&prefix=exports/orders/2026-01-31/",
        ),
        ("s3://my-bucket", "aws", "https://console.aws.amazon.com/s3/buckets/my-bucket?region=eu-west-1&prefix="),
        (
            "s3://cn-bucket/a b/run+1",
            "aws-cn",
            "https://console.amazonaws.cn/s3/buckets/cn-bucket?region=eu-west-1&prefix=a%20b/run%2B1/",
        ),
        ("/data/exports/orders", "aws", ""),
        ("file:///data/exports/orders", "aws", ""),
    ],
)
def test_destination_link_opens_s3_console_at_prefix(destination: str, partition: str, url: str) -> None:
    fields = {"region_name": "eu-west-1", "aws_domain": console_domain(partition), "destination": destination}
    assert ExportDestinationLink().format_link(**fields) == url


def test_operators_show_their_links() -> None:
    export_links = [link.name for link in DynamoDBExportOperator.operator_extra_links]
    assert export_links == ["DynamoDB Table", "Export Destination"]
    transform_links = [link.name for link in DynamoDBTransformOperator.operator_extra_links]
    assert transform_links == ["DynamoDB Table", "Target DynamoDB Table"]


def test_provider_info_lists_links_and_the_export_transfer() -> None:
    info = get_provider_info()
    assert info["extra-links"] == [
        "airflow_dynamoscan.links.dynamodb.DynamoDBTableLink",
        "airflow_dynamoscan.links.dynamodb.DynamoDBTargetTableLink",
        "airflow_dynamoscan.links.dynamodb.ExportDestinationLink",
    ]
    (transfer,) = info["transfers"]
    assert transfer == {
        "source-integration-name": "Amazon DynamoDB (parallel scan)",
        "target-integration-name": "Amazon Simple Storage Service (S3)",
        "python-module": "airflow_dynamoscan.operators.dynamodb_export",
    }
    integrations = {entry["integration-name"] for entry in info["integrations"]}
    assert transfer["source-integration-name"] in integrations
    for path in info["extra-links"]:
        module, _, name = path.rpartition(".")
        link_class = getattr(importlib.import_module(module), name)
        assert link_class().name and link_class.key
    assert importlib.import_module(transfer["python-module"]).DynamoDBExportOperator is DynamoDBExportOperator


def test_providers_manager_registers_the_links() -> None:
    from airflow.providers_manager import ProvidersManager

    assert set(get_provider_info()["extra-links"]) <= set(ProvidersManager().extra_links_class_names)
