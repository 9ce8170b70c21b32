"""
The memory budget (``max_memory_mb``) and pages held in the wire shape, seen from the hook and the exporter.

Against moto's in-process DynamoDB: a hook's parallel scan runs the workers the budget allows, pages read with fast
decoding keep their wire items and decode them once on demand, and an export from such pages writes the same
bytes as one from a client without fast decoding (botocore's parser, decoded items).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from moto import mock_aws

from airflow_dynamoscan.exceptions import InvalidScanArgumentError
from airflow_dynamoscan.export.exporter import export_pages
from airflow_dynamoscan.export.formats import needs_attribute_values
from airflow_dynamoscan.hooks.dynamodb_scan import DynamoDBScanHook
from airflow_dynamoscan.scan.decode import fast_decoding_available
from airflow_dynamoscan.scan.memory import MemoryBudget, memory_budget
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


@pytest.mark.parametrize(("max_memory_mb", "workers"), [(None, 4), (32, 1), (48, 2), (128, 8)])
def test_the_budget_caps_the_workers_of_a_parallel_scan(
    moto_table: list[dict[str, Any]], max_memory_mb: int | None, workers: int
) -> None:
    pages = DynamoDBScanHook().parallel_scan_pages(
        TABLE, total_segments=8, max_workers=8, max_memory_mb=max_memory_mb, Limit=5
    )
    names, items = worker_threads_seen(pages)
    assert items == len(moto_table)
    assert len(names) <= workers
    assert names <= {f"dynamoscan-{TABLE}-{number}" for number in range(workers)}


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
        6,
        4,
        1,
        16 * 1024 * 1024,
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
