"""
`make e2e`: the example DAGs on a real deployment - scheduler, dag-processor, api-server, triggerer, LocalExecutor,
PostgreSQL - against the local DynamoDB server, triggered through the REST API, checked from the user's side.

Each check is a function ``check_*(e2e)`` listed in :data:`CHECKS`; it triggers runs, waits, raises
``AssertionError`` with what it saw when a result is wrong, and records figures with ``e2e.figure(...)``. To add a
DAG check, write one more function and list it. The run ends with a summary line, ``N passed, N failed in S s``,
and stops every process it started, by PID and process group, whatever happens (a failed check, Ctrl-C, SIGTERM).

``python -m tests.e2e.run [--keep] [--screenshot docs/grid-view.png] [--only NAME]``; files of the run (PostgreSQL
data, Airflow home and logs, exports) go to ``.local/e2e/run-*`` and are removed at the end unless ``--keep`` or a
check failed.
"""

from __future__ import annotations

import argparse
import atexit
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import psutil

from devtools.local_dynamodb import PROJECT_ROOT, free_port
from devtools.sample_data import load_sample_table, sample_item
from tests.e2e import calendar_check
from tests.e2e.api import AirflowApi, parse_time
from tests.e2e.native import DAG_ID as NATIVE_DAG
from tests.e2e.native import check_native_export_defers_and_frees_its_slot
from tests.e2e.stack import Stack, ensure_python_package, wait_for

TABLE = "orders"
TRANSFORM_TABLE = "orders_to_normalise"
ITEMS = int(os.environ.get("E2E_ITEMS", "10000"))
#: Characters of text per item: about 1.6 KB an item, 16 MB and 16 Scan pages for the table (loading costs per item).
PADDING = 1400
TRANSFORM_ITEMS = 4000
SEGMENTS = 8
#: Added to each DynamoDB request of the tasks, so a segment's scan lasts long enough to be killed in the middle.
LATENCY_MS = float(os.environ.get("E2E_LATENCY_MS", "200"))
RUN_TIMEOUT = 300.0

PARALLEL_EXPORT_DAG = "example_dynamodb_parallel_export"
EXPORT_TASK = "export_orders.export_segment"
MANIFEST_TASK = "export_orders.write_manifest"
CONSUMER_DAG = "example_dynamodb_export_consumer"
EXPORT_ASSET = "dynamodb_export_orders"


class E2E:
    """What the checks share: the API, the run's directories, the expected table, and the figures."""

    def __init__(self, stack: Stack, api: AirflowApi, exports: Path) -> None:
        self.stack = stack
        self.api = api
        self.exports = exports
        self.figures: list[tuple[str, str]] = []
        self.expected_lines: dict[str, Any] = {}
        self.producer_runs: list[str] = []
        self.unpaused: set[str] = set()

    def figure(self, name: str, value: str) -> None:
        """Record (and print) a measured figure."""
        self.figures.append((name, value))
        print(f"    {name}: {value}", flush=True)

    def trigger(self, dag_id: str, conf: dict[str, Any], *, logical_date: str | None = None) -> tuple[str, float]:
        """Unpause and trigger ``dag_id``; return the run id and the monotonic time of the trigger."""
        self.unpause(dag_id)
        started = time.monotonic()
        run = self.api.trigger(dag_id, conf, logical_date=logical_date)
        return str(run["dag_run_id"]), started

    def unpause(self, dag_id: str) -> None:
        """
        Unpause ``dag_id``; for a scheduled DAG, fail the run the scheduler then creates for its latest interval.

        That run has the DAG's default params (another table and destination); the checks use manual runs only.
        """
        if dag_id in self.unpaused:
            return
        self.api.unpause(dag_id)
        self.unpaused.add(dag_id)
        dag = self.api.dag(dag_id) or {}
        if dag.get("timetable_summary") in (None, "None", "Asset"):
            return
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            scheduled = [run for run in self.api.runs(dag_id) if run["run_type"] == "scheduled"]
            if scheduled:
                for run in scheduled:
                    self.api.set_run_state(dag_id, run["dag_run_id"], "failed")
                return
            time.sleep(1)

    def wait(self, dag_id: str, run_id: str, *, expect: str = "success") -> dict[str, Any]:
        """Wait for the run to end and require ``expect``; on a mismatch, name the task instances that failed."""
        run = self.api.wait_for_run(dag_id, run_id, RUN_TIMEOUT, alive=self.stack.check_alive)
        if run["state"] != expect:
            states = [
                f"{ti['task_id']}[{ti['map_index']}]={ti['state']}" for ti in self.api.task_instances(dag_id, run_id)
            ]
            raise AssertionError(f"{dag_id} run {run_id} ended {run['state']}, expected {expect}: {states}")
        return run


