"""
One benchmark case, run alone in this process: ``python -m benchmarks.cases CASE --endpoint URL --table NAME``.

The case sets itself up (imports, clients, operators) first, then reads the whole table once inside a measured
section, and prints one line ``BENCH_RESULT {json}`` with the items read, the wall-clock seconds, the CPU seconds
of this process (all its threads, and any child process) and its peak resident memory. Each case imports only what
it needs, so the peak RSS of a case is that of a process doing just this job; Airflow is imported only by the cases
that run an operator or a DAG.

Every case reads the same table the same way a user would with that tool. Notes on fairness:

* ``boto3_paginator``, ``boto3_threadpool`` and the Amazon provider's operator deserialize each item with boto3's
  ``TypeDeserializer``, as anyone needing the values must; ``raw_floor`` does not decode at all (plain HTTP and
  ``orjson.loads``, no boto3): it is the limit of what any Python client can do.
* ``boto3_threadpool`` is the parallel scan as it is usually written: one thread per segment with a
  ``ThreadPoolExecutor``, each collecting its segment's items in a list.
* ``amazon_dynamodb_to_s3`` runs ``DynamoDBToS3Operator.execute()`` (its real scan and temporary-file code). Its S3
  upload is replaced by a copy of its temporary file into a local folder, and since its default ``process_func``
  raises ``TypeError`` on sets and binary values (every sample item has both), it gets the smallest change that
  works: its own ``JSONEncoder`` (``Decimal`` -> ``float``) extended with ``set`` -> list and ``bytes`` -> base64.
* ``awswrangler_read_items`` calls ``wr.dynamodb.read_items(allow_full_scan=True, as_dataframe=False)`` with its
  default threads (one segment per CPU); as a DataFrame it fails on the sample items (pyarrow: "cannot mix struct
  and non-struct, non-null values", for a list holding a map and a string).
* ``scan`` and ``parallel_scan`` call the engine that ``DynamoDBScanHook.scan``/``parallel_scan`` wrap
  (``scan_items``/``parallel_scan_items`` on a client with fast decoding installed): the same code, without
  importing Airflow (about 7 s here) into each measured process.
* ``export_*`` run ``DynamoDBExportOperator.execute()`` for the whole table (in-task parallel scan) to a local
  folder; ``mapped_export_dag`` runs ``example_dags/example_dynamodb_parallel_export.py`` with ``dag.test()``: one
  mapped task instance per segment, then the manifest.
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
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RESULT_PREFIX = "BENCH_RESULT "
REGION = "us-east-1"
CREDENTIALS: dict[str, Any] = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
# Any well-formed SigV4 header: the local servers check its shape, never the signature.
_RAW_HEADERS = {
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
    :param workers: threads of a parallel case
    :param total_segments: segment count of a parallel case (default: ``workers``)
    :param segment: the segment of ``segment_scan``
    :param limit: ``Limit`` of each Scan (page size in items); ``None`` for full 1 MB pages
    :param output: folder for the files a case writes; emptied afterwards
    :param start_at: a ``time.time()`` to wait for before measuring, so that several processes start together
    """

    endpoint: str
    table: str
    workers: int = 8
    total_segments: int | None = None
    segment: int | None = None
    limit: int | None = None
    output: str = ""
    start_at: float | None = None

    @property
    def segments(self) -> int:
        return self.total_segments or self.workers

    @property
    def scan_kwargs(self) -> dict[str, Any]:
        return {} if self.limit is None else {"Limit": self.limit}


@dataclass
class Measurement:
    """Wall-clock and CPU time of the measured section, and this process's memory."""

    items: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    start_rss_mb: float = 0.0
    peak_rss_mb: float = 0.0
    started_at: float = 0.0
    finished_at: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return max(own.ru_maxrss, children.ru_maxrss) / 1024  # kilobytes on Linux


@contextlib.contextmanager
def measured(options: Options) -> Iterator[Measurement]:
    """Measure the ``with`` block; set ``items`` on the yielded object (it may be counted after the block)."""
    gc.collect()
    if options.start_at is not None:
        time.sleep(max(0.0, options.start_at - time.time()))
    result = Measurement(start_rss_mb=_current_rss_mb())
    cpu = _cpu_seconds()
    result.started_at = time.time()
    started = time.perf_counter()
    yield result
    result.seconds = time.perf_counter() - started
    result.finished_at = time.time()
    result.cpu_seconds = _cpu_seconds() - cpu
    result.peak_rss_mb = _peak_rss_mb()


