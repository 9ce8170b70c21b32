"""Lineage of an export: the DynamoDB table in, the destination out."""

from __future__ import annotations

import pytest

from airflow_dynamoscan.operators.dynamodb_export import DynamoDBExportOperator


@pytest.mark.parametrize(
    ("destination", "namespace", "name"),
    [
        ("s3://exports-bucket/daily/2026-11-27/", "s3://exports-bucket", "daily/2026-11-27"),
        ("s3://exports-bucket", "s3://exports-bucket", "/"),
        ("/data/exports/orders", "file", "/data/exports/orders"),
        ("file:///data/exports/orders", "file", "/data/exports/orders"),
    ],
)
def test_export_lineage_names_table_and_destination(destination: str, namespace: str, name: str) -> None:
    operator = DynamoDBExportOperator(
        task_id="export", table_name="orders", destination=destination, region_name="eu-west-1", aws_conn_id=None
    )
    lineage = operator.get_openlineage_facets_on_complete(None)
    assert [(dataset.namespace, dataset.name) for dataset in lineage.inputs] == [("awsdynamodb://eu-west-1", "orders")]
    assert [(dataset.namespace, dataset.name) for dataset in lineage.outputs] == [(namespace, name)]
