"""
Chain daily incremental native exports of a DynamoDB table, each converted to Parquet with a manifest.

Every run exports the changes written since the last window it committed, up to the run's time (on Airflow 3 a
``@daily`` run's logical date, on Airflow 2 its data-interval end; for a manual run, when it was asked to run),
at most 24 hours, with DynamoDB's own ``ExportTableToPointInTime`` (``INCREMENTAL_EXPORT``, no read capacity
used); it waits for it in the triggerer (``deferrable=True``: no worker slot is held while DynamoDB works), then
converts its data files, one mapped task per file, into Parquet rows with ``_op`` (``upsert``/``delete``) and
``_write_time_micros``, committed by the same ``manifest.json`` as a scan export, in the window's own folder
``{destination}/{start}_{end}/``. The windows are read back from those manifests, not from the run's data
interval: a retried, cleared or re-triggered run never exports a change twice, and a run whose window is already
exported skips. After a pause, each run exports the next 24 hours until the chain has caught up (``catchup=True``
gives every missed day its run; or trigger runs by hand). The first window starts at ``chain_start`` (e.g. the
time of the full export the chain continues), else at the table's earliest restorable time. See
docs/native-exports.md.

Safe to unpause: runs do nothing unless the ``enabled`` param is true (the default is false), so a scheduled run
with the defaults only skips. To use it, set the params' defaults (or trigger with a config) to your table (with
point-in-time recovery enabled), the bucket DynamoDB writes to, and the destination of the Parquet files.
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG, Param, task

from airflow_dynamoscan.native_task_groups import dynamodb_native_export_to_files

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
            "s3://my-dynamodb-exports/changes/orders",
            type="string",
            description="Where the Parquet files go, one folder per window",
        ),
        "chain_start": Param(
            "",
            type="string",
            description="Where the first window starts (ISO 8601, e.g. a full export's time); empty: the table's "
            "earliest restorable time. Read only until the first window is committed.",
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
        s3_prefix="{{ params.s3_prefix }}",
        destination="{{ params.destination }}",
        export_type="INCREMENTAL_EXPORT",
        deferrable=True,
        export_kwargs={
            "export_view_type": "NEW_AND_OLD_IMAGES",
            "chain_start": "{{ params.chain_start }}",
            "poll_interval": 60,
        },
        file_format="parquet",
        retries=2,
    )
    enabled("{{ params.enabled }}") >> changes  # type: ignore[arg-type]
