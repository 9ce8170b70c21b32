"""
One schema per export: the columns, and their types, of every CSV and Parquet part of one export.

An export's schema is decided once, before any part is written — planned from a bounded sample of the table
(:func:`plan_schema`) or given by the caller — and every part of the export, in every mapped task, is written with
it, so the parts read back as one dataset (``pyarrow.dataset``, DuckDB, Athena, Spark). Its JSON form
(:meth:`ExportSchema.to_json`) is what a DAG author may pass as ``schema=`` and what the manifest records::

    {
        "columns": [{"name": "pk", "type": "string"}, {"name": "amount", "type": "decimal(38,2)"}],
        "extra_column": "_extra",
        "other_attributes": "extra",
    }

Column types, and what fits each (``None`` fits every column, as a null):

``string``        a ``str``
``int64``         an integer within the int64 range (``Decimal`` without a fraction, e.g. ``42`` but not ``42.0``)
``decimal(p,s)``  a number with at most ``s`` fraction digits and ``p - s`` integer digits (``p <= 38``); Parquet
                  ``decimal128(p, s)``, read back numerically equal at the column's scale
``number``        any number, written as its exact text (a Parquet ``string``)
``bool``          ``True``/``False``
``binary``        ``bytes`` (base64 text in CSV)
``float64``       a Python ``float`` (never returned by a scan)
``json``          any value, written as JSON text (as in ``jsonl``: exact numbers, sets as sorted arrays, binary as
                  base64 text); a string keeps its quotes (``"abc"``), so ``"42"`` and ``42`` stay apart

What does not fit is never dropped silently. With ``extra_column`` (default ``"_extra"``) set, a value that does not
fit its column's type, and (with ``other_attributes="extra"``, the default) an attribute the schema has no column
for, go to that column: a JSON object text ``{"attribute": value, ...}`` encoded as in ``jsonl``, the attribute's
own column left null for that item; the extra column is null when nothing overflows. With
``other_attributes="omit"`` (what ``columns=`` asks for), attributes without a column are left out on purpose, as a
``ProjectionExpression`` would. With ``extra_column=None`` a value that would overflow raises
:class:`~airflow_dynamoscan.exceptions.SchemaMismatchError` instead.

Planning from a sample (:func:`plan_schema`): one column per attribute seen (sorted by name, or the ``columns``
given), typed by the values seen: all strings -> ``string``; all booleans -> ``bool``; all binary -> ``binary``;
numbers: all integers within int64 -> ``int64``, else ``decimal(38, s)`` with ``s`` the largest scale seen when
every value fits it, else ``number``; maps, lists, sets, attributes whose values have several types, and attributes
seen only as null or not at all -> ``json``.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from typing import Any

from airflow_dynamoscan.exceptions import InvalidScanArgumentError, SchemaMismatchError

#: The column types of an export schema; ``decimal(p,s)`` stands for every precision ``p <= 38`` and scale ``s``.
COLUMN_TYPES = ("string", "int64", "decimal(p,s)", "number", "bool", "binary", "float64", "json")

#: The column that holds what does not fit the schema, unless the schema names another or none.
DEFAULT_EXTRA_COLUMN = "_extra"

#: What happens to an attribute the schema has no column for: ``"extra"`` (to the extra column) or ``"omit"``.
OTHER_ATTRIBUTES = ("extra", "omit")

_DECIMAL_TYPE = re.compile(r"^decimal\((\d+),(\d+)\)$")
_DECIMAL128_MAX_PRECISION = 38
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_BYTES_TYPES = (bytes, bytearray, memoryview)
_CONTAINER_TYPES = (dict, list, tuple, set, frozenset)

#: Returned by a column's converter for a value that does not fit the column.
MISFIT: Any = object()


@dataclass(frozen=True)
class SchemaColumn:
    """
    One column of an export schema.

    :param name: the attribute's name
    :param type: one of :data:`COLUMN_TYPES`
    """

    name: str
    type: str


@dataclass(frozen=True)
class ExportSchema:
    """
    The columns of every CSV and Parquet part of one export (see the module docstring).

    :param columns: the attributes' columns, in file order
    :param extra_column: the column for what does not fit (last in the file), or ``None`` to raise instead
    :param other_attributes: ``"extra"`` (attributes without a column go to the extra column) or ``"omit"``
    """

    columns: tuple[SchemaColumn, ...]
    extra_column: str | None = DEFAULT_EXTRA_COLUMN
    other_attributes: str = "extra"

    @property
    def names(self) -> list[str]:
        """The attributes' column names, in order (without the extra column)."""
        return [column.name for column in self.columns]

    @cached_property
    def name_set(self) -> frozenset[str]:
        """The attributes' column names, as a set."""
        return frozenset(self.names)

    @property
    def header(self) -> list[str]:
        """Every column name of a part, the extra column last: the CSV header, the Parquet field names."""
        return self.names + ([self.extra_column] if self.extra_column else [])

    def to_json(self) -> dict[str, Any]:
        """The JSON form, as ``schema=`` accepts it and the manifest records it."""
        return {
            "columns": [{"name": column.name, "type": column.type} for column in self.columns],
            "extra_column": self.extra_column,
            "other_attributes": self.other_attributes,
        }


