"""
One benchmark case, run alone in this process: ``python -m benchmarks.cases CASE --endpoint URL --table NAME``.

The case sets itself up (imports, operator, client) first, then reads the whole table (or its segment) once inside
a measured section, and prints one line ``BENCH_RESULT {json}``: the items read, the wall-clock seconds, the CPU
seconds (user + sys) of this process over the measured section, the peak resident memory of the whole process,
and how long the set-up took from the moment the parent started the process (``--launched-at``): the interpreter,
the imports and the task set-up. Each case imports only what it needs, so the peak RSS of a case is that of a
process doing just this job; the floor imports neither Airflow nor the package.

* ``raw_floor``: ``workers`` threads over as many segments, plain HTTP, ``orjson.loads`` of each page and
  ``orjson.dumps`` of each item: the least work any Python client must do to turn a table into JSON text.
* ``export_jsonl``, ``export_dynamodb_json``, ``export_csv``, ``export_parquet``: ``DynamoDBExportOperator.execute()``
  to a local folder, each format with its default compression (none for the text formats, snappy for Parquet):
  the whole table with ``workers`` threads over ``total_segments`` segments (both omitted: the operator's
  defaults), or one segment (``--segment``), as one mapped task instance does.
* ``hook_scan``: ``DynamoDBScanHook.scan`` (serial), each item written as a JSON line with the package's
  ``encode_json``; ``hook_parallel_scan`` the same with ``parallel_scan`` and ``workers`` threads.
* ``noop_task``: the same imports and set-up as ``export_jsonl`` (Airflow, the operator, its hook and client), and
  a task that does nothing: what starting a task costs before it reads anything.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

RESULT_PREFIX = "BENCH_RESULT "
# Any well-formed SigV4 header: the replay server checks nothing, the local servers only its shape.
RAW_HEADERS = {
    "X-Amz-Target": "DynamoDB_20120810.Scan",
    "Content-Type": "application/x-amz-json-1.0",
    "X-Amz-Date": "20260101T000000Z",
    "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/dynamodb/aws4_request, "
    "SignedHeaders=host, Signature=0",
}


@dataclass
class Options:
    """
    What a case reads and how.

    :param endpoint: the DynamoDB endpoint URL
    :param table: the table to read
    :param workers: threads of a whole-table read; ``None`` for the operator's default
    :param total_segments: segment count; ``None`` for the operator's default (or ``workers`` for the floor)
    :param segment: the one segment to read, as a mapped task does; ``None`` for the whole table
    :param output: folder for the files a case writes; removed afterwards
    :param launched_at: the ``time.time()`` at which the parent started this process
    :param barrier: a folder shared by the ``total_segments`` processes of one mapped-task measurement: each
        starts measuring once all of them have set up (each marks its readiness there)
    """

    endpoint: str
    table: str
    workers: int | None = None
    total_segments: int | None = None
    segment: int | None = None
    output: str = ""
    launched_at: float | None = None
    barrier: str | None = None


@dataclass
class Measurement:
    """Wall-clock and CPU time of the measured section, the process's memory, and its set-up time."""

    items: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    startup_seconds: float = 0.0
    startup_cpu_seconds: float = 0.0
    start_rss_mb: float = 0.0
    peak_rss_mb: float = 0.0
    started_at: float = 0.0
    finished_at: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def wait_for_the_others(barrier: str, segment: int, processes: int, timeout: float = 600.0) -> None:
    """Mark this process ready in ``barrier``; return when ``processes`` processes have (polled every 5 ms)."""
    open(os.path.join(barrier, f"ready-{segment}"), "w").close()
    deadline = time.monotonic() + timeout
    while len(os.listdir(barrier)) < processes:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(os.listdir(barrier))} of {processes} processes reached {barrier}")
        time.sleep(0.005)


@contextlib.contextmanager
def measured(options: Options) -> Iterator[Measurement]:
    """Measure the ``with`` block; set ``items`` on the yielded object (it may be counted after the block)."""
    gc.collect()
    result = Measurement(start_rss_mb=_current_rss_mb(), startup_cpu_seconds=_cpu_seconds())
    if options.launched_at is not None:
        result.startup_seconds = time.time() - options.launched_at
    if options.barrier is not None:
        wait_for_the_others(options.barrier, options.segment or 0, options.total_segments or 1)
    cpu = _cpu_seconds()
    result.started_at = time.time()
    started = time.perf_counter()
    yield result
    result.seconds = time.perf_counter() - started
    result.finished_at = time.time()
    result.cpu_seconds = _cpu_seconds() - cpu
    result.peak_rss_mb = _peak_rss_mb()


# --- the floor: no boto3, no Airflow, no decoding ---------------------------------------------------------------


def raw_scan(endpoint: str, table: str, segment: int | None = None, total_segments: int | None = None) -> int:
    """Read a table (or a segment) over plain HTTP; ``orjson.loads`` each page and ``orjson.dumps`` each item."""
    import http.client

    import orjson

    address = urlsplit(endpoint)
    connection = http.client.HTTPConnection(address.hostname or "127.0.0.1", address.port)
    request: dict[str, Any] = {"TableName": table}
    if total_segments is not None:
        request.update(Segment=segment, TotalSegments=total_segments)
    count = 0
    while True:
        connection.request("POST", "/", body=orjson.dumps(request), headers=RAW_HEADERS)
        response = connection.getresponse()
        page = orjson.loads(response.read())
        if response.status != 200:
            raise RuntimeError(f"Scan of {table} failed with HTTP {response.status}: {page.get('__type')}")
        for item in page["Items"]:
            orjson.dumps(item)
        count += len(page["Items"])
        if "LastEvaluatedKey" not in page:
            connection.close()
            return count
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def raw_floor(options: Options) -> Measurement:
    """The floor: ``workers`` threads (default 4) over as many segments."""
    from concurrent.futures import ThreadPoolExecutor

    workers = options.workers or 4
    segments = options.total_segments or workers
    with measured(options) as result, ThreadPoolExecutor(workers) as pool:
        counts = pool.map(lambda segment: raw_scan(options.endpoint, options.table, segment, segments), range(segments))
        result.items = sum(counts)
    return result


