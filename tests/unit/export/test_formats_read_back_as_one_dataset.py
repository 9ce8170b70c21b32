"""
One export, one schema; honest CSV: every export read back AS ONE DATASET (pyarrow.dataset, DuckDB, Python's csv).

The segments of these exports disagree about types, as real tables do: an attribute is a number in one segment
and a string in another, an attribute is missing from a segment or appears only on a late page, numbers are
wider than the schema planned. Each segment is written by its own ``export_pages`` call with the schema planned
once from a sample (what every mapped task gets from the plan step), and the parts must read back as one dataset
holding exactly the items.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from airflow_dynamoscan.exceptions import SchemaMismatchError
from airflow_dynamoscan.export.exporter import export_pages, segment_prefix
from airflow_dynamoscan.export.manifest import build_manifest
from airflow_dynamoscan.export.schema import plan_schema
from airflow_dynamoscan.scan.scanner import ScanPage
from airflow_dynamoscan.storage.destinations import open_destination
from tests.unit.export.datasets import (
    item_view,
    read_csv_duckdb,
    read_csv_parts,
    read_parquet_dataset,
    read_parquet_duckdb,
    rebuild,
    rebuild_csv,
)

WIDE = Decimal("1234567890123456789012345678901234567890.5")


def segment_items(segment: int) -> list[dict[str, Any]]:
    """Segment 0 is what the sample sees; segment 1 drifts from it in every way a table does."""
    if segment == 0:
        return [
            {
                "pk": f"a{number:03d}",
                "n": Decimal(number),
                "price": Decimal(number) / 4,
                "name": f"name {number}",
                "flag": number % 2 == 0,
                "tags": {"x", f"t{number}"},
                "blob": bytes([number % 256, 0, 255]),
                "nested": {"list": [Decimal(1), "x", None], "map": {"deep": {b"\x01"}}},
                "empty": "",
            }
            for number in range(40)
        ]
    items: list[dict[str, Any]] = []
    for number in range(40):
        item: dict[str, Any] = {"pk": f"b{number:03d}"}
        # A string where segment 0 has numbers; a missing attribute; null.
        item["n"] = str(number) if number % 3 == 0 else Decimal(number) if number % 3 == 1 else None
        if number % 4 == 0:
            item["price"] = Decimal("0.00001") * number  # more fraction digits than the planned decimal
        if number % 5 == 0:
            item["price"] = WIDE  # more digits than any decimal128
        item["name"] = number if number % 2 else ""  # a number in a string column, an empty string
        item["flag"] = "yes" if number == 7 else None
        item["tags"] = {Decimal(number), Decimal(-1)}  # a number set where segment 0 has string sets
        item["blob"] = "not binary" if number == 9 else bytes(number)
        item["nested"] = {"other": {"shape": [number]}}
        if number >= 35:
            item["late"] = {"only": "in the last page", "n": Decimal(number)}  # only on the last page
        items.append(item)
    return items


def pages(items: list[dict[str, Any]], segment: int, page_items: int = 8) -> list[ScanPage]:
    chunks = [items[start : start + page_items] for start in range(0, len(items), page_items)]
    return [
        ScanPage(
            items=chunk,
            segment=segment,
            total_segments=2,
            last_evaluated_key=None if index == len(chunks) - 1 else {"pk": chunk[-1]["pk"]},
            count=len(chunk),
            scanned_count=len(chunk),
        )
        for index, chunk in enumerate(chunks)
    ]


def export_segments(
    root: Path, file_format: str, compression: str | None, schema: dict[str, Any], **kwargs: Any
) -> dict[str, Any]:
    """Export each segment as a mapped task would (same schema), then build the manifest."""
    destination = open_destination(str(root))
    results = []
    for segment in (0, 1):
        written = export_pages(
            pages(segment_items(segment), segment),
            destination,
            file_format=file_format,
            compression=compression,
            prefix=segment_prefix(segment, 2),
            max_file_bytes=1_500,
            schema=schema,
            **kwargs,
        )
        results.append({"segment": segment, "total_segments": 2, "file_format": file_format, **written})
    return build_manifest(
        results,
        table_name="drifting",
        destination_uri=destination.uri,
        file_format=file_format,
        compression=compression,
        total_segments=2,
        started_at=None,
        finished_at=None,
    )


def sample_schema() -> dict[str, Any]:
    """The plan step's schema: the first page of segment 0."""
    return plan_schema(segment_items(0)[:8]).to_json()


