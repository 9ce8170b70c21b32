"""
Keep an Apache Iceberg table equal to a DynamoDB table: the first run loads it, each later run merges the next
incremental window of changes (upserts and deletes, each applied once).

The first run exports the whole table with DynamoDB's own export (point-in-time recovery on, no read capacity used)
and commits it in one Iceberg transaction. Each later run exports the changes since the last applied window (its
end is in the mirror's last snapshot summary, so retries, re-runs and paused days neither skip nor repeat a
change), folds them to the net change per key and commits delete-then-append of the changed keys in one
transaction. Query the table from Athena, Spark, Trino, DuckDB or pyiceberg; time travel gives earlier states.

The catalog is the Airflow connection ``iceberg_default``: its extra holds pyiceberg's catalog properties, e.g.
``{"type": "sql", "uri": "sqlite:////data/catalog.db", "warehouse": "file:///data/warehouse"}`` or
``{"type": "glue", "aws_conn_id": "aws_default", "warehouse": "s3://my-lake/warehouse"}`` (see docs/iceberg.md).

Safe to unpause: runs do nothing unless the ``enabled`` param is true (the default is false).
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG, Asset, Param, task

from airflow_dynamoscan.iceberg_task_groups import dynamodb_to_iceberg

with DAG(
    dag_id="example_dynamodb_to_iceberg",
    schedule="@hourly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    params={
        "enabled": Param(False, type="boolean", description="Run at all (false: every task is skipped)"),
        "table_name": Param("orders", type="string", description="The DynamoDB table (point-in-time recovery on)"),
        "s3_bucket": Param("my-dynamodb-exports", type="string", description="The bucket DynamoDB exports to"),
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
        table_identifier="lake.orders",
        iceberg_conn_id="iceberg_default",
        mode="incremental",
        load_method="native",
        native_s3_bucket="{{ params.s3_bucket }}",
        native_s3_prefix="iceberg-mirror/orders",
        native_options={"poll_interval": 30},
        bucket_count=16,
        outlets=[Asset("iceberg://lake/orders")],
        retries=2,
    )
    enabled("{{ params.enabled }}") >> mirror  # type: ignore[arg-type]
