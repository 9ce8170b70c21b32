"""
`make demo`: the main job, end to end, on a local DynamoDB server.

1. starts the local DynamoDB server (dynalite) and fills a table ``orders`` with sample items of every type;
2. reads it back through DynamoDBScanHook, serially and in parallel, and times both;
3. runs the example DAG ``example_dynamodb_parallel_export`` with a real Airflow run (``dag.test()``, SQLite
   metadata database in a temporary AIRFLOW_HOME): one mapped export task per segment, then the manifest;
4. prints the manifest's summary and checks, by reading every part back, that the export holds exactly the items
   loaded;
5. builds a local Apache Iceberg mirror of the table (``example_dynamodb_to_iceberg_replace``: a SQLite catalog
   and a warehouse under ``demo-output/iceberg``), changes the table, runs the DAG again so the mirror follows,
   and prints the mirror's row count, a query and the previous snapshot's row count (time travel).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3

from devtools.local_dynamodb import PROJECT_ROOT, running_dynalite
from devtools.sample_data import load_sample_table

ITEM_COUNT = int(os.environ.get("DEMO_ITEMS", "20000"))
TOTAL_SEGMENTS = int(os.environ.get("DEMO_SEGMENTS", "4"))
TABLE = "orders"
OUTPUT = PROJECT_ROOT / "demo-output"


def prepare_airflow() -> None:
    home = tempfile.mkdtemp(prefix="dynamoscan-demo-airflow-")
    os.environ.update(
        {
            "AIRFLOW_HOME": home,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "example_dags"),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        }
    )
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    print(f"Airflow metadata database ready in {home} ({time.monotonic() - started:.1f} s)")


def compare_scans(expected: set[str]) -> bool:
    from airflow_dynamoscan.hooks.dynamodb_scan import DynamoDBScanHook

    hook = DynamoDBScanHook(aws_conn_id="aws_default")
    ok = True
    runs = [
        ("serial scan", lambda: hook.scan(TABLE)),
        ("parallel scan, 8 segments, 4 threads", lambda: hook.parallel_scan(TABLE, total_segments=8, max_workers=4)),
    ]
    for label, scan in runs:
        started = time.monotonic()
        keys = [item["pk"] for item in scan()]
        seconds = time.monotonic() - started
        exact = len(keys) == len(set(keys)) and set(keys) == expected
        ok &= exact
        print(
            f"  {label:<38} {len(keys):>7,} items in {seconds:5.2f} s ({len(keys) / seconds:>6,.0f} items/s)"
            f"  {'exactly the items loaded' if exact else 'MISMATCH'}"
        )
    return ok


def run_export_dag() -> Path:
    sys.path.insert(0, str(PROJECT_ROOT / "example_dags"))
    from example_dynamodb_parallel_export import dag

    started = time.monotonic()
    run = dag.test(
        run_conf={"table_name": TABLE, "destination": str(OUTPUT), "total_segments": TOTAL_SEGMENTS},
    )
    seconds = time.monotonic() - started
    print(f"DAG run {run.run_id}: {run.state} in {seconds:.1f} s")
    for instance in sorted(run.get_task_instances(), key=lambda ti: (ti.task_id, ti.map_index)):
        label = instance.rendered_map_index or ("" if instance.map_index < 0 else str(instance.map_index))
        print(f"  {instance.task_id:<32} {label:<14} {instance.state}")
    if run.state != "success":
        raise SystemExit("The export DAG run did not succeed.")
    manifests = list(OUTPUT.glob(f"{TABLE}/*/manifest.json"))
    if len(manifests) != 1:
        raise SystemExit(f"Expected one manifest under {OUTPUT}, found {len(manifests)}.")
    return manifests[0]


def check_export(manifest_path: Path, expected: set[str]) -> bool:
    manifest = json.loads(manifest_path.read_text())
    print(f"Manifest {manifest_path.relative_to(PROJECT_ROOT)}")
    print(f"  table {manifest['table_name']}, format {manifest['file_format']}, compression {manifest['compression']}")
    for segment in manifest["segments"]:
        files = ", ".join(part["path"] for part in segment["parts"])
        print(f"  segment {segment['segment']}/{manifest['total_segments']}: {segment['items']:>6,} items  {files}")
    print(f"  total: {manifest['items']:,} items, {manifest['bytes']:,} bytes in {manifest['part_count']} part(s)")
    keys: list[str] = []
    root = manifest_path.parent
    for segment in manifest["segments"]:
        for part in segment["parts"]:
            with gzip.open(root / part["path"], "rt", encoding="utf-8") as lines:
                keys.extend(json.loads(line)["pk"] for line in lines)
    exact = manifest["items"] == len(expected) and len(keys) == len(set(keys)) and set(keys) == expected
    print(
        f"Read back {len(keys):,} items from the parts: "
        f"{'exactly the ' + format(len(expected), ',') + ' items loaded, none twice' if exact else 'MISMATCH'}"
    )
    return exact


def build_iceberg_mirror(client: object, expected: set[str]) -> bool:
    """Mirror the table into Iceberg, change the table, follow the change; print a count and a query."""
    import importlib.util

    if importlib.util.find_spec("pyiceberg") is None:
        print("Iceberg mirror: skipped (pyiceberg is not installed: pip install 'airflow-dynamoscan[iceberg]')")
        return True
    import pyarrow.compute as pc

    from airflow_dynamoscan.iceberg import open_catalog

    folder = OUTPUT / "iceberg"
    (folder / "warehouse").mkdir(parents=True, exist_ok=True)
    properties = {"type": "sql", "uri": f"sqlite:///{folder}/catalog.db", "warehouse": f"file://{folder}/warehouse"}
    os.environ["AIRFLOW_CONN_ICEBERG_DEFAULT"] = json.dumps({"conn_type": "iceberg", "extra": properties})
    from example_dynamodb_to_iceberg_replace import dag

    conf = {"enabled": True, "table_name": TABLE}
    started = time.monotonic()
    first = dag.test(run_conf=conf)
    print(f"Iceberg mirror lake.orders_by_scan loaded: DAG run {first.state} in {time.monotonic() - started:.1f} s")
    table = open_catalog("iceberg_default", properties).load_table("lake.orders_by_scan")
    loaded_snapshot = table.current_snapshot().snapshot_id
    ok = first.state == "success" and table.scan().count() == len(expected)
    changed = sorted(expected)[:50]
    for key in changed[:10]:
        client.delete_item(TableName=TABLE, Key={"pk": {"S": key}})  # type: ignore[attr-defined]
    for key in changed[10:]:
        client.update_item(  # type: ignore[attr-defined]
            TableName=TABLE,
            Key={"pk": {"S": key}},
            UpdateExpression="SET #s = :s",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": {"S": "REFUNDED"}},
        )
    print("Changed the table: 10 items deleted, 40 set to status REFUNDED")
    started = time.monotonic()
    second = dag.test(run_conf=conf)
    table = table.refresh()
    rows = table.scan().to_arrow()
    print(f"Mirror updated: DAG run {second.state} in {time.monotonic() - started:.1f} s; {rows.num_rows:,} rows")
    by_status = rows.group_by("status").aggregate([("pk", "count")]).sort_by("status").to_pylist()
    print("  SELECT status, count(*) FROM lake.orders_by_scan GROUP BY status:")
    for row in by_status:
        print(f"    {row['status']:<10} {row['pk_count']:>7,}")
    refunded = pc.sum(pc.equal(rows.column("status"), "REFUNDED")).as_py()
    previous = table.scan(snapshot_id=loaded_snapshot).count()
    print(f"  time travel to the first snapshot {loaded_snapshot}: {previous:,} rows")
    return ok and second.state == "success" and rows.num_rows == len(expected) - 10 and refunded == 40


def main() -> int:
    shutil.rmtree(OUTPUT, ignore_errors=True)
    prepare_airflow()
    with running_dynalite() as endpoint_url:
        print(f"Local DynamoDB (dynalite) at {endpoint_url}")
        os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps(
            {
                "conn_type": "aws",
                "login": "demo-access-key",
                "password": "demo-secret-key",
                "extra": {"region_name": "us-east-1", "endpoint_url": endpoint_url},
            }
        )
        client = boto3.client(
            "dynamodb",
            endpoint_url=endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="demo-access-key",
            aws_secret_access_key="demo-secret-key",
        )
        started = time.monotonic()
        written = load_sample_table(client, TABLE, ITEM_COUNT)
        print(f"Loaded {len(written):,} items into table {TABLE!r} in {time.monotonic() - started:.1f} s")
        expected = {item["pk"] for item in written}
        print("Reading the table through DynamoDBScanHook:")
        scans_ok = compare_scans(expected)
        print(f"Running example_dynamodb_parallel_export with {TOTAL_SEGMENTS} mapped segments -> {OUTPUT}")
        export_ok = check_export(run_export_dag(), expected)
        mirror_ok = build_iceberg_mirror(client, expected)
    return 0 if scans_ok and export_ok and mirror_ok else 1


if __name__ == "__main__":
    sys.exit(main())
