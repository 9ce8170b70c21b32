"""
Segment tasks of one export that start at the same instant, in processes of their own, as a multi-worker executor
starts them: none refuses its own export, and of two exports that start at once in one place exactly one goes on.

Each process does what an export segment task does with its destination, in the same order: the ownership check
before the scan, then, once the first page has arrived (a short random pause here), the claim and its part
(:func:`~airflow_dynamoscan.export.exporter.export_pages`). A barrier releases the processes of a round together;
many rounds run on a local directory, and on S3 through a moto server that every process reaches over HTTP.
"""

from __future__ import annotations

import json
import multiprocessing
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from airflow_dynamoscan.exceptions import DestinationError
from airflow_dynamoscan.export.exporter import export_pages, segment_prefix
from airflow_dynamoscan.scan.scanner import ScanPage
from airflow_dynamoscan.storage.destinations import open_destination
from airflow_dynamoscan.storage.ownership import (
    MARKER_NAME,
    ExportIdentity,
    check_destination_owner,
    claim_destination,
)

PROCESSES = 6
SEGMENTS = PROCESSES
#: Rounds per test: a local round takes milliseconds, an S3 round a few dozen requests to the moto server.
ROUNDS = {"local": 25, "s3": 5}
BUCKET = "concurrent-claims"
RUN = "exports/scheduled__2026-12-07/export_orders.export_segment"

pytestmark = pytest.mark.timeout(180)


def identity(table_name: str) -> ExportIdentity:
    return ExportIdentity(
        table_name=table_name, file_format="jsonl", compression=None, total_segments=SEGMENTS, run=RUN
    )


def items_of(table_name: str, segment: int) -> list[dict[str, Any]]:
    return [{"pk": f"{table_name}#{segment}#{number}", "n": number} for number in range(3)]