# -- reading an export back --------------------------------------------------------------------------------------


def json_value(line: bytes | str) -> Any:
    """A JSON line as Python values, numbers as exact Decimals (DynamoDB stores ``1.10`` as ``1.1``: equal)."""
    return json.loads(line, parse_float=Decimal, parse_int=Decimal)


def expected_export_lines() -> dict[str, Any]:
    """Every item of the table as its exported JSON line reads back, by key: what every export must hold exactly."""
    from airflow_dynamoscan.export.formats import encode_json

    return {
        f"order#{number:08d}": json_value(encode_json(sample_item(number, padding=PADDING))) for number in range(ITEMS)
    }


def read_export(root: Path) -> tuple[dict[str, Any], list[bytes]]:
    """The manifest under ``root`` and every line of every part file there (listed in it or not)."""
    manifest_path = root / "manifest.json"
    assert manifest_path.exists(), f"no manifest.json under {root}: {sorted(p.name for p in root.glob('*'))}"
    manifest = json.loads(manifest_path.read_text())
    listed = {part["path"] for segment in manifest["segments"] for part in segment["parts"]}
    on_disk = {str(path.relative_to(root)) for path in root.glob("segment-*/part-*")}
    assert on_disk == listed, f"part files on disk {sorted(on_disk - listed)} not in the manifest, or missing"
    lines: list[bytes] = []
    for relative in sorted(on_disk):
        with gzip.open(root / relative, "rb") as part:
            lines.extend(part.read().splitlines(keepends=True))
    return manifest, lines


def assert_export_exact(e2e: E2E, root: Path, *, total_segments: int) -> dict[str, Any]:
    """The export under ``root`` holds every item of the table exactly once, every value exact, and says so."""
    manifest, lines = read_export(root)
    assert manifest["table_name"] == TABLE, manifest["table_name"]
    assert manifest["total_segments"] == total_segments, manifest["total_segments"]
    assert manifest["items"] == ITEMS, f"manifest says {manifest['items']} items, the table holds {ITEMS}"
    assert len(lines) == ITEMS, f"{len(lines)} lines in the parts, the table holds {ITEMS} items"
    values = [json_value(line) for line in lines]
    keys = [value["pk"] for value in values]
    assert len(set(keys)) == ITEMS, f"{len(keys) - len(set(keys))} items exported twice"
    wrong = [key for key, value in zip(keys, values, strict=True) if e2e.expected_lines.get(key) != value]
    assert not wrong, f"{len(wrong)} exported items differ from the table, e.g. {wrong[:3]}"
    return manifest


def export_root(conf_destination: Path) -> Path:
    """The one export directory under ``{destination}/{table}/`` of a run (its name comes from the run)."""
    roots = [path for path in (conf_destination / TABLE).iterdir() if path.is_dir()]
    assert len(roots) == 1, f"expected one export folder under {conf_destination / TABLE}, found {roots}"
    return roots[0]


