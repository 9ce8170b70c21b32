"""
The Iceberg mirror of a DynamoDB table (moto DynamoDB and S3, a SQLite catalog): after a load and after every
incremental window of a calendar, the mirror read back equals the table; commits are exactly once and in order.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from tests.conftest import make_client
from tests.iceberg_support import (
    SourceTable,
    assert_mirror_equals,
    mirror_items,
    requires_sql_catalog,
    sort_items,
    sql_catalog_properties,
)

pytestmark = requires_sql_catalog

BUCKET = "exports"
BIG = Decimal("12345678901234567890123456789012345678")  # 38 digits


def rich_item(number: int) -> dict[str, Any]:
    """An item with every DynamoDB type; some attributes only on some items."""
    item: dict[str, Any] = {
        "pk": f"customer#{number % 4}",
        "sk": Decimal(number),
        "name": f"näme {number}",
        "count": Decimal(number * 7),
        "big": BIG - number,
        "price": Decimal(f"{number}.25"),
        "active": number % 2 == 0,
        "blob": bytes([number, 0, 255]),
        "tags": {f"t{number}", "common"},
        "scores": {Decimal(1), Decimal(number + 2)},
        "blobs": {b"\x01", bytes([number + 2])},
        "history": [Decimal(number), "x", None, {"nested": True}],
        "address": {"city": "Zürich", "zip": Decimal(8000 + number)},
    }
    if number % 3 == 0:
        item["note"] = None
    if number == 4:
        item["count"] = "not a number"  # does not fit the int64 column: lands in _extra
    return item


@pytest.fixture
def aws() -> Iterator[tuple[Any, Any]]:
    with mock_aws():
        s3 = make_client(service="s3")
        s3.create_bucket(Bucket=BUCKET)
        yield make_client(), s3


@pytest.fixture
def catalog(tmp_path: Path) -> Any:
    from airflow_dynamoscan.iceberg import open_catalog

    return open_catalog("mirror", sql_catalog_properties(tmp_path))


def load(source: SourceTable, s3: Any, catalog: Any, identifier: str, **create: Any) -> Any:
    """The first load, from a full export, staged in two files as two mapped tasks would."""
    from airflow_dynamoscan.export.native import read_summary
    from airflow_dynamoscan.iceberg import IcebergMirror, Window, plan_layout
    from airflow_dynamoscan.iceberg.exports import export_items

    export = source.full_export(s3, BUCKET)
    items = list(export_items(s3, read_summary(s3, BUCKET, export.summary_key)))
    mirror = IcebergMirror(catalog, identifier, source_table=source.name)
    sample = [item for item in items if not isinstance(item.get("count"), str)][:5]  # the misfit is not sampled
    mirror.create(
        plan_layout(sample, source.key_schema, new_attributes=create.pop("new_attributes", "evolve")), **create
    )
    staged = [mirror.stage_items(items[index::2], load_id="load-1", name=f"segment-{index}") for index in range(2)]
    result = mirror.load(Window(end=source.window_end, export_arn=export.export_arn), paths=[s["path"] for s in staged])
    assert (result.operation, result.rows_added, result.already_applied) == ("load", len(items), False)
    return mirror


def merge(mirror: Any, source: SourceTable, s3: Any) -> Any:
    from airflow_dynamoscan.export.native import read_summary
    from airflow_dynamoscan.iceberg import Window
    from airflow_dynamoscan.iceberg.exports import export_changes

    export, start, end = source.window(s3, BUCKET)
    changes = export_changes(s3, read_summary(s3, BUCKET, export.summary_key))
    return mirror.merge(changes, Window(end=end, start=start, export_arn=export.export_arn))


@pytest.mark.parametrize("bucket_count", [None, 4], ids=["unpartitioned", "bucket-4"])
def test_a_calendar_of_windows_keeps_the_mirror_equal_to_the_table(
    aws: tuple[Any, Any], catalog: Any, bucket_count: int | None
) -> None:
    dynamodb, s3 = aws
    source = SourceTable(
        dynamodb,
        "orders",
        [{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "N"}],
    )
    for number in range(12):
        source.put(rich_item(number))
    mirror = load(source, s3, catalog, "lake.orders", bucket_count=bucket_count)
    loaded = assert_mirror_equals(mirror.table(), source)
    assert len(loaded) == 12
    columns = {field.name: str(field.field_type) for field in mirror.table().schema().fields}
    assert columns == {
        "pk": "string",
        "sk": "long",
        "active": "boolean",
        "address": "string",
        "big": "decimal(38, 0)",
        "blob": "binary",
        "blobs": "string",
        "count": "long",
        "history": "string",
        "name": "string",
        "note": "string",
        "price": "decimal(38, 2)",
        "scores": "string",
        "tags": "string",
        "_extra": "string",
    }
    assert mirror.table().schema().identifier_field_names() == {"pk", "sk"}
    row = next(r for r in mirror.table().scan(row_filter="sk == 3").to_arrow().to_pylist())
    assert (row["big"], row["blob"], row["active"], row["count"]) == (BIG - 3, b"\x03\x00\xff", False, 21)
    row4 = mirror.table().scan(row_filter="sk == 4").to_arrow().to_pylist()[0]
    assert (row4["count"], row4["_extra"]) == (None, '{"count":"not a number"}')

    # Window 1: inserts, updates, deletes.
    for number in (12, 13):
        source.put(rich_item(number))
    source.put({**rich_item(2), "name": "renamed", "price": Decimal("99.99")})
    source.delete({"pk": "customer#1", "sk": Decimal(5)})
    source.delete({"pk": "customer#3", "sk": Decimal(7)})
    first = merge(mirror, source, s3)
    assert (first.rows_added, first.rows_deleted, first.already_applied) == (3, 2, False)
    assert_mirror_equals(mirror.table(), source)
    before_quiet = first.snapshot_id

    # Window 2: quiet; still recorded, so the chain moves on.
    quiet = merge(mirror, source, s3)
    assert (quiet.rows_added, quiet.rows_deleted) == (0, 0)
    assert quiet.snapshot_id != before_quiet
    assert mirror.applied().end == source.window_end
    assert_mirror_equals(mirror.table(), source)

    # Window 3: a key deleted and re-inserted, a key changed twice, a new attribute (a new column).
    state_before = sort_items(mirror_items(mirror.table()), source.keys)
    snapshot_before = mirror.table().current_snapshot().snapshot_id
    source.delete({"pk": "customer#0", "sk": Decimal(0)})
    source.put({"pk": "customer#0", "sk": Decimal(0), "name": "back again"})
    source.put({**rich_item(6), "name": "first change"})
    source.put({**rich_item(6), "name": "second change", "discount": Decimal("0.5")})
    third = merge(mirror, source, s3)
    assert (third.rows_added, third.rows_deleted) == (2, 0)
    items = assert_mirror_equals(mirror.table(), source)
    assert {"pk": "customer#0", "sk": Decimal(0), "name": "back again"} in items
    assert str(mirror.table().schema().find_field("discount").field_type) == "decimal(38, 1)"

    # Time travel: the previous snapshot is the previous state.
    assert sort_items(mirror_items(mirror.table(), snapshot_id=snapshot_before), source.keys) == state_before


def test_binary_keys_and_new_attributes_in_the_extra_column(aws: tuple[Any, Any], catalog: Any) -> None:
    dynamodb, s3 = aws
    source = SourceTable(dynamodb, "blobs", [{"AttributeName": "id", "AttributeType": "B"}])
    for number in range(6):
        source.put({"id": bytes([number, 0, 200]), "value": Decimal(number)})
    mirror = load(source, s3, catalog, "lake.blobs", new_attributes="extra")
    assert_mirror_equals(mirror.table(), source)
    source.put({"id": bytes([1, 0, 200]), "value": Decimal(10), "fresh": "new"})
    source.delete({"id": bytes([2, 0, 200])})
    source.put({"id": b"\x00", "value": BIG})
    merge(mirror, source, s3)
    assert_mirror_equals(mirror.table(), source)
    assert [field.name for field in mirror.table().schema().fields] == ["id", "value", "_extra"]
    extras = {row["id"]: row["_extra"] for row in mirror.table().scan().to_arrow().to_pylist()}
    assert extras[bytes([1, 0, 200])] == '{"fresh":"new"}'
    assert extras[b"\x00"] == f'{{"value":{BIG}}}'  # beyond int64: does not fit the int64 column


def test_a_retried_commit_applies_nothing_and_windows_apply_in_order(aws: tuple[Any, Any], catalog: Any) -> None:
    from airflow_dynamoscan.export.native import read_summary
    from airflow_dynamoscan.iceberg import Window, WindowOrderError
    from airflow_dynamoscan.iceberg.exports import export_changes

    dynamodb, s3 = aws
    source = SourceTable(dynamodb, "plain", [{"AttributeName": "pk", "AttributeType": "S"}])
    source.put({"pk": "a", "n": Decimal(1)})
    mirror = load(source, s3, catalog, "lake.plain")
    source.put({"pk": "b", "n": Decimal(2)})
    export, start, end = source.window(s3, BUCKET)
    changes = export_changes(s3, read_summary(s3, BUCKET, export.summary_key))
    window = Window(end=end, start=start, export_arn=export.export_arn)
    first = mirror.merge(changes, window)
    snapshots = len(mirror.table().snapshots())
    again = mirror.merge(changes, window)
    assert (again.already_applied, again.snapshot_id, again.rows_added) == (True, first.snapshot_id, 0)
    assert len(mirror.table().snapshots()) == snapshots
    assert_mirror_equals(mirror.table(), source)
    with pytest.raises(WindowOrderError, match="does not start where the last applied one ended"):
        mirror.merge(changes, Window(end=end + timedelta(hours=2), start=end + timedelta(hours=1)))
    with pytest.raises(WindowOrderError, match="already holds a load"):
        mirror.load(Window(end=end + timedelta(hours=3)))


def test_a_commit_killed_in_the_catalog_leaves_the_last_snapshot(
    aws: tuple[Any, Any], catalog: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    dynamodb, s3 = aws
    source = SourceTable(dynamodb, "killed", [{"AttributeName": "pk", "AttributeType": "S"}])
    for number in range(5):
        source.put({"pk": f"k{number}", "n": Decimal(number)})
    mirror = load(source, s3, catalog, "lake.killed")
    loaded = mirror.table().current_snapshot().snapshot_id
    expected = sort_items(mirror_items(mirror.table()), source.keys)
    source.put({"pk": "k1", "n": Decimal(100)})
    source.delete({"pk": "k2"})

    def killed(*args: Any, **kwargs: Any) -> Any:
        raise SystemExit("killed during the commit")

    monkeypatch.setattr(type(catalog), "commit_table", killed)
    export_window = source.window(s3, BUCKET)
    source.pending = []
    with pytest.raises(SystemExit):
        _merge_export(mirror, s3, export_window)
    assert mirror.table().current_snapshot().snapshot_id == loaded
    assert sort_items(mirror_items(mirror.table()), source.keys) == expected
    orphans = mirror.orphan_files(older_than=timedelta(0))
    # The two loaded files each held a changed key: both rewritten by the delete, plus the appended file; no
    # snapshot references them.
    assert len(orphans) == 3
    referenced = set(mirror.table().inspect.all_files().column("file_path").to_pylist())
    assert not referenced & set(orphans)
    monkeypatch.undo()
    result = _merge_export(mirror, s3, export_window)
    assert (result.rows_added, result.rows_deleted, result.already_applied) == (1, 1, False)
    assert_mirror_equals(mirror.table(), source)
    assert mirror.remove_orphan_files(older_than=timedelta(0)) == orphans
    assert mirror.orphan_files(older_than=timedelta(0)) == []
    assert_mirror_equals(mirror.table(), source)


def _merge_export(mirror: Any, s3: Any, export_window: tuple[Any, Any, Any]) -> Any:
    from airflow_dynamoscan.export.native import read_summary
    from airflow_dynamoscan.iceberg import Window
    from airflow_dynamoscan.iceberg.exports import export_changes

    export, start, end = export_window
    changes = export_changes(s3, read_summary(s3, BUCKET, export.summary_key))
    return mirror.merge(changes, Window(end=end, start=start, export_arn=export.export_arn))


def test_two_commits_racing_apply_the_window_once(
    aws: tuple[Any, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_dynamoscan.iceberg import IcebergMirror, open_catalog

    dynamodb, s3 = aws
    properties = sql_catalog_properties(tmp_path)
    source = SourceTable(dynamodb, "raced", [{"AttributeName": "pk", "AttributeType": "S"}])
    source.put({"pk": "a", "n": Decimal(1)})
    mine, theirs = open_catalog("mirror", properties), open_catalog("mirror", properties)
    mirror = load(source, s3, mine, "lake.raced")
    other = IcebergMirror(theirs, "lake.raced", source_table="raced", retry_wait=0.01)
    mirror.retry_wait = 0.01
    source.put({"pk": "b", "n": Decimal(2)})
    source.put({"pk": "a", "n": Decimal(3)})
    export_window = source.window(s3, BUCKET)
    original = type(mine).commit_table
    raced: list[Any] = []

    def commit_after_the_other(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self is mine and not raced:
            # The other task commits the same window between this one's read of the table and its commit.
            raced.append(_merge_export(other, s3, export_window))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(mine), "commit_table", commit_after_the_other)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = _merge_export(mirror, s3, export_window)
    assert raced[0].already_applied is False
    assert (result.already_applied, result.attempts, result.snapshot_id) == (True, 2, raced[0].snapshot_id)
    assert_mirror_equals(mirror.table(), source)
    assert len(mirror_items(mirror.table())) == 2


def test_a_replacement_overwrites_the_contents_in_one_snapshot(aws: tuple[Any, Any], catalog: Any) -> None:
    from airflow_dynamoscan.iceberg import Window

    dynamodb, s3 = aws
    source = SourceTable(dynamodb, "nopitr", [{"AttributeName": "pk", "AttributeType": "S"}])
    for number in range(4):
        source.put({"pk": f"k{number}", "n": Decimal(number)})
    mirror = load(source, s3, catalog, "lake.nopitr")
    source.delete({"pk": "k0"})
    source.put({"pk": "k9", "n": Decimal(9), "new": True})
    staged = mirror.stage_items(source.items(), load_id="scan-2", name="segment-0")
    end = source.window_end + timedelta(days=1)
    result = mirror.load(Window(end=end), paths=[staged["path"]], replace=True)
    assert (result.operation, result.rows_added) == ("replace", 4)
    assert_mirror_equals(mirror.table(), source)
    assert mirror.load(Window(end=end), paths=[staged["path"]], replace=True).already_applied is True
    assert_mirror_equals(mirror.table(), source)