def dynamodb_client(options: Options) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "dynamodb",
        endpoint_url=options.endpoint,
        region_name=REGION,
        config=Config(max_pool_connections=max(10, options.workers)),
        **CREDENTIALS,
    )


# --- the floor: no boto3, no decoding ---------------------------------------------------------------------------


def _raw_scan(options: Options, segment: int | None, total_segments: int | None) -> int:
    import http.client

    import orjson

    address = urlsplit(options.endpoint)
    connection = http.client.HTTPConnection(address.hostname or "127.0.0.1", address.port)
    request: dict[str, Any] = {"TableName": options.table, **options.scan_kwargs}
    if total_segments is not None:
        request.update(Segment=segment, TotalSegments=total_segments)
    count = 0
    while True:
        connection.request("POST", "/", body=orjson.dumps(request), headers=_RAW_HEADERS)
        response = connection.getresponse()
        page = orjson.loads(response.read())
        if response.status != 200:
            raise RuntimeError(f"Scan of {options.table} failed: {page}")
        count += len(page["Items"])
        if "LastEvaluatedKey" not in page:
            connection.close()
            return count
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def raw_floor(options: Options) -> Measurement:
    """Serial Scan over plain HTTP, each page parsed by ``orjson.loads``; items left undecoded."""
    with measured(options) as result:
        result.items = _raw_scan(options, None, None)
    return result


def raw_floor_threads(options: Options) -> Measurement:
    """The floor with ``workers`` threads over ``total_segments`` segments."""
    from concurrent.futures import ThreadPoolExecutor

    with measured(options) as result, ThreadPoolExecutor(options.workers) as pool:
        counts = pool.map(lambda segment: _raw_scan(options, segment, options.segments), range(options.segments))
        result.items = sum(counts)
    return result


# --- baselines -------------------------------------------------------------------------------------------------


def boto3_paginator(options: Options) -> Measurement:
    """``client.get_paginator("scan")``, each item through ``TypeDeserializer``."""
    from boto3.dynamodb.types import TypeDeserializer

    client = dynamodb_client(options)
    deserializer = TypeDeserializer()
    paginator = client.get_paginator("scan")
    with measured(options) as result:
        for page in paginator.paginate(TableName=options.table, **options.scan_kwargs):
            for item in page["Items"]:
                {name: deserializer.deserialize(value) for name, value in item.items()}
                result.items += 1
    return result


def boto3_threadpool(options: Options) -> Measurement:
    """A parallel scan written the usual way: a ThreadPoolExecutor, one task per segment collecting its items."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from boto3.dynamodb.types import TypeDeserializer

    client = dynamodb_client(options)
    deserializer = TypeDeserializer()

    def read_segment(segment: int) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": options.table,
            "Segment": segment,
            "TotalSegments": options.segments,
            **options.scan_kwargs,
        }
        while True:
            response = client.scan(**kwargs)
            items.extend(
                {name: deserializer.deserialize(value) for name, value in item.items()} for item in response["Items"]
            )
            if "LastEvaluatedKey" not in response:
                return items
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    with measured(options) as result, ThreadPoolExecutor(max_workers=options.workers) as pool:
        futures = [pool.submit(read_segment, segment) for segment in range(options.segments)]
        for future in as_completed(futures):
            result.items += len(future.result())
    return result


def _json_line_with_sets_and_bytes() -> Callable[[dict[str, Any]], bytes]:
    import base64

    from airflow.providers.amazon.aws.transfers.dynamodb_to_s3 import JSONEncoder

    class SetAndBytesEncoder(JSONEncoder):
        def default(self, obj: Any) -> Any:
            if isinstance(obj, (set, frozenset)):
                return list(obj)
            if isinstance(obj, (bytes, bytearray)):
                return base64.b64encode(obj).decode("ascii")
            value = getattr(obj, "value", None)  # boto3's Binary wrapper
            if isinstance(value, bytes):
                return base64.b64encode(value).decode("ascii")
            return super().default(obj)  # type: ignore[no-untyped-call]

    def process_item(item: dict[str, Any]) -> bytes:
        return (json.dumps(item, cls=SetAndBytesEncoder) + "\n").encode("utf-8")

    return process_item


def amazon_dynamodb_to_s3(options: Options) -> Measurement:
    """The Amazon provider's ``DynamoDBToS3Operator.execute()``, its S3 upload replaced by a local copy."""
    import uuid

    from airflow.providers.amazon.aws.transfers import dynamodb_to_s3

    uploaded = Path(options.output)
    uploaded.mkdir(parents=True, exist_ok=True)

    def upload_to_local_folder(file_obj: Any, bucket_name: str, s3_key_prefix: str, aws_conn_id: Any = None) -> None:
        file_obj.flush()
        shutil.copyfile(file_obj.name, uploaded / f"{s3_key_prefix}{uuid.uuid4()}")

    dynamodb_to_s3._upload_file_to_s3 = upload_to_local_folder  # type: ignore[assignment]
    operator = dynamodb_to_s3.DynamoDBToS3Operator(
        task_id="dynamodb_to_s3",
        dynamodb_table_name=options.table,
        s3_bucket_name="benchmark",
        s3_key_prefix="export-",
        file_size=256 * 1024**2,
        dynamodb_scan_kwargs=options.scan_kwargs or None,
        process_func=_json_line_with_sets_and_bytes(),
    )
    _ = operator.hook.conn  # the boto3 resource, created before the measurement as for the other cases
    with measured(options) as result:
        operator.execute({})  # type: ignore[arg-type]
    result.items = sum(path.read_bytes().count(b"\n") for path in uploaded.iterdir())
    return result