def segment_instances(e2e: E2E, run_id: str) -> list[dict[str, Any]]:
    """The mapped export task instances of a run of the parallel export, by segment."""
    instances = [ti for ti in e2e.api.task_instances(PARALLEL_EXPORT_DAG, run_id) if ti["task_id"] == EXPORT_TASK]
    return sorted(instances, key=lambda ti: ti["map_index"])


def peak_concurrency(intervals: list[tuple[datetime, datetime]]) -> tuple[int, float]:
    """The most intervals running at one moment, and for how many seconds all of them ran at once."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    all_at_once = (min(end for _, end in intervals) - max(start for start, _ in intervals)).total_seconds()
    return peak, max(0.0, all_at_once)


# -- checks ------------------------------------------------------------------------------------------------------


def check_parallel_export_with_logical_date(e2e: E2E) -> None:
    """8 mapped segments with a logical date: concurrent, exact, labelled ``segment N of 8`` in the UI."""
    logical_date = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    destination = e2e.exports / "with-logical-date"
    conf = {"table_name": TABLE, "destination": str(destination), "total_segments": SEGMENTS}
    run_id, triggered = e2e.trigger(PARALLEL_EXPORT_DAG, conf, logical_date=logical_date)
    e2e.wait(PARALLEL_EXPORT_DAG, run_id)
    e2e.figure("8-segment export, trigger -> success", f"{time.monotonic() - triggered:.1f} s")
    e2e.producer_runs.append(run_id)
    instances = segment_instances(e2e, run_id)
    assert [ti["map_index"] for ti in instances] == list(range(SEGMENTS)), [ti["map_index"] for ti in instances]
    labels = [ti["rendered_map_index"] for ti in instances]
    assert labels == [f"segment {n} of {SEGMENTS}" for n in range(SEGMENTS)], labels
    intervals = [(parse_time(ti["start_date"]), parse_time(ti["end_date"])) for ti in instances]
    peak, all_at_once = peak_concurrency(intervals)  # type: ignore[arg-type]
    durations = [(end - start).total_seconds() for start, end in intervals]  # type: ignore[operator]
    e2e.figure(
        "mapped export overlap",
        f"up to {peak} of {SEGMENTS} segments running at once; all {SEGMENTS} at once for {all_at_once:.1f} s; "
        f"each {min(durations):.1f}-{max(durations):.1f} s",
    )
    assert peak >= 2, f"the mapped export tasks never overlapped: {intervals}"
    root = export_root(destination)
    assert logical_date[:10] in root.name, f"the folder {root.name} should name the run's date {logical_date[:10]}"
    manifest = assert_export_exact(e2e, root, total_segments=SEGMENTS)
    e2e.figure("export", f"{manifest['items']:,} items, {manifest['bytes']:,} bytes, {manifest['part_count']} parts")
    links = e2e.api.extra_links(PARALLEL_EXPORT_DAG, run_id, EXPORT_TASK, 3)
    table_url = "https://console.aws.amazon.com/dynamodbv2/home?region=us-east-1#table?name=orders"
    assert links.get("DynamoDB Table") == table_url, links
    assert not links.get("Export Destination"), links  # a local destination has no console


def check_parallel_export_without_logical_date(e2e: E2E) -> None:
    """A manual run without a logical date (as from the UI or CLI): the destination falls back to the run id."""
    destination = e2e.exports / "without-logical-date"
    conf = {"table_name": TABLE, "destination": str(destination), "total_segments": 2}
    run_id, _ = e2e.trigger(PARALLEL_EXPORT_DAG, conf, logical_date=None)
    run = e2e.wait(PARALLEL_EXPORT_DAG, run_id)
    assert run["logical_date"] is None, run["logical_date"]
    e2e.producer_runs.append(run_id)
    root = export_root(destination)
    assert_export_exact(e2e, root, total_segments=2)
    e2e.figure("export without a logical date", f"folder {root.name}")


def find_task_process(ti_id: str) -> psutil.Process | None:
    """The process running task instance ``ti_id`` (its title is ``airflow worker -- {ti_id}``)."""
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if cmdline.startswith("airflow worker --") and ti_id in cmdline:
            return process
    return None


def task_log_has(e2e: E2E, run_id: str, task_id: str, map_index: int, text: str) -> bool:
    """Whether the first try's log of the task instance contains ``text``."""
    logs = Path(e2e.stack.env["AIRFLOW_HOME"]) / "logs"
    pattern = f"dag_id={PARALLEL_EXPORT_DAG}/run_id={run_id}/task_id={task_id}/map_index={map_index}/attempt=1.log"
    return any(text in path.read_text(errors="replace") for path in logs.glob(pattern))


