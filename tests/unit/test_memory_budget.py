"""
The memory budget (``max_memory_mb``) and pages held in the wire shape, seen from the hook and the exporter.

Against moto's in-process DynamoDB: a hook's parallel scan runs the workers the budget allows, pages read with fast
decoding keep their wire items and decode them once on demand, and an export from such pages writes the same
bytes as one from a client without fast decoding (botocore's parser, decoded items).
"""

from __future__ import annotations

import gc
import itertools
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest
from botocore.awsrequest import AWSResponse
from moto import mock_aws

from airflow_dynamoscan.exceptions import InvalidScanArgumentError
from airflow_dynamoscan.export.exporter import export_pages
from airflow_dynamoscan.export.formats import needs_attribute_values
from airflow_dynamoscan.hooks.dynamodb_scan import DynamoDBScanHook
from airflow_dynamoscan.scan.decode import fast_decoding_available
from airflow_dynamoscan.scan.memory import MemoryBudget, ParseHandoffClosed, ParseRequest, memory_budget
from airflow_dynamoscan.scan.scanner import ScanPage
from airflow_dynamoscan.storage.destinations import open_destination
from devtools.sample_data import load_sample_table
from tests.conftest import make_client

TABLE = "orders"


@pytest.fixture
def moto_table(moto_connection_env: str) -> Iterator[list[dict[str, Any]]]:
    with mock_aws():
        yield load_sample_table(make_client(), TABLE, 80, padding=20)


def worker_threads_seen(pages: Iterator[ScanPage]) -> tuple[set[str], int]:
    names: set[str] = set()
    items = 0
    for page in pages:
        names.update(thread.name for thread in threading.enumerate() if thread.name.startswith(f"dynamoscan-{TABLE}"))
        items += len(page)
    return names, items


# The workers a budget allows with fast decoding (each holds a body, the caller's side two parsed pages), and with
# botocore's own parser (each holds a parsed page).
@pytest.mark.parametrize(
    ("max_memory_mb", "fast_workers", "slow_workers"), [(None, 6, 2), (32, 1, 1), (48, 3, 1), (128, 8, 6)]
)
def test_the_budget_caps_the_workers_of_a_parallel_scan(
    moto_table: list[dict[str, Any]], max_memory_mb: int | None, fast_workers: int, slow_workers: int
) -> None:
    workers = fast_workers if fast_decoding_available() else slow_workers
    pages = DynamoDBScanHook().parallel_scan_pages(
        TABLE, total_segments=8, max_workers=8, max_memory_mb=max_memory_mb, Limit=5
    )
    names, items = worker_threads_seen(pages)
    assert items == len(moto_table)
    assert len(names) <= workers
    assert names <= {f"dynamoscan-{TABLE}-{number}" for number in range(workers)}


def pages_alive() -> int:
    return sum(1 for thing in gc.get_objects() if type(thing) is ScanPage)


@pytest.mark.skipif(not fast_decoding_available(), reason="this botocore has no before-parse event")
def test_a_parallel_scan_holds_the_same_few_parsed_pages_however_many_workers_read(
    moto_table: list[dict[str, Any]],
) -> None:
    # A slow caller: the 8 workers have read their next pages long before it asks. Each waits with the body until
    # the caller's side parses it, one page ahead: the caller's page, the one ahead, and the one its loop still
    # names while it asks for the next.
    most, items = 0, 0
    for page in DynamoDBScanHook().parallel_scan_pages(TABLE, total_segments=8, max_workers=8, Limit=3):
        time.sleep(0.02)
        most = max(most, pages_alive())
        items += len(page)
    assert items == len(moto_table)
    assert most <= 3


def test_with_botocore_parsing_each_worker_holds_a_parsed_page(moto_table: list[dict[str, Any]]) -> None:
    most, items = 0, 0
    hook = DynamoDBScanHook(fast_decoding=False)
    for page in hook.parallel_scan_pages(TABLE, total_segments=8, max_workers=8, max_memory_mb=128, Limit=3):
        time.sleep(0.02)
        most = max(most, pages_alive())
        items += len(page)
    assert items == len(moto_table)
    # 6 workers (the budget's), each with a page it waits to hand over, beside those waiting and the caller's.
    assert most > 3