def awswrangler_read_items(options: Options) -> Measurement:
    """``awswrangler.dynamodb.read_items`` of the whole table, as Python dicts, default threads."""
    import awswrangler
    import boto3

    awswrangler.config.dynamodb_endpoint_url = options.endpoint
    boto3.setup_default_session(region_name=REGION, **CREDENTIALS)
    boto3.client("dynamodb", endpoint_url=options.endpoint)  # loads the service model, as the other cases do
    warnings.filterwarnings("ignore", message="Attempting DynamoDB Scan")
    with measured(options) as result:
        items = awswrangler.dynamodb.read_items(table_name=options.table, allow_full_scan=True, as_dataframe=False)
        result.items = len(items)
    result.extra["threads"] = os.cpu_count()
    return result


# --- ours ------------------------------------------------------------------------------------------------------


def _fast_client(options: Options) -> Any:
    from airflow_dynamoscan.scan import install_fast_decoding

    return install_fast_decoding(dynamodb_client(options))


def scan(options: Options) -> Measurement:
    """Our serial scan with fast decoding (``DynamoDBScanHook.scan``)."""
    from airflow_dynamoscan.scan import scan_items

    client = _fast_client(options)
    with measured(options) as result:
        for _ in scan_items(client, options.table, scan_kwargs=options.scan_kwargs):
            result.items += 1
    return result


def scan_botocore(options: Options) -> Measurement:
    """Our serial scan with botocore's parser (``DynamoDBScanHook(fast_decoding=False).scan``)."""
    from airflow_dynamoscan.scan import scan_items

    client = dynamodb_client(options)
    with measured(options) as result:
        for _ in scan_items(client, options.table, scan_kwargs=options.scan_kwargs):
            result.items += 1
    return result


def parallel_scan(options: Options) -> Measurement:
    """Our parallel scan: ``workers`` threads over ``total_segments`` segments (``DynamoDBScanHook.parallel_scan``)."""
    from airflow_dynamoscan.scan import parallel_scan_items

    client = _fast_client(options)
    with measured(options) as result:
        for _ in parallel_scan_items(
            client,
            options.table,
            total_segments=options.segments,
            max_workers=options.workers,
            scan_kwargs=options.scan_kwargs,
        ):
            result.items += 1
    return result


def segment_scan(options: Options) -> Measurement:
    """One segment read serially (``DynamoDBScanHook.scan_segment``), as one mapped task does."""
    from airflow_dynamoscan.scan import scan_items

    client = _fast_client(options)
    with measured(options) as result:
        for _ in scan_items(
            client,
            options.table,
            segment=options.segment,
            total_segments=options.total_segments,
            scan_kwargs=options.scan_kwargs,
        ):
            result.items += 1
    return result


