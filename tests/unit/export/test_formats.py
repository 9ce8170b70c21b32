from __future__ import annotations

import base64
import gzip
import io
import json
import sys
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_dynamoscan.exceptions import InvalidScanArgumentError
from airflow_dynamoscan.export.formats import (
    FILE_FORMATS,
    PARQUET_COMPRESSIONS,
    TEXT_COMPRESSIONS,
    arrow_schema,
    encode_json,
    needs_attribute_values,
    open_encoder,
    part_extension,
    validate_columns,
    validate_format,
)
from airflow_dynamoscan.export.schema import ExportSchema, plan_schema
from tests.unit.export.readback import (
    PRECISE,
    attribute_value_items,
    attribute_value_readback,
    edge_items,
    expected_rows,
    json_view,
    loads_exact,
    maybe_gunzip,
    mixed_items,
    read_csv,
    read_dynamodb_json,
    read_jsonl,
    union_columns,
)


def encode(
    file_format: str,
    pages: list[list[dict[str, Any]]],
    *,
    compression: str | None = None,
    schema: ExportSchema | None = None,
) -> bytes:
    """Encode ``pages`` as one part; CSV and Parquet with ``schema``, else the one planned from all the items."""
    sink = io.BytesIO()
    if schema is None and file_format in ("csv", "parquet"):
        schema = plan_schema([item for page in pages for item in page])
    encoder = open_encoder(file_format, sink, compression=compression, schema=schema)
    for page in pages:
        encoder.write_items(page)
    encoder.close()
    assert encoder.items == sum(len(page) for page in pages)
    assert encoder.bytes_written == len(sink.getvalue())
    assert not sink.closed
    return sink.getvalue()


# --- validation -------------------------------------------------------------------------------------------------


def test_constants() -> None:
    assert FILE_FORMATS == ("jsonl", "dynamodb_json", "csv", "parquet")
    assert TEXT_COMPRESSIONS == (None, "gzip")
    assert PARQUET_COMPRESSIONS == ("snappy", "zstd", "gzip", "none")


@pytest.mark.parametrize(
    ("file_format", "compression", "effective"),
    [
        ("jsonl", None, None),
        ("jsonl", "none", None),
        ("jsonl", "gzip", "gzip"),
        ("dynamodb_json", "gzip", "gzip"),
        ("csv", None, None),
        ("parquet", None, "snappy"),
        ("parquet", "snappy", "snappy"),
        ("parquet", "zstd", "zstd"),
        ("parquet", "gzip", "gzip"),
        ("parquet", "none", "none"),
    ],
)
def test_validate_format_returns_effective_compression(
    file_format: str, compression: str | None, effective: str | None
) -> None:
    assert validate_format(file_format, compression, table_name="orders") == effective


def test_validate_format_names_table_parameter_value_and_allowed_values() -> None:
    with pytest.raises(InvalidScanArgumentError) as bad_format:
        validate_format("xml", None, table_name="orders")
    assert str(bad_format.value) == (
        "Table 'orders': file_format='xml' is not allowed; allowed: jsonl, dynamodb_json, csv, parquet."
    )
    with pytest.raises(InvalidScanArgumentError) as bad_text_compression:
        validate_format("jsonl", "zstd", table_name="orders")
    assert str(bad_text_compression.value) == (
        "Table 'orders': compression='zstd' is not allowed with file_format='jsonl'; allowed: None (or 'none'), 'gzip'."
    )
    with pytest.raises(InvalidScanArgumentError) as bad_parquet_compression:
        validate_format("parquet", "lz4", table_name="orders")
    assert str(bad_parquet_compression.value) == (
        "Table 'orders': compression='lz4' is not allowed with file_format='parquet'; "
        "allowed: 'snappy' (the default, also for None), 'zstd', 'gzip', 'none'."
    )
    assert isinstance(bad_format.value, ValueError)