def check_sigkilled_segment_is_retried(e2e: E2E) -> None:
    """SIGKILL one export_segment process in the middle of its scan: the retry makes the export exact, once."""
    destination = e2e.exports / "sigkill"
    total_segments = 2  # fewer, longer segments: the scan is still running when the kill arrives
    conf = {"table_name": TABLE, "destination": str(destination), "total_segments": total_segments}
    run_id, _ = e2e.trigger(PARALLEL_EXPORT_DAG, conf)

    def scanning() -> dict[str, Any] | None:
        e2e.stack.check_alive()
        for ti in segment_instances(e2e, run_id):
            if ti["state"] == "running" and task_log_has(e2e, run_id, EXPORT_TASK, ti["map_index"], "Exporting table"):
                return ti
        return None

    victim = wait_for("an export_segment task scanning", scanning, RUN_TIMEOUT, 0.2)
    process = wait_for("the task's process", lambda: find_task_process(victim["id"]), 30, 0.1)
    time.sleep(0.3)
    process.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    e2e.wait(PARALLEL_EXPORT_DAG, run_id)
    tries = e2e.api.tries(PARALLEL_EXPORT_DAG, run_id, EXPORT_TASK, victim["map_index"])
    states = [attempt["state"] for attempt in tries]
    assert states[-1] == "success" and len(tries) == 2, f"tries of the killed segment: {states}"
    recovered = parse_time(tries[-1]["end_date"])
    assert recovered is not None
    seconds = time.monotonic() - killed - (datetime.now(timezone.utc) - recovered).total_seconds()
    e2e.figure(
        "SIGKILL recovery",
        f"segment {victim['map_index']} killed mid-scan (pid {process.pid}), try 2 succeeded {seconds:.1f} s later",
    )
    e2e.producer_runs.append(run_id)
    root = export_root(destination)
    assert_export_exact(e2e, root, total_segments=total_segments)
    leftovers = [path.name for path in root.rglob(".*.tmp")]
    e2e.figure("files the killed try left aside (never read)", str(len(leftovers)))


