"""
Total order ``amount`` per ``status`` of a DynamoDB table, exactly: a map over segments, then a reduce.

Each mapped task scans one segment of a parallel scan with ``DynamoDBScanHook.scan_segment`` and sums its part;
the ``combine`` task checks that every segment reported once and adds the parts. Amounts are ``Decimal`` and are
added without rounding; they travel through XCom (JSON) as strings of Decimals.

The table name is a DAG param (default ``orders``): trigger with ``{"table_name": "..."}`` to use another table.
"""

from __future__ import annotations

import decimal
from datetime import timedelta
from decimal import Decimal
from typing import Any

from airflow.providers.common.compat.sdk import Param, dag, task

from airflow_dynamoscan.hooks.dynamodb_scan import DynamoDBScanHook

#: Segments of the parallel scan, one mapped task each.
TOTAL_SEGMENTS = 4

#: Additions in this context are exact: they never round to the default 28 digits (and would raise if they had to).
EXACT = decimal.Context(prec=decimal.MAX_PREC, traps=[decimal.Inexact])


def add_totals(totals: dict[str, Decimal], more: dict[str, Decimal]) -> dict[str, Decimal]:
    """Return the sums, key by key, of two dicts of Decimals."""
    return {key: EXACT.add(totals.get(key, Decimal(0)), more.get(key, Decimal(0))) for key in totals.keys() | more}


@task(map_index_template="segment {{ task.op_kwargs['segment'] }} of {{ task.op_kwargs['total_segments'] }}")
def sum_segment(segment: int, total_segments: int, table_name: str) -> dict[str, Any]:
    """Return the amount and order count per status of one segment, amounts as strings of Decimals."""
    amounts: dict[str, Decimal] = {}
    orders: dict[str, int] = {}
    items = DynamoDBScanHook().scan_segment(
        table_name,
        segment,
        total_segments,
        ProjectionExpression="#status, #amount",
        ExpressionAttributeNames={"#status": "status", "#amount": "amount"},
    )
    for item in items:
        status, amount = item.get("status"), item.get("amount")
        if not isinstance(status, str) or not isinstance(amount, Decimal):
            continue
        amounts[status] = EXACT.add(amounts.get(status, Decimal(0)), amount)
        orders[status] = orders.get(status, 0) + 1
    return {
        "segment": segment,
        "total_segments": total_segments,
        "amount_by_status": {status: str(amount) for status, amount in amounts.items()},
        "orders_by_status": orders,
    }


@task
def combine(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Check that every segment reported exactly once and return the table's totals per status."""
    # One request for all the mapped results (a slice), read once: iterating the lazy sequence again would fetch
    # every result again and probe past its end each time.
    parts = list(parts[:])
    segments = sorted(part["segment"] for part in parts)
    if segments != list(range(TOTAL_SEGMENTS)):
        raise ValueError(f"Segments {segments} reported; expected each of 0..{TOTAL_SEGMENTS - 1} exactly once.")
    amounts: dict[str, Decimal] = {}
    orders: dict[str, int] = {}
    for part in parts:
        amounts = add_totals(amounts, {status: Decimal(text) for status, text in part["amount_by_status"].items()})
        for status, count in part["orders_by_status"].items():
            orders[status] = orders.get(status, 0) + count
    return {
        "amount_by_status": {status: str(amounts[status]) for status in sorted(amounts)},
        "orders_by_status": {status: orders[status] for status in sorted(orders)},
    }


@dag(
    dag_id="example_dynamodb_aggregate",
    schedule=None,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=10)},
    params={"table_name": Param("orders", type="string", description="The DynamoDB table of orders")},
    tags=["example", "dynamodb"],
    doc_md=__doc__,
)
def example_dynamodb_aggregate() -> None:
    parts = sum_segment.partial(total_segments=TOTAL_SEGMENTS, table_name="{{ params.table_name }}").expand(
        segment=list(range(TOTAL_SEGMENTS))
    )
    combine(parts)


example_dynamodb_aggregate()
