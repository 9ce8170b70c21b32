"""
Mirror a DynamoDB table without point-in-time recovery into Apache Iceberg: each run scans the whole table (one
mapped task per segment, each staging Parquet files in the Iceberg table's schema) and replaces the table's
contents in one transaction. Readers see the old contents or the new, never a mix; time travel gives earlier runs.

Use it where incremental exports are not available (no point-in-time recovery); with PITR, the incremental mirror
(``example_dynamodb_to_iceberg``) reads only the changes. The catalog is the Airflow connection
``iceberg_default`` (see docs/iceberg.md). Safe to unpause: runs do nothing unless ``enabled`` is true.
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG, Asset, Param, task

from airflow_dynamoscan.iceberg_task_groups import dynamodb_to_iceberg

with DAG(
    dag_id="example_dynamodb_to_iceberg_replace",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    params={
        "enabled": Param(False, type="boolean", description="Run at all (false: every task is skipped)"),
        "table_name": Param("orders", type="string", description="The DynamoDB table"),
    },
    tags=["example", "dynamodb", "iceberg"],
    doc_md=__doc__,
) as dag:

    @task.short_circuit(task_id="enabled")
    def enabled(value: bool) -> bool:
        return str(value).strip().lower() == "true"  # a rendered template is text

    mirror = dynamodb_to_iceberg(
        "mirror",
        table_name="{{ params.table_name }}",
        table_identifier="lake.orders_by_scan",
        iceberg_conn_id="iceberg_default",
        mode="replace",
        load_method="scan",
        total_segments=3,
        rows_per_file=100_000,
        outlets=[Asset("iceberg://lake/orders_by_scan")],
        retries=2,
    )
    enabled("{{ params.enabled }}") >> mirror  # type: ignore[arg-type]
