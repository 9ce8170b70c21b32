"""Test items with every awkward value, and readers that decode each export format independently of the encoders."""

from __future__ import annotations

import base64
import csv
import gzip
import io
import json
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeSerializer

from airflow_dynamoscan.export.schema import ExportSchema, plan_schema
from airflow_dynamoscan.scan.decode import deserialize_item, wire_item_to_client_item
from airflow_dynamoscan.scan.scanner import ScanPage
from devtools.sample_data import sample_item

PRECISE = Decimal("12345678901234567890.123456789")


def edge_items() -> list[dict[str, Any]]:
    """Items with the values exports get wrong: exact decimals, sets, binary, unicode, empty values, None."""
    return [
        {
            "pk": "edge#0",
            "precise": PRECISE,
            "count": Decimal(42),
            "big": Decimal("1E+100"),
            "tiny": Decimal("1E-130"),
            "negative": Decimal("-0.000001"),
            "text": 'ünïcødé ✓ 日本語 😀, "quoted"\nsecond line',
            "empty_text": "",
            "spaces": "  padded  ",
            "flag": True,
            "nothing": None,
            "raw": b"\x00\xff\x10binary",
            "empty_raw": b"",
            "tags": {"b", "a", "ç"},
            "numbers": {Decimal("2.5"), Decimal(-1), PRECISE},
            "blobs": {b"\x02", b"\x01\x00"},
            "empty_list": [],
            "empty_map": {},
            "nested": {"list": [Decimal("1.10"), "x", None, True, {"deep": {b"\x07"}}], "map": {"k": "v"}},
            "mixed": "text",
        },
        {
            "pk": "edge#1",
            "precise": Decimal("-0.5"),
            "count": Decimal(-7),
            "big": Decimal("-99999999999999999999999999999999999999"),
            "tiny": Decimal("0.000000000000000000000000000001"),
            "negative": Decimal("-12.5"),
            "text": "plain",
            "empty_text": "",
            "flag": False,
            "nothing": None,
            "raw": b"x",
            "tags": {"only"},
            "numbers": {Decimal(0)},
            "blobs": {b""},
            "empty_list": [Decimal(1)],
            "empty_map": {"a": {}},
            "nested": [],
            "only_here": "sparse attribute",
            "mixed": Decimal("12.50"),
        },
    ]


def mixed_items(count: int = 30, *, padding: int = 40) -> list[dict[str, Any]]:
    """Sample items of every DynamoDB type followed by the edge items."""
    return [sample_item(number, padding=padding) for number in range(count)] + edge_items()


def pages_of(items: list[dict[str, Any]], page_size: int) -> list[ScanPage]:
    """The items cut into scan pages of ``page_size`` items."""
    chunks = [items[start : start + page_size] for start in range(0, len(items), page_size)]
    return [
        ScanPage(
            items=chunk,
            segment=0,
            total_segments=1,
            last_evaluated_key=None,
            count=len(chunk),
            scanned_count=len(chunk),
        )
        for chunk in chunks
    ]


def attribute_value_items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The items in botocore's client shape, as a scan with ``deserialize=False`` returns them."""
    serializer = TypeSerializer()
    return [{name: serializer.serialize(value) for name, value in item.items()} for item in items]


def json_view(value: Any) -> Any:
    """What a lossless JSON encoding of ``value`` reads back as with ``parse_float=Decimal, parse_int=Decimal``."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, (set, frozenset)):
        return [json_view(element) for element in sorted(value)]
    if isinstance(value, list):
        return [json_view(element) for element in value]
    if isinstance(value, dict):
        return {name: json_view(nested) for name, nested in value.items()}
    return value


def loads_exact(text: str | bytes) -> Any:
    return json.loads(text, parse_float=Decimal, parse_int=Decimal)


def maybe_gunzip(data: bytes, compression: str | None) -> bytes:
    return gzip.decompress(data) if compression == "gzip" else data


def lines_of(data: bytes) -> list[bytes]:
    """The lines of a JSON Lines file; only ``\n`` ends a line (``str.splitlines`` would also cut at U+0085)."""
    assert data == b"" or data.endswith(b"\n")
    return data.split(b"\n")[:-1]


def read_jsonl(data: bytes) -> list[Any]:
    return [loads_exact(line) for line in lines_of(data)]


def read_dynamodb_json(data: bytes) -> list[dict[str, Any]]:
    """Decode ``{"Item": ...}`` lines (B and BS as base64) back to plain Python items."""
    items = []
    for line in lines_of(data):
        document = json.loads(line)
        assert list(document) == ["Item"]
        items.append(deserialize_item(wire_item_to_client_item(document["Item"])))
    return items


def expected_cell(value: Any) -> Any:
    """The CSV cell of ``value``: exact text for scalars, the parsed JSON for maps, lists and sets."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (Decimal, int)):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, (dict, list, set)):
        return json_view(value)
    return value


def json_cells(schema: ExportSchema) -> set[str]:
    """The CSV columns of ``schema`` that hold JSON text: ``json`` columns and the extra column."""
    return {column.name for column in schema.columns if column.type == "json"} | {schema.extra_column or ""}


def read_csv(
    data: bytes, expected_items: list[dict[str, Any]], schema: ExportSchema | None = None
) -> tuple[list[str], list[dict[str, Any]]]:
    """Return the header and the rows, the non-empty cells of JSON columns parsed (see :func:`json_cells`)."""
    reader = csv.DictReader(io.StringIO(data.decode("utf-8"), newline=""))
    rows = list(reader)
    assert len(rows) == len(expected_items)
    header = list(reader.fieldnames or [])
    if schema is None:
        schema = plan_schema(expected_items, columns=[name for name in header if name != "_extra"])
    parsed = json_cells(schema)
    decoded = [
        {name: loads_exact(cell) if name in parsed and cell else cell for name, cell in row.items()} for row in rows
    ]
    return header, decoded


def expected_rows(items: list[dict[str, Any]], header: list[str], schema: ExportSchema) -> list[dict[str, Any]]:
    """What :func:`read_csv` reads back for ``items`` that all fit ``schema`` (``_extra``: what has no column)."""
    parsed = json_cells(schema)
    known = set(schema.names)
    rows = []
    for item in items:
        row: dict[str, Any] = {}
        for name in header:
            if name == schema.extra_column:
                extra = {key: json_view(value) for key, value in sorted(item.items()) if key not in known}
                row[name] = extra if extra and schema.other_attributes == "extra" else ""
            elif item.get(name) is None:
                row[name] = ""
            else:
                row[name] = json_view(item[name]) if name in parsed else expected_cell(item[name])
        rows.append(row)
    return rows


def union_columns(items: list[dict[str, Any]]) -> list[str]:
    return sorted({name for item in items for name in item})


def attribute_value_readback(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What ``read_dynamodb_json`` returns for ``items``: the same items, ints as Decimal."""
    return [deserialize_item(item) for item in attribute_value_items(items)]
