"""
Transforms of a table that another writer changes meanwhile, against the local DynamoDB server: no write of the
other writer is lost, no deleted item comes back, no item is transformed twice, and every conflict is counted.

The other writer acts from inside the transform, between the transform's read of an item and its write, so each
conflict happens exactly where a live application would make one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from airflow_dynamoscan.operators.dynamodb_transform import DynamoDBTransformOperator
from airflow_dynamoscan.scan.decode import deserialize_item
from airflow_dynamoscan.write.conditional import ConditionalWriter
from devtools.sample_data import create_table, put_items
from tests.conftest import unique_table_name

pytestmark = pytest.mark.usefixtures("aws_connection_env")


def read_table(client: Any, table_name: str) -> dict[str, dict[str, Any]]:
    """Every item by key, read with botocore's own parser, strongly consistent."""
    pages = client.get_paginator("scan").paginate(TableName=table_name, ConsistentRead=True)
    return {item["pk"]: item for page in pages for item in map(deserialize_item, page["Items"])}


def make_table(client: Any, count: int, **extra: Any) -> str:
    name = unique_table_name("live")
    create_table(client, name)
    items = [{"pk": f"k{n:02d}", "status": "NEW", "count": 0, "visits": 0, **extra} for n in range(count)]
    put_items(client, name, items)
    return name


def migrate(item: dict[str, Any]) -> dict[str, Any]:
    """Lower-case the status and count the transforms: an item transformed twice shows count 2."""
    return {**item, "status": item["status"].lower(), "count": item["count"] + 1}