def check_asset_consumer_runs_once_per_export(e2e: E2E) -> None:
    """Each complete export records one asset event; the consumer DAG runs after it and reads that manifest."""
    assert e2e.producer_runs, "no export run succeeded, so there is no asset event to consume"
    expected_runs = set(e2e.producer_runs)

    def all_events_consumed() -> list[dict[str, Any]] | None:
        e2e.stack.check_alive()
        runs = e2e.api.runs(CONSUMER_DAG)
        if any(run["state"] not in ("success", "failed") for run in runs):
            return None
        consumed = [event for run in runs for event in e2e.api.upstream_asset_events(CONSUMER_DAG, run["dag_run_id"])]
        return runs if {event["source_run_id"] for event in consumed} >= expected_runs else None

    consumer_runs = wait_for("the consumer DAG to consume every export's event", all_events_consumed, RUN_TIMEOUT, 1)
    events = e2e.api.asset_events(EXPORT_ASSET)
    sources = sorted(event["source_run_id"] for event in events)
    assert sources == sorted(expected_runs), f"asset events from runs {sources}; expected one per export run"
    seen: list[int] = []
    summaries: list[dict[str, Any]] = []
    for run in consumer_runs:
        assert run["state"] == "success", f"consumer run {run['dag_run_id']} ended {run['state']}"
        assert run["run_type"] == "asset_triggered", run["run_type"]
        upstream = e2e.api.upstream_asset_events(CONSUMER_DAG, run["dag_run_id"])
        seen.extend(event["id"] for event in upstream)
        started = parse_time(run["start_date"])
        assert started is not None
        for event in upstream:
            produced = parse_time(event["timestamp"])
            assert produced is not None and started > produced, f"consumer run started before the event {event}"
            e2e.figure(
                "asset-triggered consumer run",
                f"{run['dag_run_id']} started {(started - produced).total_seconds():.1f} s after the event of "
                f"{event['source_run_id']}, "
                f"took {(parse_time(run['end_date']) - started).total_seconds():.1f} s",  # type: ignore[operator]
            )
        summaries.extend(e2e.api.xcom(CONSUMER_DAG, run["dag_run_id"], "read_exports"))
    assert sorted(seen) == sorted(event["id"] for event in events), f"events consumed {seen}, not each once"
    for event in events:
        extra = event["extra"]
        assert extra["items"] == ITEMS and extra["table_name"] == TABLE, extra
        assert extra["manifest"].endswith("/manifest.json") and Path(extra["manifest"]).exists(), extra
        assert {"file_format", "bytes", "total_segments", "scan_started_at", "scan_finished_at"} <= set(extra), extra
    assert sorted(summary["manifest"] for summary in summaries) == sorted(e["extra"]["manifest"] for e in events)
    assert all(summary["items"] == ITEMS for summary in summaries), summaries


def check_transform(e2e: E2E) -> None:
    """The transform example normalises every item once, as its dry run announced; nothing else changes."""
    run_id, _ = e2e.trigger("example_dynamodb_transform", {"table_name": TRANSFORM_TABLE})
    e2e.wait("example_dynamodb_transform", run_id)
    totals = e2e.api.xcom("example_dynamodb_transform", run_id, "report_dry_run")
    assert totals == {"scanned": TRANSFORM_ITEMS, "would_write": TRANSFORM_ITEMS, "unchanged": 0}, totals
    instances = e2e.api.task_instances("example_dynamodb_transform", run_id)
    labels = sorted(ti["rendered_map_index"] for ti in instances if ti["task_id"] == "normalise")
    assert labels == [f"segment {n} of 4" for n in range(4)], labels
    written = sum(e2e.api.xcom("example_dynamodb_transform", run_id, "normalise", n)["written"] for n in range(4))
    assert written == TRANSFORM_ITEMS, f"{written} items written, expected {TRANSFORM_ITEMS}"
    items = scan_table(e2e.stack.dynalite_url, TRANSFORM_TABLE)
    assert len(items) == TRANSFORM_ITEMS, len(items)
    for item in items:
        number = int(item["n"])
        expected = sample_item(number, padding=20)
        stamped = item.pop("updated_at")
        assert isinstance(stamped, str) and stamped.startswith("20"), stamped
        assert item == {**expected, "status": expected["status"].lower()}, f"item {number} changed beyond the transform"
    e2e.figure("transform", f"{written:,} items normalised in 4 mapped segments")


def check_aggregate(e2e: E2E) -> None:
    """The aggregate example's totals per status equal the table's, to the last digit."""
    run_id, _ = e2e.trigger("example_dynamodb_aggregate", {"table_name": TABLE})
    e2e.wait("example_dynamodb_aggregate", run_id)
    result = e2e.api.xcom("example_dynamodb_aggregate", run_id, "combine")
    amounts: dict[str, Decimal] = {}
    orders: dict[str, int] = {}
    for number in range(ITEMS):
        item = sample_item(number, padding=0)
        amounts[item["status"]] = amounts.get(item["status"], Decimal(0)) + item["amount"]
        orders[item["status"]] = orders.get(item["status"], 0) + 1
    got = {status: Decimal(text) for status, text in result["amount_by_status"].items()}
    assert got == amounts, f"amounts {got} != {amounts}"
    assert result["orders_by_status"] == orders, result["orders_by_status"]
    instances = e2e.api.task_instances("example_dynamodb_aggregate", run_id)
    labels = sorted(ti["rendered_map_index"] for ti in instances if ti["task_id"] == "sum_segment")
    assert labels == [f"segment {n} of 4" for n in range(4)], labels
    e2e.figure("aggregate", ", ".join(f"{status} {amount}" for status, amount in sorted(amounts.items())))


