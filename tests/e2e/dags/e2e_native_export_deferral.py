"""
The e2e run's native export: a full export, deferrable, converted to Parquet, its export task sharing a pool of ONE
slot with another task, so that task can only run while the export waits in the triggerer.

``start_export`` has the higher priority and takes the slot first; when it defers, the slot is free and
``use_the_slot`` runs and finishes; the export (held by the e2e moto server until the check releases it) then
completes, ``start_export`` resumes, and the data files are converted (one mapped task per file) and committed
with a manifest and an asset event. Only the e2e run loads this DAG (its DAGS_FOLDER adds tests/e2e/dags/).
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG, Asset, Param, task

from airflow_dynamoscan.native_task_groups import dynamodb_native_export_to_files

#: The pool of one slot that the export task and ``use_the_slot`` share; the e2e run creates it.
POOL = "native_export_slot"

with DAG(
    dag_id="e2e_native_export_deferral",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "table_name": Param("orders", type="string"),
        "s3_bucket": Param("native-staging", type="string"),
        "destination": Param("/tmp/native-export", type="string"),
        "export_time": Param("", type="string", description="Within the table's restorable range"),
    },
    tags=["e2e"],
) as dag:
    dynamodb_native_export_to_files(
        "native",
        table_name="{{ params.table_name }}",
        s3_bucket="{{ params.s3_bucket }}",
        s3_prefix="native/{{ run_id | replace(':', '_') | replace('+', '_') }}",
        destination="{{ params.destination }}",
        deferrable=True,
        aws_conn_id="aws_moto",
        export_kwargs={
            "export_time": "{{ params.export_time }}",
            "poll_interval": 1,
            "pool": POOL,
            "priority_weight": 100,
            "weight_rule": "absolute",
        },
        file_format="parquet",
        outlets=[Asset("dynamodb_native_export_orders")],
    )

    @task(pool=POOL, priority_weight=1, weight_rule="absolute")
    def use_the_slot() -> str:
        """Hold the pool's one slot briefly: possible only while the export task is deferred."""
        import time

        time.sleep(2)
        return "used the slot"

    use_the_slot()