@pytest.mark.parametrize(
    ("file_format", "compression", "extension"),
    [
        ("jsonl", None, ".jsonl"),
        ("jsonl", "gzip", ".jsonl.gz"),
        ("dynamodb_json", None, ".json"),
        ("dynamodb_json", "gzip", ".json.gz"),
        ("csv", None, ".csv"),
        ("csv", "gzip", ".csv.gz"),
        ("parquet", None, ".parquet"),
        ("parquet", "zstd", ".parquet"),
    ],
)
def test_part_extension(file_format: str, compression: str | None, extension: str) -> None:
    assert part_extension(file_format, compression) == extension


def test_needs_attribute_values_only_for_dynamodb_json() -> None:
    assert [needs_attribute_values(name) for name in FILE_FORMATS] == [False, True, False, False]
    with pytest.raises(InvalidScanArgumentError, match="file_format='avro' is not allowed"):
        needs_attribute_values("avro")


def test_columns_are_checked() -> None:
    assert validate_columns("csv", ("b", "a")) == ["b", "a"]
    assert validate_columns("jsonl", None) is None
    with pytest.raises(InvalidScanArgumentError, match="applies to csv and parquet only"):
        validate_columns("jsonl", ["a"])
    with pytest.raises(InvalidScanArgumentError, match="names \\['a'\\] more than once"):
        validate_columns("csv", ["a", "b", "a"])
    with pytest.raises(InvalidScanArgumentError, match="non-empty list of attribute names"):
        validate_columns("parquet", [])
    with pytest.raises(InvalidScanArgumentError, match="non-empty list of attribute names"):
        validate_columns("csv", "abc")


# --- JSON Lines -------------------------------------------------------------------------------------------------


def test_json_numbers_are_exact_text() -> None:
    assert encode_json({"p": PRECISE, "i": Decimal(5), "e": Decimal("1E-10"), "big": 2**70, "n": 3}) == (
        b'{"p":12345678901234567890.123456789,"i":5,"e":1E-10,"big":1180591620717411303424,"n":3}'
    )
    assert encode_json({"s": {Decimal("2"), Decimal("-1.5")}, "b": {b"\x02", b"\x01"}}, newline=True) == (
        b'{"s":[-1.5,2],"b":["AQ==","Ag=="]}\n'
    )


def test_json_refuses_nan_and_unknown_types() -> None:
    with pytest.raises(ValueError, match="Cannot export the number NaN"):
        encode_json({"n": Decimal("NaN")})
    with pytest.raises(TypeError, match="Cannot export a value of type object"):
        encode_json({"o": object()})


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_jsonl_round_trip(compression: str | None) -> None:
    items = mixed_items()
    data = encode("jsonl", [items[:10], [], items[10:]], compression=compression)
    text = maybe_gunzip(data, compression)
    assert read_jsonl(text) == [json_view(item) for item in items]
    assert text.count(b"\n") == len(items)
    assert b'"precise":12345678901234567890.123456789,' in text
    assert b'"count":42,' in text
    if compression == "gzip":
        assert data[:2] == b"\x1f\x8b"


def test_gzip_output_is_deterministic_and_counted_per_page() -> None:
    items = mixed_items(200, padding=400)
    sink = io.BytesIO()
    encoder = open_encoder("jsonl", sink, compression="gzip")
    encoder.write_items(items[:100])
    after_first_page = encoder.bytes_written
    assert after_first_page == len(sink.getvalue()) > 0
    encoder.write_items(items[100:])
    assert encoder.bytes_written == len(sink.getvalue()) > after_first_page
    encoder.close()
    first = sink.getvalue()
    again = io.BytesIO()
    other = open_encoder("jsonl", again, compression="gzip")
    other.write_items(items[:100])
    other.write_items(items[100:])
    other.close()
    assert first == again.getvalue()
    assert read_jsonl(gzip.decompress(first)) == [json_view(item) for item in items]


# --- DynamoDB JSON ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_dynamodb_json_round_trip(compression: str | None) -> None:
    items = mixed_items()
    data = maybe_gunzip(encode("dynamodb_json", [attribute_value_items(items)], compression=compression), compression)
    assert read_dynamodb_json(data) == attribute_value_readback(items)
    first_edge = json.loads(data.splitlines()[30])["Item"]
    assert first_edge["precise"] == {"N": "12345678901234567890.123456789"}
    assert first_edge["raw"] == {"B": base64.b64encode(b"\x00\xff\x10binary").decode()}
    assert sorted(first_edge["blobs"]["BS"]) == sorted(
        base64.b64encode(blob).decode() for blob in (b"\x02", b"\x01\x00")
    )
    assert first_edge["nothing"] == {"NULL": True}


