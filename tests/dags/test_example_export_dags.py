"""The export example DAGs, run with ``dag.test()`` against the local DynamoDB server."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from devtools.sample_data import load_sample_table
from tests.conftest import unique_table_name
from tests.dags.test_example_transform_aggregate_dags import load_dag, results_by_map_index, task_states
from tests.unit.export.readback import json_view, read_jsonl

pytestmark = pytest.mark.usefixtures("airflow_db", "aws_connection_env")


def test_parallel_export_dag_exports_every_segment_once(dynalite_client: Any, tmp_path: Path) -> None:
    name = unique_table_name("dag-export")
    items = load_sample_table(dynalite_client, name, 3000, padding=50)
    dag = load_dag("example_dynamodb_parallel_export.py", "example_dynamodb_parallel_export")
    run = dag.test(run_conf={"table_name": name, "destination": str(tmp_path), "total_segments": 4})
    assert run.state == "success"
    states = task_states(run)
    exports = sorted(
        (map_index, state, tries) for task, map_index, state, tries in states if task.endswith("export_segment")
    )
    assert exports == [(segment, "success", 1) for segment in range(4)]

    (root,) = [path.parent for path in tmp_path.glob(f"{name}/*/manifest.json")]
    assert root.name == run.logical_date.strftime("%Y-%m-%d")  # {{ ds }} in the destination
    manifest = json.loads((root / "manifest.json").read_text())
    results = results_by_map_index(run, "export_orders.export_segment")
    assert sorted(results) == [0, 1, 2, 3]
    assert [results[n]["segment"] for n in range(4)] == [0, 1, 2, 3]
    assert manifest["items"] == sum(result["items"] for result in results.values()) == 3000
    lines = [
        line
        for segment in manifest["segments"]
        for part in segment["parts"]
        for line in read_jsonl(gzip.decompress((root / part["path"]).read_bytes()))
    ]
    assert sorted(lines, key=lambda line: line["pk"]) == sorted(
        (json_view(item) for item in items), key=lambda line: line["pk"]
    )

    from airflow import settings
    from airflow.models.taskinstance import TaskInstance

    with settings.Session() as session:
        labels = {
            ti.map_index: ti.rendered_map_index
            for ti in session.query(TaskInstance).filter_by(run_id=run.run_id, task_id="export_orders.export_segment")
        }
    assert labels == {segment: f"segment {segment} of 4" for segment in range(4)}


def test_whole_table_parquet_dag(dynalite_client: Any, tmp_path: Path) -> None:
    name = unique_table_name("dag-parquet")
    items = load_sample_table(dynalite_client, name, 500, padding=20)
    dag = load_dag("example_dynamodb_export.py", "example_dynamodb_export")
    run = dag.test(run_conf={"table_name": name, "destination": str(tmp_path)})
    assert run.state == "success"
    (manifest_path,) = tmp_path.glob(f"{name}/parquet/*/manifest.json")
    manifest = json.loads(manifest_path.read_text())
    assert (manifest["file_format"], manifest["compression"], manifest["items"]) == ("parquet", "zstd", 500)
    rows = [
        row
        for part in manifest["segments"][0]["parts"]
        for row in pq.read_table(manifest_path.parent / part["path"]).to_pylist()
    ]
    assert sorted(row["pk"] for row in rows) == sorted(item["pk"] for item in items)
    precise = {item["pk"]: item["precise"] for item in items}
    assert all(row["precise"] == precise[row["pk"]] for row in rows)


def test_parallel_parquet_export_dag_reads_back_as_one_dataset(dynalite_client: Any, tmp_path: Path) -> None:
    """Four mapped tasks, one planned schema: the parts of a table with type drift read as one dataset."""
    from devtools.sample_data import create_table, put_items
    from tests.integration.test_export_one_dataset import drifting_item
    from tests.unit.export.datasets import item_view, read_parquet_dataset, read_parquet_duckdb, rebuild

    name = unique_table_name("dag-drift")
    create_table(dynalite_client, name)
    items = [drifting_item(number) for number in range(240)]
    put_items(dynalite_client, name, items)
    dag = load_dag("example_dynamodb_parallel_export.py", "example_dynamodb_parallel_export")
    conf = {"table_name": name, "destination": str(tmp_path), "total_segments": 4, "file_format": "parquet"}
    run = dag.test(run_conf=conf)
    assert run.state == "success"
    (root,) = [path.parent for path in tmp_path.glob(f"{name}/*/manifest.json")]
    manifest = json.loads((root / "manifest.json").read_text())
    results = results_by_map_index(run, "export_orders.export_segment")
    assert sorted(results) == [0, 1, 2, 3]
    assert all(result["schema"] == manifest["schema"] for result in results.values())
    # The sample holds this small table whole; "n" is a number here and a string there, so it is a json column.
    assert {"name": "n", "type": "json"} in manifest["schema"]["columns"]
    expected = sorted((item_view(item) for item in items), key=lambda item: item["pk"])
    assert rebuild(read_parquet_dataset(root).to_pylist(), manifest["schema"]) == expected
    _, rows = read_parquet_duckdb(root)
    assert rebuild(rows, manifest["schema"]) == expected
