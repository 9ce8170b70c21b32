"""
A mirror of a table without point-in-time recovery (``mode="replace"``, ``load_method="scan"``), run with
``dag.test()`` against the local DynamoDB server: mapped segments stage Parquet files, one task commits them; the
next run replaces the contents in one snapshot.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_client, unique_table_name
from tests.dags.test_example_transform_aggregate_dags import load_dag, results_by_map_index, task_states
from tests.iceberg_support import (
    SourceTable,
    assert_mirror_equals,
    mirror_items,
    requires_sql_catalog,
    sort_items,
    sql_catalog_properties,
)

SEGMENTS = 3


@requires_sql_catalog
@pytest.mark.usefixtures("airflow_db", "aws_connection_env")
def test_scan_loads_then_replaces_the_mirror(
    dynalite_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_dynamoscan.iceberg import open_catalog

    properties = sql_catalog_properties(tmp_path)
    monkeypatch.setenv("AIRFLOW_CONN_ICEBERG_DEFAULT", json.dumps({"conn_type": "iceberg", "extra": properties}))
    name = unique_table_name("mirror")
    source = SourceTable(
        make_client(dynalite_endpoint),
        name,
        [{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "B"}],
    )
    for number in range(40):
        source.put({"pk": f"p{number % 5}", "sk": bytes([number]), "n": Decimal(number), "big": Decimal("9" * 38)})
    # The example stages files of 100,000 rows: each segment stages one.
    dag = load_dag("example_dynamodb_to_iceberg_replace.py", "example_dynamodb_to_iceberg_replace")
    for task in dag.tasks:
        task.retries = 0
    conf = {"enabled": True, "table_name": name}

    run = dag.test(run_conf=conf)
    assert run.state == "success"
    staged = results_by_map_index(run, "mirror.load_segment")
    assert sorted(staged) == list(range(SEGMENTS))
    assert sum(result["rows"] for result in staged.values()) == 40
    (loaded,) = results_by_map_index(run, "mirror.commit_load").values()
    assert (loaded["operation"], loaded["rows_added"]) == ("replace", 40)
    catalog = open_catalog("iceberg_default", properties)
    table = catalog.load_table("lake.orders_by_scan")
    assert_mirror_equals(table, source)
    first = table.current_snapshot().snapshot_id
    previous = sort_items(mirror_items(table), source.keys)

    source.delete({"pk": "p0", "sk": bytes([0])})
    source.put({"pk": "p1", "sk": bytes([1]), "n": Decimal(-1), "extra": {"new": [Decimal(1)]}})
    run = dag.test(run_conf=conf)
    assert run.state == "success"
    states = {task: state for task, _, state, _ in task_states(run)}
    assert states["mirror.commit_load"] == "success"
    table = catalog.load_table("lake.orders_by_scan")
    items = assert_mirror_equals(table, source)
    assert len(items) == 39
    assert sort_items(mirror_items(table, snapshot_id=first), source.keys) == previous


def test_bad_options_are_refused_when_the_dag_is_parsed() -> None:
    from airflow_dynamoscan.compat import DAG
    from airflow_dynamoscan.exceptions import InvalidScanArgumentError
    from airflow_dynamoscan.iceberg_task_groups import dynamodb_to_iceberg

    cases: list[tuple[dict[str, Any], str]] = [
        ({"mode": "merge"}, "mode='merge' is not allowed; use one of incremental, replace"),
        ({"mode": "incremental"}, "needs native_s3_bucket"),
        ({"mode": "replace", "load_method": "copy"}, "load_method='copy' is not allowed"),
        ({"mode": "replace", "bucket_count": 0}, "bucket_count=0 must be an integer >= 1 or None"),
        ({"mode": "replace", "new_attributes": "drop"}, "new_attributes='drop' is not allowed"),
        ({"mode": "replace", "rows_per_file": 0}, "rows_per_file=0 must be an integer >= 1"),
        ({"mode": "replace", "file_format": "csv"}, r"\['file_format'\] are not parameters of dynamodb_to_iceberg"),
    ]
    for options, message in cases:
        with (
            DAG(dag_id="bad", schedule=None, start_date=datetime(2026, 1, 1)),
            pytest.raises(InvalidScanArgumentError, match=message),
        ):
            dynamodb_to_iceberg("mirror", table_name="orders", table_identifier="lake.orders", **options)
