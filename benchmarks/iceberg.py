"""
The Iceberg mirror's costs: the initial load of N items and the merge of 1 % changes (0.9 % updates, 0.1 %
deletes) into it, unpartitioned and with ``bucket(16, pk)``, next to the plain Parquet export of the same items.

``python -m benchmarks.iceberg`` (100,000 items), ``--large`` (1,000,000), ``--quick`` (20,000) or ``--items N``;
``make bench`` runs it after the export benchmarks. It needs no DynamoDB: the items are the sample table's
(:func:`devtools.sample_data.sample_item`), the catalog a SQLite file, the warehouse a temporary directory. For each
case it prints and writes to ``benchmarks/results/iceberg.json``: seconds, rows added, rows rewritten by the
copy-on-write delete and bytes written.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from devtools.sample_data import sample_item

RESULTS = Path(__file__).resolve().parent / "results" / "iceberg.json"
CHUNK = 50_000
BUCKETS = 16
T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)


def _items(count: int) -> Iterator[dict[str, Any]]:
    for number in range(count):
        yield sample_item(number, padding=50)


def _chunks(count: int) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for item in _items(count):
        chunk.append(item)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def parquet_export(count: int, folder: Path) -> dict[str, Any]:
    """The plain Parquet export of the items, as a scan export's segment writes it."""
    from airflow_dynamoscan.export.exporter import export_pages
    from airflow_dynamoscan.scan.scanner import ScanPage
    from airflow_dynamoscan.storage.destinations import open_destination

    pages = (ScanPage(chunk, None, None, None, len(chunk), len(chunk)) for chunk in _chunks(count))
    started = time.perf_counter()
    result = export_pages(
        pages, open_destination(str(folder)), file_format="parquet", compression=None, prefix="segment-00000"
    )
    return {
        "case": "parquet export",
        "seconds": time.perf_counter() - started,
        "rows": result["items"],
        "bytes_written": result["bytes"],
    }


def mirror_case(count: int, folder: Path, bucket_count: int | None) -> list[dict[str, Any]]:
    """Load the items into a new mirror, then merge 1 % changes; one result per step."""
    from airflow_dynamoscan.export.native import FoldedChanges
    from airflow_dynamoscan.iceberg import IcebergMirror, Window, open_catalog, plan_layout

    (folder / "warehouse").mkdir(parents=True)
    catalog = open_catalog(
        "bench", {"type": "sql", "uri": f"sqlite:///{folder}/catalog.db", "warehouse": f"file://{folder}/warehouse"}
    )
    label = f"bucket({bucket_count}, pk)" if bucket_count else "unpartitioned"
    mirror = IcebergMirror(catalog, "bench.orders", source_table="orders")
    layout = plan_layout(list(_items(1000)), [{"AttributeName": "pk", "AttributeType": "S"}])
    started = time.perf_counter()
    mirror.create(layout, bucket_count=bucket_count)
    paths = [
        mirror.stage_items(chunk, load_id="load", name=f"part-{number:04d}")["path"]
        for number, chunk in enumerate(_chunks(count))
    ]
    loaded = mirror.load(Window(end=T0), paths=paths)
    load = {
        "case": f"iceberg load, {label}",
        "seconds": time.perf_counter() - started,
        "rows": loaded.rows_added,
        "bytes_written": loaded.bytes_written,
    }

    step = 100  # 1 % of the keys: 9 of each 10 updated, 1 deleted
    changed = list(range(0, count, step))
    upserts = [
        {**sample_item(number, padding=50), "status": "UPDATED"} for index, number in enumerate(changed) if index % 10
    ]
    deletes = [{"pk": sample_item(number)["pk"]} for index, number in enumerate(changed) if not index % 10]
    started = time.perf_counter()
    merged = mirror.merge(FoldedChanges(upserts, deletes), Window(end=T0 + timedelta(hours=1), start=T0))
    merge = {
        "case": f"iceberg merge 1 %, {label}",
        "seconds": time.perf_counter() - started,
        "rows": merged.rows_added + merged.rows_deleted,
        "rows_rewritten": merged.rows_rewritten,
        "bytes_written": merged.bytes_written,
    }
    assert mirror.table().scan().count() == count - len(deletes)
    return [load, merge]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.iceberg", description=__doc__)
    parser.add_argument("--items", type=int, default=None)
    parser.add_argument("--large", action="store_true")
    parser.add_argument("--quick", action="store_true")
    arguments, _ = parser.parse_known_args(argv)
    count = arguments.items or (1_000_000 if arguments.large else 20_000 if arguments.quick else 100_000)
    folder = Path(tempfile.mkdtemp(prefix="dynamoscan-iceberg-bench-"))
    try:
        results = [parquet_export(count, folder / "parquet")]
        results += mirror_case(count, folder / "plain", None)
        results += mirror_case(count, folder / "bucketed", BUCKETS)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"Iceberg mirror, {count:,} items (sample table, ~300 bytes each)")
    print(f"{'case':<38} {'seconds':>8} {'rows':>10} {'rewritten':>10} {'MB written':>11}")
    for result in results:
        print(
            f"{result['case']:<38} {result['seconds']:>8.2f} {result['rows']:>10,} "
            f"{result.get('rows_rewritten', ''):>10} {result['bytes_written'] / 1e6:>11.2f}"
        )
    RESULTS.write_text(json.dumps({"items": count, "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
