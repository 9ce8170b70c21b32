"""
Transforms that change keys, as a DAG author runs them, on the local DynamoDB server: every item is transformed
exactly once, whatever the segment count, the order the segment tasks run in, a retry or a dry run; what cannot
be guaranteed (one task per segment moving items in place) is refused before anything is read or written.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

from airflow_dynamoscan.compat import AirflowFailException
from airflow_dynamoscan.operators.dynamodb_transform import DynamoDBTransformOperator
from airflow_dynamoscan.scan.decode import deserialize_item
from devtools.sample_data import create_table, put_items
from tests.conftest import unique_table_name

pytestmark = pytest.mark.usefixtures("aws_connection_env")

ITEM_COUNT = 200


def make_table(client: Any, count: int = ITEM_COUNT) -> str:
    name = unique_table_name("key-change")
    create_table(client, name)
    put_items(client, name, [{"pk": f"k{number:03d}", "n": number, "moves": 0} for number in range(count)])
    return name


def read_table(client: Any, table_name: str) -> dict[str, dict[str, Any]]:
    """Every item by key, read with botocore's own parser."""
    items = {}
    for page in client.get_paginator("scan").paginate(TableName=table_name, ConsistentRead=True):
        for raw in page["Items"]:
            item = deserialize_item(raw)
            items[item["pk"]] = item
    return items


def segment_of_keys(client: Any, table_name: str, total_segments: int) -> dict[str, int]:
    """Which segment of ``total_segments`` each key of the table is read in."""
    found = {}
    for segment in range(total_segments):
        pages = client.get_paginator("scan").paginate(
            TableName=table_name, Segment=segment, TotalSegments=total_segments
        )
        for page in pages:
            for raw in page["Items"]:
                found[raw["pk"]["S"]] = segment
    return found


def move(item: dict[str, Any]) -> dict[str, Any]:
    """Give every item a new key and count how often it was moved: a second pass shows as NEW-NEW-... and 2."""
    return {**item, "pk": f"NEW-{item['pk']}", "moves": item["moves"] + 1}


def moved_once(count: int = ITEM_COUNT) -> dict[str, dict[str, Any]]:
    return {f"NEW-k{number:03d}": {"pk": f"NEW-k{number:03d}", "n": number, "moves": 1} for number in range(count)}


@pytest.mark.parametrize("total_segments", [1, 3, 8])
def test_one_task_moves_every_item_exactly_once(dynalite_client: Any, total_segments: int) -> None:
    name = make_table(dynalite_client)
    before = segment_of_keys(dynalite_client, name, total_segments)
    result = DynamoDBTransformOperator(
        task_id="rekey", table_name=name, transform=move, allow_key_change=True, total_segments=total_segments
    ).execute({})  # type: ignore[arg-type]
    assert read_table(dynalite_client, name) == moved_once()
    assert (result["scanned"], result["written"], result["key_changed"]) == (ITEM_COUNT, ITEM_COUNT, ITEM_COUNT)
    if total_segments > 1:
        # Moved items landed both in segments read before and in segments read after their old one.
        after = segment_of_keys(dynalite_client, name, total_segments)
        landed = {(after[f"NEW-{key}"] > old) - (after[f"NEW-{key}"] < old) for key, old in before.items()}
        assert landed == {-1, 0, 1}


def test_a_serial_scan_never_reads_the_items_it_moved(dynalite_client: Any) -> None:
    # One segment, small pages: the new keys land in the unread part of the very scan that moves them.
    name = make_table(dynalite_client)
    DynamoDBTransformOperator(
        task_id="rekey", table_name=name, transform=move, allow_key_change=True, scan_kwargs={"Limit": 7}
    ).execute({})  # type: ignore[arg-type]
    assert read_table(dynalite_client, name) == moved_once()


def task_orders(total_segments: int) -> dict[str, list[int]]:
    forward = list(range(total_segments))
    interleaved = forward[::2] + forward[1::2]
    return {"forward": forward, "reversed": forward[::-1], "interleaved": interleaved}


