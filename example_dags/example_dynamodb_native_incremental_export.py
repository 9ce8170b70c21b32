"""
Chain daily incremental native exports of a DynamoDB table, each converted to Parquet with a manifest.

Every run exports the changes written during its data interval (``[data_interval_start, data_interval_end)``,
one day) with DynamoDB's own ``ExportTableToPointInTime`` (``INCREMENTAL_EXPORT``, no read capacity used), waits
for it in the triggerer (``deferrable=True``: no worker slot is held while DynamoDB works), then converts its data
files, one mapped task per file, into Parquet rows with ``_op`` (``upsert``/``delete``) and
``_write_time_micros``, committed by the same ``manifest.json`` as a scan export. ``depends_on_past`` keeps the
windows in order and without gaps: a failed day blocks the next ones until it is fixed.

Safe to unpause: runs do nothing unless the ``enabled`` param is true (the default is false), so a scheduled run
with the defaults only skips. To use it, set the params' defaults (or trigger with a config) to your table (with
point-in-time recovery enabled), the bucket DynamoDB writes to, and the destination of the Parquet files.
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG, Param, task

from airflow_dynamoscan.native_task_groups import dynamodb_native_export_to_files

WINDOW = "{{ data_interval_start.strftime('%Y%m%dT%H%M%S') if data_interval_start else run_id }}"

with DAG(
    dag_id="example_dynamodb_native_incremental_export",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    params={
        "enabled": Param(False, type="boolean", description="Export at all (false: every task is skipped)"),
        "table_name": Param("orders", type="string", description="The DynamoDB table (point-in-time recovery on)"),
        "s3_bucket": Param("my-dynamodb-exports", type="string", description="The bucket DynamoDB exports to"),
        "s3_prefix": Param("native/orders", type="string", description="The key prefix of DynamoDB's exports"),
        "destination": Param(
            "s3://my-dynamodb-exports/changes/orders", type="string", description="Where the Parquet files go"
        ),
    },
    tags=["example", "dynamodb", "export", "native"],
    doc_md=__doc__,
) as dag:

    @task.short_circuit(task_id="enabled")
    def enabled(value: bool) -> bool:
        return str(value).strip().lower() == "true"  # a rendered template is text

    changes = dynamodb_native_export_to_files(
        "export_changes",
        table_name="{{ params.table_name }}",
        s3_bucket="{{ params.s3_bucket }}",
        s3_prefix="{{ params.s3_prefix }}/" + WINDOW,
        destination="{{ params.destination }}/" + WINDOW,
        export_type="INCREMENTAL_EXPORT",
        deferrable=True,
        export_kwargs={"export_view_type": "NEW_AND_OLD_IMAGES", "depends_on_past": True, "poll_interval": 60},
        file_format="parquet",
        retries=2,
    )
    enabled("{{ params.enabled }}") >> changes  # type: ignore[arg-type]
