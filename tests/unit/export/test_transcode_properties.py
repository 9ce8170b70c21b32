"""
Every format's output from wire-shape items (transcoded) is exactly what decoding the items and encoding the decoded
items gives: the same bytes for ``jsonl``, ``dynamodb_json`` and ``csv``, the same values read back for Parquet.

The reference is the decoding path itself (``deserialize_wire_item`` or ``wire_item_to_client_item``, then the
encoder fed decoded items, as a scan without fast decoding feeds it), on random AttributeValue trees of every type:
numbers in integer, fixed-point and exponent forms (big, precise, negative), binary, sets, empty strings, nesting.
"""

from __future__ import annotations

import io
import sys
from decimal import Decimal
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from airflow_dynamoscan.exceptions import SchemaMismatchError
from airflow_dynamoscan.export import formats
from airflow_dynamoscan.export.formats import open_encoder
from airflow_dynamoscan.export.schema import ExportSchema, SchemaColumn, plan_schema
from airflow_dynamoscan.export.transcode import jsonl_line, schema_sample, wire_number_text
from airflow_dynamoscan.scan.decode import deserialize_wire_item, wire_item_to_client_item
from tests.unit.test_decode_properties import items, number_texts, to_wire

_SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
_COLUMN_TYPES = [
    "string",
    "int64",
    "decimal(38,2)",
    "decimal(10,0)",
    "decimal(3,3)",
    "number",
    "bool",
    "binary",
    "float64",
    "json",
]
#: Number texts in forms DynamoDB does not send but a decoder reads: leading zeros, signs, bare points, exponents.
_ODD_NUMBER_TEXTS = [
    "007",
    "-0",
    "-007.50",
    "0.000",
    "1.",
    ".5",
    "+5",
    "00",
    "-0.0",
    "0.999",
    "-0.0010",
    "1e2",
    "1E+2",
    "0.0000001",
    "123456789012345678",
    "-1234567890123456789",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "12345678.90",
    "00000000000000000000000000000000000000000000012.5",
]