def parse_schema(value: Any, *, table_name: str | None = None) -> ExportSchema:
    """
    Return the :class:`ExportSchema` of its JSON form (an :class:`ExportSchema` is returned as it is).

    :param value: ``{"columns": [{"name": ..., "type": ...}, ...], "extra_column": ..., "other_attributes": ...}``;
        ``extra_column`` defaults to ``"_extra"`` and ``other_attributes`` to ``"extra"``
    :param table_name: the exported table, named in the error message
    :raises InvalidScanArgumentError: naming the parameter, the bad part and what is allowed.
    """
    if isinstance(value, ExportSchema):
        return value
    where = f"Table {table_name!r}: " if table_name else ""

    def refuse(problem: str) -> InvalidScanArgumentError:
        return InvalidScanArgumentError(
            f"{where}schema={value!r:.300} is not allowed: {problem}. Expected "
            f'{{"columns": [{{"name": "pk", "type": "string"}}, ...], "extra_column": "_extra" or null, '
            f'"other_attributes": "extra" or "omit"}}, column types {", ".join(COLUMN_TYPES)}.'
        )

    if not isinstance(value, Mapping):
        raise refuse("it is not a JSON object")
    unknown = sorted(set(value) - {"columns", "extra_column", "other_attributes"})
    if unknown:
        raise refuse(f"unknown key(s) {unknown}")
    raw_columns = value.get("columns")
    if not isinstance(raw_columns, Sequence) or isinstance(raw_columns, str):
        raise refuse("'columns' must be a list")
    columns = []
    for raw in raw_columns:
        if not isinstance(raw, Mapping) or set(raw) != {"name", "type"}:
            raise refuse(f"column {raw!r:.80} must be an object with exactly 'name' and 'type'")
        name, column_type = raw["name"], raw["type"]
        if not isinstance(name, str) or not name:
            raise refuse(f"column name {name!r:.80} must be a non-empty string")
        if not isinstance(column_type, str) or not _known_type(column_type.replace(" ", "")):
            raise refuse(f"column {name!r} has the unknown type {column_type!r:.80}")
        columns.append(SchemaColumn(name, column_type.replace(" ", "")))
    extra_column = value.get("extra_column", DEFAULT_EXTRA_COLUMN)
    if extra_column is not None and (not isinstance(extra_column, str) or not extra_column):
        raise refuse("'extra_column' must be a non-empty string or null")
    if not columns and extra_column is None:
        raise refuse("'columns' must be a non-empty list when 'extra_column' is null")
    other_attributes = value.get("other_attributes", "extra")
    if other_attributes not in OTHER_ATTRIBUTES:
        raise refuse(f"'other_attributes' must be one of {', '.join(OTHER_ATTRIBUTES)}")
    names = [column.name for column in columns] + ([extra_column] if extra_column else [])
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise refuse(f"it names {duplicated} more than once (the extra column included)")
    return ExportSchema(tuple(columns), extra_column, other_attributes)


