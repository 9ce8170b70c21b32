"""
Export a whole DynamoDB table to Parquet in one task, read by a parallel scan of several threads.

For tables that one worker reads comfortably; for bigger ones see ``example_dynamodb_parallel_export``. Numbers
keep every digit (exact decimal columns, or text when a column's numbers do not fit one), sets and maps become
JSON text, binary stays binary. A manifest commits the export, as for the mapped version.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG, Param

from airflow_dynamoscan.operators.dynamodb_export import DynamoDBExportManifestOperator, DynamoDBExportOperator

#: The folder of one run: its date when it has a logical date, else (a manual run) its run id, made a plain name.
RUN_FOLDER = "{{ ds if ds is defined else run_id | replace(':', '-') | replace('+', '_') }}"

with DAG(
    dag_id="example_dynamodb_export",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=10)},
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
        destination="{{ params.destination }}/{{ params.table_name }}/parquet/" + RUN_FOLDER,
        file_format="parquet",
        compression="zstd",
        max_workers=4,
    )
    DynamoDBExportManifestOperator(task_id="write_manifest", results=[export.output])
