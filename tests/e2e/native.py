"""
The e2e check of the deferrable native export (DAG ``e2e_native_export_deferral``, tests/e2e/dags/), against the
moto server of :mod:`tests.e2e.moto_export_server`, whose exports stay ``IN_PROGRESS`` until the check releases them.

What it shows, through the REST API and the run's files: the export task goes to ``deferred``; the triggerer runs
the trigger (its DescribeExport polls are in the task's log); the pool's one slot is free while the task waits, so
another task of that pool runs and finishes meanwhile; after the release the task resumes in the same try and
returns the export's ARN, status and item count; the convert step writes parts and a manifest that read back, as
one Parquet dataset, exactly the table's items; the manifest task records an asset event.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3

from tests.e2e.api import parse_time
from tests.e2e.stack import wait_for
from tests.unit.export.datasets import item_view, read_parquet_dataset, rebuild

if TYPE_CHECKING:
    from tests.e2e.run import E2E

DAG_ID = "e2e_native_export_deferral"
EXPORT_TASK = "native.start_export"
SLOT_TASK = "use_the_slot"
POOL = "native_export_slot"
TABLE = "orders"
BUCKET = "native-staging"
ASSET = "dynamodb_native_export_orders"
ITEMS = 300
#: What the trigger logs at each DescribeExport that finds the export still running.
TRIGGER_POLL_LOG = f"Export of table {TABLE} is IN_PROGRESS"


def native_items() -> list[dict[str, Any]]:
    """The table's items: three kinds with different attribute sets, so the data files differ in attributes."""
    items: list[dict[str, Any]] = []
    for number in range(ITEMS):
        item: dict[str, Any] = {"pk": f"order#{number:05d}", "kind": Decimal(number % 3)}
        if number % 3 == 0:
            item.update({"amount": Decimal(number) / 4, "status": "NEW"})
        elif number % 3 == 1:
            item.update({"tags": {f"t{number % 5}", "all"}, "paid": number % 2 == 0})
        else:
            item.update({"raw": bytes([number % 256, 255]), "lines": [{"sku": f"s{number}", "qty": Decimal(2)}]})
        items.append(item)
    return items


def load_native_table(moto_url: str, items: list[dict[str, Any]]) -> str:
    """Create the table (point-in-time recovery on) and the staging bucket on moto; return a restorable time."""
    options = {"endpoint_url": moto_url, "region_name": "us-east-1"}
    credentials = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    boto3.client("s3", **options, **credentials).create_bucket(Bucket=BUCKET)
    table = boto3.resource("dynamodb", **options, **credentials).create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    with table.batch_writer() as batch:
        for item in items:
            batch.put_item(Item=item)
    client = table.meta.client
    client.update_continuous_backups(
        TableName=TABLE, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )
    recovery = client.describe_continuous_backups(TableName=TABLE)["ContinuousBackupsDescription"]
    # moto's restorable range is the instant recovery was enabled: export exactly that point in time.
    return str(recovery["PointInTimeRecoveryDescription"]["LatestRestorableDateTime"].isoformat())


def instance(e2e: E2E, run_id: str, task_id: str) -> dict[str, Any]:
    (found,) = [ti for ti in e2e.api.task_instances(DAG_ID, run_id) if ti["task_id"] == task_id]
    return found


def wait_for_state(e2e: E2E, run_id: str, task_id: str, state: str) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        e2e.stack.check_alive()
        ti = instance(e2e, run_id, task_id)
        if ti["state"] in ("failed", "upstream_failed") and state != ti["state"]:
            raise AssertionError(f"{task_id} ended {ti['state']} while waiting for {state}")
        return ti if ti["state"] == state else None

    found: dict[str, Any] = wait_for(f"{task_id} to be {state}", reached, 180, 0.5)
    return found


def task_logs(e2e: E2E, run_id: str, task_id: str) -> str:
    logs = Path(e2e.stack.env["AIRFLOW_HOME"]) / "logs"
    pattern = f"dag_id={DAG_ID}/run_id={run_id}/task_id={task_id}/**/*.log"
    return "".join(path.read_text(errors="replace") for path in logs.glob(pattern))


