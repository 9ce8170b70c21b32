"""
Run each time an export of ``orders`` is complete: read the manifest that the asset event names, and check it.

``example_dynamodb_parallel_export`` records an event of the asset ``dynamodb_export_orders`` when it has written
its manifest (never for an export that failed); this DAG is scheduled on that asset, so Airflow starts it once
per such event, or once for several events that arrive together. The event's ``extra`` names the manifest, the
table, the format, the items, bytes and parts and the scan's time window; the task reads the manifest at that URI
(S3 or local), checks that it agrees with the event and that every part it lists is there, and returns a summary
per export: the place to start a load into a warehouse, a notification, or the next DAG.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.providers.common.compat.sdk import Asset, dag, task

from airflow_dynamoscan.export.manifest import MANIFEST_NAME, read_manifest
from airflow_dynamoscan.operators.dynamodb_export import open_export_destination

#: The asset that ``example_dynamodb_parallel_export`` updates when an export of ``orders`` is complete.
ORDERS_EXPORT = Asset("dynamodb_export_orders")


@task
def read_exports(triggering_asset_events: Any = None) -> list[dict[str, Any]]:
    """Return, per triggering event, the export its manifest describes; fail if a part it lists is missing."""
    summaries = []
    for event in triggering_asset_events[ORDERS_EXPORT]:
        extra = event.extra
        manifest_uri: str = extra["manifest"]
        root = manifest_uri.removesuffix("/" + MANIFEST_NAME)
        destination = open_export_destination(root, "aws_default")
        manifest = read_manifest(destination)
        if manifest is None:
            raise ValueError(f"The asset event names {manifest_uri}, which is not there.")
        if (manifest["items"], manifest["bytes"]) != (extra["items"], extra["bytes"]):
            raise ValueError(f"{manifest_uri} does not hold the export the asset event describes.")
        paths = [part["path"] for segment in manifest["segments"] for part in segment["parts"]]
        missing = [path for path in paths if not destination.exists(path)]
        if missing:
            raise ValueError(f"{manifest_uri} lists {len(missing)} part(s) that are missing, e.g. {missing[0]}.")
        summaries.append(
            {
                "manifest": manifest_uri,
                "table_name": manifest["table_name"],
                "items": manifest["items"],
                "bytes": manifest["bytes"],
                "parts": len(paths),
                "scan_finished_at": manifest["scan_finished_at"],
            }
        )
    return summaries


@dag(
    dag_id="example_dynamodb_export_consumer",
    schedule=[ORDERS_EXPORT],
    start_date=datetime(2026, 1, 1),  # Airflow 2.11 needs one for any schedule
    default_args={"retries": 2, "retry_delay": timedelta(seconds=10)},
    tags=["example", "dynamodb", "export", "asset"],
    doc_md=__doc__,
)
def example_dynamodb_export_consumer() -> None:
    read_exports()


example_dynamodb_export_consumer()