def _export(options: Options, file_format: str, compression: str | None) -> Measurement:
    from airflow_dynamoscan.operators.dynamodb_export import DynamoDBExportOperator

    operator = DynamoDBExportOperator(
        task_id="export",
        table_name=options.table,
        destination=options.output,
        file_format=file_format,
        compression=compression,
        total_segments=options.segments,
        max_workers=options.workers,
        scan_kwargs=options.scan_kwargs or None,
        overwrite=True,
    )
    _ = operator.hook._scan_client  # the client, created before the measurement as for the other cases
    with measured(options) as result:
        written = operator.execute({})  # type: ignore[arg-type]
    result.items = written["items"]
    result.extra["bytes"] = written["bytes"]
    return result


def export_jsonl_gz(options: Options) -> Measurement:
    """``DynamoDBExportOperator`` of the whole table to local jsonl.gz parts."""
    return _export(options, "jsonl", "gzip")


def export_parquet(options: Options) -> Measurement:
    """``DynamoDBExportOperator`` of the whole table to local Parquet parts (snappy)."""
    return _export(options, "parquet", None)


def mapped_export_dag(options: Options) -> Measurement:
    """``example_dynamodb_parallel_export`` run by ``dag.test()``: one mapped export task per segment."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(PROJECT_ROOT / "example_dags" / "example_dynamodb_parallel_export.py"))
    if bag.import_errors:
        raise RuntimeError(f"example DAG failed to import: {bag.import_errors}")
    dag = bag.dags["example_dynamodb_parallel_export"]
    conf = {"table_name": options.table, "destination": options.output, "total_segments": options.segments}
    with measured(options) as result:
        run = dag.test(run_conf=conf)
    if run.state != "success":
        raise RuntimeError(f"the DAG run ended {run.state}")
    (manifest,) = Path(options.output).glob(f"{options.table}/*/manifest.json")
    result.items = int(json.loads(manifest.read_text())["items"])
    result.extra["segments"] = options.segments
    result.extra["task_seconds"] = _export_task_seconds(run)
    return result


def _export_task_seconds(dag_run: Any) -> float:
    """The summed run time of the mapped export tasks, from their results (``dag.test()`` runs them one by one)."""
    from datetime import datetime

    from airflow import settings
    from airflow.models.xcom import XComModel

    with settings.Session() as session:  # type: ignore[misc]
        rows = session.scalars(
            XComModel.get_many(
                run_id=dag_run.run_id,
                dag_ids=dag_run.dag_id,
                task_ids="export_orders.export_segment",
                key="return_value",
            )
        ).all()
        results = [XComModel.deserialize_value(row) for row in rows]
    return sum(
        (datetime.fromisoformat(result["finished_at"]) - datetime.fromisoformat(result["started_at"])).total_seconds()
        for result in results
    )


CASES: dict[str, Callable[[Options], Measurement]] = {
    function.__name__: function
    for function in (
        raw_floor,
        raw_floor_threads,
        boto3_paginator,
        boto3_threadpool,
        amazon_dynamodb_to_s3,
        awswrangler_read_items,
        scan,
        scan_botocore,
        parallel_scan,
        segment_scan,
        export_jsonl_gz,
        export_parquet,
        mapped_export_dag,
    )
}


def main(argv: list[str] | None = None) -> int:
    """Run one case; print ``BENCH_RESULT {json}``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cases")
    parser.add_argument("case", choices=sorted(CASES))
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--table", required=True)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--total-segments", type=int, default=None)
    parser.add_argument("--segment", type=int, default=None)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--start-at", type=float, default=None)
    parser.add_argument("--output", default=None, help="folder for written files (default: a temporary one)")
    arguments = parser.parse_args(argv)
    output = arguments.output or tempfile.mkdtemp(prefix=f"dynamoscan-bench-{arguments.case}-")
    options = Options(
        endpoint=arguments.endpoint,
        table=arguments.table,
        workers=arguments.workers,
        total_segments=arguments.total_segments,
        segment=arguments.segment,
        limit=arguments.limit,
        output=output,
        start_at=arguments.start_at,
    )
    try:
        result = CASES[arguments.case](options)
    finally:
        shutil.rmtree(output, ignore_errors=True)
    print(RESULT_PREFIX + json.dumps({"case": arguments.case, **vars(result)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
