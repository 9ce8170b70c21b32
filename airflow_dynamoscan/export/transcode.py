"""
Transcoding: items in the wire shape (the AttributeValue JSON of a Scan response, as ``orjson`` parses it, ``B``
as base64 text) straight to what each export format writes, without decoding them to Python values first.

Every function here gives exactly what decoding the item
(:func:`~airflow_dynamoscan.scan.decode.deserialize_wire_item`) and encoding the decoded item gives, byte for byte
(for Parquet, cell for cell); the property tests hold the two paths side by side. What is saved:

* ``dynamodb_json``: the wire item *is* the line (no base64 decoding and encoding of binary values);
* ``jsonl``: numbers go to ``orjson`` as raw JSON text (:class:`orjson.Fragment`) instead of ``Decimal`` objects
  that a Python callback prints again, and binary values as the base64 text the wire holds;
* ``csv`` and ``parquet``: cells are built column by column from the wire values; only values that need it
  (decimal columns, binary, what overflows to the extra column) are decoded. With pyarrow installed the columns
  are built in Arrow (:mod:`~airflow_dynamoscan.export.columnar`), with :func:`wire_cell_converter` for the cells
  a regular expression does not settle.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import orjson

from airflow_dynamoscan.exceptions import SchemaMismatchError
from airflow_dynamoscan.export.schema import (
    MISFIT,
    ExportSchema,
    converter,
    decimal_parameters,
    number_text,
    split_item,
)
from airflow_dynamoscan.scan.decode import (
    deserialize_wire_item,
    deserialize_wire_value,
    empty_value_error,
    unknown_type_error,
)

WireItem = Mapping[str, Mapping[str, Any]]

_INT64_DIGITS = 18
_Fragment = orjson.Fragment


#: Number texts that ``str(Decimal(text))`` gives back unchanged: integers and fixed-point numbers without leading
#: zeros (``-12.50``, ``0.5``), fractions of ``0.`` with at most five zeros before the first other digit (six or
#: more print with an exponent: ``1E-7``), and zeros with at most six fraction digits (``0.0000000`` prints
#: ``0E-7``).
_PLAIN_NUMBER = re.compile(r"-?(?:[1-9][0-9]*(?:\.[0-9]+)?|0(?:\.(?:0{0,5}[1-9][0-9]*|0{1,6}))?)")
_plain_number = _PLAIN_NUMBER.fullmatch


def wire_number_text(text: str) -> str:
    """
    Return the text an export writes for a wire number: ``str(Decimal(text))``, without building the ``Decimal``
    when the text already is that (see :data:`_PLAIN_NUMBER`).

    :raises ValueError: NaN or an infinity, which DynamoDB cannot store.
    """
    if _plain_number(text) is not None:
        return text
    return number_text(Decimal(text))


def _base64_of(blob: bytes) -> str:
    return binascii.b2a_base64(blob, newline=False).decode("ascii")


def _first_type(attribute_value: Mapping[str, Any]) -> tuple[str, Any]:
    # As the decoder: the first type key counts; none at all is an error.
    for tag, value in attribute_value.items():
        return tag, value
    raise empty_value_error()


def _number_fragment(text: str) -> orjson.Fragment:
    return _Fragment(text if _plain_number(text) is not None else number_text(Decimal(text)))


def _json_map(attributes: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    # A nested string (the most common value) is taken without a call.
    return {
        name: nested["S"] if "S" in nested and len(nested) == 1 else json_value(nested)
        for name, nested in attributes.items()
    }


def _json_list(values: Sequence[Mapping[str, Any]]) -> list[Any]:
    return [nested["S"] if "S" in nested and len(nested) == 1 else json_value(nested) for nested in values]


def json_value(attribute_value: Mapping[str, Any]) -> Any:
    """
    Return what ``orjson`` writes as the ``jsonl`` text of one wire AttributeValue: numbers as exact JSON number
    fragments, binary as base64 text, sets as sorted arrays (numbers by value, binary by their bytes).

    :raises ValueError: an AttributeValue without a type key, or with one DynamoDB does not have.
    """
    if len(attribute_value) == 1:
        # The common types first, looked up by key: this runs for every value of every item.
        if "S" in attribute_value:
            return attribute_value["S"]
        if "N" in attribute_value:
            text = attribute_value["N"]
            return _Fragment(text if _plain_number(text) is not None else number_text(Decimal(text)))
        if "M" in attribute_value:
            return _json_map(attribute_value["M"])
        if "L" in attribute_value:
            return _json_list(attribute_value["L"])
    tag, value = _first_type(attribute_value)
    if tag == "S":
        return value
    if tag == "N":
        return _number_fragment(value)
    if tag == "M":
        return _json_map(value)
    if tag == "L":
        return _json_list(value)
    if tag == "BOOL" or tag == "B":
        return value
    if tag == "NULL":
        return None
    if tag == "SS":
        return sorted(set(value))
    if tag == "NS":
        numbers = sorted(set(map(Decimal, value)))
        if all(map(Decimal.is_finite, numbers)):
            return list(map(_Fragment, map(str, numbers)))
        return [_Fragment(number_text(number)) for number in numbers]  # raises number_text's error
    if tag == "BS":
        return list(map(_base64_of, sorted(set(map(binascii.a2b_base64, value)))))
    raise unknown_type_error(tag)


_INT64_TEXT = re.compile(r"-?[0-9]{1,18}")
_SAMPLE_CONTAINER = ()
_SAMPLE_SCALARS = {"S": "", "B": b""}


def schema_sample_value(attribute_value: Mapping[str, Any]) -> Any:
    """
    Return a plain value that plans the same column type as the decoded value of a wire AttributeValue
    (:func:`~airflow_dynamoscan.export.schema.plan_schema`) without decoding it: strings, binary and containers
    by their kind, booleans and numbers as they decode (integers of up to 18 digits as ``int``).

    :raises ValueError: an AttributeValue without a type key, or with one DynamoDB does not have.
    """
    tag, value = _first_type(attribute_value)
    if tag in _SAMPLE_SCALARS:
        return _SAMPLE_SCALARS[tag]
    if tag == "N":
        return int(value) if _INT64_TEXT.fullmatch(value) is not None else Decimal(value)
    if tag == "BOOL":
        return value
    if tag == "NULL":
        return None
    if tag in ("M", "L", "SS", "NS", "BS"):
        return _SAMPLE_CONTAINER
    raise unknown_type_error(tag)


def _sample_key(attribute_value: Mapping[str, Any]) -> Any:
    """What decides how a wire value plans its column: its kind, and for numbers their digits."""
    tag, value = _first_type(attribute_value)
    if tag == "N":
        if _INT64_TEXT.fullmatch(value) is not None:
            return ("int", len(value.lstrip("-").lstrip("0")))
        parts = _fixed_point_parts(value)
        if parts is not None and parts[1]:
            # A fraction: never int64; integer digits and scale as the Decimal counts them.
            return ("fixed", len(parts[0].lstrip("0")), len(parts[1]))
        return ("number", value)
    if tag == "BOOL":
        return ("bool", value)
    return tag


def schema_sample(items: Iterable[WireItem]) -> list[dict[str, Any]]:
    """
    Return small items that plan the same schema as the decoded ``items``
    (:func:`~airflow_dynamoscan.export.schema.plan_schema`): one ``{name: value}`` per attribute and distinct way
    its values plan a column (see :func:`schema_sample_value`).

    :raises ValueError: an AttributeValue without a type key, or with one DynamoDB does not have.
    """
    seen: dict[tuple[str, Any], Any] = {}
    for item in items:
        for name, attribute_value in item.items():
            key = (name, _sample_key(attribute_value))
            if key not in seen:
                seen[key] = schema_sample_value(attribute_value)
    return [{name: value} for (name, _), value in seen.items()]


def jsonl_line(item: WireItem) -> bytes:
    """The ``jsonl`` line of a wire item, ``\\n`` included."""
    return orjson.dumps({name: json_value(value) for name, value in item.items()}, option=orjson.OPT_APPEND_NEWLINE)


def dynamodb_json_line(item: WireItem) -> bytes:
    """The ``dynamodb_json`` line of a wire item, ``{"Item": {...}}\\n``: the wire item as it is."""
    return orjson.dumps({"Item": item}, option=orjson.OPT_APPEND_NEWLINE)


def _json_text(attribute_value: Mapping[str, Any]) -> str:
    return orjson.dumps(json_value(attribute_value)).decode("utf-8")


def overflow_json_text(overflow: Mapping[str, Mapping[str, Any]]) -> str:
    """The extra column's text of an item's overflowing wire values: as :func:`~.schema.overflow_text` gives."""
    return orjson.dumps({name: json_value(overflow[name]) for name in sorted(overflow)}).decode("utf-8")


def _int64_cell(decoded: Callable[[Any], Any]) -> Callable[[Mapping[str, Any]], Any]:
    def cell(attribute_value: Mapping[str, Any]) -> Any:
        text = attribute_value.get("N")
        # Up to 18 digits always fits int64; anything else (exponents, 19+ digits) takes the decoded path.
        if text is not None and text.isascii():
            digits = text[1:] if text[:1] == "-" else text
            if digits.isdigit() and len(digits) <= _INT64_DIGITS:
                return int(text)
        return decoded(deserialize_wire_value(attribute_value))

    return cell


def _number_cell(attribute_value: Mapping[str, Any]) -> Any:
    text = attribute_value.get("N")
    return MISFIT if text is None else wire_number_text(text)


def _binary_cell(attribute_value: Mapping[str, Any]) -> Any:
    text = attribute_value.get("B")
    return MISFIT if text is None else base64.b64decode(text)


def _fixed_point_parts(text: str) -> tuple[str, str] | None:
    """The integer and fraction digits of a number written without exponent (``-12.50``), else ``None``."""
    body = text[1:] if text[:1] == "-" else text
    whole, dot, fraction = body.partition(".")
    if whole.isdigit() and body.isascii() and (not dot or fraction.isdigit()):
        return whole, fraction
    return None


def _decimal_cell(column_type: str, decoded: Callable[[Any], Any]) -> Callable[[Mapping[str, Any]], Any]:
    precision, scale = decimal_parameters(column_type)

    def cell(attribute_value: Mapping[str, Any]) -> Any:
        text = attribute_value.get("N")
        parts = None if text is None else _fixed_point_parts(text)
        # Digits counted on the text, as schema's converter counts them on the Decimal; other forms take its path.
        if parts is not None and len(parts[1]) <= scale and len(parts[0].lstrip("0")) <= precision - scale:
            return Decimal(attribute_value["N"])
        return decoded(deserialize_wire_value(attribute_value))

    return cell


def wire_cell_converter(column_type: str) -> Callable[[Mapping[str, Any]], Any]:
    """
    Return the function that turns a wire AttributeValue (not ``NULL``) into the cell a column of ``column_type``
    holds, or :data:`~airflow_dynamoscan.export.schema.MISFIT`: the same cell as
    :func:`~airflow_dynamoscan.export.schema.converter` gives for the decoded value.
    """
    if column_type == "string":
        return lambda attribute_value: attribute_value.get("S", MISFIT)
    if column_type == "bool":
        return lambda attribute_value: attribute_value.get("BOOL", MISFIT)
    if column_type == "number":
        return _number_cell
    if column_type == "binary":
        return _binary_cell
    if column_type == "json":
        return _json_text
    if column_type == "float64":
        return lambda attribute_value: MISFIT  # a scan never returns a float
    decoded = converter(column_type, _no_json)
    if column_type == "int64":
        return _int64_cell(decoded)
    return _decimal_cell(column_type, decoded)


#: Column types whose cell is the wire value of one type key, as it is: ``{"S": text}`` in a string column.
_CELL_IS_THE_VALUE = {"string": "S", "bool": "BOOL"}


def wire_columns(
    schema: ExportSchema,
    converters: Sequence[Callable[[Mapping[str, Any]], Any]],
    items: Sequence[WireItem],
    where: str,
) -> tuple[list[list[Any]], list[str | None] | None]:
    """
    Return the cells of wire items column by column (``None`` for null or missing), and the extra column's texts
    (``None`` when the schema has no extra column): what :func:`~airflow_dynamoscan.export.schema.split_item` and
    :func:`~airflow_dynamoscan.export.schema.overflow_text` give for the decoded items.

    :param converters: :func:`wire_cell_converter` of each schema column
    :raises SchemaMismatchError: something overflows and the schema has no extra column (the message of the
        decoded path).
    """
    overflows: dict[int, dict[str, Mapping[str, Any]]] = {}
    columns = []
    for column, convert in zip(schema.columns, converters, strict=True):
        name = column.name
        values = [item.get(name) for item in items]
        tag = _CELL_IS_THE_VALUE.get(column.type)
        if tag is not None:
            # What the converter does, without a call per cell; nulls come out as misfits and are put right below.
            cells = [None if value is None else value.get(tag, MISFIT) for value in values]
        else:
            cells = [None if value is None or "NULL" in value else convert(value) for value in values]
        if MISFIT in cells:
            for index, cell in enumerate(cells):
                if cell is MISFIT:
                    cells[index] = None
                    value = values[index]
                    assert value is not None  # a missing attribute is None, never a misfit
                    if "NULL" not in value:
                        _check_overflow(schema, items[index], where)
                        overflows.setdefault(index, {})[name] = value
        columns.append(cells)
    if schema.other_attributes == "extra":
        known = schema.name_set
        for index, item in enumerate(items):
            if not known.issuperset(item):
                _check_overflow(schema, item, where)
                others = overflows.setdefault(index, {})
                others.update((name, value) for name, value in item.items() if name not in known)
    if schema.extra_column is None:
        return columns, None
    extra: list[str | None] = [None] * len(items)
    for index, overflow in overflows.items():
        extra[index] = overflow_json_text(overflow)
    return columns, extra


def _check_overflow(schema: ExportSchema, item: WireItem, where: str) -> None:
    """Check that an item may overflow: without an extra column, raise the decoded path's error for it."""
    if schema.extra_column is None:
        raise_first_mismatch(schema, [item], where)


def raise_first_mismatch(schema: ExportSchema, items: Sequence[WireItem], where: str) -> None:
    """
    Raise the decoding path's :class:`SchemaMismatchError` for the first of ``items`` that does not fit ``schema``
    (a schema without an extra column), or a general one if each fits.
    """
    converters = [converter(column.type, _no_json) for column in schema.columns]
    for item in items:
        split_item(schema, converters, deserialize_wire_item(item), where)
    raise SchemaMismatchError(f"{where}: an item does not fit the schema, which has no extra column.")


def _no_json(value: Any) -> str:
    return ""
