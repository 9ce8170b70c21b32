"""
The Iceberg mirror example DAG, run with ``dag.test()``: the first run loads the table from a native full export,
the next two merge one incremental window each; after every run the mirror equals the table.

DynamoDB and S3 are moto's; moto's point-in-time exports are made to write AWS's documented layout (a full export
of the table, or an incremental export of exactly the writes made since the previous export), as DynamoDB does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from tests.conftest import aws_connection, make_client
from tests.dags.test_example_transform_aggregate_dags import load_dag, results_by_map_index, task_states
from tests.iceberg_support import SourceTable, assert_mirror_equals, requires_sql_catalog, sql_catalog_properties
from tests.native_export_fixture import ACCOUNT, REGION, full_line, new_export_id, write_native_export

pytestmark = pytest.mark.usefixtures("airflow_db")

DAG_FILE = "example_dynamodb_to_iceberg.py"
DAG_ID = "example_dynamodb_to_iceberg"
BUCKET = "exports"
HOUR = timedelta(hours=1)
# Whole hours in the past, so that every window is restorable and none is in the future.
T0 = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - 5 * HOUR


def documented_exports(monkeypatch: pytest.MonkeyPatch, source: dict[str, SourceTable]) -> None:
    """moto's exports write AWS's layout at once: the table (full) or the writes since the last export."""
    from moto.dynamodb.models import table_export

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.export_id = new_export_id()
        self.arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{self.table.name}/export/{self.export_id}"
        self.manifest_key = None

    def run(self: Any) -> None:
        table = source[self.table.name]
        s3 = make_client(service="s3")
        incremental = self.export_type == "INCREMENTAL_EXPORT"
        if incremental:
            lines, table.pending = table.pending, []
        else:
            lines, table.pending = [full_line(item) for item in table.items()], []
        built = write_native_export(
            s3,
            self.s3_bucket,
            self.s3_prefix,
            [lines],
            table_name=self.table.name,
            incremental=incremental,
            export_id=self.export_id,
        )
        self.item_count, self.manifest_key, self.status = len(lines), built.summary_key, "COMPLETED"

    def response(self: Any) -> dict[str, Any]:
        description: dict[str, Any] = original_response(self)
        description["ExportManifest"] = self.manifest_key
        return description

    original_init, original_response = table_export.TableExport.__init__, table_export.TableExport.response
    monkeypatch.setattr(table_export.TableExport, "__init__", init)
    monkeypatch.setattr(table_export.TableExport, "start", run)  # finished when the request returns
    monkeypatch.setattr(table_export.TableExport, "response", response)


def restorable_since(monkeypatch: pytest.MonkeyPatch, earliest: datetime) -> None:
    """DescribeContinuousBackups reports a restorable range up to now (moto pins it to when PITR was enabled)."""
    from airflow_dynamoscan.hooks import dynamodb_scan

    def report(parsed: dict[str, Any], **_: Any) -> None:
        recovery = parsed["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
        recovery["EarliestRestorableDateTime"] = earliest
        recovery["LatestRestorableDateTime"] = datetime.now(timezone.utc)

    original = dynamodb_scan.DynamoDBScanHook.client

    def client_with_range(self: Any) -> Any:
        client = original.fget(self)
        client.meta.events.register("after-call.dynamodb.DescribeContinuousBackups", report)
        return client

    monkeypatch.setattr(dynamodb_scan.DynamoDBScanHook, "client", property(client_with_range))


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SourceTable, Any]]:
    from airflow_dynamoscan.iceberg import open_catalog

    properties = sql_catalog_properties(tmp_path)
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", aws_connection())
    monkeypatch.setenv("AIRFLOW_CONN_ICEBERG_DEFAULT", json.dumps({"conn_type": "iceberg", "extra": properties}))
    with mock_aws():
        make_client(service="s3").create_bucket(Bucket=BUCKET)
        source = SourceTable(make_client(), "orders", [{"AttributeName": "pk", "AttributeType": "S"}])
        make_client().update_continuous_backups(
            TableName="orders", PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )
        documented_exports(monkeypatch, {"orders": source})
        restorable_since(monkeypatch, T0 - HOUR)
        yield source, open_catalog("iceberg_default", properties)


@requires_sql_catalog
def test_the_dag_loads_then_merges_two_windows(world: tuple[SourceTable, Any]) -> None:
    source, catalog = world
    dag = load_dag(DAG_FILE, DAG_ID)
    for task in dag.tasks:
        task.retries = 0  # a failure shows at once instead of after the example's retry delays
    conf = {"enabled": True, "table_name": "orders", "s3_bucket": BUCKET}
    for number in range(20):
        source.put({"pk": f"order#{number}", "amount": Decimal(f"{number}.5"), "tags": {"a", f"t{number}"}})

    run = dag.test(logical_date=T0, run_conf=conf)
    assert run.state == "success"
    states = {task: state for task, _, state, _ in task_states(run)}
    assert states["mirror.load_export"] == "success"
    assert states["mirror.export_window"] == "skipped" and states["mirror.merge_window"] == "skipped"
    (loaded,) = results_by_map_index(run, "mirror.load_export").values()
    assert (loaded["operation"], loaded["rows_added"], loaded["window_end"]) == ("load", 20, T0.isoformat())
    table = catalog.load_table("lake.orders")
    assert_mirror_equals(table, source)
    assert table.spec().fields[0].name == "pk_bucket"

    source.put({"pk": "order#100", "amount": Decimal("1e-30")})
    source.put({"pk": "order#3", "amount": Decimal(3), "note": "changed"})
    source.delete({"pk": "order#4"})
    run = dag.test(logical_date=T0 + HOUR, run_conf=conf)
    assert run.state == "success"
    (merged,) = results_by_map_index(run, "mirror.merge_window").values()
    assert (merged["window_start"], merged["window_end"]) == (T0.isoformat(), (T0 + HOUR).isoformat())
    assert (merged["rows_added"], merged["rows_deleted"]) == (2, 1)
    assert_mirror_equals(catalog.load_table("lake.orders"), source)

    source.delete({"pk": "order#100"})
    source.put({"pk": "order#5", "amount": Decimal(55)})
    source.put({"pk": "order#5", "amount": Decimal(555)})
    run = dag.test(logical_date=T0 + 2 * HOUR, run_conf=conf)
    assert run.state == "success"
    (merged,) = results_by_map_index(run, "mirror.merge_window").values()
    assert merged["window_start"] == (T0 + HOUR).isoformat()
    assert (merged["rows_added"], merged["rows_deleted"]) == (1, 1)
    table = catalog.load_table("lake.orders")
    items = assert_mirror_equals(table, source)
    assert len(items) == 19
    summary = table.current_snapshot().summary
    assert summary["dynamoscan.window-end"] == (T0 + 2 * HOUR).isoformat()
    assert summary["dynamoscan.export-arn"] == merged["export_arn"]


def test_a_run_with_the_default_params_skips_everything() -> None:
    run = load_dag(DAG_FILE, DAG_ID).test()
    assert run.state == "success"
    states = {task: state for task, _, state, _ in task_states(run)}
    assert states.pop("enabled") == "success"
    assert set(states.values()) == {"skipped"}