def test_dynamodb_json_refuses_plain_items() -> None:
    encoder = open_encoder("dynamodb_json", io.BytesIO(), compression=None)
    with pytest.raises(InvalidScanArgumentError, match=r"scan with deserialize=False\), but attribute 'pk' is 'x'\."):
        encoder.write_items([{"pk": "x"}])


# --- CSV --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_csv_round_trip_with_the_planned_schema(compression: str | None) -> None:
    items = mixed_items()
    data = maybe_gunzip(encode("csv", [items[:20], items[20:]], compression=compression), compression)
    header, rows = read_csv(data, items)
    assert header == [*union_columns(items), "_extra"]
    assert "only_here" in header
    schema = plan_schema(items)
    assert rows == expected_rows(items, header, schema)
    edge = rows[30]
    assert edge["precise"] == "12345678901234567890.123456789"
    assert edge["big"] == "1E+100"
    assert edge["flag"] == "true"
    assert edge["nothing"] == ""
    assert edge["raw"] == base64.b64encode(b"\x00\xff\x10binary").decode()
    assert edge["tags"] == ["a", "b", "ç"]
    assert edge["text"] == 'ünïcødé ✓ 日本語 😀, "quoted"\nsecond line'
    # An attribute whose values have several types is a json column: the string keeps its quotes.
    assert [row["mixed"] for row in rows[30:]] == ["text", Decimal("12.50")]
    assert b',"""text""",' in data


def test_csv_streams_rows_as_they_come() -> None:
    sink = io.BytesIO()
    schema = plan_schema([{"a": "x"}])
    encoder = open_encoder("csv", sink, compression=None, schema=schema)
    assert sink.getvalue() == b"a,_extra\r\n"
    encoder.write_items([{"a": "x" * 100}])
    assert sink.getvalue() == b"a,_extra\r\n" + b"x" * 100 + b",\r\n"
    assert encoder.bytes_written == len(sink.getvalue()) == 113
    encoder.close()
    assert encoder.bytes_written == 113


def test_csv_with_given_columns_leaves_other_attributes_out() -> None:
    items = edge_items()
    columns = ["pk", "precise", "missing", "nested"]
    data = encode("csv", [items], schema=plan_schema(items, columns=columns))
    assert data.splitlines()[0] == b"pk,precise,missing,nested,_extra"
    header, rows = read_csv(data, items)
    assert header == [*columns, "_extra"]
    assert [row["_extra"] for row in rows] == ["", ""]
    assert [row["precise"] for row in rows] == ["12345678901234567890.123456789", "-0.5"]


def test_csv_empty_parts_have_the_header() -> None:
    schema = plan_schema([], columns=["pk", "n"])
    assert encode("csv", [], schema=schema) == b"pk,n,_extra\r\n"
    assert gzip.decompress(encode("csv", [], compression="gzip", schema=schema)) == b"pk,n,_extra\r\n"
    assert encode("csv", [], schema=plan_schema([])) == b"_extra\r\n"


# --- Parquet ----------------------------------------------------------------------------------------------------

JSON_COLUMNS = {
    "_extra",
    "address",
    "blobs",
    "empty_list",
    "empty_map",
    "lines",
    "mixed",
    "nested",
    "nothing",
    "numbers",
    "scores",
    "tags",
}
NUMBER_TEXT_COLUMNS = {"big", "tiny"}


def read_parquet(data: bytes) -> pa.Table:
    return pq.read_table(io.BytesIO(data))


def parquet_view(table: pa.Table) -> list[dict[str, Any]]:
    rows = table.to_pylist()
    return [
        {
            name: loads_exact(value) if name in JSON_COLUMNS and value is not None else value
            for name, value in row.items()
        }
        for row in rows
    ]


