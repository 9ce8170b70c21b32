"""
``make bench``: throughput, CPU and memory of airflow-dynamoscan's exports against the raw floor, in one run.

One run does everything, each measured case in its own process (:mod:`benchmarks.cases`), so that RSS and CPU are
per case. The pages come from memory: the replay server (:mod:`benchmarks.replay_server`) serves synthetic tables
of ~1 KB sample items of every DynamoDB type (``synthetic-{items}``, 1,500 items per page as in a 1 MB page), so
neither a local server nor a load step is in the measurement.

1. **Formats**: the raw floor (HTTP + ``orjson.loads`` + ``orjson.dumps`` per item, 4 threads), then a
   whole-table ``DynamoDBExportOperator`` export to each format with 4 threads over 4 segments, and
   ``DynamoDBScanHook.scan`` to JSON lines. The floor runs again just before and just after each case, and each
   case's ratios are to those two: on a shared machine the load changes from minute to minute, the ratio of
   neighbours much less.
2. **Threads**: the jsonl export with 1, 2, 4 and 8 threads (as many segments), items/s and peak RSS; 4 is the
   formats table's jsonl export, not measured twice.
3. **Memory**: the jsonl and Parquet exports at the operator's default settings of tables of 100,000 and 300,000
   items, and with ``--large`` of 1,000,000 items.
4. **Mapped tasks**: the start-up of a task (a no-op task with the export's imports and set-up), one process
   exporting one segment of N, and N processes exporting one segment each at once, for N = 2 .. cores, on a
   table of 100,000 items (on fewer, each process reads for well under a second, and the ratio is noise).

It writes ``benchmarks/results/results.json`` and ``results.md`` and, for a full run into that folder, the
tables of docs/benchmarks.md (``python -m benchmarks.report --docs`` does the same from a results.json).
``--quick`` is a smoke run of about two minutes on small tables, written under ``benchmarks/results/raw/quick``.
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
from benchmarks.cases import RESULT_PREFIX

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RESULTS = PROJECT_ROOT / "benchmarks" / "results"
QUICK_RESULTS = RESULTS / "raw" / "quick"
CASE_TIMEOUT_SECONDS = 900
FLOOR_THREADS = 4
LARGE_TABLE_ITEMS = 1_000_000
#: The cases of the formats table: key, case function; each after its own floor measurement.
FORMAT_CASES = (
    ("export_jsonl", "export_jsonl"),
    ("export_dynamodb_json", "export_dynamodb_json"),
    ("export_csv", "export_csv"),
    ("export_parquet", "export_parquet"),
    ("hook_scan", "hook_scan"),
)


@dataclass(frozen=True)
class Settings:
    """What one run measures; see ``python -m benchmarks.run --help``."""

    items: int
    memory_items: tuple[int, ...]
    threads: tuple[int, ...]
    mapped_items: int
    mapped_processes: tuple[int, ...]
    repeats: int
    quick: bool
    output: Path


@dataclass
class Run:
    """Everything one benchmark run measured, as written to results.json."""

    settings: dict[str, Any]
    machine: dict[str, Any]
    results: list[dict[str, Any]] = field(default_factory=list)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def uptime() -> str:
    """What ``uptime`` prints: the machine's load, which other work on the same cores raises."""
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


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


def case_environment(endpoint: str, airflow_home: str) -> dict[str, str]:
    """The environment of a case process: the ``aws_default`` connection and boto3 pointed at ``endpoint``."""
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
            "AIRFLOW_HOME": airflow_home,
            "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(connection),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "PYTHONPATH": str(PROJECT_ROOT),
        }
    )
    return environment


def run_case(endpoint: str, case: str, table: str, airflow_home: str, **options: Any) -> subprocess.Popen[str]:
    """
    Start one case in its own process; read its result with :func:`case_result`.

    :param options: ``workers``, ``total_segments``, ``segment``, ``barrier`` (``None`` values are left out)
    """
    command = [sys.executable, "-m", "benchmarks.cases", case, "--endpoint", endpoint, "--table", table]
    for name, value in options.items():
        if value is not None:
            command += [f"--{name.replace('_', '-')}", str(value)]
    command += ["--launched-at", repr(time.time())]
    return subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        env=case_environment(endpoint, airflow_home),
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