def all_items() -> list[dict[str, Any]]:
    return sorted(segment_items(0) + segment_items(1), key=lambda item: item["pk"])


def test_the_planned_schema_is_typed_from_the_sample() -> None:
    assert sample_schema() == {
        "columns": [
            {"name": "blob", "type": "binary"},
            {"name": "empty", "type": "string"},
            {"name": "flag", "type": "bool"},
            {"name": "n", "type": "int64"},
            {"name": "name", "type": "string"},
            {"name": "nested", "type": "json"},
            {"name": "pk", "type": "string"},
            {"name": "price", "type": "decimal(38,2)"},
            {"name": "tags", "type": "json"},
        ],
        "extra_column": "_extra",
        "other_attributes": "extra",
    }


@pytest.mark.parametrize("compression", ["snappy", "zstd", "gzip", "none"])
def test_parquet_parts_of_drifting_segments_read_as_one_dataset(tmp_path: Path, compression: str) -> None:
    manifest = export_segments(tmp_path, "parquet", compression, sample_schema())
    assert manifest["part_count"] > 4
    assert manifest["schema"] == sample_schema()
    expected = [item_view(item) for item in all_items()]

    table = read_parquet_dataset(tmp_path)
    assert table.num_rows == 80
    assert table.schema.field("n").type == pa.int64()
    assert table.schema.field("price").type == pa.decimal128(38, 2)
    assert rebuild(table.to_pylist(), manifest["schema"]) == expected

    names, rows = read_parquet_duckdb(tmp_path)
    assert names == [*[column["name"] for column in manifest["schema"]["columns"]], "_extra"]
    assert rebuild(rows, manifest["schema"]) == expected

    # Where drifting values went: to _extra, typed as JSON keeps them (a string stays a string).
    by_pk = {row["pk"]: row for row in table.to_pylist()}
    assert (by_pk["b000"]["n"], by_pk["b000"]["_extra"]) == (None, f'{{"n":"0","price":{WIDE}}}')
    assert (by_pk["b004"]["price"], by_pk["b004"]["_extra"]) == (None, '{"price":0.00004}')
    assert (by_pk["b001"]["n"], by_pk["b001"]["_extra"]) == (1, '{"name":1}')
    assert by_pk["b005"]["_extra"] == '{"name":5,"price":1234567890123456789012345678901234567890.5}'
    assert by_pk["b002"]["name"] == ""
    assert by_pk["b039"]["_extra"] == '{"late":{"only":"in the last page","n":39},"n":"39","name":39}'
    assert by_pk["b007"]["_extra"] == '{"flag":"yes","name":7}'
    assert by_pk["b009"]["_extra"] == '{"blob":"not binary","n":"9","name":9}'
    assert by_pk["b010"]["tags"] == "[-1,10]"
    assert by_pk["a003"]["_extra"] is None


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_csv_parts_of_drifting_segments_share_one_header(tmp_path: Path, compression: str | None) -> None:
    manifest = export_segments(tmp_path, "csv", compression, sample_schema())
    extension = ".csv.gz" if compression else ".csv"
    schema = manifest["schema"]
    header = [*[column["name"] for column in schema["columns"]], "_extra"]
    headers, rows = read_csv_parts(tmp_path, extension)
    assert len(headers) == manifest["part_count"] >= 2
    assert all(part_header == header for part_header in headers)
    # CSV keeps no empty string in a string column, nor empty binary (documented): the only differences.
    expected = [
        {name: value for name, value in item_view(item).items() if value != "" or name not in ("name", "empty", "blob")}
        for item in all_items()
    ]
    assert rebuild_csv(rows, schema) == expected
    names, duck_rows = read_csv_duckdb(tmp_path, extension)
    assert names == header
    assert rebuild_csv(duck_rows, schema) == expected