def expected_parquet_rows(items: list[dict[str, Any]], columns: list[str]) -> list[dict[str, Any]]:
    def expected(name: str, value: Any) -> Any:
        if value is None:
            return None
        if name in JSON_COLUMNS:
            return json_view(value)
        if name in NUMBER_TEXT_COLUMNS:
            return str(value)
        return value

    return [{name: expected(name, item.get(name)) for name in columns} for item in items]


@pytest.mark.parametrize("compression", [None, "snappy", "zstd", "gzip", "none"])
def test_parquet_round_trip(compression: str | None) -> None:
    items = mixed_items()
    data = encode("parquet", [items[:7], items[7:25], items[25:]], compression=compression)
    table = read_parquet(data)
    columns = [*union_columns(items), "_extra"]
    assert table.column_names == columns
    assert parquet_view(table) == expected_parquet_rows(items, columns)
    types = {field.name: field.type for field in table.schema}
    assert types["n"] == pa.int64()
    assert types["count"] == pa.int64()
    assert types["precise"] == pa.decimal128(38, 9)
    assert types["amount"] == pa.decimal128(38, 2)
    assert types["negative"] == pa.decimal128(38, 6)
    assert types["big"] == pa.string()
    assert types["tiny"] == pa.string()
    assert types["raw"] == pa.binary()
    assert types["paid"] == pa.bool_()
    assert types["nothing"] == pa.string()
    assert types["mixed"] == pa.string()
    assert types["tags"] == pa.string()
    assert types["_extra"] == pa.string()
    precise = table.column("precise").to_pylist()
    assert precise[30] == PRECISE
    assert str(precise[30]) == "12345678901234567890.123456789"
    assert table.column("mixed").to_pylist()[30:] == ['"text"', "12.50"]
    assert table.column("big").to_pylist()[30:] == ["1E+100", "-99999999999999999999999999999999999999"]
    codec = pq.ParquetFile(io.BytesIO(data)).metadata.row_group(0).column(0).compression
    assert (
        codec
        == {None: "SNAPPY", "snappy": "SNAPPY", "zstd": "ZSTD", "gzip": "GZIP", "none": "UNCOMPRESSED"}[compression]
    )


def test_parquet_number_rule() -> None:
    items: list[dict[str, Any]] = [
        {"ints": Decimal(1), "int64_edge": Decimal(2**63 - 1), "wide_int": Decimal(2**63), "scaled": Decimal("1.5")},
        {"ints": 7, "int64_edge": Decimal(-(2**63)), "wide_int": Decimal(1), "scaled": Decimal("-123.25")},
        {"ints": Decimal("3E+2"), "too_wide": Decimal("1" * 30 + "." + "1" * 9), "float": 0.25},
    ]
    table = read_parquet(encode("parquet", [items]))
    assert {field.name: field.type for field in table.schema} == {
        "float": pa.float64(),
        "int64_edge": pa.int64(),
        "ints": pa.int64(),
        "scaled": pa.decimal128(38, 2),
        "too_wide": pa.string(),
        "wide_int": pa.decimal128(38, 0),
        "_extra": pa.string(),
    }
    assert table.to_pylist() == [
        {
            "float": None,
            "int64_edge": 2**63 - 1,
            "ints": 1,
            "scaled": Decimal("1.50"),
            "too_wide": None,
            "wide_int": 2**63,
            "_extra": None,
        },
        {
            "float": None,
            "int64_edge": -(2**63),
            "ints": 7,
            "scaled": Decimal("-123.25"),
            "too_wide": None,
            "wide_int": 1,
            "_extra": None,
        },
        {
            "float": 0.25,
            "int64_edge": None,
            "ints": 300,
            "scaled": None,
            "too_wide": "1" * 30 + "." + "1" * 9,
            "wide_int": None,
            "_extra": None,
        },
    ]


def test_parquet_with_given_columns() -> None:
    items = edge_items()
    table = read_parquet(encode("parquet", [items], schema=plan_schema(items, columns=["precise", "pk", "absent"])))
    assert table.column_names == ["precise", "pk", "absent", "_extra"]
    assert table.schema.field("absent").type == pa.string()
    assert table.to_pylist() == [
        {"precise": PRECISE, "pk": "edge#0", "absent": None, "_extra": None},
        {"precise": Decimal("-0.5"), "pk": "edge#1", "absent": None, "_extra": None},
    ]


