"""The native-export task group and the scan / native / auto dispatcher: their tasks, and the method choice."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from moto import mock_aws

from airflow_dynamoscan.compat import DAG
from airflow_dynamoscan.exceptions import InvalidScanArgumentError
from airflow_dynamoscan.native_task_groups import (
    choose_table_export_method,
    dynamodb_native_export_to_files,
    dynamodb_table_export,
)
from devtools.sample_data import create_table
from tests.conftest import make_client


def new_dag() -> DAG:
    return DAG(dag_id="native", schedule=None, start_date=datetime(2026, 1, 1))


def test_native_group_maps_one_convert_task_per_batch() -> None:
    with new_dag() as dag:
        dynamodb_native_export_to_files(
            "native",
            table_name="orders",
            s3_bucket="b",
            s3_prefix="p",
            destination="s3://out/orders",
            files_per_task=4,
            export_kwargs={"export_time": "2026-11-30T00:00:00Z"},
            file_format="csv",
        )
    assert sorted(dag.task_ids) == [
        "native.convert_files",
        "native.plan_files",
        "native.start_export",
        "native.write_manifest",
    ]
    start = dag.get_task("native.start_export")
    assert (start.s3_bucket, start.s3_prefix, start.export_time) == ("b", "p", "2026-11-30T00:00:00Z")
    convert = dag.get_task("native.convert_files")
    assert convert.partial_kwargs["map_index_template"] == "files {{ task.segment + 1 }}/{{ task.total_segments }}"
    assert convert.partial_kwargs["file_format"] == "csv"


def auto_export_dag(**options: Any) -> DAG:
    """A DAG of one ``method="auto"`` table export, group ``export``."""
    with new_dag() as dag:
        dynamodb_table_export(
            "export",
            table_name="orders",
            destination="s3://out/orders",
            method="auto",
            native_s3_bucket="staging",
            **options,
        )
    return dag


def test_auto_method_branches_between_the_two_groups() -> None:
    dag = auto_export_dag(file_format="parquet")
    choose = dag.get_task("export.choose_method")
    assert choose.downstream_task_ids == {"export.scan.plan_segments", "export.native.start_export"}
    assert dag.get_task("export.scan.write_manifest").upstream_task_ids == {"export.scan.export_segment"}
    assert dag.get_task("export.native.write_manifest").upstream_task_ids == {"export.native.convert_files"}
    with new_dag() as scan_only:
        dynamodb_table_export("export", table_name="orders", destination="/tmp/x", method="scan")
    assert sorted(scan_only.task_ids) == [
        "export.scan.export_segment",
        "export.scan.plan_segments",
        "export.scan.write_manifest",
    ]


def test_dispatcher_refuses_bad_arguments() -> None:
    with new_dag(), pytest.raises(ValueError, match=r"method='native' needs native_s3_bucket"):
        dynamodb_table_export("e", table_name="orders", destination="/tmp/x", method="native")
    with new_dag(), pytest.raises(ValueError, match=r"method='quick' is not allowed; allowed: scan, native, auto"):
        dynamodb_table_export("e", table_name="orders", destination="/tmp/x", method="quick")
    with new_dag(), pytest.raises(ValueError, match=r"\['total_segments'\] are not format options"):
        dynamodb_table_export("e", table_name="orders", destination="/tmp/x", total_segments=4)


@pytest.fixture
def moto_table(moto_connection_env: str) -> Iterator[str]:
    with mock_aws():
        create_table(make_client(), "orders")
        yield "orders"


def test_method_choice_reads_the_table_and_its_recovery_setting(moto_table: str) -> None:
    assert choose_table_export_method(moto_table, "auto", native_threshold_bytes=0) == "scan"  # PITR disabled
    with pytest.raises(InvalidScanArgumentError, match=r"Table 'orders': method='native' needs point-in-time"):
        choose_table_export_method(moto_table, "native")
    make_client().update_continuous_backups(
        TableName=moto_table, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )
    assert choose_table_export_method(moto_table, "auto", native_threshold_bytes=0) == "native"
    assert choose_table_export_method(moto_table, "auto") == "scan"  # an empty table is below 1 GiB
    assert choose_table_export_method(moto_table, "scan", native_threshold_bytes=0) == "scan"


def test_native_group_records_an_asset_event_from_its_manifest_task_only() -> None:
    from airflow_dynamoscan.compat import Asset

    asset = Asset("orders_native_export")
    dag = auto_export_dag(outlets=[asset])
    for way in ("scan", "native"):
        assert dag.get_task(f"export.{way}.write_manifest").outlets == [asset], way
    others = [task for task in dag.tasks if not task.task_id.endswith("write_manifest")]
    assert [task.task_id for task in others if getattr(task, "outlets", None)] == []
    assert dag.get_task("export.native.convert_files").partial_kwargs.get("outlets", []) == []