def test_a_json_column_widens_values_of_every_type(tmp_path: Path) -> None:
    schema = sample_schema()
    for column in schema["columns"]:
        if column["name"] in ("n", "name"):
            column["type"] = "json"
    manifest = export_segments(tmp_path, "parquet", "snappy", schema)
    table = read_parquet_dataset(tmp_path)
    by_pk = {row["pk"]: row for row in table.to_pylist()}
    assert [by_pk[pk]["n"] for pk in ("a001", "b000", "b001", "b002")] == ["1", '"0"', "1", None]
    assert (by_pk["b001"]["name"], by_pk["b002"]["name"]) == ("1", '""')
    assert rebuild(table.to_pylist(), manifest["schema"]) == [item_view(item) for item in all_items()]


def test_without_an_extra_column_a_misfit_is_an_error(tmp_path: Path) -> None:
    schema = {**sample_schema(), "extra_column": None}
    with pytest.raises(SchemaMismatchError) as error:
        export_segments(tmp_path, "parquet", "snappy", schema)
    assert str(error.value) == (
        f"{tmp_path}/segment-00001-of-00002/part-00000.parquet: attribute 'n' holds a str value, which does not fit "
        f"its column of type 'int64' and the schema has no extra column; give a schema whose column fits (e.g. type "
        f"'json') or one with an extra_column."
    )


def test_the_manifest_refuses_a_segment_with_another_schema(tmp_path: Path) -> None:
    destination = open_destination(str(tmp_path))
    results = []
    for segment in (0, 1):
        items = segment_items(segment)
        written = export_pages(
            pages(items, segment),
            destination,
            file_format="parquet",
            compression=None,
            prefix=segment_prefix(segment, 2),
            schema=plan_schema(items[:8]).to_json(),  # each segment planning its own: what must not pass
        )
        results.append({"segment": segment, "total_segments": 2, **written})
    with pytest.raises(Exception, match=r"export result #1 has schema=\{'columns'"):
        build_manifest(
            results,
            table_name="drifting",
            destination_uri=destination.uri,
            file_format="parquet",
            compression="snappy",
            total_segments=2,
            started_at=None,
            finished_at=None,
        )


# --- what CSV keeps and loses, exactly as documented ------------------------------------------------------------

HONEST_ITEMS: list[dict[str, Any]] = [
    {"pk": "a", "s": "", "j": ""},
    {"pk": "b", "s": None, "j": None},
    {"pk": "c"},
    {"pk": "d", "s": "42", "j": "42"},
    {"pk": "e", "s": 42, "j": Decimal(42)},
]
HONEST_SCHEMA = {
    "columns": [{"name": "pk", "type": "string"}, {"name": "s", "type": "string"}, {"name": "j", "type": "json"}]
}


def write_csv(root: Path, items: list[dict[str, Any]], schema: dict[str, Any], **kwargs: Any) -> Path:
    export_pages(
        [ScanPage(items=items, segment=0, total_segments=1, last_evaluated_key=None, count=0, scanned_count=0)],
        open_destination(str(root)),
        file_format="csv",
        compression=None,
        prefix="segment-00000-of-00001",
        schema=schema,
        **kwargs,
    )
    return root / "segment-00000-of-00001" / "part-00000.csv"