def check_deferral(e2e: E2E, run_id: str, triggered: float) -> None:
    """Deferred while held; the pool's one slot used by another task meanwhile; the trigger polling."""
    wait_for_state(e2e, run_id, EXPORT_TASK, "deferred")
    e2e.figure("native export: trigger -> deferred", f"{time.monotonic() - triggered:.1f} s")
    pool = e2e.api.request("GET", f"/pools/{POOL}")
    slot_task = wait_for_state(e2e, run_id, SLOT_TASK, "success")
    export = instance(e2e, run_id, EXPORT_TASK)
    assert export["state"] == "deferred", f"{EXPORT_TASK} is {export['state']} after {SLOT_TASK} finished"
    started, ended = parse_time(slot_task["start_date"]), parse_time(slot_task["end_date"])
    assert started is not None and ended is not None
    e2e.figure(
        "pool of one slot while the export was deferred",
        f"{SLOT_TASK} ran {(ended - started).total_seconds():.1f} s in it; pool then: "
        f"running {pool.get('running_slots')}, deferred {pool.get('deferred_slots')}, open {pool.get('open_slots')}",
    )
    assert pool["slots"] == 1, pool
    wait_for(
        "the trigger's first poll in the task log",
        lambda: TRIGGER_POLL_LOG in task_logs(e2e, run_id, EXPORT_TASK),
        60,
        1,
    )


def check_result(e2e: E2E, run_id: str, destination: Path, items: list[dict[str, Any]]) -> None:
    """The export's XCom, one try, and the converted Parquet: exactly the table's items, one schema."""
    result = e2e.api.xcom(DAG_ID, run_id, EXPORT_TASK)
    assert (result["export_status"], result["item_count"], result["table_name"]) == ("COMPLETED", ITEMS, TABLE)
    assert "/export/" in result["export_arn"] and result["manifest_summary_key"].endswith("manifest-summary.json")
    tries = e2e.api.tries(DAG_ID, run_id, EXPORT_TASK, -1)
    assert [attempt["try_number"] for attempt in tries] == [1], f"the deferral became tries {tries}"
    plans = [ti for ti in e2e.api.task_instances(DAG_ID, run_id) if ti["task_id"] == "native.convert_files"]
    assert sorted(ti["rendered_map_index"] for ti in plans) == ["files 1/3", "files 2/3", "files 3/3"], plans
    manifest = e2e.api.xcom(DAG_ID, run_id, "native.write_manifest")
    assert (manifest["items"], manifest["total_segments"]) == (ITEMS, 3), manifest
    written = json.loads((destination / "manifest.json").read_text())
    rows = read_parquet_dataset(destination).to_pylist()
    expected = sorted((item_view(item) for item in items), key=lambda item: item["pk"])
    assert rebuild(rows, written["schema"]) == expected, "the converted export differs from the table"
    events = e2e.api.asset_events(ASSET)
    assert [event["source_run_id"] for event in events] == [run_id], events
    assert events[0]["extra"]["manifest"] == str(destination / "manifest.json"), events[0]["extra"]
    e2e.figure("native export converted", f"{ITEMS} items in {written['part_count']} Parquet parts, one schema")


def check_native_export_defers_and_frees_its_slot(e2e: E2E) -> None:
    """The deferrable native export frees its worker slot while it waits, then converts exactly the table."""
    items = native_items()
    export_time = load_native_table(e2e.stack.moto_url, items)
    e2e.api.request("POST", "/pools", {"name": POOL, "slots": 1, "description": "e2e", "include_deferred": False})
    destination = e2e.exports / "native"
    conf = {"table_name": TABLE, "s3_bucket": BUCKET, "destination": str(destination), "export_time": export_time}
    run_id, triggered = e2e.trigger(DAG_ID, conf)
    check_deferral(e2e, run_id, triggered)
    released = time.monotonic()
    e2e.stack.export_release_file.touch()
    e2e.wait(DAG_ID, run_id)
    e2e.figure("native export: release -> run success", f"{time.monotonic() - released:.1f} s")
    check_result(e2e, run_id, destination, items)
