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


def test_native_export_lineage_names_table_and_staging_prefix() -> None:
    from airflow_dynamoscan.operators.dynamodb_native_export import (
        DynamoDBNativeExportConvertOperator,
        DynamoDBNativeExportOperator,
    )

    export = DynamoDBNativeExportOperator(
        task_id="export", table_name="orders", s3_bucket="staging", s3_prefix="/native/orders/", region_name="eu-west-1"
    )
    lineage = export.get_openlineage_facets_on_complete(None)
    assert [(dataset.namespace, dataset.name) for dataset in lineage.inputs] == [("awsdynamodb://eu-west-1", "orders")]
    assert [(dataset.namespace, dataset.name) for dataset in lineage.outputs] == [("s3://staging", "native/orders")]
    convert = DynamoDBNativeExportConvertOperator(
        task_id="convert",
        table_name="orders",
        source_bucket="staging",
        data_files=[],
        incremental=False,
        segment=0,
        total_segments=1,
        destination="s3://out/orders/",
        source_prefix="native/orders",
    )
    lineage = convert.get_openlineage_facets_on_complete(None)
    # The convert task reads what the export task wrote: the lineage graph is table -> staging -> destination.
    assert [(dataset.namespace, dataset.name) for dataset in lineage.inputs] == [("s3://staging", "native/orders")]
    assert [(dataset.namespace, dataset.name) for dataset in lineage.outputs] == [("s3://out", "orders")]