# --- ours ------------------------------------------------------------------------------------------------------


def _export_operator(options: Options, file_format: str) -> Any:
    from airflow_dynamoscan.operators.dynamodb_export import DynamoDBExportOperator

    given = {
        name: value
        for name, value in (
            ("max_workers", options.workers),
            ("total_segments", options.total_segments),
            ("segment", options.segment),
        )
        if value is not None
    }
    operator = DynamoDBExportOperator(
        task_id="export" if options.segment is None else f"export_segment_{options.segment}",
        table_name=options.table,
        destination=options.output,
        file_format=file_format,
        overwrite=True,
        **given,
    )
    _ = operator.hook._scan_client  # the client, created in the set-up as a task's first request would
    return operator


def _export(options: Options, file_format: str) -> Measurement:
    operator = _export_operator(options, file_format)
    with measured(options) as result:
        written = operator.execute({})
    result.items = written["items"]
    result.extra.update(
        bytes=written["bytes"], parts=len(written.get("parts", [])), total_segments=written.get("total_segments")
    )
    return result


def export_jsonl(options: Options) -> Measurement:
    """``DynamoDBExportOperator(file_format="jsonl")``."""
    return _export(options, "jsonl")


def export_dynamodb_json(options: Options) -> Measurement:
    """``DynamoDBExportOperator(file_format="dynamodb_json")``."""
    return _export(options, "dynamodb_json")


def export_csv(options: Options) -> Measurement:
    """``DynamoDBExportOperator(file_format="csv")``."""
    return _export(options, "csv")


def export_parquet(options: Options) -> Measurement:
    """``DynamoDBExportOperator(file_format="parquet")``, snappy."""
    return _export(options, "parquet")


def noop_task(options: Options) -> Measurement:
    """The set-up of ``export_jsonl`` (imports, operator, hook, client), then a task that reads nothing."""
    _export_operator(options, "jsonl")
    with measured(options) as result:
        pass
    return result


def _scan_to_json_lines(options: Options, read: Callable[[Any], Iterator[dict[str, Any]]]) -> Measurement:
    from airflow_dynamoscan.export.formats import encode_json
    from airflow_dynamoscan.hooks.dynamodb_scan import DynamoDBScanHook

    hook = DynamoDBScanHook()
    _ = hook._scan_client
    path = os.path.join(options.output, "items.jsonl")
    with measured(options) as result, open(path, "wb") as output:
        for item in read(hook):
            output.write(encode_json(item, newline=True))
            result.items += 1
    return result


def hook_scan(options: Options) -> Measurement:
    """``DynamoDBScanHook.scan`` (serial), each item written as a JSON line."""
    return _scan_to_json_lines(options, lambda hook: hook.scan(options.table))


def hook_parallel_scan(options: Options) -> Measurement:
    """``DynamoDBScanHook.parallel_scan`` with ``workers`` threads, each item written as a JSON line."""
    return _scan_to_json_lines(
        options,
        lambda hook: hook.parallel_scan(
            options.table, total_segments=options.total_segments, max_workers=options.workers
        ),
    )


CASES: dict[str, Callable[[Options], Measurement]] = {
    function.__name__: function
    for function in (
        raw_floor,
        export_jsonl,
        export_dynamodb_json,
        export_csv,
        export_parquet,
        hook_scan,
        hook_parallel_scan,
        noop_task,
    )
}


def parse_options(argv: list[str] | None) -> tuple[str, Options, bool]:
    """The case's name, its options, and whether its output folder is a temporary one."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cases")
    parser.add_argument("case", choices=sorted(CASES))
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--table", required=True)
    for flag in ("--workers", "--total-segments", "--segment"):
        parser.add_argument(flag, type=int, default=None)
    parser.add_argument("--launched-at", type=float, default=None)
    parser.add_argument("--barrier", default=None)
    parser.add_argument("--output", default=None, help="folder for written files (default: a temporary one)")
    arguments = parser.parse_args(argv)
    output = arguments.output or tempfile.mkdtemp(prefix=f"dynamoscan-bench-{arguments.case}-")
    options = Options(
        endpoint=arguments.endpoint,
        table=arguments.table,
        workers=arguments.workers,
        total_segments=arguments.total_segments,
        segment=arguments.segment,
        output=output,
        launched_at=arguments.launched_at,
        barrier=arguments.barrier,
    )
    return arguments.case, options, arguments.output is None


def main(argv: list[str] | None = None) -> int:
    """Run one case; print ``BENCH_RESULT {json}``."""
    case, options, temporary = parse_options(argv)
    try:
        result = CASES[case](options)
    finally:
        if temporary:
            shutil.rmtree(options.output, ignore_errors=True)
    print(RESULT_PREFIX + json.dumps({"case": case, **vars(result)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
