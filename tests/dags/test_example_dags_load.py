"""Every example DAG imports cleanly and has the tasks its documentation promises."""

from __future__ import annotations

from pathlib import Path

import pytest

EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "example_dags"


@pytest.fixture(scope="module")
def dag_bag() -> object:
    from airflow.models import DagBag

    return DagBag(dag_folder=str(EXAMPLE_DAGS))


def test_every_example_dag_loads_without_errors(dag_bag: object) -> None:
    assert dag_bag.import_errors == {}  # type: ignore[attr-defined]
    files = sorted(path.stem for path in EXAMPLE_DAGS.glob("example_*.py"))
    assert sorted(dag_bag.dag_ids) == files  # type: ignore[attr-defined]


def test_parallel_export_dag_shape(dag_bag: object) -> None:
    dag = dag_bag.dags["example_dynamodb_parallel_export"]  # type: ignore[attr-defined]
    assert sorted(dag.task_ids) == [
        "export_orders.export_segment",
        "export_orders.plan_segments",
        "export_orders.write_manifest",
    ]
    export = dag.get_task("export_orders.export_segment")
    assert export.upstream_task_ids == {"export_orders.plan_segments"}
    assert dag.get_task("export_orders.write_manifest").upstream_task_ids == {"export_orders.export_segment"}
    assert export.partial_kwargs["map_index_template"] == "segment {{ task.segment }} of {{ task.total_segments }}"
    assert dag.params["table_name"] == "orders"
