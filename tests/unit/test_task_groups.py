from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from airflow_dynamoscan.exceptions import InvalidScanArgumentError, TableNotFoundError
from airflow_dynamoscan.task_groups import dynamodb_parallel_export, plan_export_segments
from devtools.sample_data import create_table
from tests.conftest import make_client


@pytest.fixture
def moto_table(moto_connection_env: str) -> Iterator[str]:
    with mock_aws():
        create_table(make_client(), "orders")
        yield "orders"


def test_fixed_plans_one_mapped_export_per_segment(moto_table: str) -> None:
    expected = [{"segment": n, "total_segments": 3} for n in range(3)]
    assert plan_export_segments(moto_table, 3) == expected
    assert plan_export_segments(moto_table, "3") == expected  # as a template renders it  # type: ignore[arg-type]


def test_auto_plan_follows_table_size_within_map_limit(moto_table: str, monkeypatch: pytest.MonkeyPatch) -> None:
    size = {"TableSizeBytes": 0}

    def report_size(parsed: dict[str, Any], **_: Any) -> None:
        parsed["Table"].update(size)

    # The table's reported size is the server's answer; moto always reports 0, so set it on the way back.
    from airflow_dynamoscan.hooks import dynamodb_scan

    original = dynamodb_scan.DynamoDBScanHook._scan_client

    def client_with_size(self: Any) -> Any:
        client = original.func(self)  # type: ignore[attr-defined]
        client.meta.events.register("after-call.dynamodb.DescribeTable", report_size)
        return client

    monkeypatch.setattr(dynamodb_scan.DynamoDBScanHook, "_scan_client", property(client_with_size))
    assert len(plan_export_segments(moto_table, "auto")) == 1
    size["TableSizeBytes"] = 7 * 2 * 1024**3
    assert len(plan_export_segments(moto_table, "auto")) == 7
    size["TableSizeBytes"] = 5000 * 2 * 1024**3
    assert len(plan_export_segments(moto_table, "auto")) == 1024
    assert len(plan_export_segments(moto_table, "auto", max_segments=16)) == 16


def test_bad_plans_are_refused(moto_table: str) -> None:
    with pytest.raises(InvalidScanArgumentError, match="total_segments=0"):
        plan_export_segments(moto_table, 0)
    with pytest.raises(InvalidScanArgumentError, match="total_segments='many'"):
        plan_export_segments(moto_table, "many")  # type: ignore[arg-type]
    with pytest.raises(TableNotFoundError, match="'missing'"):
        plan_export_segments("missing", 2)


def test_task_group_wires_plan_export_and_manifest() -> None:
    from airflow_dynamoscan.compat import DAG

    with DAG(dag_id="group_shape", schedule=None) as dag:
        dynamodb_parallel_export("export", table_name="orders", destination="s3://bucket/x", file_format="parquet")
    assert sorted(dag.task_ids) == ["export.export_segment", "export.plan_segments", "export.write_manifest"]
    export = dag.get_task("export.export_segment")
    assert export.partial_kwargs["file_format"] == "parquet"
    assert dag.get_task("export.write_manifest").upstream_task_ids == {"export.export_segment"}


def test_group_task_parameters_reach_every_task_and_outlets_only_the_manifest() -> None:
    from datetime import timedelta

    from airflow_dynamoscan.compat import DAG, Asset

    asset = Asset("orders_export")
    with DAG(dag_id="group_kwargs", schedule=None) as dag:
        dynamodb_parallel_export(
            "export",
            table_name="orders",
            destination="s3://bucket/x",
            retries=4,
            retry_delay=timedelta(seconds=7),
            pool="dynamodb",
            queue="exports",
            executor_config={"pod_override": "small"},
            outlets=[asset],
            compression="gzip",
        )
    plan, export, manifest = (
        dag.get_task(f"export.{name}") for name in ("plan_segments", "export_segment", "write_manifest")
    )
    settings = {"retries": 4, "retry_delay": timedelta(seconds=7), "pool": "dynamodb", "queue": "exports"}
    for name, value in settings.items():
        assert getattr(plan, name) == value, name
        assert export.partial_kwargs[name] == value, name
        assert getattr(manifest, name) == value, name
    assert plan.executor_config == manifest.executor_config == export.partial_kwargs["executor_config"]
    assert export.partial_kwargs["compression"] == "gzip"
    assert not hasattr(manifest, "compression")
    assert manifest.outlets == [asset]
    assert plan.outlets == [] and export.partial_kwargs.get("outlets", []) == []