def not_json_on_the_third_scan(**_: Any) -> Any:
    calls = next(scans_answered)
    if calls == 2:
        return AWSResponse("https://dynamodb.us-east-1.amazonaws.com/", 200, {}, _RawBody(b'{"Items": [{"pk": '))
    return None


class _RawBody:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


scans_answered = itertools.count()


@pytest.mark.skipif(not fast_decoding_available(), reason="this botocore has no before-parse event")
def test_a_body_that_is_not_json_fails_the_scan_on_the_caller_and_stops_every_worker(
    moto_table: list[dict[str, Any]],
) -> None:
    global scans_answered
    scans_answered = itertools.count()
    hook = DynamoDBScanHook(max_attempts=1)
    hook._scan_client.meta.events.register_first("before-send.dynamodb.Scan", not_json_on_the_third_scan)
    with pytest.raises(orjson.JSONDecodeError):
        for _ in hook.parallel_scan(TABLE, total_segments=8, max_workers=4, Limit=3):
            pass
    assert not [thread for thread in threading.enumerate() if thread.name.startswith(f"dynamoscan-{TABLE}")]


@pytest.mark.skipif(not fast_decoding_available(), reason="this botocore has no before-parse event")
def test_closing_a_scan_whose_workers_wait_for_parsing_stops_them_at_once(moto_table: list[dict[str, Any]]) -> None:
    pages = DynamoDBScanHook().parallel_scan_pages(TABLE, total_segments=8, max_workers=8, Limit=3)
    first = next(pages)
    time.sleep(0.2)  # every worker has read a page by now and waits for the caller's side to parse it
    started = time.monotonic()
    pages.close()
    assert time.monotonic() - started < 1
    assert len(first) <= 3
    assert not [thread for thread in threading.enumerate() if thread.name.startswith(f"dynamoscan-{TABLE}")]


@pytest.mark.parametrize("value", [0, 31, "64", 64.0, True])
def test_a_bad_budget_is_refused_before_any_request(moto_table: list[dict[str, Any]], value: Any) -> None:
    with pytest.raises(InvalidScanArgumentError) as raised:
        DynamoDBScanHook().parallel_scan(TABLE, total_segments=4, max_memory_mb=value)
    assert str(raised.value) == (
        f"Table 'orders': max_memory_mb={value!r} is not allowed; it must be None (the default, 64) or an integer "
        ">= 32 (megabytes for pages in flight and Parquet row groups)."
    )


def test_what_a_budget_allows() -> None:
    assert memory_budget(None) == MemoryBudget(64)
    budget = MemoryBudget(64)
    assert (budget.pages, budget.max_workers(8), budget.pages_in_flight(4), budget.row_group_bytes) == (
        4,
        6,
        4,
        16 * 1024 * 1024,
    )
    assert (budget.max_workers(8, parsed_by_caller=False), budget.pages_in_flight(2, parsed_by_caller=False)) == (2, 1)
    assert (MemoryBudget(32).max_workers(8), MemoryBudget(48).max_workers(8), MemoryBudget(128).max_workers(64)) == (
        1,
        3,
        18,
    )
    assert MemoryBudget(1024).row_group_bytes == 64 * 1024 * 1024


@pytest.mark.skipif(not fast_decoding_available(), reason="this botocore has no before-parse event")
def test_fast_pages_keep_wire_items_and_decode_them_once(moto_table: list[dict[str, Any]]) -> None:
    (page,) = list(DynamoDBScanHook().scan_segment_pages(TABLE, 0, 1))
    assert page.wire_items is not None and len(page) == len(moto_table)
    raw = next(item["raw"] for item in page.wire_items if "raw" in item)
    assert isinstance(raw["B"], str)  # base64 text, as the wire holds it
    items = page.items
    assert page.items is items
    assert sorted(item["pk"] for item in items) == sorted(item["pk"] for item in moto_table)