def trial_ratios(before: dict[str, Any], measured: dict[str, Any], after: dict[str, Any]) -> tuple[float, float]:
    """A case's items/s and CPU per item, each divided by that of its two floors taken together (0 if failed)."""
    floors = [floor for floor in (before, after) if "error" not in floor and floor.get("items")]
    if "error" in measured or not measured.get("items") or not floors:
        return 0.0, 0.0
    floor_items = sum(floor["items"] for floor in floors)
    floor_rate = floor_items / sum(floor["seconds"] for floor in floors)
    floor_cpu = sum(floor["cpu_seconds"] for floor in floors) / floor_items
    return (
        measured["items"] / measured["seconds"] / floor_rate,
        measured["cpu_seconds"] / measured["items"] / floor_cpu,
    )


class Bench:
    """
    The measuring side of one run: the replay server's endpoint, a throwaway AIRFLOW_HOME, the results.

    :param repeats: trials of each case measured beside its floors (the median is kept)
    """

    def __init__(self, run: Run, endpoint: str, airflow_home: str, repeats: int = 1) -> None:
        self.run = run
        self.endpoint = endpoint
        self.airflow_home = airflow_home
        self.repeats = repeats

    def start(self, case: str, table: str, **options: Any) -> subprocess.Popen[str]:
        return run_case(self.endpoint, case, table, self.airflow_home, **options)

    def measure(
        self, group: str, key: str, case: str, items: int, *, whole_table: bool = True, **options: Any
    ) -> dict[str, Any]:
        """Run ``case`` on ``synthetic-{items}`` alone (checking it read every item if ``whole_table``); record it."""
        result = self.run_case(case, items, whole_table=whole_table, **options)
        return self.record(result, group=group, key=key, case=case, options=options)

    def run_case(self, case: str, items: int, *, whole_table: bool = True, **options: Any) -> dict[str, Any]:
        """Run ``case`` on ``synthetic-{items}`` alone; return its measurement, not recorded."""
        load_average = os.getloadavg()[0]
        result = case_result(self.start(case, f"synthetic-{items}", **options), items if whole_table else None)
        result["load_average"] = load_average
        return result

    def beside_floors(self, group: str, key: str, case: str, items: int, **options: Any) -> None:
        """
        Measure ``case`` between two floor measurements, its neighbours for the ratios, ``repeats`` times; record
        the trial whose items/s ratio is the median (all trials' ratios are kept with it, under ``trials``).
        """
        trials = []
        for _ in range(self.repeats):
            before = self.run_case("raw_floor", items, workers=FLOOR_THREADS)
            measured = self.run_case(case, items, **options)
            after = self.run_case("raw_floor", items, workers=FLOOR_THREADS)
            trials.append((trial_ratios(before, measured, after), before, measured, after))
            if "error" in measured:
                break
        by_ratio = sorted(trials, key=lambda trial: trial[0][0])
        _, before, measured, after = trials[-1] if "error" in trials[-1][2] else by_ratio[len(trials) // 2]
        measured.setdefault("extra", {})["trials"] = [
            {"items_ratio": trial[0][0], "cpu_ratio": trial[0][1]} for trial in trials
        ]
        floor_options = {"workers": FLOOR_THREADS}
        self.record(before, group=group, key=f"floor_before_{key}", case="raw_floor", options=floor_options)
        self.record(measured, group=group, key=key, case=case, options=options)
        self.record(after, group=group, key=f"floor_after_{key}", case="raw_floor", options=floor_options)
        if len(trials) > 1:
            shown = ", ".join(f"{trial[0][0]:.2f}" for trial in trials)
            log(f"  {group:<8} {key:<24} items/s ÷ floor in {len(trials)} trials: {shown}; the median is kept")

    def reuse(self, group: str, key: str, new_group: str, new_key: str) -> bool:
        """Record the measurement ``key`` and its floors again under ``new_key``, if it succeeded."""
        found = {(result["group"], result["key"]): result for result in self.run.results}
        if "error" in found.get((group, key), {"error": "not measured"}):
            return False
        for old, new in ((key, new_key), (f"floor_before_{key}", f"floor_before_{new_key}")):
            self.run.results.append({**found[(group, old)], "group": new_group, "key": new, "same_as": old})
        after = found.get((group, f"floor_after_{key}"))
        if after is not None:
            self.run.results.append({**after, "group": new_group, "key": f"floor_after_{new_key}", "same_as": key})
        log(f"  {new_group:<8} {new_key:<24} the measurement of {group} {key}")
        return True

    def record(self, result: dict[str, Any], **labels: Any) -> dict[str, Any]:
        result.update(labels)
        self.run.results.append(result)
        if "error" in result:
            log(f"  {labels['group']:<8} {labels['key']:<24} FAILED: {result['error'][-400:]}")
        elif not result["items"]:
            log(f"  {labels['group']:<8} {labels['key']:<24} start-up {result['startup_seconds']:.1f} s")
        else:
            log(
                f"  {labels['group']:<8} {labels['key']:<24} {result['items'] / result['seconds']:>9,.0f} items/s "
                f"{1000 * result['cpu_seconds'] / result['items']:6.3f} CPU s/1k items "
                f"{result['peak_rss_mb']:6.0f} MB peak  (start-up {result.get('startup_seconds', 0):.1f} s)"
            )
        return result


def formats_scenario(bench: Bench, settings: Settings) -> None:
    """Each format's whole-table export and hook.scan, each right after a floor measurement of its own."""
    log(f"Formats: {settings.items:,} items, {FLOOR_THREADS} threads over {FLOOR_THREADS} segments")
    for key, case in FORMAT_CASES:
        threads = {} if case == "hook_scan" else {"workers": FLOOR_THREADS, "total_segments": FLOOR_THREADS}
        bench.beside_floors("formats", key, case, settings.items, **threads)


def threads_scenario(bench: Bench, settings: Settings) -> None:
    """The jsonl export with 1, 2, 4, 8 threads, as many segments as threads."""
    log("Threads: the jsonl export")
    for threads in settings.threads:
        if threads == FLOOR_THREADS and bench.reuse("formats", "export_jsonl", "threads", f"threads_{threads}"):
            continue
        bench.beside_floors("threads", f"threads_{threads}", "export_jsonl", settings.items, workers=threads)


#: The exports of the memory test: key prefix, case (the jsonl keys keep the name they had before Parquet's).
MEMORY_CASES = (("items_", "export_jsonl"), ("parquet_", "export_parquet"))


def memory_scenario(bench: Bench, settings: Settings) -> None:
    """Peak RSS of whole-table jsonl and Parquet exports at the operator's default settings, at each table size."""
    for prefix, case in MEMORY_CASES:
        for items in settings.memory_items:
            log(f"Memory: {case.removeprefix('export_')} export of {items:,} items at default settings")
            bench.measure("memory", f"{prefix}{items}", case, items)


def mapped_scenario(bench: Bench, settings: Settings) -> None:
    """A no-op task's start-up; one segment of N alone; N segments in N processes at once, for each N."""
    log("Mapped tasks: start-up, one segment alone, N segments at once")
    bench.measure("mapped", "noop_task", "noop_task", 0)
    for processes in settings.mapped_processes:
        common = {"total_segments": processes}
        bench.measure(
            "mapped",
            f"one_of_{processes}",
            "export_jsonl",
            settings.mapped_items,
            whole_table=False,
            segment=0,
            **common,
        )
        bench.record(
            together(bench, settings.mapped_items, processes),
            group="mapped",
            key=f"{processes}_processes",
            case="export_jsonl",
            options={"processes": processes, **common},
            load_average=os.getloadavg()[0],
        )


def together(bench: Bench, items: int, processes: int) -> dict[str, Any]:
    """``processes`` processes, one segment each, measured from the first one's start to the last one's end."""
    table = f"synthetic-{items}"
    with tempfile.TemporaryDirectory(prefix="dynamoscan-bench-barrier-") as barrier:
        started = [
            bench.start("export_jsonl", table, segment=segment, total_segments=processes, barrier=barrier)
            for segment in range(processes)
        ]
        parts = [case_result(process, None) for process in started]
    errors = [part["error"] for part in parts if "error" in part]
    if errors:
        return {"error": "; ".join(errors)}
    result: dict[str, Any] = {
        "items": sum(part["items"] for part in parts),
        "seconds": max(part["finished_at"] for part in parts) - min(part["started_at"] for part in parts),
        "cpu_seconds": sum(part["cpu_seconds"] for part in parts),
        "peak_rss_mb": max(part["peak_rss_mb"] for part in parts),
        "startup_seconds": max(part["startup_seconds"] for part in parts),
        "extra": {"processes": parts},
    }
    if result["items"] != items:
        result["error"] = f"read {result['items']} items, expected {items}"
    return result


def machine_description() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for package in ("apache-airflow", "apache-airflow-providers-amazon", "boto3", "orjson", "pyarrow"):
        with contextlib.suppress(PackageNotFoundError):
            versions[package] = version(package)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit.stdout.strip(),
        "versions": versions,
        "uptime_at_start": uptime(),
    }


