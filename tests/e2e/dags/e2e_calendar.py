"""
The e2e calendar: the examples' scan export and chained incremental native export as *scheduled* runs, hourly,
catching up from ``E2E_CALENDAR_START`` (a few hours ago), one run at a time.

Each DAG's first task waits for a gate file the check creates once it has changed the table for that run
(``{E2E_CALENDAR_DIR}/gates/{dag_id}/{ts_nodash}``), so each run sees the table of its own interval; a run
without a logical date passes. Only the e2e
run loads these DAGs (its DAGS_FOLDER adds tests/e2e/dags/, and it sets both variables).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from airflow.providers.common.compat.sdk import DAG, task

from airflow_dynamoscan.iceberg_task_groups import dynamodb_to_iceberg
from airflow_dynamoscan.native_task_groups import dynamodb_native_export_to_files
from airflow_dynamoscan.task_groups import dynamodb_parallel_export

SCAN_DAG = "e2e_calendar_scan_export"
NATIVE_DAG = "e2e_calendar_native_chain"
MIRROR_DAG = "e2e_calendar_iceberg_mirror"
#: The mirror's scheduled runs: the load, then one window per interval (the calendar's first intervals only).
MIRROR_INTERVALS = 4
TABLE = "calendar_orders"
STAGING_BUCKET = "calendar-staging"

START = os.environ.get("E2E_CALENDAR_START")
FOLDER = Path(os.environ.get("E2E_CALENDAR_DIR", "/tmp/e2e-calendar"))


def gate(dag_id: str) -> object:
    """The first task: wait for the check's gate file of this run."""

    @task.sensor(task_id="gate", poke_interval=1, timeout=600, mode="poke")
    def wait_for_gate(ts_nodash: str | None = None) -> bool:
        # A run without a logical date (a manual run) is not part of the calendar: it goes through.
        return ts_nodash is None or (FOLDER / "gates" / dag_id / ts_nodash).exists()

    return wait_for_gate()


if START:
    start_date = datetime.fromisoformat(START)
    common = {
        "schedule": "@hourly",
        "start_date": start_date,
        "catchup": True,
        "max_active_runs": 1,
        "default_args": {"retries": 1, "retry_delay": timedelta(seconds=2)},
        "tags": ["e2e"],
    }
    with DAG(dag_id=SCAN_DAG, **common):  # type: ignore[arg-type]
        gate(SCAN_DAG) >> dynamodb_parallel_export(  # type: ignore[operator]
            "export_orders",
            table_name=TABLE,
            destination=str(FOLDER / "scan") + "/{{ ts_nodash }}",
            total_segments=2,
            file_format="jsonl",
            compression="gzip",
        )

    # The Iceberg mirror of the same table: loaded by a native full export on its first run, then merging one
    # incremental window per run (catalog: connection iceberg_e2e, set by the e2e run).
    with DAG(
        dag_id=MIRROR_DAG,
        end_date=start_date + timedelta(hours=MIRROR_INTERVALS - 1),
        **common,  # type: ignore[arg-type]
    ):
        gate(MIRROR_DAG) >> dynamodb_to_iceberg(  # type: ignore[operator]
            "mirror",
            table_name=TABLE,
            table_identifier="e2e.calendar_orders",
            iceberg_conn_id="iceberg_e2e",
            mode="incremental",
            load_method="native",
            native_s3_bucket=STAGING_BUCKET,
            native_s3_prefix="iceberg-mirror",
            native_options={"deferrable": False, "poll_interval": 1, "restorable_wait": 0},
            aws_conn_id="aws_moto",
        )

    with DAG(dag_id=NATIVE_DAG, **common):  # type: ignore[arg-type]
        gate(NATIVE_DAG) >> dynamodb_native_export_to_files(  # type: ignore[operator]
            "export_changes",
            table_name=TABLE,
            s3_bucket=STAGING_BUCKET,
            s3_prefix="native/{{ run_id | replace(':', '_') | replace('+', '_') }}",
            destination=str(FOLDER / "chain"),
            export_type="INCREMENTAL_EXPORT",
            deferrable=False,
            aws_conn_id="aws_moto",
            export_kwargs={"chain_start": START, "poll_interval": 1, "restorable_wait": 0},
            file_format="jsonl",
            compression="gzip",
        )