def s3_client(endpoint_url: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def segment_task(
    index: int, endpoint_url: str | None, barrier: Any, jobs: Any, results: Any
) -> None:  # pragma: no cover - runs in the child processes
    """One worker process: for each job, wait at the barrier with the others, then check, claim and write."""
    client = s3_client(endpoint_url) if endpoint_url else None
    chance = random.Random(index)
    while (job := jobs.get()) is not None:
        uri, table_name, segment = job
        destination = open_destination(uri, s3_client=client)
        export = identity(table_name)
        barrier.wait()
        try:
            check_destination_owner(destination, export, overwrite=False)
            time.sleep(chance.uniform(0, 0.01))  # the scan's first page
            page = ScanPage(
                items=items_of(table_name, segment),
                segment=segment,
                total_segments=SEGMENTS,
                last_evaluated_key=None,
                count=3,
                scanned_count=3,
            )
            written = export_pages(
                [page],
                destination,
                file_format="jsonl",
                compression=None,
                prefix=segment_prefix(segment, SEGMENTS, table_name=table_name),
                claim=lambda export=export, destination=destination: claim_destination(
                    destination, export, overwrite=False
                ),
            )
            results.put((index, table_name, "exported", written["items"], None))
        except DestinationError as error:
            results.put((index, table_name, type(error).__name__, str(error), error.__cause__ is None))


class SegmentProcesses:
    """:data:`PROCESSES` worker processes, started once; :meth:`round` runs one job on each at the same instant."""

    def __init__(self, endpoint_url: str | None) -> None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        self.barrier = context.Barrier(PROCESSES)
        self.jobs = [context.Queue() for _ in range(PROCESSES)]
        self.results = context.Queue()
        self.processes = [
            context.Process(
                target=segment_task, args=(index, endpoint_url, self.barrier, self.jobs[index], self.results)
            )
            for index in range(PROCESSES)
        ]
        for process in self.processes:
            process.start()

    def round(self, jobs: list[tuple[str, str, int]]) -> list[tuple[Any, ...]]:
        for queue, job in zip(self.jobs, jobs, strict=True):
            queue.put(job)
        return sorted(self.results.get(timeout=60) for _ in jobs)

    def stop(self) -> None:
        for queue in self.jobs:
            queue.put(None)
        for process in self.processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """A moto server on a free port, as one S3 for every process."""
    from moto.s3.responses import S3Response
    from moto.server import ThreadedMotoServer

    from devtools.local_dynamodb import free_port

    # moto checks If-None-Match and stores the object in two steps, each request in its own thread; S3 does both
    # at once. Hold one lock over both, as S3 would.
    lock = threading.Lock()
    put_object = S3Response.put_object

    def atomic_put_object(self: Any) -> Any:
        with lock:
            return put_object(self)

    S3Response.put_object = atomic_put_object  # type: ignore[method-assign]
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        s3_client(endpoint).create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        server.stop()
        S3Response.put_object = put_object  # type: ignore[method-assign]


@pytest.fixture(scope="module")
def local_processes() -> Iterator[SegmentProcesses]:
    processes = SegmentProcesses(None)
    yield processes
    processes.stop()


@pytest.fixture(scope="module")
def s3_processes(moto_endpoint: str) -> Iterator[SegmentProcesses]:
    processes = SegmentProcesses(moto_endpoint)
    yield processes
    processes.stop()


@pytest.fixture(params=["local", "s3"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, SegmentProcesses, Any, int]:
    """
    Where the rounds' destinations go, the processes, a client to read them back, and the number of rounds: a local
    directory, or S3 (moto).
    """
    if request.param == "local":
        return str(tmp_path), request.getfixturevalue("local_processes"), None, ROUNDS["local"]
    client = s3_client(request.getfixturevalue("moto_endpoint"))
    return f"s3://{BUCKET}/{tmp_path.name}", request.getfixturevalue("s3_processes"), client, ROUNDS["s3"]


def files_at(uri: str, client: Any) -> dict[str, Any]:
    """The destination's files: the marker's export, and each part's items."""
    destination = open_destination(uri, s3_client=client)
    files: dict[str, Any] = {}
    for name in destination.list():
        data = destination.read_bytes(name)
        files[name] = (
            ExportIdentity.from_json(data) if name == MARKER_NAME else [json.loads(line) for line in data.splitlines()]
        )
    return files


def expected_files(table_name: str, segments: range) -> dict[str, Any]:
    files: dict[str, Any] = {MARKER_NAME: identity(table_name)}
    for segment in segments:
        files[f"{segment_prefix(segment, SEGMENTS)}/part-00000.jsonl"] = items_of(table_name, segment)
    return files


def test_segments_of_one_export_started_at_once_all_write(
    place: tuple[str, SegmentProcesses, Any, int],
) -> None:
    base, processes, client, rounds = place
    for number in range(rounds):
        uri = f"{base}/round-{number:03d}"
        results = processes.round([(uri, "orders", segment) for segment in range(PROCESSES)])
        assert results == [(index, "orders", "exported", 3, None) for index in range(PROCESSES)], f"round {number}"
        assert files_at(uri, client) == expected_files("orders", range(SEGMENTS)), f"round {number}"


def test_of_two_exports_started_at_once_in_one_place_exactly_one_writes(
    place: tuple[str, SegmentProcesses, Any, int],
) -> None:
    base, processes, client, rounds = place
    winners = set()
    half = PROCESSES // 2
    for number in range(rounds):
        uri = f"{base}/round-{number:03d}"
        jobs = [(uri, "orders" if index < half else "customers", index % half) for index in range(PROCESSES)]
        results = processes.round(jobs)
        exported = {table for _, table, outcome, *_ in results if outcome == "exported"}
        assert len(exported) == 1, f"round {number}: {results}"
        (winner,) = exported
        winners.add(winner)
        loser = "customers" if winner == "orders" else "orders"
        for _, table, outcome, detail, permanent in results:
            if table == winner:
                assert outcome == "exported" and detail == 3, f"round {number}: {results}"
            else:
                # Another export owns the destination: no retry helps, so the refusal ends the task at once.
                assert (outcome, permanent) == ("DestinationError", True), f"round {number}: {results}"
                assert f"Table {loser!r}: destination {uri}" in detail, detail
                assert f"export of table {winner!r} as jsonl" in detail, detail
        assert files_at(uri, client) == expected_files(winner, range(half)), f"round {number}"
    assert winners, "no round had a winner"
