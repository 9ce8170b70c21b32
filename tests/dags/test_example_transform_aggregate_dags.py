"""The transform and aggregate example DAGs, run with ``dag.test()`` against the local DynamoDB server."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

from airflow_dynamoscan.scan.decode import deserialize_item
from devtools.sample_data import create_table, put_items, sample_item
from tests.conftest import PROJECT_ROOT, unique_table_name

pytestmark = pytest.mark.usefixtures("airflow_db", "aws_connection_env")

EXAMPLE_DAGS = PROJECT_ROOT / "example_dags"
TOTAL_SEGMENTS = 4
OLD_STAMP = "2020-01-01T00:00:00+00:00"


def load_dag(file_name: str, dag_id: str) -> Any:
    from airflow.models import DagBag

    bag = DagBag(dag_folder=str(EXAMPLE_DAGS / file_name))
    assert bag.import_errors == {}
    return bag.dags[dag_id]


def read_table(client: Any, table_name: str) -> dict[str, dict[str, Any]]:
    items = [
        deserialize_item(raw)
        for page in client.get_paginator("scan").paginate(TableName=table_name)
        for raw in page["Items"]
    ]
    return {item["pk"]: item for item in items}


def results_by_map_index(dag_run: Any, task_id: str) -> dict[int, Any]:
    # TaskInstance.xcom_pull reads the metadata database the same way on Airflow 2.11 and 3.
    from airflow import settings
    from airflow.models.taskinstance import TaskInstance

    with settings.Session() as session:
        instances = session.query(TaskInstance).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id=task_id)
        return {ti.map_index: ti.xcom_pull(task_ids=task_id, map_indexes=ti.map_index) for ti in instances}


def task_states(dag_run: Any) -> set[tuple[str, int, str, int]]:
    from airflow import settings
    from airflow.models.taskinstance import TaskInstance

    with settings.Session() as session:
        instances = session.query(TaskInstance).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id).all()
        states = [(ti.task_id, ti.map_index, str(ti.state), ti.try_number) for ti in instances]
    assert len(states) == len(set(states))
    return set(states)


def order(number: int) -> dict[str, Any]:
    """Upper-case status for every third order; every fifth one already normalised earlier (lower-case, stamped)."""
    item = sample_item(number, padding=20)
    if number % 3 == 0:
        item["status"] = item["status"].upper()
    if number % 5 == 0:
        item["updated_at"] = OLD_STAMP
    return item


def test_transform_dag_normalises_every_segment_once(dynalite_client: Any) -> None:
    dag = load_dag("example_dynamodb_transform.py", "example_dynamodb_transform")
    name = unique_table_name("orders")
    create_table(dynalite_client, name)
    items = [order(number) for number in range(400)]
    put_items(dynalite_client, name, items)
    already_normalised = {item["pk"] for item in items if item["n"] % 5 == 0 and item["n"] % 3 != 0}

    dag_run = dag.test(run_conf={"table_name": name})

    assert str(dag_run.state) == "success"
    states = task_states(dag_run)
    for task_id in ("dry_run", "normalise"):
        assert sorted(key[1] for key in states if key[0] == task_id) == list(range(TOTAL_SEGMENTS))
    assert {(state, try_number) for _, _, state, try_number in states} == {("success", 1)}

    dry_runs = results_by_map_index(dag_run, "dry_run")
    runs = results_by_map_index(dag_run, "normalise")
    assert sorted(result["segment"] for result in runs.values()) == list(range(TOTAL_SEGMENTS))
    assert all(result["total_segments"] == TOTAL_SEGMENTS and result["table_name"] == name for result in runs.values())
    assert [result["segment"] for _, result in sorted(dry_runs.items())] == list(range(TOTAL_SEGMENTS))
    to_write = 400 - len(already_normalised)
    assert sum(result["would_write"] for result in dry_runs.values()) == to_write
    assert sum(result["written"] for result in dry_runs.values()) == 0
    assert sum(result["scanned"] for result in runs.values()) == 400
    assert sum(result["written"] for result in runs.values()) == to_write
    assert sum(result["unchanged"] for result in runs.values()) == len(already_normalised)
    assert results_by_map_index(dag_run, "report_dry_run") == {
        -1: {"scanned": 400, "would_write": to_write, "unchanged": len(already_normalised)}
    }

    after = read_table(dynalite_client, name)
    assert len(after) == 400
    for item in items:
        stored = after[item["pk"]]
        if item["pk"] in already_normalised:
            assert stored == item
        else:
            assert stored["updated_at"] != OLD_STAMP
            assert stored == {**item, "status": item["status"].lower(), "updated_at": stored["updated_at"]}


def test_aggregate_dag_sums_amounts_exactly(dynalite_client: Any) -> None:
    dag = load_dag("example_dynamodb_aggregate.py", "example_dynamodb_aggregate")
    name = unique_table_name("orders")
    create_table(dynalite_client, name)
    items = [sample_item(number, padding=20) for number in range(400)]
    # 38 significant digits each: their sum needs more than the 28 digits of Python's default decimal context.
    for number in range(400, 410):
        items.append(
            {"pk": f"order#{number:08d}", "status": "refunded", "amount": Decimal(f"1234567890123.{number:025d}")}
        )
    items.append({"pk": "no-amount", "status": "paid"})
    put_items(dynalite_client, name, items)
    expected_amounts: dict[str, Fraction] = {}
    expected_orders: Counter[str] = Counter()
    for item in items:
        if "amount" in item:
            expected_amounts[item["status"]] = expected_amounts.get(item["status"], Fraction(0)) + Fraction(
                item["amount"]
            )
            expected_orders[item["status"]] += 1

    dag_run = dag.test(run_conf={"table_name": name})

    assert str(dag_run.state) == "success"
    parts = results_by_map_index(dag_run, "sum_segment")
    assert sorted(part["segment"] for part in parts.values()) == list(range(TOTAL_SEGMENTS))
    (result,) = results_by_map_index(dag_run, "combine").values()
    assert result["orders_by_status"] == dict(sorted(expected_orders.items()))
    assert sorted(result["amount_by_status"]) == sorted(expected_amounts)
    for status, text in result["amount_by_status"].items():
        assert Fraction(Decimal(text)) == expected_amounts[status], status
    assert len(result["amount_by_status"]["refunded"].replace(".", "")) > 28