class Application:
    """The other writer: acts on an item once, the first time the transform meets it, before the transform returns."""

    def __init__(self, client: Any, table_name: str, actions: dict[str, Callable[[Any, str, dict[str, Any]], None]]):
        self.client = client
        self.table_name = table_name
        self.actions = actions
        self.done: set[str] = set()
        self.lock = threading.Lock()

    def visit(self, pk: str) -> None:
        self.client.update_item(
            TableName=self.table_name,
            Key={"pk": {"S": pk}},
            UpdateExpression="SET visits = visits + :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
        )

    def transform(self, item: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            act = item["pk"] in self.actions and item["pk"] not in self.done
            self.done.add(item["pk"])
        if act:
            self.actions[item["pk"]](self, item["pk"], item)
        return migrate(item)


def visit(app: Application, pk: str, _: dict[str, Any]) -> None:
    app.visit(pk)


def delete(app: Application, pk: str, _: dict[str, Any]) -> None:
    app.client.delete_item(TableName=app.table_name, Key={"pk": {"S": pk}})


def add_attribute(app: Application, pk: str, _: dict[str, Any]) -> None:
    app.client.update_item(
        TableName=app.table_name,
        Key={"pk": {"S": pk}},
        UpdateExpression="SET note = :n",
        ExpressionAttributeValues={":n": {"S": "added by the application"}},
    )


def run(**arguments: Any) -> dict[str, Any]:
    operator = DynamoDBTransformOperator(task_id="transform", **arguments)
    result: dict[str, Any] = operator.execute({})  # type: ignore[arg-type]
    return result


def conflict_counts(result: dict[str, Any]) -> tuple[int, int, int]:
    return result["conflicts"], result["reapplied"], result["skipped_conflicts"]


def transformed(count: int = 1, visits: int = 0, **extra: Any) -> dict[str, Any]:
    return {"status": "new", "count": Decimal(count), "visits": Decimal(visits), **extra}


def untransformed(visits: int = 0, **extra: Any) -> dict[str, Any]:
    return {"status": "NEW", "count": Decimal(0), "visits": Decimal(visits), **extra}


def test_reapply_keeps_every_application_write(dynalite_client: Any) -> None:
    name = make_table(dynalite_client, 12)
    app = Application(dynalite_client, name, {"k01": visit, "k02": delete, "k03": add_attribute})
    result = run(table_name=name, transform=app.transform, max_workers=3)

    after = read_table(dynalite_client, name)
    note = "added by the application"
    expected = {f"k{n:02d}": {"pk": f"k{n:02d}", **transformed()} for n in range(12) if n != 2}
    expected["k01"] = {"pk": "k01", **transformed(visits=1)}
    expected["k03"] = {"pk": "k03", **transformed(note=note)}
    assert after == expected
    # k01 and k02 failed their condition; k03's added attribute showed in the write's ALL_OLD, was kept, and the
    # transform of the exact earlier item gave the same result, so nothing more was written.
    assert conflict_counts(result) == (3, 3, 0)
    assert (result["scanned"], result["written"]) == (12, 11)


def test_an_added_attribute_the_transform_depends_on_is_transformed_from_the_exact_earlier_item(
    dynalite_client: Any,
) -> None:
    name = make_table(dynalite_client, 3)

    def flag_notes(item: dict[str, Any]) -> dict[str, Any]:
        return {**migrate(item), "has_note": "note" in item}

    app = Application(dynalite_client, name, {"k01": add_attribute})

    def transform(item: dict[str, Any]) -> dict[str, Any]:
        app.transform(item)
        return flag_notes(item)

    result = run(table_name=name, transform=transform)
    after = read_table(dynalite_client, name)
    # The first write kept the added note but said has_note=False; the item it returned (ALL_OLD) was transformed
    # again, once, and written over the first write.
    assert after["k01"] == {"pk": "k01", **transformed(note="added by the application", has_note=True)}
    assert after["k00"] == {"pk": "k00", **transformed(has_note=False)}
    assert conflict_counts(result) == (1, 1, 0)
    assert result["written"] == 3


def test_skip_leaves_changed_items_as_the_application_left_them(dynalite_client: Any) -> None:
    name = make_table(dynalite_client, 8)
    app = Application(dynalite_client, name, {"k01": visit, "k02": delete, "k03": add_attribute})
    result = run(table_name=name, transform=app.transform, on_conflict="skip", max_workers=2)

    after = read_table(dynalite_client, name)
    expected = {f"k{n:02d}": {"pk": f"k{n:02d}", **transformed()} for n in range(8) if n not in (1, 2, 3)}
    expected["k01"] = {"pk": "k01", **untransformed(visits=1)}
    expected["k03"] = {"pk": "k03", **untransformed(note="added by the application")}
    assert after == expected
    assert conflict_counts(result) == (3, 0, 3)
    assert result["written"] == 5


def test_overwrite_is_the_last_writer_wins(dynalite_client: Any) -> None:
    name = make_table(dynalite_client, 4)
    app = Application(dynalite_client, name, {"k01": visit, "k02": delete})
    result = run(table_name=name, transform=app.transform, on_conflict="overwrite")

    after = read_table(dynalite_client, name)
    # The application's visit is lost and its deleted item is back: what on_conflict="overwrite" is named for.
    assert after["k01"] == {"pk": "k01", **transformed(visits=0)}
    assert after["k02"] == {"pk": "k02", **transformed()}
    assert conflict_counts(result) == (0, 0, 0)


def test_a_conflict_on_every_try_is_skipped_after_max_conflict_retries(dynalite_client: Any) -> None:
    name = make_table(dynalite_client, 3)
    calls: list[str] = []

    def always_visited(item: dict[str, Any]) -> dict[str, Any]:
        calls.append(item["pk"])
        if item["pk"] == "k01":
            Application(dynalite_client, name, {}).visit("k01")
        return migrate(item)

    result = run(table_name=name, transform=always_visited, max_conflict_retries=2)
    assert calls.count("k01") == 3  # the first read and two re-reads
    assert read_table(dynalite_client, name)["k01"] == {"pk": "k01", **untransformed(visits=3)}
    assert conflict_counts(result) == (3, 0, 1)


def test_version_attribute_checks_and_raises_the_version(dynalite_client: Any) -> None:
    name = make_table(dynalite_client, 4, version=7)

    def bump(app: Application, pk: str, _: dict[str, Any]) -> None:
        app.client.update_item(
            TableName=name,
            Key={"pk": {"S": pk}},
            UpdateExpression="SET visits = visits + :one, version = version + :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
        )

    app = Application(dynalite_client, name, {"k01": bump})
    result = run(table_name=name, transform=app.transform, version_attribute="version")
    after = read_table(dynalite_client, name)
    assert after["k00"] == {"pk": "k00", **transformed(version=Decimal(8))}
    assert after["k01"] == {"pk": "k01", **transformed(visits=1, version=Decimal(9))}
    assert conflict_counts(result) == (1, 1, 0)


def test_moves_keep_application_writes_and_deletes(dynalite_client: Any) -> None:
    name = make_table(dynalite_client, 6)

    def rename(item: dict[str, Any]) -> dict[str, Any]:
        return {**migrate(item), "pk": item["pk"].replace("k", "m")}

    # The application acts after the scan read everything, before the moves: on the old items.
    writes = {"k01": "visit", "k02": "delete"}
    pending = dict(writes)
    app = Application(dynalite_client, name, {})

    def rename_then_act(item: dict[str, Any]) -> dict[str, Any]:
        result = rename(item)
        if item["pk"] == "k05":
            for pk, action in sorted(pending.items()):
                app.visit(pk) if action == "visit" else delete(app, pk, item)
            pending.clear()
        return result

    result = run(table_name=name, transform=rename_then_act, allow_key_change=True, total_segments=1)
    after = read_table(dynalite_client, name)
    expected = {f"m{n:02d}": {"pk": f"m{n:02d}", **transformed()} for n in range(6) if n != 2}
    expected["m01"] = {"pk": "m01", **transformed(visits=1)}
    assert after == expected  # k02, deleted by the application, is not brought back as m02
    assert conflict_counts(result) == (2, 1, 0)
    assert (result["key_changed"], result["written"]) == (6, 5)


def test_a_400_kb_item_is_checked_and_an_item_too_wide_to_check_is_skipped(dynalite_client: Any) -> None:
    name = make_table(dynalite_client, 2)
    big = "x" * 395_000
    wide = {f"attribute_{n:03d}": n for n in range(400)}
    put_items(dynalite_client, name, [{"pk": "big", "status": "NEW", "count": 0, "visits": 0, "blob": big}])
    put_items(dynalite_client, name, [{"pk": "wide", "status": "NEW", "count": 0, "visits": 0, **wide}])
    app = Application(dynalite_client, name, {"big": visit})

    result = run(table_name=name, transform=app.transform)
    after = read_table(dynalite_client, name)
    assert after["big"] == {"pk": "big", **transformed(visits=1, blob=big)}
    wide_values = {name: Decimal(value) for name, value in wide.items()}
    assert after["wide"] == {"pk": "wide", **untransformed(**wide_values)}
    assert result["skipped_uncheckable"] == 1
    assert conflict_counts(result) == (1, 1, 0)

    # With a version attribute the wide item is checked by its version alone, and written.
    result = run(table_name=name, transform=migrate, version_attribute="version")
    assert read_table(dynalite_client, name)["wide"] == {
        "pk": "wide",
        **transformed(version=Decimal(1), **wide_values),
    }
    assert result["skipped_uncheckable"] == 0


def test_copy_puts_only_where_the_target_holds_nothing_else(dynalite_client: Any) -> None:
    name = make_table(dynalite_client, 4)
    target = unique_table_name("copy")
    create_table(dynalite_client, target)
    put_items(dynalite_client, target, [{"pk": "k02", "status": "written by the new application"}])
    result = run(table_name=name, target_table_name=target, transform=migrate)
    after = read_table(dynalite_client, target)
    assert after["k02"] == {"pk": "k02", "status": "written by the new application"}
    assert {pk: item for pk, item in after.items() if pk != "k02"} == {
        f"k{n:02d}": {"pk": f"k{n:02d}", **transformed()} for n in (0, 1, 3)
    }
    assert (result["written"], result["conflicts"], result["skipped_conflicts"]) == (3, 1, 1)
    # A second run finds its own items in place: nothing is a conflict but the application's item.
    again = run(table_name=name, target_table_name=target, transform=migrate)
    assert (again["written"], again["skipped_conflicts"]) == (3, 1)


def test_conditional_writer_refuses_overwrite_and_bad_policies(dynalite_client: Any) -> None:
    from airflow_dynamoscan.exceptions import InvalidScanArgumentError

    with pytest.raises(InvalidScanArgumentError, match=r"on_conflict='last' is not allowed; allowed: 'reapply'"):
        ConditionalWriter(dynalite_client, "orders", ["pk"], on_conflict="last")
    with pytest.raises(InvalidScanArgumentError, match=r"max_conflict_retries=-1 is not allowed"):
        DynamoDBTransformOperator(task_id="t", table_name="orders", transform=migrate, max_conflict_retries=-1)


class Workload:
    """
    An application writing a table for as long as a transform runs: visits (``visits + 1`` on an existing item),
    deletes, and inserts of new or deleted keys, chosen at random; its own model of every key's state is exact,
    since it is the only writer of ``visits`` and of the table's set of keys.
    """

    def __init__(self, client: Any, table_name: str, keys: int, seed: int) -> None:
        import random

        self.client = client
        self.table_name = table_name
        self.random = random.Random(seed)
        self.keys = [f"k{n:03d}" for n in range(keys)]
        self.visits: dict[str, int | None] = dict.fromkeys(self.keys[: keys * 3 // 4], 0)
        self.inserted: set[str] = set()
        self.stop = threading.Event()
        self.operations = 0

    def initial_items(self) -> list[dict[str, Any]]:
        return [{"pk": pk, "status": "NEW", "count": 0, "visits": 0} for pk in self.visits]

    def step(self) -> None:
        from botocore.exceptions import ClientError

        pk = self.random.choice(self.keys)
        key = {"pk": {"S": pk}}
        present = self.visits.get(pk) is not None
        choice = self.random.random()
        try:
            if present and choice < 0.7:
                self.client.update_item(
                    TableName=self.table_name,
                    Key=key,
                    UpdateExpression="SET visits = visits + :one",
                    ConditionExpression="attribute_exists(pk)",
                    ExpressionAttributeValues={":one": {"N": "1"}},
                )
                self.visits[pk] = (self.visits[pk] or 0) + 1
            elif present:
                self.client.delete_item(TableName=self.table_name, Key=key)
                self.visits[pk] = None
            else:
                item = {"pk": {"S": pk}, "status": {"S": "NEW"}, "count": {"N": "0"}, "visits": {"N": "0"}}
                self.client.put_item(TableName=self.table_name, Item=item)
                self.visits[pk] = 0
                self.inserted.add(pk)
        except ClientError as error:  # pragma: no cover - the model is exact: a failure here is a test bug
            raise AssertionError(f"the application's write of {pk} failed: {error}") from error
        self.operations += 1

    def run(self) -> None:
        while not self.stop.is_set():
            self.step()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_mapped_transform_beside_a_live_application_under_throttling(
    dynalite_endpoint: str, dynalite_client: Any, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    import json

    from devtools.dynamodb_proxy import running_proxy

    name = unique_table_name("live")
    create_table(dynalite_client, name)
    workload = Workload(dynalite_client, name, keys=160, seed=seed)
    put_items(dynalite_client, name, workload.initial_items())
    writes = {"UpdateItem", "PutItem", "DeleteItem"}
    results: list[dict[str, Any]] = []
    errors: list[BaseException] = []

    def transform_segment(segment: int) -> None:
        try:
            results.append(run(table_name=name, transform=migrate, segment=segment, total_segments=3, max_workers=2))
        except BaseException as error:  # noqa: BLE001 - reported by the test thread
            errors.append(error)

    with running_proxy(
        dynalite_endpoint,
        throttle_fraction=0.15,
        drop_fraction=0.05,
        drop_after_forward=True,
        fault_operations=writes,
        seed=seed,
    ) as proxy:
        extra = {"region_name": "us-east-1", "endpoint_url": proxy.endpoint_url}
        connection = {"conn_type": "aws", "login": "testing", "password": "testing", "extra": extra}
        monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(connection))
        application = threading.Thread(target=workload.run)
        application.start()
        tasks = [threading.Thread(target=transform_segment, args=(segment,)) for segment in range(3)]
        for task in tasks:
            task.start()
        for task in tasks:
            task.join()
        workload.stop.set()
        application.join()
    assert not errors, errors

    after = read_table(dynalite_client, name)
    totals = {key: sum(result[key] for result in results) for key in ("conflicts", "reapplied", "skipped_conflicts")}
    faults = sum(
        proxy.stats.operation(operation).throttled + proxy.stats.operation(operation).dropped for operation in writes
    )
    print(f"\n[seed {seed}] application writes {workload.operations}, write faults {faults}, {totals}")
    assert faults > 0
    # No deleted item is back, no item is missing, and no visit of the application is lost.
    assert {pk: item["visits"] for pk, item in after.items()} == {
        pk: visits for pk, visits in workload.visits.items() if visits is not None
    }
    # No item is transformed twice; an item that was there all along is transformed once, or skipped and reported.
    assert all(
        item["count"] in (0, 1) and item["status"] == ("new" if item["count"] else "NEW") for item in after.values()
    )
    there_all_along = [pk for pk in after if pk not in workload.inserted]
    untransformed_items = [pk for pk in there_all_along if after[pk]["count"] == 0]
    assert len(untransformed_items) <= totals["skipped_conflicts"]
