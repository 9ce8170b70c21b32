"""
Export a whole DynamoDB table every day, one mapped task per segment, committed by a manifest.

``dynamodb_parallel_export`` builds three steps: plan the segment count (from the table's size, or the
``total_segments`` param), export each segment in its own task instance (``segment 3/16`` in the UI) so the
executor spreads the table over its workers, and write ``manifest.json`` last, once every segment has reported.

Each run writes under ``{destination}/{table_name}/{folder}/``: a scheduled run (or one triggered with a logical
date) names the folder by its date, ``2026-01-31``; a manual run without a logical date (the default of runs
triggered from the UI, the CLI or the REST API in Airflow 3) by its run id,
``manual__2026-01-31T09-30-00.123456_00-00``.
The same DAG runs against a local DynamoDB and a local folder (the demo) or AWS and S3 in production: trigger it with
``{"destination": "s3://bucket/exports"}`` and let the ``aws_default`` connection say where DynamoDB is.

A killed or failed segment is retried after ``retry_delay`` (10 s here); the retry keeps what the failed try
committed. When the manifest is written, the task group records an event of the asset ``dynamodb_export_orders``
(its ``extra`` names the manifest), which starts ``example_dynamodb_export_consumer``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG, Asset, Param

from airflow_dynamoscan.task_groups import dynamodb_parallel_export

#: The folder of one run: its date when it has a logical date, else its run id with ``:`` and ``+`` replaced, so
#: that it is a plain folder name on every file system and in S3 consoles.
RUN_FOLDER = "{{ ds if ds is defined else run_id | replace(':', '-') | replace('+', '_') }}"

#: Updated each time an export of ``orders`` is complete; ``example_dynamodb_export_consumer`` is scheduled on it.
ORDERS_EXPORT = Asset("dynamodb_export_orders")

with DAG(
    dag_id="example_dynamodb_parallel_export",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=10)},
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
        destination="{{ params.destination }}/{{ params.table_name }}/" + RUN_FOLDER,
        total_segments="{{ params.total_segments }}",  # type: ignore[arg-type]
        file_format="{{ params.file_format }}",
        compression="gzip",
        outlets=[ORDERS_EXPORT],
    )