def wire_page(page: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Client-shape items as a Scan response's body holds them, parsed by orjson as the fast reader does."""
    parsed: list[dict[str, Any]] = orjson.loads(orjson.dumps(to_wire(page)))
    return parsed


def encoded(file_format: str, page: list[dict[str, Any]], *, wire: bool, **options: Any) -> bytes:
    sink = io.BytesIO()
    encoder = open_encoder(file_format, sink, **options)
    assert encoder.write_items(page, wire=wire) == len(page)
    encoder.close()
    return sink.getvalue()


def decoded_reference(file_format: str, page: list[dict[str, Any]], **options: Any) -> bytes:
    decode = wire_item_to_client_item if file_format == "dynamodb_json" else deserialize_wire_item
    return encoded(file_format, [decode(item) for item in page], wire=False, **options)


@st.composite
def pages_and_schemas(draw: st.DrawFn) -> tuple[list[dict[str, Any]], ExportSchema]:
    """A wire page and a schema for it: planned from the page, or with random column types (values misfit)."""
    page = wire_page(draw(st.lists(items, min_size=1, max_size=5)))
    names = sorted({name for item in page for name in item})
    if draw(st.booleans()):
        return page, plan_schema([deserialize_wire_item(item) for item in page])
    chosen = draw(st.lists(st.sampled_from(names), unique=True, min_size=1))
    columns = tuple(SchemaColumn(name, draw(st.sampled_from(_COLUMN_TYPES))) for name in chosen)
    extra = "_extra" if "_extra" not in chosen else "_extra_"
    return page, ExportSchema(columns, extra, draw(st.sampled_from(["extra", "omit"])))


@_SETTINGS
@given(st.lists(items, min_size=1, max_size=6), st.sampled_from([None, "gzip"]))
def test_jsonl_and_dynamodb_json_bytes_equal_the_decoding_path(
    client_page: list[dict[str, Any]], compression: str | None
) -> None:
    page = wire_page(client_page)
    for file_format in ("jsonl", "dynamodb_json"):
        expected = decoded_reference(file_format, page, compression=compression)
        assert encoded(file_format, page, wire=True, compression=compression) == expected


@_SETTINGS
@given(pages_and_schemas(), st.booleans())
def test_csv_bytes_equal_the_decoding_path(page_and_schema: tuple[list[Any], ExportSchema], escaping: bool) -> None:
    page, schema = page_and_schema
    options = {"compression": None, "schema": schema, "csv_formula_escaping": escaping}
    assert encoded("csv", page, wire=True, **options) == decoded_reference("csv", page, **options)


@settings(_SETTINGS, max_examples=40)
@given(pages_and_schemas(), st.booleans())
def test_csv_without_pyarrow_gives_the_same_bytes(
    page_and_schema: tuple[list[Any], ExportSchema], escaping: bool
) -> None:
    page, schema = page_and_schema
    options = {"compression": None, "schema": schema, "csv_formula_escaping": escaping}
    with pytest.MonkeyPatch.context() as patch:
        # As on an install without the parquet extra: the rows are written by the csv module.
        patch.setattr(formats, "_arrow_csv_rows", lambda *arguments: None)
        assert encoded("csv", page, wire=True, **options) == decoded_reference("csv", page, **options)


@settings(_SETTINGS, max_examples=40)
@given(st.lists(items, min_size=1, max_size=5))
def test_csv_of_one_column_without_extra_column_equals_the_decoding_path(client_page: list[dict[str, Any]]) -> None:
    page = wire_page(client_page)
    name = sorted({name for item in page for name in item})[0]
    # Python's csv module writes NUL characters from 3.11 on; before, neither path can write such a name.
    assume(sys.version_info >= (3, 11) or "\x00" not in name)
    # Rows of a single cell: an empty one is written "" (as csv.writer does), not as an empty line.
    schema = ExportSchema((SchemaColumn(name, "json"),), None, "omit")
    options = {"compression": None, "schema": schema}
    assert encoded("csv", page, wire=True, **options) == decoded_reference("csv", page, **options)


@_SETTINGS
@given(st.lists(items, min_size=1, max_size=6), st.sampled_from([None, ["n", "a", "zz"]]))
def test_schema_sample_values_plan_the_schema_of_the_decoded_items(
    client_page: list[dict[str, Any]], columns: list[str] | None
) -> None:
    # Numbers planned by their digits: odd forms of a few, as one attribute's values and one each.
    page = wire_page(client_page) + [{"n": {"N": text}, text: {"N": text}} for text in _ODD_NUMBER_TEXTS]
    decoded = [deserialize_wire_item(item) for item in page]
    assert plan_schema(schema_sample(page), columns=columns) == plan_schema(decoded, columns=columns)


@settings(_SETTINGS, max_examples=60)
@given(pages_and_schemas())
def test_parquet_values_equal_the_decoding_path(page_and_schema: tuple[list[Any], ExportSchema]) -> None:
    page, schema = page_and_schema
    transcoded = pq.read_table(io.BytesIO(encoded("parquet", page, wire=True, compression=None, schema=schema)))
    reference = pq.read_table(io.BytesIO(decoded_reference("parquet", page, compression=None, schema=schema)))
    assert transcoded.schema == reference.schema
    assert transcoded.to_pylist() == reference.to_pylist()
    assert transcoded.num_rows == len(page)


@pytest.mark.parametrize("column_type", ["int64", "decimal(38,2)", "decimal(10,0)", "decimal(3,3)", "number"])
def test_odd_number_texts_give_the_cells_of_the_decoding_path(column_type: str) -> None:
    page = [{"pk": {"S": str(index)}, "x": {"N": text}} for index, text in enumerate(_ODD_NUMBER_TEXTS)]
    schema = ExportSchema((SchemaColumn("pk", "string"), SchemaColumn("x", column_type)))
    options = {"compression": None, "schema": schema}
    assert encoded("csv", page, wire=True, **options) == decoded_reference("csv", page, **options)
    transcoded = pq.read_table(io.BytesIO(encoded("parquet", page, wire=True, **options)))
    assert (
        transcoded.to_pylist() == pq.read_table(io.BytesIO(decoded_reference("parquet", page, **options))).to_pylist()
    )


@_SETTINGS
@given(number_texts())
def test_number_text_is_that_of_the_decimal(text: str) -> None:
    assert wire_number_text(text) == str(Decimal(text))
    assert jsonl_line({"n": {"N": text}}) == b'{"n":' + str(Decimal(text)).encode() + b"}\n"


@pytest.mark.parametrize(
    "text",
    [
        "0",
        "-0",
        "7",
        "007",
        "-12",
        "1.50",
        "-0.0",
        "0.000001",
        "0.0000001",
        "0.0000000",
        "0.000000",
        "0.5",
        "-0.5",
        "0.00000012",
        "0.0000012",
        "0.00",
        "-0.00",
        "00.5",
        "+5",
        "1.5E0",
        "0.0000001234567890123456789",
        "1E+3",
        "1e-7",
        "1.",
        "12345678901234567890123456789012345678",
        "-9.99E+125",
        "1E-130",
    ],
)
def test_number_forms_that_change_on_the_way_out(text: str) -> None:
    assert wire_number_text(text) == str(Decimal(text))


def test_binary_keeps_the_base64_text_and_sets_are_sorted_as_decoded() -> None:
    item = {
        "b": {"B": "AP8="},
        "bs": {"BS": ["/w==", "AA=="]},
        "ns": {"NS": ["10", "-1.5", "2E+1"]},
        "ss": {"SS": ["b", "", "a"]},
    }
    assert jsonl_line(item) == b'{"b":"AP8=","bs":["AA==","/w=="],"ns":[-1.5,10,2E+1],"ss":["","a","b"]}\n'
    assert encoded("jsonl", [item], wire=True, compression=None) == decoded_reference("jsonl", [item], compression=None)
    assert encoded("dynamodb_json", [item], wire=True, compression=None) == (
        b'{"Item":{"b":{"B":"AP8="},"bs":{"BS":["/w==","AA=="]},"ns":{"NS":["10","-1.5","2E+1"]},'
        b'"ss":{"SS":["b","","a"]}}}\n'
    )


def test_a_misfit_without_extra_column_raises_what_the_decoding_path_raises() -> None:
    schema = ExportSchema((SchemaColumn("n", "int64"),), None, "omit")
    page = [{"n": {"S": "forty-two"}}]
    with pytest.raises(SchemaMismatchError) as reference:
        decoded_reference("parquet", page, compression=None, schema=schema)
    with pytest.raises(SchemaMismatchError) as transcoded:
        encoded("parquet", page, wire=True, compression=None, schema=schema)
    assert str(transcoded.value) == str(reference.value)
    assert "attribute 'n' holds a str value" in str(transcoded.value)


@pytest.mark.parametrize(("value", "message"), [({}, "Empty DynamoDB AttributeValue"), ({"X": 1}, "'X'")])
def test_malformed_values_raise_what_the_decoder_raises(value: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        deserialize_wire_item({"a": value})
    with pytest.raises(ValueError, match=message):
        jsonl_line({"a": value})