CHECKS: list[Callable[[E2E], None]] = [
    check_native_export_defers_and_frees_its_slot,
    check_parallel_export_with_logical_date,
    check_parallel_export_without_logical_date,
    check_sigkilled_segment_is_retried,
    check_asset_consumer_runs_once_per_export,
    check_transform,
    check_aggregate,
    calendar_check.check_calendar_of_scheduled_runs,
]


# -- the run -----------------------------------------------------------------------------------------------------


def dynamodb_client(endpoint_url: str) -> Any:
    """A boto3 DynamoDB client of the local server itself (the checks read the tables without the code under test)."""
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="e2e-access-key",
        aws_secret_access_key="e2e-secret-key",
    )


def scan_table(endpoint_url: str, table_name: str) -> list[dict[str, Any]]:
    """Every item of the table, read with boto3's paginator and TypeDeserializer (``bytes`` for binary values)."""
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()

    def plain(value: Any) -> Any:
        value = deserializer.deserialize(value) if isinstance(value, dict) and len(value) == 1 else value
        return getattr(value, "value", value) if type(value).__name__ == "Binary" else value

    items = []
    for page in dynamodb_client(endpoint_url).get_paginator("scan").paginate(TableName=table_name):
        items.extend({name: plain(value) for name, value in item.items()} for item in page["Items"])
    return items


def load_tables(endpoint_url: str) -> float:
    """Create and fill the tables of the checks on the local server (directly, not through the proxy)."""
    client = dynamodb_client(endpoint_url)
    started = time.monotonic()
    load_sample_table(client, TABLE, ITEMS, padding=PADDING)
    load_sample_table(client, TRANSFORM_TABLE, TRANSFORM_ITEMS, padding=20)
    return time.monotonic() - started