def test_parquet_empty_part_has_the_schema() -> None:
    schema = plan_schema([{"pk": "a", "n": 1}])
    table = read_parquet(encode("parquet", [], schema=schema))
    assert table.num_rows == 0
    assert table.schema == arrow_schema(schema)
    assert {field.name: field.type for field in table.schema} == {
        "n": pa.int64(),
        "pk": pa.string(),
        "_extra": pa.string(),
    }


def test_parquet_bytes_written_are_the_file() -> None:
    sink = io.BytesIO()
    encoder = open_encoder("parquet", sink, compression=None, schema=plan_schema(mixed_items(10)))
    encoder.write_items(mixed_items(10))
    assert encoder.bytes_written == len(sink.getvalue())
    encoder.close()
    assert encoder.bytes_written == len(sink.getvalue())
    assert sink.getvalue()[:4] == b"PAR1"


def test_parquet_without_pyarrow_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(InvalidScanArgumentError) as error:
        open_encoder("parquet", io.BytesIO(), compression=None, schema=plan_schema([]))
    assert str(error.value) == (
        "file_format='parquet' needs pyarrow, which is not installed where this task runs: install the parquet extra "
        "(pip install 'airflow-dynamoscan[parquet]') on every worker, or choose file_format='jsonl', 'dynamodb_json' "
        "or 'csv'."
    )


@pytest.mark.parametrize("file_format", ["jsonl", "csv", "parquet"])
def test_nan_is_refused(file_format: str) -> None:
    schema = plan_schema([], columns=["n"]) if file_format != "jsonl" else None
    encoder = open_encoder(file_format, io.BytesIO(), compression=None, schema=schema)
    with pytest.raises(ValueError, match="Cannot export the number NaN: DynamoDB numbers are finite"):
        encoder.write_items([{"n": Decimal("NaN")}])
        encoder.close()


def test_schema_is_required_by_column_formats_only() -> None:
    with pytest.raises(InvalidScanArgumentError, match="file_format='csv' needs schema"):
        open_encoder("csv", io.BytesIO(), compression=None)
    with pytest.raises(InvalidScanArgumentError, match="file_format='jsonl' takes no schema"):
        open_encoder("jsonl", io.BytesIO(), compression=None, schema=plan_schema([]))
    with pytest.raises(InvalidScanArgumentError, match="csv_formula_escaping=True is not allowed with file_format="):
        open_encoder("parquet", io.BytesIO(), compression=None, schema=plan_schema([]), csv_formula_escaping=True)


# --- properties -------------------------------------------------------------------------------------------------

dynamodb_numbers = st.decimals(
    allow_nan=False, allow_infinity=False, min_value=Decimal("-1E+40"), max_value=Decimal("1E+40")
)
numbers = st.one_of(dynamodb_numbers, st.integers(min_value=-(2**80), max_value=2**80))


@settings(max_examples=150, deadline=None, database=None)
@given(st.lists(numbers, min_size=1, max_size=20))
def test_every_number_survives_jsonl_csv_and_parquet(values: list[Decimal | int]) -> None:
    items = [{"n": value} for value in values]
    assert [row["n"] for row in read_jsonl(encode("jsonl", [items]))] == values
    _, rows = read_csv(encode("csv", [items], schema=plan_schema([], columns=["n"])), items)
    assert [Decimal(row["n"]) for row in rows] == values
    assert [row["n"] for row in rows] == [str(value) for value in values]
    column = read_parquet(encode("parquet", [items])).column("n")
    if pa.types.is_string(column.type):
        assert column.to_pylist() == [str(value) for value in values]
    else:
        assert column.to_pylist() == values


plain_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.text(max_size=8),
        dynamodb_numbers,
        st.binary(max_size=8),
        st.sets(st.text(max_size=4), min_size=1, max_size=3),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=100, deadline=None, database=None)
@given(
    st.lists(st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), plain_values, min_size=1), min_size=1, max_size=6)
)
def test_every_item_survives_jsonl(items: list[dict[str, Any]]) -> None:
    assert read_jsonl(encode("jsonl", [items])) == [json_view(item) for item in items]
