"""
Export a whole DynamoDB table to Parquet in one task, read by a parallel scan of several threads.

For tables that one worker reads comfortably; for bigger ones see ``example_dynamodb_parallel_export``. Numbers
keep every digit (exact decimal columns, or text when a column's numbers do not fit one), sets and maps become
JSON text, binary stays binary. A manifest commits the export, as for the mapped version.
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG, Param

from airflow_dynamoscan.operators.dynamodb_export import DynamoDBExportManifestOperator, DynamoDBExportOperator

with DAG(
    dag_id="example_dynamodb_export",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "table_name": Param("orders", type="string", description="The DynamoDB table to export"),
        "destination": Param(
            "/tmp/dynamodb-exports", type="string", description="s3://bucket/prefix or a local directory"
        ),
    },
    tags=["example", "dynamodb", "export"],
    doc_md=__doc__,
) as dag:
    export = DynamoDBExportOperator(
        task_id="export_table",
        table_name="{{ params.table_name }}",
        destination="{{ params.destination }}/{{ params.table_name }}/parquet/{{ ds }}",
        file_format="parquet",
        compression="zstd",
        max_workers=4,
        retries=2,
    )
    DynamoDBExportManifestOperator(task_id="write_manifest", results=[export.output])