def test_csv_empty_null_missing_and_text_numbers_as_documented(tmp_path: Path) -> None:
    path = write_csv(tmp_path, HONEST_ITEMS, HONEST_SCHEMA)
    assert path.read_bytes() == (
        b"pk,s,j,_extra\r\n"
        b'a,,"""""",\r\n'  # string column: "" is an empty cell; json column: "" is the JSON text ""
        b"b,,,\r\n"  # None: empty cells
        b"c,,,\r\n"  # missing: the same empty cells
        b'd,42,"""42""",\r\n'  # the string "42": as it is in a string column, with its quotes in a json column
        b'e,,42,"{""s"":42}"\r\n'  # the number 42: does not fit the string column, so it goes to _extra as a number
    )
    rows = list(csv.reader(io.StringIO(path.read_bytes().decode("utf-8"), newline="")))
    assert rows[1:] == [
        ["a", "", '""', ""],
        ["b", "", "", ""],
        ["c", "", "", ""],
        ["d", "42", '"42"', ""],
        ["e", "", "42", '{"s":42}'],
    ]
    connection = duckdb.connect()
    try:
        duck = connection.sql(f"SELECT * FROM read_csv('{path}', header=true, all_varchar=true)").fetchall()
    finally:
        connection.close()
    # DuckDB reads an empty cell as NULL: in a string column "", None and missing all read back as NULL.
    assert duck == [
        ("a", None, '""', None),
        ("b", None, None, None),
        ("c", None, None, None),
        ("d", "42", '"42"', None),
        ("e", None, "42", '{"s":42}'),
    ]


FORMULA_ITEMS: list[dict[str, Any]] = [
    {"pk": "1", "text": "=1+1", "n": Decimal(-5), "raw": b"\xfb\xff"},
    {"pk": "2", "text": "+cmd|' /C calc'!A0", "n": Decimal(3), "raw": b"ok"},
    {"pk": "3", "text": "-2+3", "n": None, "raw": None},
    {"pk": "4", "text": "@SUM(A1)", "n": Decimal(0), "raw": None},
    {"pk": "5", "text": "\tx", "n": None, "raw": None},
    {"pk": "6", "text": "\rx", "n": None, "raw": None},
    {"pk": "7", "text": "'quoted", "n": None, "raw": None},
    {"pk": "8", "text": "safe = text", "n": None, "raw": None},
]
FORMULA_SCHEMA = {
    "columns": [
        {"name": "pk", "type": "string"},
        {"name": "text", "type": "string"},
        {"name": "n", "type": "int64"},
        {"name": "raw", "type": "binary"},
        {"name": "=evil", "type": "string"},
    ]
}


@pytest.mark.parametrize("escaping", [False, True])
def test_csv_formula_escaping(tmp_path: Path, escaping: bool) -> None:
    path = write_csv(tmp_path, FORMULA_ITEMS, FORMULA_SCHEMA, csv_formula_escaping=escaping)
    rows = list(csv.reader(io.StringIO(path.read_bytes().decode("utf-8"), newline="")))
    mark = "'" if escaping else ""
    assert rows[0] == ["pk", "text", "n", "raw", f"{mark}=evil", "_extra"]
    assert [row[1] for row in rows[1:]] == [
        f"{mark}=1+1",
        f"{mark}+cmd|' /C calc'!A0",
        f"{mark}-2+3",
        f"{mark}@SUM(A1)",
        f"{mark}\tx",
        f"{mark}\rx",
        f"{mark}'quoted",
        "safe = text",
    ]
    # Numbers are never escaped (a negative number stays a number); base64 text starting with "+" is.
    assert [row[2] for row in rows[1:5]] == ["-5", "3", "", "0"]
    assert [row[3] for row in rows[1:3]] == [f"{mark}+/8=", "b2s="]
    # Reading back: remove one leading ' from such cells, and every value is exactly what was stored.
    if escaping:
        unescaped = [cell[1:] if cell.startswith("'") else cell for cell in (row[1] for row in rows[1:])]
        assert unescaped == [item["text"] for item in FORMULA_ITEMS]
    connection = duckdb.connect()
    try:
        duck = connection.sql(f"SELECT text FROM read_csv('{path}', header=true, all_varchar=true)").fetchall()
    finally:
        connection.close()
    assert [text for (text,) in duck] == [row[1] for row in rows[1:]]
