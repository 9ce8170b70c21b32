"""A failed transform task, retried with a checkpoint destination, resumes after its last confirmed page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_dynamoscan.exceptions import InvalidScanArgumentError
from airflow_dynamoscan.operators.dynamodb_transform import DynamoDBTransformOperator
from airflow_dynamoscan.scan.decode import deserialize_item
from devtools.sample_data import create_table, put_items
from tests.conftest import fails_task, unique_table_name

pytestmark = pytest.mark.usefixtures("aws_connection_env")

PAGE_ITEMS = 50


class TaskDied(RuntimeError):
    """Stands for the task dying in the middle of its work."""


def add_one(item: dict[str, Any]) -> dict[str, Any]:
    """Not idempotent: applying it twice to an item shows as a counter of 2."""
    return {**item, "applied": item.get("applied", 0) + 1}


def read_table(client: Any, table_name: str) -> dict[str, dict[str, Any]]:
    items = [
        deserialize_item(raw)
        for page in client.get_paginator("scan").paginate(TableName=table_name)
        for raw in page["Items"]
    ]
    return {item["pk"]: item for item in items}


def transformer(table_name: str, checkpoints: Path, **kwargs: Any) -> DynamoDBTransformOperator:
    return DynamoDBTransformOperator(
        task_id="transform",
        table_name=table_name,
        transform=add_one,
        scan_kwargs={"Limit": PAGE_ITEMS},
        checkpoint_destination=str(checkpoints),
        **kwargs,
    )


def die_after_scans(operator: DynamoDBTransformOperator, scans: int) -> None:
    sent = [0]

    def on_send(**_: Any) -> None:
        if sent[0] >= scans:
            raise TaskDied(f"the task died after {scans} Scan requests")
        sent[0] += 1

    operator.hook._scan_client.meta.events.register("before-send.dynamodb.Scan", on_send)


@pytest.mark.parametrize(
    "segments", [{"segment": 1, "total_segments": 2}, {"total_segments": 3, "max_workers": 2}], ids=["segment", "whole"]
)
def test_retry_reapplies_at_most_the_page_in_flight(
    dynalite_client: Any, tmp_path: Path, segments: dict[str, int]
) -> None:
    name = unique_table_name("transform-resume")
    create_table(dynalite_client, name)
    put_items(dynalite_client, name, [{"pk": f"item#{number:05d}", "pad": "x" * 100} for number in range(1000)])
    failing = transformer(name, tmp_path, **segments)
    die_after_scans(failing, 6)
    with pytest.raises(TaskDied):
        failing.execute({})  # type: ignore[arg-type]
    assert list((tmp_path / "_checkpoints").iterdir())  # progress was recorded

    result = transformer(name, tmp_path, **segments).execute({})  # type: ignore[arg-type]
    after = read_table(dynalite_client, name)
    applied = [item.get("applied", 0) for item in after.values()]
    in_scope = len(applied) if "segment" not in segments else result["scanned"] + result["resumed_after"]["scanned"]
    twice = sum(1 for count in applied if count == 2)
    assert len(after) == 1000
    assert sum(1 for count in applied if count >= 1) == in_scope  # every item of the scope transformed
    assert max(applied) <= 2
    # Re-applied only to the pages in flight when the task died: one page per segment being read.
    assert twice <= PAGE_ITEMS * 2, twice
    assert result["resumed_after"]["scanned"] > 0
    print(f"\n{segments}: {result['resumed_after']} before the failure, {twice} item(s) transformed twice")
    assert not (tmp_path / "_checkpoints").exists()  # the checkpoint, and its emptied folder, are gone


def test_checkpoint_refused_with_key_changes(dynalite_client: Any, tmp_path: Path) -> None:
    name = unique_table_name("transform-resume")
    create_table(dynalite_client, name)
    operator = transformer(name, tmp_path, allow_key_change=True)
    with fails_task(InvalidScanArgumentError, match="checkpoint_destination cannot be used with allow_key_change"):
        operator.execute({})  # type: ignore[arg-type]


def test_failure_mid_page_reapplies_only_that_page(dynalite_client: Any, tmp_path: Path) -> None:
    name = unique_table_name("transform-resume")
    create_table(dynalite_client, name)
    put_items(dynalite_client, name, [{"pk": f"item#{number:05d}"} for number in range(600)])
    calls = [0]

    def add_one_then_die(item: dict[str, Any]) -> dict[str, Any]:
        calls[0] += 1
        if calls[0] == 230:  # the 30th item of the 5th page
            raise TaskDied("the transform failed half-way through a page")
        return add_one(item)

    failing = DynamoDBTransformOperator(
        task_id="transform",
        table_name=name,
        transform=add_one_then_die,
        segment=0,
        total_segments=1,
        scan_kwargs={"Limit": PAGE_ITEMS},
        checkpoint_destination=str(tmp_path),
    )
    with pytest.raises(Exception, match="the transform raised TaskDied"):
        failing.execute({})  # type: ignore[arg-type]
    retry = DynamoDBTransformOperator(
        task_id="transform",
        table_name=name,
        transform=add_one_then_die,  # the same transform: its checkpoint applies
        segment=0,
        total_segments=1,
        scan_kwargs={"Limit": PAGE_ITEMS},
        checkpoint_destination=str(tmp_path),
    )
    result = retry.execute({})  # type: ignore[arg-type]
    applied = sorted(item.get("applied", 0) for item in read_table(dynalite_client, name).values())
    assert result["resumed_after"] == {"scanned": 200, "written": 200}
    assert result["scanned"] == 400
    assert applied.count(1) + applied.count(2) == 600
    assert applied.count(2) == 29  # the page in flight: its first 29 items were written before the failure