@pytest.mark.parametrize(("total_segments", "order"), [(3, "forward"), (3, "reversed"), (8, "interleaved")])
def test_mapped_in_place_key_changes_are_refused_before_anything_is_read(
    dynalite_client: Any, total_segments: int, order: str
) -> None:
    name = make_table(dynalite_client)
    original = read_table(dynalite_client, name)
    for segment in task_orders(total_segments)[order]:
        operator = DynamoDBTransformOperator(
            task_id="rekey",
            table_name=name,
            transform=move,
            allow_key_change=True,
            segment=segment,
            total_segments=total_segments,
            retries=2,
        )
        scans: list[int] = []
        operator.hook._scan_client.meta.events.register("before-call.dynamodb.Scan", lambda _s=scans, **_: _s.append(1))
        with pytest.raises(AirflowFailException) as raised:
            operator.execute({})  # type: ignore[arg-type]
        assert str(raised.value) == (
            f"Table {name!r}: allow_key_change=True is not allowed in a task that transforms one segment "
            f"(segment={segment} of total_segments={total_segments}) in place: an item another segment's task "
            "moves can land in this segment and be transformed twice. Change keys in one task over the whole "
            f"table (segment=None, total_segments={total_segments}: its threads read every segment before any "
            "item moves), or write to another table with target_table_name."
        )
        assert scans == []
    assert read_table(dynalite_client, name) == original


@pytest.mark.parametrize(("total_segments", "order"), [(1, "forward"), (3, "reversed"), (8, "interleaved")])
def test_mapped_dry_runs_count_moves_and_write_nothing(dynalite_client: Any, total_segments: int, order: str) -> None:
    name = make_table(dynalite_client)
    original = read_table(dynalite_client, name)
    results = [
        DynamoDBTransformOperator(
            task_id="rekey",
            table_name=name,
            transform=move,
            allow_key_change=True,
            dry_run=True,
            segment=segment,
            total_segments=total_segments,
        ).execute({})  # type: ignore[arg-type]
        for segment in task_orders(total_segments)[order]
    ]
    assert sum(result["key_changed"] for result in results) == ITEM_COUNT
    assert sum(result["would_write"] for result in results) == ITEM_COUNT
    assert {result["written"] for result in results} == {0}
    assert read_table(dynalite_client, name) == original


@pytest.mark.parametrize(
    ("total_segments", "order"), [(1, "forward"), (3, "forward"), (3, "reversed"), (8, "interleaved")]
)
def test_mapped_copies_with_new_keys_transform_each_item_once(
    dynalite_client: Any, total_segments: int, order: str
) -> None:
    name = make_table(dynalite_client)
    target = unique_table_name("key-change-copy")
    create_table(dynalite_client, target)
    original = read_table(dynalite_client, name)
    for segment in task_orders(total_segments)[order]:
        DynamoDBTransformOperator(
            task_id="copy",
            table_name=name,
            target_table_name=target,
            transform=move,
            segment=segment,
            total_segments=total_segments,
        ).execute({})  # type: ignore[arg-type]
    assert read_table(dynalite_client, target) == moved_once()
    assert read_table(dynalite_client, name) == original


class FailsOnce:
    """A transform that raises on its 120th item the first time it runs, as a transient fault would."""

    def __init__(self) -> None:
        self.calls = 0
        self.seen: defaultdict[str, int] = defaultdict(int)

    def __call__(self, item: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        if self.calls == 120:
            raise ConnectionError("lost the lookup service")
        self.seen[item["pk"]] += 1
        return move(item)


@pytest.mark.parametrize("total_segments", [1, 8])
def test_a_retried_key_change_moves_each_item_once(dynalite_client: Any, total_segments: int) -> None:
    name = make_table(dynalite_client)
    transform = FailsOnce()

    def run() -> dict[str, Any]:
        return DynamoDBTransformOperator(
            task_id="rekey",
            table_name=name,
            transform=transform,
            allow_key_change=True,
            total_segments=total_segments,
            max_workers=4,
        ).execute({})  # type: ignore[arg-type]

    with pytest.raises(AirflowFailException, match="the transform raised ConnectionError"):
        run()
    # Nothing moved before the failure: the items are where they were, none transformed.
    assert sorted(read_table(dynalite_client, name)) == [f"k{number:03d}" for number in range(ITEM_COUNT)]
    result = run()
    assert result["key_changed"] == ITEM_COUNT
    assert read_table(dynalite_client, name) == moved_once()
    assert not [key for key in transform.seen if key.startswith("NEW-")]


def test_swapped_keys_leave_each_item_once(dynalite_client: Any) -> None:
    name = unique_table_name("key-swap")
    create_table(dynalite_client, name)
    put_items(dynalite_client, name, [{"pk": f"k{number}", "n": number} for number in range(10)])

    def swap_pairs(item: dict[str, Any]) -> dict[str, Any]:
        number = int(item["pk"][1:])
        return {**item, "pk": f"k{number ^ 1}"}

    DynamoDBTransformOperator(
        task_id="swap", table_name=name, transform=swap_pairs, allow_key_change=True, total_segments=4
    ).execute({})  # type: ignore[arg-type]
    assert read_table(dynalite_client, name) == {
        f"k{number}": {"pk": f"k{number}", "n": number ^ 1} for number in range(10)
    }
