"""
Export a whole DynamoDB table every day, one mapped task per segment, committed by a manifest.

``dynamodb_parallel_export`` builds three steps: plan the segment count (from the table's size, or the
``total_segments`` param), export each segment in its own task instance (``segment 3/16`` in the UI) so the
executor spreads the table over its workers, and write ``manifest.json`` last, once every segment has reported.

Each run writes under ``{destination}/{table_name}/{{ ds }}/``. The same DAG runs against a local DynamoDB and a
local folder (the demo) or AWS and S3 in production: trigger it with ``{"destination": "s3://bucket/exports"}``
and let the ``aws_default`` connection say where DynamoDB is.
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG, Param

from airflow_dynamoscan.task_groups import dynamodb_parallel_export

with DAG(
    dag_id="example_dynamodb_parallel_export",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    params={
        "table_name": Param("orders", type="string", description="The DynamoDB table to export"),
        "destination": Param(
            "/tmp/dynamodb-exports", type="string", description="s3://bucket/prefix or a local directory"
        ),
        "total_segments": Param("auto", type=["string", "integer"], description='"auto" or a segment count'),
        "file_format": Param("jsonl", enum=["jsonl", "dynamodb_json", "csv", "parquet"]),
    },
    tags=["example", "dynamodb", "export"],
    doc_md=__doc__,
) as dag:
    dynamodb_parallel_export(
        "export_orders",
        table_name="{{ params.table_name }}",
        destination="{{ params.destination }}/{{ params.table_name }}/{{ ds }}",
        total_segments="{{ params.total_segments }}",  # type: ignore[arg-type]
        file_format="{{ params.file_format }}",
        compression="gzip",
        retries=2,
    )