def _known_type(column_type: str) -> bool:
    if column_type in COLUMN_TYPES and column_type != "decimal(p,s)":
        return True
    match = _DECIMAL_TYPE.match(column_type)
    return match is not None and 1 <= int(match[1]) <= _DECIMAL128_MAX_PRECISION and int(match[2]) <= int(match[1])


def number_text(value: Decimal | int | float) -> str:
    """
    Return the exact text of a number: ``str`` of a ``Decimal`` or ``int``, the shortest round-trip text of a float.

    :raises ValueError: for NaN or an infinity, which DynamoDB cannot store.
    """
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"Cannot export the number {value}: DynamoDB numbers are finite.")
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"Cannot export the number {value}: DynamoDB numbers are finite.")
        return repr(value)
    return str(value)


def _digits(value: Decimal | int) -> tuple[int, int]:
    """Integer digits and scale (fraction digits) of a finite number; zero has no integer digits."""
    if isinstance(value, int):
        return (len(str(abs(value))) if value else 0), 0
    number_text(value)  # refuses NaN and infinities
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    if not any(digits):
        return 0, max(-exponent, 0)
    if exponent >= 0:
        return len(digits) + exponent, 0
    return max(len(digits) + exponent, 0), -exponent


def _is_number(value: Any) -> bool:
    return isinstance(value, (Decimal, int)) and not isinstance(value, bool)


def _to_int64(value: Any) -> Any:
    if not _is_number(value):
        return MISFIT
    if isinstance(value, Decimal):
        number_text(value)
        exponent = value.as_tuple().exponent
        if not isinstance(exponent, int) or exponent < 0 or value.adjusted() > 19:
            return MISFIT
        value = int(value)
    return value if _INT64_MIN <= value <= _INT64_MAX else MISFIT


def converter(column_type: str, json_text: Callable[[Any], str]) -> Callable[[Any], Any]:
    """
    Return the function that turns a non-null value into what a column of ``column_type`` holds, or :data:`MISFIT`.

    The results: ``str`` for ``string``/``number``/``json``, ``int`` for ``int64``, ``Decimal`` for decimals,
    ``bool``, ``bytes``, ``float``.

    :param json_text: the JSON text encoder of ``json`` columns
    """
    if column_type == "string":
        return lambda value: value if isinstance(value, str) else MISFIT
    if column_type == "int64":
        return _to_int64
    if column_type == "number":
        return lambda value: number_text(value) if _is_number(value) else MISFIT
    if column_type == "bool":
        return lambda value: value if isinstance(value, bool) else MISFIT
    if column_type == "binary":
        return lambda value: bytes(value) if isinstance(value, _BYTES_TYPES) else MISFIT
    if column_type == "float64":
        return lambda value: value if isinstance(value, float) else MISFIT
    if column_type == "json":
        return json_text
    precision, scale = decimal_parameters(column_type)

    def to_decimal(value: Any) -> Any:
        if not _is_number(value):
            return MISFIT
        integer_digits, value_scale = _digits(value)
        if value_scale > scale or integer_digits > precision - scale:
            return MISFIT
        return value if isinstance(value, Decimal) else Decimal(value)

    return to_decimal


def decimal_parameters(column_type: str) -> tuple[int, int]:
    """``"decimal(38,2)"`` -> ``(38, 2)``."""
    match = _DECIMAL_TYPE.match(column_type)
    assert match is not None, column_type
    return int(match[1]), int(match[2])