def _numbers(text: str) -> tuple[int, ...]:
    return tuple(int(value) for value in text.split(",") if value)


def parse_arguments(argv: list[str] | None) -> Settings:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of about two minutes on small tables")
    parser.add_argument("--items", type=int, default=None, help="items of the formats table (default 25,000)")
    parser.add_argument(
        "--memory-items",
        default=None,
        help="table sizes of the memory test (default 100000,300000; quick 10000,30000)",
    )
    parser.add_argument(
        "--large",
        action="store_true",
        help="add a table of 1,000,000 items to the memory test (2 to 5 minutes more on 2 shared cores)",
    )
    parser.add_argument("--threads", default="1,2,4,8", help="thread counts of the threads test")
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="trials of each formats and threads case beside its floors, the median kept (default 3; quick 1)",
    )
    parser.add_argument(
        "--mapped-items",
        type=int,
        default=None,
        help="items of the mapped-task test (default 100,000: each process reads long enough to measure)",
    )
    parser.add_argument("--output", default=None, help="where results.md and results.json go")
    arguments = parser.parse_args(argv)
    quick = arguments.quick
    cores = os.cpu_count() or 1
    settings = Settings(
        items=arguments.items or (6_000 if quick else 25_000),
        memory_items=_numbers(arguments.memory_items or ("10000,30000" if quick else "100000,300000"))
        + ((LARGE_TABLE_ITEMS,) if arguments.large else ()),
        threads=_numbers(arguments.threads) if not quick else (1, FLOOR_THREADS),
        mapped_items=arguments.mapped_items or (12_000 if quick else 100_000),
        mapped_processes=tuple(range(2, cores + 1)) or (1,),
        repeats=arguments.repeats or (1 if quick else 3),
        quick=quick,
        output=Path(arguments.output or (QUICK_RESULTS if quick else RESULTS)),
    )
    settings.output.mkdir(parents=True, exist_ok=True)
    return settings


def main(argv: list[str] | None = None) -> int:
    settings = parse_arguments(argv)
    started = time.monotonic()
    run = Run(settings={**vars(settings), "output": str(settings.output)}, machine=machine_description())
    log(f"Benchmark on {run.machine['cores']} cores ({run.machine['cpu']}); {run.machine['uptime_at_start']}")
    replay_command = [sys.executable, "-m", "benchmarks.replay_server"]
    with (
        tempfile.TemporaryDirectory(prefix="dynamoscan-bench-airflow-") as home,
        background_server(replay_command) as endpoint,
    ):
        bench = Bench(run, endpoint, home, repeats=settings.repeats)
        formats_scenario(bench, settings)
        threads_scenario(bench, settings)
        memory_scenario(bench, settings)
        mapped_scenario(bench, settings)
    run.settings["total_seconds"] = round(time.monotonic() - started)
    run.machine["uptime_at_end"] = uptime()
    paths = report.write(run, settings.output, update_docs=settings.output == RESULTS)
    log(f"Done in {run.settings['total_seconds']} s: {', '.join(str(path) for path in paths)}")
    print(report.targets_text(run), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
