"""
The Iceberg schema of a DynamoDB table's mirror, and its rows as Arrow.

A mirror's columns are an export schema's (:mod:`airflow_dynamoscan.export.schema`), typed as the Parquet export
types them: ``string`` -> ``string``, ``int64`` -> ``long``, ``decimal(p,s)`` -> ``decimal(p, s)``, ``bool`` ->
``boolean``, ``binary`` -> ``binary``, ``float64`` -> ``double``; ``number`` (exact number text) and ``json``
(maps, lists, sets and mixed attributes as JSON text) -> ``string``; the extra column (``_extra``, a JSON object of
what fits no column) -> ``string``. The table's key attributes are required columns and the Iceberg identifier
fields. The layout (key attributes, column types, what happens to new attributes) is kept in the table property
:data:`LAYOUT_PROPERTY`, so every later commit converts items the same way.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from airflow_dynamoscan.exceptions import InvalidScanArgumentError, SchemaMismatchError
from airflow_dynamoscan.export.formats import encode_json
from airflow_dynamoscan.export.schema import (
    MISFIT,
    ExportSchema,
    SchemaColumn,
    converter,
    decimal_parameters,
    overflow_text,
    parse_schema,
    plan_schema,
    split_item,
)

#: The table property holding a mirror's :class:`MirrorLayout` as JSON.
LAYOUT_PROPERTY = "dynamoscan.layout"

#: What a commit does with an attribute the table has no column for: add a column, or put it in the extra column.
NEW_ATTRIBUTE_MODES = ("evolve", "extra")

#: DynamoDB key attribute types -> the column type of a key.
_KEY_COLUMN_TYPES = {"S": "string", "B": "binary"}


@dataclass(frozen=True)
class MirrorLayout:
    """
    How a mirror's rows are made from DynamoDB items.

    :param keys: the table's key attributes (partition key first), the Iceberg identifier fields
    :param schema: the columns and their types, with an extra column for what fits none
    :param new_attributes: ``"evolve"`` (a new attribute adds a column) or ``"extra"`` (it goes to the extra column)
    """

    keys: tuple[str, ...]
    schema: ExportSchema
    new_attributes: str = "evolve"

    def to_json(self) -> str:
        """The JSON text kept in :data:`LAYOUT_PROPERTY`."""
        return json.dumps(
            {"keys": list(self.keys), "schema": self.schema.to_json(), "new_attributes": self.new_attributes},
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> MirrorLayout:
        """The inverse of :meth:`to_json`."""
        data = json.loads(text)
        return cls(tuple(data["keys"]), parse_schema(data["schema"]), data["new_attributes"])


def check_new_attributes(value: object, *, table_name: str) -> str:
    """
    Return ``value`` if it is one of :data:`NEW_ATTRIBUTE_MODES`.

    :raises InvalidScanArgumentError: naming the table and the allowed values.
    """
    if value not in NEW_ATTRIBUTE_MODES:
        raise InvalidScanArgumentError(
            f"Table {table_name!r}: new_attributes={value!r} is not allowed; use 'evolve' (a new attribute adds a "
            "column) or 'extra' (it goes to the extra column)."
        )
    return str(value)


def plan_layout(
    sample: Iterable[Mapping[str, Any]],
    key_schema: Sequence[Mapping[str, str]],
    *,
    new_attributes: str = "evolve",
    table_name: str = "",
) -> MirrorLayout:
    """
    Plan a mirror's layout from a sample of items and the table's key schema.

    Columns and types come from :func:`~airflow_dynamoscan.export.schema.plan_schema`; a string or binary key is a
    ``string`` or ``binary`` column whatever the sample shows, a number key gets the type its sampled values need
    (``int64``, else ``decimal(38,s)``, else exact ``number`` text).

    :param key_schema: ``[{"AttributeName": ..., "AttributeType": "S" | "N" | "B"}, ...]``, partition key first
        (DescribeTable's ``KeySchema`` joined with ``AttributeDefinitions``)
    :param new_attributes: see :data:`NEW_ATTRIBUTE_MODES`
    """
    check_new_attributes(new_attributes, table_name=table_name)
    items = list(sample)
    planned = plan_schema(items)
    keys = tuple(key["AttributeName"] for key in key_schema)
    by_name = {column.name: column for column in planned.columns}
    key_columns = []
    for key in key_schema:
        name, attribute_type = key["AttributeName"], key["AttributeType"]
        column_type = _KEY_COLUMN_TYPES.get(attribute_type)
        if column_type is None:
            planned_type = by_name[name].type if name in by_name else "json"
            column_type = planned_type if planned_type == "int64" or planned_type.startswith("decimal") else "number"
        key_columns.append(SchemaColumn(name, column_type))
    others = [column for column in planned.columns if column.name not in keys]
    schema = ExportSchema(tuple(key_columns + others), planned.extra_column, "extra")
    return MirrorLayout(keys, schema, new_attributes)


def iceberg_type(column_type: str) -> Any:
    """The pyiceberg type of a column type (see the module docstring)."""
    from pyiceberg.types import BinaryType, BooleanType, DecimalType, DoubleType, LongType, StringType

    simple = {
        "string": StringType(),
        "number": StringType(),
        "json": StringType(),
        "int64": LongType(),
        "bool": BooleanType(),
        "binary": BinaryType(),
        "float64": DoubleType(),
    }
    if column_type in simple:
        return simple[column_type]
    precision, scale = decimal_parameters(column_type)
    return DecimalType(precision, scale)


def iceberg_schema(layout: MirrorLayout) -> Any:
    """The ``pyiceberg.schema.Schema`` of a layout: field ids 1.., key columns required and identifier fields."""
    from pyiceberg.schema import Schema
    from pyiceberg.types import NestedField, StringType

    fields = [
        NestedField(index, column.name, iceberg_type(column.type), required=column.name in layout.keys)
        for index, column in enumerate(layout.schema.columns, start=1)
    ]
    if layout.schema.extra_column is not None:
        fields.append(NestedField(len(fields) + 1, layout.schema.extra_column, StringType(), required=False))
    identifiers = [field.field_id for field in fields if field.name in layout.keys]
    return Schema(*fields, identifier_field_ids=identifiers)


def new_columns(layout: MirrorLayout, items: Iterable[Mapping[str, Any]]) -> list[SchemaColumn]:
    """
    The columns that attributes of ``items`` without a column would get, typed from these items (for ``evolve``).

    Nothing is planned for ``new_attributes="extra"``: those attributes go to the extra column.
    """
    if layout.new_attributes != "evolve":
        return []
    known = layout.schema.name_set | {layout.schema.extra_column}
    fresh = sorted({name for item in items for name in item if name not in known})
    if not fresh:
        return []
    return list(plan_schema(items, columns=fresh).columns)


def with_columns(layout: MirrorLayout, columns: Sequence[SchemaColumn]) -> MirrorLayout:
    """The layout with ``columns`` added after the existing ones."""
    schema = replace(layout.schema, columns=layout.schema.columns + tuple(columns))
    return replace(layout, schema=schema)


def _json_text(value: Any) -> str:
    return encode_json(value).decode("utf-8")


def arrow_rows(layout: MirrorLayout, arrow_schema: Any, items: Iterable[Mapping[str, Any]], *, where: str) -> Any:
    """
    Return the items as a ``pyarrow.Table`` of ``arrow_schema`` (the table's own, from its Iceberg schema).

    :param items: plain Python items, as a scan or :func:`~airflow_dynamoscan.export.native.read_items` gives them
    :param where: the table, named in errors
    :raises SchemaMismatchError: an item lacks a key attribute, or its key does not fit the key's column.
    """
    import pyarrow as pa

    schema = layout.schema
    converters = [converter(column.type, _json_text) for column in schema.columns]
    rows = []
    for item in items:
        cells, overflow = split_item(schema, converters, item, where)
        for index, column in enumerate(schema.columns):
            if column.name in layout.keys and cells[index] is None:
                raise SchemaMismatchError(
                    f"{where}: an item's key attribute {column.name!r} is missing or does not fit its column of "
                    f"type {column.type!r} (value {item.get(column.name)!r:.80})."
                )
        if schema.extra_column is not None:
            cells.append(None if overflow is None else overflow_text(overflow, encode_json))
        rows.append(cells)
    names = schema.header
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    by_name = dict(zip(names, columns, strict=True))
    # The table's column order (a column added later comes after the extra column), by name.
    arrays = [pa.array(list(by_name[field.name]), type=field.type) for field in arrow_schema]
    return pa.Table.from_arrays(arrays, schema=arrow_schema)


def key_rows(layout: MirrorLayout, keys: Iterable[Mapping[str, Any]], *, where: str) -> list[tuple[Any, ...]]:
    """The key attributes of ``keys`` (items or key maps) as column cells, in the layout's key order."""
    columns = {column.name: column for column in layout.schema.columns}
    converters = {name: converter(columns[name].type, _json_text) for name in layout.keys}
    rows = []
    for key in keys:
        row = []
        for name in layout.keys:
            cell = converters[name](key[name]) if key.get(name) is not None else None
            if cell is None or cell is MISFIT:
                raise SchemaMismatchError(
                    f"{where}: the key attribute {name!r} value {key.get(name)!r:.80} does not fit its column of "
                    f"type {columns[name].type!r}."
                )
            row.append(cell)
        rows.append(tuple(row))
    return rows


__all__ = [
    "LAYOUT_PROPERTY",
    "NEW_ATTRIBUTE_MODES",
    "MirrorLayout",
    "arrow_rows",
    "check_new_attributes",
    "iceberg_schema",
    "iceberg_type",
    "key_rows",
    "new_columns",
    "plan_layout",
    "with_columns",
]