def csv_text(column_type: str, converted: Any) -> str:
    """The CSV cell of a value already converted for a column of ``column_type`` (see :func:`converter`)."""
    if isinstance(converted, str):
        return converted
    if isinstance(converted, bool):
        return "true" if converted else "false"
    if isinstance(converted, bytes):
        return base64.b64encode(converted).decode("ascii")
    return number_text(converted)


class _Profile:
    """The kinds of values one attribute has in the sample, and the digits its numbers need."""

    __slots__ = ("fits_int64", "integer_digits", "key_types", "kinds", "scale")

    def __init__(self, key_types: Mapping[str, str] | None = None) -> None:
        self.key_types = key_types or {}
        self.kinds: set[str] = set()
        self.fits_int64 = True
        self.integer_digits = 0
        self.scale = 0

    def observe(self, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, str):
            self.kinds.add("string")
        elif isinstance(value, bool):
            self.kinds.add("bool")
        elif _is_number(value):
            self.kinds.add("number")
            if _to_int64(value) is MISFIT:
                self.fits_int64 = False
            integer_digits, scale = _digits(value)
            self.integer_digits = max(self.integer_digits, integer_digits)
            self.scale = max(self.scale, scale)
        elif isinstance(value, float):
            self.kinds.add("float64")
        elif isinstance(value, _BYTES_TYPES):
            self.kinds.add("binary")
        elif isinstance(value, _CONTAINER_TYPES):
            self.kinds.add("json")
        else:
            raise TypeError(f"Cannot export a value of type {type(value).__name__}")

    def column_type(self, name: str) -> str:
        if not self.kinds:
            return self.key_types.get(name, "json")
        if len(self.kinds) != 1:
            return "json"
        kind = next(iter(self.kinds))
        if kind != "number":
            return kind
        if self.fits_int64:
            return "int64"
        if self.scale <= _DECIMAL128_MAX_PRECISION and self.integer_digits <= _DECIMAL128_MAX_PRECISION - self.scale:
            return f"decimal({_DECIMAL128_MAX_PRECISION},{self.scale})"
        return "number"


#: The column type of a key attribute of each DynamoDB scalar type (``AttributeDefinitions``' ``AttributeType``).
KEY_COLUMN_TYPES = {"S": "string", "N": "int64", "B": "binary"}


def key_column_types(table_description: Mapping[str, Any] | None) -> dict[str, str]:
    """
    Return the column type of each key attribute of a table, partition key first, from DescribeTable's ``Table``.

    What a schema planned from a sample without items is made of (see :func:`plan_schema`): string keys are
    ``string``, binary keys ``binary`` and number keys ``int64`` (the type a sample of integer keys plans; a key
    with a fraction then goes to the extra column, never lost).

    :param table_description: DescribeTable's ``Table``; ``None`` (not known) gives no key columns
    """
    if not table_description:
        return {}
    types = {
        definition.get("AttributeName"): definition.get("AttributeType")
        for definition in table_description.get("AttributeDefinitions") or ()
    }
    ordered = sorted(table_description.get("KeySchema") or (), key=lambda key: key.get("KeyType") != "HASH")
    return {
        key["AttributeName"]: KEY_COLUMN_TYPES.get(str(types.get(key["AttributeName"])), "json")
        for key in ordered
        if isinstance(key.get("AttributeName"), str)
    }