@pytest.mark.parametrize(("file_format", "compression"), [("jsonl", None), ("dynamodb_json", "gzip"), ("csv", None)])
def test_exports_from_wire_pages_equal_those_from_decoded_pages(
    moto_table: list[dict[str, Any]], tmp_path: Path, file_format: str, compression: str | None
) -> None:
    written = {}
    for fast_decoding in (True, False):
        hook = DynamoDBScanHook(fast_decoding=fast_decoding)
        pages = hook.scan_segment_pages(TABLE, 0, 1, deserialize=not needs_attribute_values(file_format))
        root = tmp_path / str(fast_decoding)
        result = export_pages(
            pages, open_destination(str(root)), file_format=file_format, compression=compression, prefix="p"
        )
        assert result["items"] == len(moto_table)
        written[fast_decoding] = [path.read_bytes() for path in sorted(root.rglob("part-*"))]
    assert written[True] == written[False]
    assert len(written[True]) == 1


def test_parquet_from_wire_pages_reads_back_as_from_decoded_pages(
    moto_table: list[dict[str, Any]], tmp_path: Path
) -> None:
    tables = {}
    for fast_decoding in (True, False):
        pages = DynamoDBScanHook(fast_decoding=fast_decoding).scan_segment_pages(TABLE, 0, 1)
        root = tmp_path / str(fast_decoding)
        export_pages(
            pages, open_destination(str(root)), file_format="parquet", compression=None, prefix="p", max_memory_mb=32
        )
        (part,) = sorted(root.rglob("part-*"))
        tables[fast_decoding] = pq.read_table(part)
    assert tables[True].schema == tables[False].schema
    assert tables[True].to_pylist() == tables[False].to_pylist()
    assert tables[True].num_rows == len(moto_table)


@pytest.mark.parametrize("file_format", ["jsonl", "dynamodb_json", "csv", "parquet"])
def test_an_export_lets_go_of_each_page_before_it_asks_for_the_next(
    moto_table: list[dict[str, Any]], tmp_path: Path, file_format: str
) -> None:
    deserialize = not needs_attribute_values(file_format)
    scan = DynamoDBScanHook().scan_segment_pages(TABLE, 0, 1, Limit=7, deserialize=deserialize)
    held_by_the_export = []

    def pages() -> Iterator[ScanPage]:
        previous = None
        for page in scan:
            if previous is not None:
                # References to the page written last: ``previous`` and getrefcount's own; any more are the export's.
                held_by_the_export.append(sys.getrefcount(previous) - 2)
            previous = page
            yield page
            del page

    destination = open_destination(str(tmp_path))
    result = export_pages(pages(), destination, file_format=file_format, compression=None, prefix="p")
    assert result["items"] == len(moto_table)
    assert len(held_by_the_export) >= 10
    assert set(held_by_the_export) == {0}


def test_a_parse_request_hands_its_result_or_error_to_the_worker_and_keeps_interrupts_on_the_caller() -> None:
    parsed = ParseRequest(3, b'{"Count": 1}', orjson.loads)
    parsed.run()
    assert (parsed.worker, parsed.result(threading.Event())) == (3, {"Count": 1})

    broken = ParseRequest(0, b'{"Count": ', orjson.loads)
    broken.run()  # the caller's side goes on; the worker raises the error as its own
    with pytest.raises(orjson.JSONDecodeError):
        broken.result(threading.Event())

    def interrupted(body: bytes) -> Any:
        raise KeyboardInterrupt

    stopped = ParseRequest(0, b"{}", interrupted)
    with pytest.raises(KeyboardInterrupt):
        stopped.run()
    with pytest.raises(ParseHandoffClosed):
        stopped.result(threading.Event())


def test_a_worker_waiting_for_its_parse_stops_when_the_scan_does() -> None:
    scan_closed = threading.Event()
    waiting = ParseRequest(0, b"{}", orjson.loads)
    scan_closed.set()
    started = time.monotonic()
    with pytest.raises(ParseHandoffClosed):
        waiting.result(scan_closed)
    assert time.monotonic() - started < 1
