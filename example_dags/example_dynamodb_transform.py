"""
Normalise every order of a DynamoDB table in place: lower-case ``status`` and stamp ``updated_at``.

The table is split into ``TOTAL_SEGMENTS`` segments of a parallel scan, one mapped task each, so Airflow's executor
spreads the table over its workers. A dry run counts what would change first; the real run follows it. An order
that is already normalised is returned as it is and therefore not written again, so running the DAG twice costs
one read of the table the second time.

The table name is a DAG param (default ``orders``): trigger with ``{"table_name": "..."}`` to run the same DAG
against another table, on a local DynamoDB or in AWS (the ``aws_default`` connection says which).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.providers.common.compat.sdk import DAG, Param, task

from airflow_dynamoscan.operators.dynamodb_transform import DynamoDBTransformOperator

#: Segments of the parallel scan, one mapped task each (at most ``[core] max_map_length``).
TOTAL_SEGMENTS = 4

log = logging.getLogger(__name__)


def normalise_order(item: dict[str, Any]) -> dict[str, Any] | None:
    """Return the order with a lower-case ``status`` and ``updated_at``; ``None`` (leave it) if it has no status."""
    status = item.get("status")
    if not isinstance(status, str):
        return None
    normalised = status.strip().lower()
    if normalised == status and "updated_at" in item:
        return item
    return {**item, "status": normalised, "updated_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


@task
def report_dry_run(results: list[dict[str, Any]]) -> dict[str, int]:
    """Check that the dry run covered every segment once, and return (and log) its totals."""
    # One request for all the mapped results (a slice), read once: iterating the lazy sequence again would fetch
    # every result again and probe past its end each time.
    results = list(results[:])
    segments = sorted(result["segment"] for result in results)
    if segments != list(range(TOTAL_SEGMENTS)):
        raise ValueError(f"The dry run covered segments {segments}; expected each of 0..{TOTAL_SEGMENTS - 1} once.")
    totals = {name: sum(result[name] for result in results) for name in ("scanned", "would_write", "unchanged")}
    log.info(
        "Dry run: %s order(s) read, %s would be written, %s already normalised",
        totals["scanned"],
        totals["would_write"],
        totals["unchanged"],
    )
    return totals


with DAG(
    dag_id="example_dynamodb_transform",
    schedule=None,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=10)},
    params={"table_name": Param("orders", type="string", description="The DynamoDB table to normalise")},
    tags=["example", "dynamodb"],
    doc_md=__doc__,
):
    transform_arguments: dict[str, Any] = {
        "table_name": "{{ params.table_name }}",
        "transform": normalise_order,
        "total_segments": TOTAL_SEGMENTS,
        "map_index_template": "segment {{ task.segment }} of {{ task.total_segments }}",
    }
    dry_run = DynamoDBTransformOperator.partial(task_id="dry_run", dry_run=True, **transform_arguments).expand(
        segment=list(range(TOTAL_SEGMENTS))
    )
    normalise = DynamoDBTransformOperator.partial(task_id="normalise", **transform_arguments).expand(
        segment=list(range(TOTAL_SEGMENTS))
    )
    report_dry_run(dry_run.output) >> normalise