def plan_schema(
    items: Iterable[Mapping[str, Any]],
    *,
    columns: Sequence[str] | None = None,
    extra_column: str | None = DEFAULT_EXTRA_COLUMN,
    key_types: Mapping[str, str] | None = None,
) -> ExportSchema:
    """
    Plan the schema of an export from a sample of its items (see the module docstring for the rules).

    A sample without any item (an empty table, a quiet window, a filter that matches nothing) still plans a
    defined schema: the key attributes of ``key_types`` (typed by them) and the extra column, so a
    0-row export reads back with its key columns (a CSV header, a Parquet schema).

    :param items: the sample, plain Python items (e.g. the first page of a few segments)
    :param columns: the attributes to export, in this order (the others are omitted); ``None``: every attribute
        seen in the sample, sorted by name, the others going to the extra column
    :param extra_column: the extra column's name; a name that an attribute of the sample or of ``columns`` already
        has gets underscores appended until it is free
    :param key_types: the table's key attributes and their column types (see :func:`key_column_types`): the
        columns of a sample without items, and the type of a key column the sample has no value for
    :raises TypeError: a value of a type no export can encode.
    """
    profiles: dict[str, _Profile] = {name: _Profile(key_types) for name in columns or ()}
    sampled = 0
    for item in items:
        sampled += 1
        for name, value in item.items():
            profile = profiles.get(name)
            if profile is None:
                if columns is not None:
                    continue
                profile = profiles[name] = _Profile(key_types)
            profile.observe(value)
    if not sampled and columns is None:
        profiles = {name: _Profile(key_types) for name in key_types or ()}
    names = list(columns) if columns is not None else sorted(profiles)
    if extra_column is not None:
        while extra_column in profiles:
            extra_column += "_"
    return ExportSchema(
        tuple(SchemaColumn(name, profiles[name].column_type(name)) for name in names),
        extra_column,
        "omit" if columns is not None else "extra",
    )


def split_item(
    schema: ExportSchema,
    converters: Sequence[Callable[[Any], Any]],
    item: Mapping[str, Any],
    where: str,
) -> tuple[list[Any], dict[str, Any] | None]:
    """
    Return an item's converted cells, one per schema column (``None`` for null or missing), and what overflows.

    :param converters: :func:`converter` of each column
    :param where: the part being written, named in a :class:`SchemaMismatchError`
    :raises SchemaMismatchError: something overflows and the schema has no extra column.
    """
    cells: list[Any] = []
    overflow: dict[str, Any] | None = None
    for column, convert in zip(schema.columns, converters, strict=True):
        value = item.get(column.name)
        if value is None:
            cells.append(None)
            continue
        converted = convert(value)
        if converted is MISFIT:
            if schema.extra_column is None:
                raise SchemaMismatchError(
                    f"{where}: attribute {column.name!r} holds a {type(value).__name__} value, which does not fit "
                    f"its column of type {column.type!r} and the schema has no extra column; give a schema whose "
                    f"column fits (e.g. type 'json') or one with an extra_column."
                )
            overflow = overflow or {}
            overflow[column.name] = value
            cells.append(None)
        else:
            cells.append(converted)
    if schema.other_attributes == "extra" and len(item) > len(schema.columns) - cells.count(None):
        known = schema.name_set
        others = [name for name in item if name not in known]
        if others:
            if schema.extra_column is None:
                raise SchemaMismatchError(
                    f"{where}: attribute {others[0]!r} has no column in the schema and the schema has no extra "
                    f"column; add the column, give an extra_column, or other_attributes='omit'."
                )
            overflow = overflow or {}
            for name in others:
                overflow[name] = item[name]
    return cells, overflow


def overflow_text(overflow: Mapping[str, Any], json_bytes: Callable[[Any], bytes]) -> str:
    """The extra column's JSON object text, attributes sorted by name."""
    return json_bytes(dict(sorted(overflow.items()))).decode("utf-8")


__all__ = [
    "COLUMN_TYPES",
    "DEFAULT_EXTRA_COLUMN",
    "KEY_COLUMN_TYPES",
    "MISFIT",
    "OTHER_ATTRIBUTES",
    "ExportSchema",
    "SchemaColumn",
    "converter",
    "csv_text",
    "decimal_parameters",
    "key_column_types",
    "number_text",
    "overflow_text",
    "parse_schema",
    "plan_schema",
    "split_item",
]
