"""
``make bench``: throughput, client CPU and memory of airflow-dynamoscan against the usual ways of reading a table.

One run does everything, each measured case in its own process (:mod:`benchmarks.cases`):

1. starts the local DynamoDB server (dynalite) and loads a table of ``--items`` sample items of ~1 KB, every
   DynamoDB type (:mod:`devtools.sample_data`);
2. starts the replay server (:mod:`benchmarks.replay_server`) in front of it and records every Scan shape the
   cases use, so the same pages can be served again without dynalite's own cost;
3. runs every case in three scenarios: straight against dynalite (its single Node.js thread is the limit), and
   against the replay server with 0 and with 20 ms added per request by the proxy of
   :mod:`devtools.dynamodb_proxy` (there the client is the limit, as against real DynamoDB);
4. measures parallel speed-up at 20 ms with full 1 MB pages and with small pages (``Limit``), scale-out over
   processes (one segment per process, as mapped tasks), and the peak memory of a whole-table export at two table
   sizes (synthetic pages from the replay server, no loading);
5. writes ``benchmarks/results/results.md`` (tables, ratios, targets met or not), ``results.json`` and
   ``throughput.png``; ``--update-readme`` also replaces the README's "Benchmarks" section.

``--quick`` is a smoke run of about two minutes on a small table.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.cases import RESULT_PREFIX, Options, _raw_scan
from devtools.local_dynamodb import PROJECT_ROOT, running_dynalite
from devtools.sample_data import create_table, put_items, sample_item

RESULTS = PROJECT_ROOT / "benchmarks" / "results"
QUICK_RESULTS = RESULTS / "raw" / "quick"
TABLE = "bench-items"
ITEM_PADDING = 500
LATENCY_MS = 20.0
CASE_TIMEOUT_SECONDS = 900


@dataclass(frozen=True)
class Case:
    """A measured case: its label in the report, its function in :mod:`benchmarks.cases`, and its options."""

    key: str
    label: str
    function: str
    kind: str  # "floor", "baseline" or "ours"
    workers: int = 1
    total_segments: int | None = None


#: The cases of the throughput table, in the order of the report.
THROUGHPUT_CASES = (
    Case("raw_floor", "raw floor: HTTP + orjson.loads, no decoding", "raw_floor", "floor"),
    Case("raw_floor_8", "raw floor, 8 threads", "raw_floor_threads", "floor", 8, 8),
    Case("boto3_paginator", "boto3 paginator + TypeDeserializer", "boto3_paginator", "baseline"),
    Case("boto3_threadpool", "boto3 ThreadPoolExecutor parallel scan, 8 threads", "boto3_threadpool", "baseline", 8, 8),
    Case("dynamodb_to_s3", "Amazon provider DynamoDBToS3Operator", "amazon_dynamodb_to_s3", "baseline"),
    Case("awswrangler", "awswrangler read_items (1 thread per CPU)", "awswrangler_read_items", "baseline"),
    Case("scan_botocore", "ours: scan, fast_decoding=False", "scan_botocore", "ours"),
    Case("scan", "ours: scan", "scan", "ours"),
    Case("parallel_scan_1", "ours: parallel_scan, 1 worker", "parallel_scan", "ours", 1, 8),
    Case("parallel_scan_4", "ours: parallel_scan, 4 workers", "parallel_scan", "ours", 4, 8),
    Case("parallel_scan_8", "ours: parallel_scan, 8 workers", "parallel_scan", "ours", 8, 8),
    Case("export_jsonl_gz", "ours: DynamoDBExportOperator to jsonl.gz, 8 threads", "export_jsonl_gz", "ours", 8, 8),
    Case("export_parquet", "ours: DynamoDBExportOperator to Parquet, 8 threads", "export_parquet", "ours", 8, 8),
    Case("mapped_export_dag", "ours: mapped export DAG, 4 segments, dag.test()", "mapped_export_dag", "ours", 4, 4),
)

#: The speed-up curve: serial scan, then parallel_scan with more and more threads over 8 segments.
SPEEDUP_WORKERS = (1, 2, 4, 8)


@dataclass(frozen=True)
class Settings:
    items: int
    memory_items: tuple[int, int]
    small_page_limit: int
    quick: bool
    scenarios: tuple[str, ...]
    output: Path
    update_readme: bool


@dataclass
class Run:
    """Everything one benchmark run measured, as written to results.json."""

    settings: dict[str, Any]
    machine: dict[str, Any]
    results: list[dict[str, Any]] = field(default_factory=list)
    load_seconds: float = 0.0
    table_wire_bytes: int = 0
    table_pages: int = 0


class Servers:
    """The servers of one run and the environment the case processes get."""

    def __init__(self, dynalite_url: str, replay_url: str, airflow_home: str) -> None:
        self.urls = {"dynalite": dynalite_url, "replay": replay_url}
        self.airflow_home = airflow_home

    def environment(self, endpoint: str) -> dict[str, str]:
        environment = {name: value for name, value in os.environ.items() if not name.startswith(("AWS_", "AIRFLOW"))}
        connection = {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"region_name": "us-east-1", "endpoint_url": endpoint},
        }
        environment.update(
            {
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
                "AIRFLOW_HOME": self.airflow_home,
                "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(connection),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "example_dags"),
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
                "PYTHONPATH": str(PROJECT_ROOT),
            }
        )
        return environment


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


@contextlib.contextmanager
def background_server(command: list[str]) -> Iterator[str]:
    """Run a server that prints its endpoint URL on its first line; yield the URL; stop it afterwards."""
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        endpoint = process.stdout.readline().strip()
        if not endpoint.startswith("http://"):
            raise RuntimeError(f"{' '.join(command)} did not start (printed {endpoint!r})")
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def with_latency(endpoint: str, latency_ms: float) -> Iterator[str]:
    """The endpoint itself for 0 ms, else the proxy in front of it, in its own process."""
    if not latency_ms:
        yield endpoint
        return
    command = [sys.executable, "-m", "devtools.dynamodb_proxy", "--upstream", endpoint, "--latency-ms", str(latency_ms)]
    with background_server(command) as proxy_url:
        yield proxy_url


def run_case(
    servers: Servers,
    endpoint: str,
    case: str,
    table: str,
    *,
    workers: int = 1,
    total_segments: int | None = None,
    segment: int | None = None,
    limit: int | None = None,
    start_at: float | None = None,
) -> subprocess.Popen[str]:
    """Start one case in its own process; read its result with :func:`case_result`."""
    command = [sys.executable, "-m", "benchmarks.cases", case, "--endpoint", endpoint, "--table", table]
    command += ["--workers", str(workers)]
    for flag, value in (
        ("--total-segments", total_segments),
        ("--segment", segment),
        ("--limit", limit),
        ("--start-at", start_at),
    ):
        if value is not None:
            command += [flag, str(value)]
    return subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        env=servers.environment(endpoint),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def case_result(process: subprocess.Popen[str], expected_items: int | None) -> dict[str, Any]:
    """Wait for a case; return its measurement, or ``{"error": ...}`` if it failed or read the wrong count."""
    try:
        stdout, stderr = process.communicate(timeout=CASE_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        return {"error": f"timed out after {CASE_TIMEOUT_SECONDS} s"}
    lines = [line for line in stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if process.returncode != 0 or not lines:
        return {"error": f"exit code {process.returncode}: {stderr.strip()[-1500:]}"}
    result: dict[str, Any] = json.loads(lines[-1][len(RESULT_PREFIX) :])
    if expected_items is not None and result["items"] != expected_items:
        result["error"] = f"read {result['items']} items, expected {expected_items}"
    return result


def measure(
    run: Run,
    servers: Servers,
    endpoint: str,
    *,
    group: str,
    scenario: str,
    key: str,
    case: str,
    table: str,
    expected_items: int | None,
    **options: Any,
) -> dict[str, Any]:
    load_average = os.getloadavg()[0]
    result = case_result(run_case(servers, endpoint, case, table, **options), expected_items)
    result.update(group=group, scenario=scenario, key=key, function=case, options=options, load_average=load_average)
    run.results.append(result)
    if "error" in result:
        log(f"  {scenario:<18} {key:<22} FAILED: {result['error'][-300:]}")
    else:
        log(
            f"  {scenario:<18} {key:<22} {result['items'] / result['seconds']:>9,.0f} items/s  "
            f"{1000 * result['cpu_seconds'] / max(result['items'], 1):6.3f} CPU s/1k  "
            f"{result['peak_rss_mb']:7.0f} MB peak"
        )
    return result


def machine_description() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    versions = {}
    for package in (
        "boto3",
        "botocore",
        "orjson",
        "apache-airflow",
        "apache-airflow-providers-amazon",
        "awswrangler",
        "pyarrow",
        "airflow-dynamoscan",
    ):
        with contextlib.suppress(PackageNotFoundError):
            versions[package] = version(package)
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False).stdout.strip()
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(memory_gib, 1),
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "node": node,
        "date": datetime.date.today().isoformat(),
        "versions": versions,
        "load_average_at_start": os.getloadavg()[0],
    }


def prepare_airflow_home() -> tuple[str, subprocess.Popen[bytes]]:
    """A throwaway AIRFLOW_HOME whose SQLite metadata database ``airflow db migrate`` is creating."""
    home = tempfile.mkdtemp(prefix="dynamoscan-bench-airflow-")
    environment = Servers("", "", home).environment("http://127.0.0.1:1")
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        cwd=PROJECT_ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    return home, process


def load_table(run: Run, endpoint: str, item_count: int) -> None:
    import boto3

    client = boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    started = time.monotonic()
    create_table(client, TABLE)
    put_items(client, TABLE, (sample_item(number, padding=ITEM_PADDING) for number in range(item_count)), threads=4)
    run.load_seconds = time.monotonic() - started
    log(f"Loaded {item_count:,} items into dynalite in {run.load_seconds:.0f} s")


def record_scan_shapes(run: Run, replay_url: str, settings: Settings) -> None:
    """Scan through the replay server once in every shape the cases use, so that later scans are replayed."""
    started = time.monotonic()
    shapes: list[tuple[int | None, int | None]] = [(None, None)]  # (total segments, Limit)
    shapes += [(total, None) for total in (2, 4, 8)]
    shapes += [(None, settings.small_page_limit), (8, settings.small_page_limit)]
    for total, limit in shapes:
        options = Options(endpoint=replay_url, table=TABLE, limit=limit)
        count = (
            _raw_scan(options, None, None)
            if total is None
            else sum(_raw_scan(options, segment, total) for segment in range(total))
        )
        if count != settings.items:
            raise RuntimeError(f"recording {total} segments, Limit {limit}: {count} items, not {settings.items}")
    # The size of the table as a client receives it: pages of the serial scan.
    import http.client
    from urllib.parse import urlsplit

    import orjson

    from benchmarks.cases import _RAW_HEADERS

    address = urlsplit(replay_url)
    connection = http.client.HTTPConnection(address.hostname or "", address.port)
    request: dict[str, Any] = {"TableName": TABLE}
    while True:
        connection.request("POST", "/", body=orjson.dumps(request), headers=_RAW_HEADERS)
        body = connection.getresponse().read()
        run.table_wire_bytes += len(body)
        run.table_pages += 1
        page = orjson.loads(body)
        if "LastEvaluatedKey" not in page:
            break
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    connection.close()
    log(
        f"Recorded {len(shapes)} scan shapes in the replay server in {time.monotonic() - started:.0f} s; "
        f"the table is {run.table_wire_bytes / 2**20:.1f} MB on the wire, {run.table_pages} pages"
    )


def throughput_scenarios(run: Run, servers: Servers, settings: Settings) -> None:
    for scenario in settings.scenarios:
        backend, _, latency = scenario.partition("+")
        latency_ms = float(latency.removesuffix("ms") or 0)
        log(f"Scenario {scenario}")
        with with_latency(servers.urls[backend], latency_ms) as endpoint:
            for case in THROUGHPUT_CASES:
                if settings.quick and case.key in ("scan_botocore", "parallel_scan_4", "export_parquet"):
                    continue
                measure(
                    run,
                    servers,
                    endpoint,
                    group="throughput",
                    scenario=scenario,
                    key=case.key,
                    case=case.function,
                    table=TABLE,
                    expected_items=settings.items,
                    workers=case.workers,
                    total_segments=case.total_segments,
                )


def speedup_scenario(run: Run, servers: Servers, settings: Settings) -> None:
    """Serial scan vs parallel_scan with 1, 2, 4, 8 threads at 20 ms, with 1 MB pages and with small pages."""
    with with_latency(servers.urls["replay"], LATENCY_MS) as endpoint:
        for limit in (None, settings.small_page_limit):
            scenario = f"replay+{LATENCY_MS:g}ms" + ("" if limit is None else f", Limit {limit}")
            log(f"Speed-up, {scenario}")
            common: dict[str, Any] = {
                "group": "speedup",
                "scenario": scenario,
                "table": TABLE,
                "expected_items": settings.items,
            }
            measure(run, servers, endpoint, key="scan", case="scan", limit=limit, **common)
            for workers in SPEEDUP_WORKERS:
                measure(
                    run,
                    servers,
                    endpoint,
                    key=f"parallel_scan_{workers}",
                    case="parallel_scan",
                    workers=workers,
                    total_segments=8,
                    limit=limit,
                    **common,
                )


def scale_out_scenario(run: Run, servers: Servers, settings: Settings, processes: int = 2) -> None:
    """One process with ``processes`` threads vs ``processes`` processes reading one segment each."""
    endpoint = servers.urls["replay"]
    log(f"Scale-out over processes, replay+0ms, {processes} segments")
    common: dict[str, Any] = {"group": "scale_out", "scenario": "replay+0ms", "table": TABLE}
    measure(
        run,
        servers,
        endpoint,
        key="one_process",
        case="parallel_scan",
        expected_items=settings.items,
        workers=processes,
        total_segments=processes,
        **common,
    )
    start_at = time.time() + 8  # every process has imported boto3 and built its client by then
    started = [
        run_case(servers, endpoint, "segment_scan", TABLE, segment=segment, total_segments=processes, start_at=start_at)
        for segment in range(processes)
    ]
    parts = [case_result(process, None) for process in started]
    if any("error" in part for part in parts):
        errors = "; ".join(part.get("error", "") for part in parts)
        result: dict[str, Any] = {"error": errors}
    else:
        result = {
            "items": sum(part["items"] for part in parts),
            "seconds": max(part["finished_at"] for part in parts) - min(part["started_at"] for part in parts),
            "cpu_seconds": sum(part["cpu_seconds"] for part in parts),
            "peak_rss_mb": max(part["peak_rss_mb"] for part in parts),
            "start_rss_mb": max(part["start_rss_mb"] for part in parts),
            "extra": {"processes": parts},
        }
        if result["items"] != settings.items:
            result["error"] = f"read {result['items']} items, expected {settings.items}"
    result.update(key=f"{processes}_processes", function="segment_scan", options={"processes": processes}, **common)
    result.pop("table")
    run.results.append(result)
    if "error" not in result:
        log(f"  {processes} processes: {result['items'] / result['seconds']:,.0f} items/s together")
    else:
        log(f"  {processes} processes FAILED: {result['error'][-300:]}")


def memory_scenario(run: Run, servers: Servers, settings: Settings) -> None:
    """Peak RSS of a whole-table jsonl.gz export of a synthetic table at two sizes."""
    endpoint = servers.urls["replay"]
    for item_count in settings.memory_items:
        log(f"Memory: export of synthetic-{item_count}")
        measure(
            run,
            servers,
            endpoint,
            group="memory",
            scenario="synthetic, replay+0ms",
            key=f"export_{item_count}",
            case="export_jsonl_gz",
            table=f"synthetic-{item_count}",
            expected_items=item_count,
            workers=8,
            total_segments=8,
        )


def parse_arguments(argv: list[str] | None) -> Settings:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of about two minutes on a small table")
    parser.add_argument("--items", type=int, default=None, help="items in the table (default 40,000; quick 3,000)")
    parser.add_argument(
        "--memory-items",
        default=None,
        help="the two synthetic table sizes of the memory test (default 100000,1000000; quick 30000,90000)",
    )
    parser.add_argument(
        "--scenarios",
        default="dynalite+0ms,replay+0ms,replay+20ms",
        help="throughput scenarios, BACKEND+LATENCY: dynalite or replay, e.g. dynalite+20ms",
    )
    parser.add_argument("--update-readme", action="store_true", help="replace the README's Benchmarks section")
    parser.add_argument(
        "--output",
        default=None,
        help=f"where results.md, results.json and the chart go (default {RESULTS.relative_to(PROJECT_ROOT)}; "
        f"quick: {QUICK_RESULTS.relative_to(PROJECT_ROOT)}, which git ignores)",
    )
    arguments = parser.parse_args(argv)
    quick = arguments.quick
    memory = arguments.memory_items or ("30000,90000" if quick else "100000,1000000")
    small, large = (int(value) for value in memory.split(","))
    scenarios = tuple(arguments.scenarios.split(","))
    if quick and arguments.scenarios == parser.get_default("scenarios"):
        scenarios = ("replay+20ms",)
    settings = Settings(
        items=arguments.items or (3_000 if quick else 40_000),
        memory_items=(small, large),
        small_page_limit=100,
        quick=quick,
        scenarios=scenarios,
        output=Path(arguments.output or (QUICK_RESULTS if quick else RESULTS)),
        update_readme=arguments.update_readme,
    )
    settings.output.mkdir(parents=True, exist_ok=True)
    return settings


def main(argv: list[str] | None = None) -> int:
    settings = parse_arguments(argv)
    started = time.monotonic()
    run = Run(
        settings={name: value for name, value in vars(settings).items() if name not in ("output", "update_readme")},
        machine=machine_description(),
    )
    log(f"Benchmark on {run.machine['cores']} cores ({run.machine['cpu']}), {settings}")
    airflow_home, migration = prepare_airflow_home()
    with running_dynalite() as dynalite_url:
        load_table(run, dynalite_url, settings.items)
        if migration.wait() != 0:
            raise RuntimeError(f"airflow db migrate failed: {migration.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        replay_command = [sys.executable, "-m", "benchmarks.replay_server", "--upstream", dynalite_url]
        with background_server(replay_command) as replay:
            record_scan_shapes(run, replay, settings)
            servers = Servers(dynalite_url, replay, airflow_home)
            throughput_scenarios(run, servers, settings)
            speedup_scenario(run, servers, settings)
            scale_out_scenario(run, servers, settings)
            memory_scenario(run, servers, settings)
    run.settings["total_seconds"] = round(time.monotonic() - started)
    run.machine["load_average_at_end"] = os.getloadavg()[0]
    paths = report.write(run, settings.output, update_readme=settings.update_readme)
    log(f"Done in {run.settings['total_seconds']} s: {', '.join(str(path) for path in paths)}")
    print(report.targets_text(run), flush=True)
    return 1 if any("error" in result for result in run.results) else 0


if __name__ == "__main__":
    sys.exit(main())
