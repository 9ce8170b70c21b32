from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pyarrow.parquet as pq
import pytest
from moto import mock_aws

from airflow_dynamoscan.exceptions import InvalidScanArgumentError
from airflow_dynamoscan.export.exporter import export_pages, segment_prefix
from airflow_dynamoscan.export.schema import parse_schema
from airflow_dynamoscan.scan.scanner import ScanPage
from airflow_dynamoscan.storage.destinations import Destination, open_destination
from tests.unit.export.readback import (
    attribute_value_items,
    attribute_value_readback,
    expected_rows,
    json_view,
    mixed_items,
    pages_of,
    read_csv,
    read_dynamodb_json,
    read_jsonl,
)

PREFIX = "segment-00000-of-00001"


class Boom(RuntimeError):
    pass


def local(tmp_path: Path) -> Destination:
    return open_destination(str(tmp_path / "export"))


def files_under(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


def read_back(destination: Destination, result: dict[str, Any], file_format: str, compression: str | None) -> list[Any]:
    """Every item of the export's parts, in order, decoded by the format's reader."""
    items: list[Any] = []
    for part in result["parts"]:
        data = destination.read_bytes(part["path"])
        assert len(data) == part["bytes"]
        if compression == "gzip":
            data = gzip.decompress(data)
        if file_format == "jsonl":
            part_items = read_jsonl(data)
        elif file_format == "dynamodb_json":
            part_items = read_dynamodb_json(data)
        else:
            part_items = pq.read_table(io.BytesIO(data)).to_pylist()
        assert len(part_items) == part["items"]
        items.extend(part_items)
    return items


def test_segment_prefix() -> None:
    assert segment_prefix(3, 16) == "segment-00003-of-00016"
    assert segment_prefix(None, None) == "segment-00000-of-00001"
    assert segment_prefix(0, 1) == "segment-00000-of-00001"
    assert segment_prefix(99999, 100000) == "segment-99999-of-100000"
    with pytest.raises(
        InvalidScanArgumentError, match="Table 'orders': segment=16 is not allowed with total_segments=16"
    ):
        segment_prefix(16, 16, table_name="orders")
    with pytest.raises(InvalidScanArgumentError, match="total_segments=None is not allowed"):
        segment_prefix(1, None)


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_jsonl_export_in_one_part(tmp_path: Path, compression: str | None) -> None:
    destination = local(tmp_path)
    items = mixed_items(50)
    result = export_pages(pages_of(items, 7), destination, file_format="jsonl", compression=compression, prefix=PREFIX)
    extension = ".jsonl.gz" if compression else ".jsonl"
    path = f"{PREFIX}/part-00000{extension}"
    size = (tmp_path / "export" / path).stat().st_size
    assert result == {
        "items": 52,
        "bytes": size,
        "parts": [{"uri": f"{tmp_path}/export/{path}", "path": path, "items": 52, "bytes": size}],
    }
    assert read_back(destination, result, "jsonl", compression) == [json_view(item) for item in items]
    assert files_under(tmp_path / "export") == [path]


def test_dynamodb_json_export(tmp_path: Path) -> None:
    destination = local(tmp_path)
    items = mixed_items(20)
    result = export_pages(
        pages_of(attribute_value_items(items), 5),
        destination,
        file_format="dynamodb_json",
        compression="gzip",
        prefix=PREFIX,
    )
    assert [part["path"] for part in result["parts"]] == [f"{PREFIX}/part-00000.json.gz"]
    assert read_back(destination, result, "dynamodb_json", "gzip") == attribute_value_readback(items)


@pytest.mark.parametrize(
    ("file_format", "compression"),
    [("jsonl", None), ("jsonl", "gzip"), ("csv", None), ("csv", "gzip"), ("parquet", "snappy")],
)
def test_parts_rotate_at_max_file_bytes(tmp_path: Path, file_format: str, compression: str | None) -> None:
    destination = local(tmp_path)
    items = mixed_items(400, padding=300)
    pages = pages_of(items, 20)
    # The sample items compress about tenfold.
    max_file_bytes = 4_000 if compression == "gzip" else 40_000
    result = export_pages(
        pages,
        destination,
        file_format=file_format,
        compression=compression,
        prefix="segment-00002-of-00004",
        max_file_bytes=max_file_bytes,
    )
    parts = result["parts"]
    assert len(parts) >= 3
    extension = {"jsonl": ".jsonl", "csv": ".csv", "parquet": ".parquet"}[file_format]
    extension += ".gz" if compression == "gzip" else ""
    assert [part["path"] for part in parts] == [
        f"segment-00002-of-00004/part-{number:05d}{extension}" for number in range(len(parts))
    ]
    assert files_under(tmp_path / "export") == [part["path"] for part in parts]
    # Parts are cut within pages: each is within the limit, the file's own size counted.
    assert any(part["items"] % 20 for part in parts[:-1])
    assert all(part["bytes"] <= max_file_bytes for part in parts)
    assert all(part["bytes"] == (tmp_path / "export" / part["path"]).stat().st_size for part in parts)
    assert sum(part["items"] for part in parts) == result["items"] == len(items)
    assert sum(part["bytes"] for part in parts) == result["bytes"]
    if file_format == "jsonl":
        assert read_back(destination, result, file_format, compression) == [json_view(item) for item in items]
    elif file_format == "csv":
        schema = parse_schema(result["schema"])
        start = 0
        for part in parts:
            data = destination.read_bytes(part["path"])
            data = gzip.decompress(data) if compression == "gzip" else data
            part_items = items[start : start + part["items"]]
            header, rows = read_csv(data, part_items, schema)
            assert header == schema.header
            assert rows == expected_rows(part_items, header, schema)
            start += part["items"]
        assert start == len(items)
    else:
        rows = read_back(destination, result, file_format, compression)
        assert [row["pk"] for row in rows] == [item["pk"] for item in items]
        assert [row["precise"] for row in rows] == [item["precise"] for item in items]
        assert [row["raw"] for row in rows] == [item.get("raw") for item in items]


def test_part_holds_at_least_one_item(tmp_path: Path) -> None:
    destination = local(tmp_path)
    items = mixed_items(30)
    result = export_pages(
        pages_of(items, 10), destination, file_format="jsonl", compression=None, prefix=PREFIX, max_file_bytes=1
    )
    assert [part["items"] for part in result["parts"]] == [1] * 32
    assert read_back(destination, result, "jsonl", None) == [json_view(item) for item in items]


def empty_page() -> ScanPage:
    """A page a FilterExpression emptied: items were read, none returned."""
    return ScanPage(items=[], segment=0, total_segments=1, last_evaluated_key=None, count=0, scanned_count=5)


def test_empty_pages_are_skipped_and_no_trailing_empty_part(tmp_path: Path) -> None:
    destination = local(tmp_path)
    items = mixed_items(4)[:4]
    first, second = pages_of(items, 2)
    pages = [empty_page(), first, empty_page(), second, empty_page()]
    result = export_pages(pages, destination, file_format="jsonl", compression=None, prefix=PREFIX, max_file_bytes=1)
    assert [(part["path"], part["items"]) for part in result["parts"]] == [
        (f"{PREFIX}/part-{number:05d}.jsonl", 1) for number in range(4)
    ]
    assert read_back(destination, result, "jsonl", None) == [json_view(item) for item in items]


def test_only_empty_pages_give_one_empty_part(tmp_path: Path) -> None:
    destination = local(tmp_path)
    result = export_pages(
        [empty_page(), empty_page()], destination, file_format="jsonl", compression=None, prefix=PREFIX
    )
    assert [(part["path"], part["items"], part["bytes"]) for part in result["parts"]] == [
        (f"{PREFIX}/part-00000.jsonl", 0, 0)
    ]


@pytest.mark.parametrize(
    ("file_format", "compression", "columns", "name", "content"),
    [
        ("jsonl", None, None, "part-00000.jsonl", b""),
        ("dynamodb_json", None, None, "part-00000.json", b""),
        ("csv", None, None, "part-00000.csv", b"_extra\r\n"),
        ("csv", None, ["pk", "amount"], "part-00000.csv", b"pk,amount,_extra\r\n"),
    ],
)
def test_empty_input_writes_one_valid_empty_part(
    tmp_path: Path, file_format: str, compression: str | None, columns: list[str] | None, name: str, content: bytes
) -> None:
    destination = local(tmp_path)
    result = export_pages(
        iter([]), destination, file_format=file_format, compression=compression, prefix=PREFIX, columns=columns
    )
    path = f"{PREFIX}/{name}"
    result.pop("schema", None)
    assert result == {
        "items": 0,
        "bytes": len(content),
        "parts": [{"uri": f"{tmp_path}/export/{path}", "path": path, "items": 0, "bytes": len(content)}],
    }
    assert destination.read_bytes(path) == content


def test_empty_input_gzip_and_parquet_parts_are_readable(tmp_path: Path) -> None:
    destination = local(tmp_path)
    gzipped = export_pages([], destination, file_format="jsonl", compression="gzip", prefix="a")
    assert gzip.decompress(destination.read_bytes("a/part-00000.jsonl.gz")) == b""
    assert gzipped["parts"][0]["items"] == 0
    parquet = export_pages([], destination, file_format="parquet", compression=None, prefix="b")
    table = pq.read_table(io.BytesIO(destination.read_bytes("b/part-00000.parquet")))
    assert (table.num_rows, table.column_names) == (0, ["_extra"])
    assert parquet["parts"][0]["bytes"] == (tmp_path / "export" / "b" / "part-00000.parquet").stat().st_size


def test_retry_deletes_stale_parts_under_the_prefix_only(tmp_path: Path) -> None:
    destination = local(tmp_path)
    stale = [
        f"{PREFIX}/part-00000.jsonl",
        f"{PREFIX}/part-00007.jsonl",
        f"{PREFIX}/.part-00001.jsonl.5f3a.tmp",
        f"{PREFIX}/nested/old.bin",
    ]
    for name in stale:
        destination.write_bytes(name, b'{"stale": true}\n')
    destination.write_bytes("segment-00000-of-00001-other/part-00000.jsonl", b"kept\n")
    destination.write_bytes("manifest.json", b"{}")
    items = mixed_items(10)
    result = export_pages(pages_of(items, 4), destination, file_format="jsonl", compression=None, prefix=PREFIX)
    assert destination.list() == [
        "manifest.json",
        "segment-00000-of-00001-other/part-00000.jsonl",
        f"{PREFIX}/part-00000.jsonl",
    ]
    assert read_back(destination, result, "jsonl", None) == [json_view(item) for item in items]


def failing_pages(
    items: list[dict[str, Any]], page_size: int, fail_after: int, closed: list[bool]
) -> Iterator[ScanPage]:
    try:
        for number, page in enumerate(pages_of(items, page_size)):
            if number == fail_after:
                raise Boom("the scan failed")
            yield page
    finally:
        closed.append(True)


def test_failure_leaves_no_part_at_the_final_name_and_a_retry_replaces_everything(tmp_path: Path) -> None:
    destination = local(tmp_path)
    items = mixed_items(60)
    closed: list[bool] = []
    with pytest.raises(Boom):
        export_pages(
            failing_pages(items, 10, fail_after=3, closed=closed),
            destination,
            file_format="jsonl",
            compression=None,
            prefix=PREFIX,
            max_file_bytes=2 * 10 * 300,
        )
    # Part 0 (two pages) was committed; part 1 was being written when the scan failed and is nowhere.
    assert files_under(tmp_path / "export") == [f"{PREFIX}/part-00000.jsonl"]
    assert closed == [True]
    result = export_pages(
        pages_of(items, 10),
        destination,
        file_format="jsonl",
        compression=None,
        prefix=PREFIX,
        max_file_bytes=10**9,
    )
    assert files_under(tmp_path / "export") == [f"{PREFIX}/part-00000.jsonl"]
    assert read_back(destination, result, "jsonl", None) == [json_view(item) for item in items]


def test_encoding_error_closes_the_page_generator(tmp_path: Path) -> None:
    destination = local(tmp_path)
    closed: list[bool] = []
    items = [{"pk": "a", "n": Decimal(1)}, {"pk": "b", "n": Decimal("NaN")}]
    with pytest.raises(ValueError, match="Cannot export the number NaN"):
        export_pages(
            failing_pages(items, 1, fail_after=99, closed=closed),
            destination,
            file_format="jsonl",
            compression=None,
            prefix=PREFIX,
        )
    assert closed == [True]
    assert files_under(tmp_path / "export") == []


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"prefix": ""}, "prefix='' is not allowed"),
        ({"prefix": "/"}, "prefix='/' is not allowed"),
        ({"max_file_bytes": 0}, "max_file_bytes=0 is not allowed; it must be None or an integer >= 1."),
        ({"max_file_bytes": True}, "max_file_bytes=True is not allowed"),
        ({"file_format": "xml"}, "file_format='xml' is not allowed"),
        ({"compression": "zstd"}, "compression='zstd' is not allowed with file_format='jsonl'"),
        ({"columns": ["pk"]}, "columns=\\['pk'\\] is not allowed with file_format='jsonl'"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_deleted(
    tmp_path: Path, arguments: dict[str, Any], message: str
) -> None:
    destination = local(tmp_path)
    destination.write_bytes(f"{PREFIX}/part-00000.jsonl", b"earlier\n")
    call: dict[str, Any] = {"file_format": "jsonl", "compression": None, "prefix": PREFIX, **arguments}
    with pytest.raises(InvalidScanArgumentError, match=message):
        export_pages(pages_of(mixed_items(2), 2), destination, **call)
    assert destination.list() == [f"{PREFIX}/part-00000.jsonl"]


def test_export_to_s3(tmp_path: Path) -> None:
    items = mixed_items(120, padding=200)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="exports")
        client.put_object(Bucket="exports", Key="orders/segment-00001-of-00002/part-00009.jsonl.gz", Body=b"stale")
        destination = open_destination("s3://exports/orders", s3_client=client)
        result = export_pages(
            pages_of(items, 25),
            destination,
            file_format="jsonl",
            compression="gzip",
            prefix=segment_prefix(1, 2),
            max_file_bytes=1_500,
        )
        keys = sorted(entry["Key"] for entry in client.list_objects_v2(Bucket="exports")["Contents"])
        assert keys == [f"orders/{part['path']}" for part in result["parts"]]
        assert len(keys) >= 2
        assert result["parts"][0]["uri"] == "s3://exports/orders/segment-00001-of-00002/part-00000.jsonl.gz"
        assert read_back(destination, result, "jsonl", "gzip") == [json_view(item) for item in items]