def take_screenshot(e2e: E2E, path: Path) -> None:
    """A PNG of the grid view of the 8-segment export run, by headless Chromium."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
            subprocess.run(command, check=True, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        chromium = shutil.which("chromium")
    if chromium is None:
        raise RuntimeError("chromium is not installed (apt-get install -y chromium)")
    run_id = e2e.producer_runs[0]
    url = f"{e2e.stack.api_url}/dags/{PARALLEL_EXPORT_DAG}/runs/{run_id}"
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = tempfile.mkdtemp(prefix="e2e-chromium-")
    try:
        command = [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", f"--screenshot={path.resolve()}", "--window-size=1400,900",
            "--virtual-time-budget=15000", "--hide-scrollbars", url,
        ]  # fmt: skip
        subprocess.run(
            command,
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=120,
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    print(f"Screenshot of {url} -> {path}", flush=True)


def run_checks(
    e2e: E2E, only: str | None, counts: dict[str, int], checks: list[Callable[[E2E], None]] | None = None
) -> None:
    for check in CHECKS if checks is None else checks:
        if only and only not in check.__name__:
            continue
        name = check.__name__.removeprefix("check_")
        print(f"{name} ...", flush=True)
        started = time.monotonic()
        try:
            check(e2e)
        except Exception as error:  # noqa: BLE001 - every failure is reported, and the next check still runs
            counts["failed"] += 1
            print(f"FAILED {name} ({time.monotonic() - started:.1f} s): {str(error)[:2000]}", flush=True)
            print(traceback.format_exc(limit=3)[-3000:], flush=True)
        else:
            counts["passed"] += 1
            print(f"PASSED {name} ({time.monotonic() - started:.1f} s)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the run's files in .local/e2e/")
    parser.add_argument("--screenshot", type=Path, help="save a PNG of the grid view of the 8-segment export here")
    parser.add_argument("--only", help="run only the checks whose name contains this")
    arguments = parser.parse_args(argv)
    started = time.monotonic()
    base = PROJECT_ROOT / ".local" / "e2e"
    base.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="run-", dir=base))
    os.environ.update(calendar_check.calendar_environment(root))  # read by the calendar DAGs when parsed
    stack = Stack(root, latency_ms=LATENCY_MS)
    atexit.register(stack.stop)

    def stop_on_signal(signal_number: int, _frame: Any) -> None:
        raise SystemExit(f"stopped by signal {signal_number}")

    for signal_number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signal_number, stop_on_signal)
    counts = {"passed": 0, "failed": 0}
    try:
        ensure_python_package("psycopg2", "psycopg2-binary")  # Airflow's metadata database driver, and
        ensure_python_package("asyncpg", "asyncpg")  # its async one
        ensure_python_package("flask", "flask")  # moto's server, for the native export
        ensure_python_package("flask_cors", "flask-cors")
        database_url = stack.start_postgres()
        stack.start_dynamodb()
        stack.start_moto()
        stack.airflow_env(database_url, api_port=free_port())
        migration = stack.start_migration()
        seconds = load_tables(stack.dynalite_url)
        print(f"Loaded {ITEMS:,} items into {TABLE!r}, {TRANSFORM_ITEMS:,} into {TRANSFORM_TABLE!r} ({seconds:.1f} s)")
        stack.finish_migration(migration)
        print(f"airflow db migrate done (PostgreSQL on port {stack.pg_port}): {time.monotonic() - started:.1f} s")
        stack.start_airflow()
        api = AirflowApi(stack.api_url)
        e2e = E2E(stack, api, root / "exports")
        e2e.expected_lines = expected_export_lines()
        dag_ids = (
            PARALLEL_EXPORT_DAG,
            CONSUMER_DAG,
            "example_dynamodb_transform",
            "example_dynamodb_aggregate",
            NATIVE_DAG,
            calendar_check.SCAN_DAG,
            calendar_check.NATIVE_DAG,
            calendar_check.MIRROR_DAG,
        )
        for dag_id in dag_ids:
            wait_for(f"the dag-processor to store {dag_id}", lambda dag_id=dag_id: api.dag(dag_id), 180, 1)
            api.warm_up(dag_id)
        e2e.unpause(CONSUMER_DAG)  # asset events start runs of unpaused DAGs only
        print(f"Airflow is up at {stack.api_url} ({time.monotonic() - started:.1f} s after the start)", flush=True)
        run_checks(e2e, arguments.only, counts)
        if arguments.screenshot and e2e.producer_runs:
            take_screenshot(e2e, arguments.screenshot)
        print("Figures:")
        for name, value in e2e.figures:
            print(f"  {name}: {value}")
    except BaseException as error:  # noqa: BLE001 - the stack is stopped and the failure reported below
        counts["failed"] += 1
        print(f"FAILED setup: {str(error)[:2000]}", flush=True)
        if not isinstance(error, SystemExit | KeyboardInterrupt):
            print(traceback.format_exc(limit=5)[-3000:], flush=True)
    finally:
        stack.stop()
    passed, failed = counts["passed"], counts["failed"]
    if failed or arguments.keep:
        print(f"Files of the run (logs, Airflow home, exports): {root}; PostgreSQL's: {stack.pg_root}")
    else:
        stack.remove_files()
    print(f"{'=' * 20} {passed} passed, {failed} failed in {time.monotonic() - started:.1f} s {'=' * 20}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
