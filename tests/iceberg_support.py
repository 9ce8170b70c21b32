"""
What the Iceberg mirror's tests share: a DynamoDB table whose writes are also recorded as an incremental export's
change records, the mirror read back as items, and the comparison of the two.

A written item and its read-back are compared in one canonical form (:func:`canonical`): numbers as ``Decimal``,
sets as sorted lists, binary as base64 text inside JSON, exactly as the mirror's JSON columns hold them; scalar
columns are also checked by type where the tests name them.
"""

from __future__ import annotations

import base64
import importlib.util
import json
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from boto3.dynamodb.types import TypeSerializer

from airflow_dynamoscan.scan.decode import client_item_to_wire_item, deserialize_wire_item
from tests.native_export_fixture import BuiltExport, change_line, full_line, write_native_export


def _sql_catalog_reason() -> str | None:
    if importlib.util.find_spec("pyiceberg") is None:
        return "pyiceberg is not installed (the 'iceberg' extra; Python 3.11+ in the test group)"
    import sqlalchemy

    if int(sqlalchemy.__version__.split(".")[0]) < 2:
        return f"pyiceberg's SQL catalog needs SQLAlchemy 2; this Airflow pins {sqlalchemy.__version__}"
    return None


SQL_CATALOG_REASON = _sql_catalog_reason()

#: Skips a test that needs pyiceberg's SQL catalog (SQLite), with the reason, where it cannot run (Airflow 2.11).
requires_sql_catalog = pytest.mark.skipif(SQL_CATALOG_REASON is not None, reason=SQL_CATALOG_REASON or "")


def sql_catalog_properties(folder: Path) -> dict[str, str]:
    """The properties of a SQL catalog in a SQLite file, its warehouse on local disk, both under ``folder``."""
    (folder / "warehouse").mkdir(parents=True, exist_ok=True)
    return {"type": "sql", "uri": f"sqlite:///{folder}/catalog.db", "warehouse": f"file://{folder}/warehouse"}


class SourceTable:
    """
    A DynamoDB table whose writes are recorded as change records, for incremental exports of exactly those writes.

    :param client: a DynamoDB client (moto or the local server)
    """

    def __init__(self, client: Any, name: str, key_schema: list[dict[str, str]]) -> None:
        self.client, self.name, self.key_schema = client, name, key_schema
        self.keys = [key["AttributeName"] for key in key_schema]
        self.pending: list[dict[str, Any]] = []
        self.clock = 1_700_000_000_000_000
        self.window_end = datetime(2026, 11, 1, tzinfo=timezone.utc)
        self._serializer = TypeSerializer()
        client.create_table(
            TableName=name,
            KeySchema=[
                {"AttributeName": key["AttributeName"], "KeyType": "HASH" if index == 0 else "RANGE"}
                for index, key in enumerate(key_schema)
            ],
            AttributeDefinitions=key_schema,
            BillingMode="PAY_PER_REQUEST",
        )
        # A local server may answer CREATING first; the table takes writes once ACTIVE.
        client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 600})

    def _tick(self) -> int:
        self.clock += 1000
        return self.clock

    def key_of(self, item: Mapping[str, Any]) -> dict[str, Any]:
        return {name: item[name] for name in self.keys}

    def put(self, item: dict[str, Any]) -> None:
        self.client.put_item(TableName=self.name, Item={k: self._serializer.serialize(v) for k, v in item.items()})
        self.pending.append(change_line(self.key_of(item), self._tick(), item))

    def delete(self, key: dict[str, Any]) -> None:
        self.client.delete_item(TableName=self.name, Key={k: self._serializer.serialize(v) for k, v in key.items()})
        self.pending.append(change_line(key, self._tick(), None))

    def items(self) -> list[dict[str, Any]]:
        """Every item, by a plain Scan."""
        found, start = [], None
        while True:
            page = self.client.scan(TableName=self.name, **({"ExclusiveStartKey": start} if start else {}))
            found += [deserialize_wire_item(client_item_to_wire_item(item)) for item in page["Items"]]
            start = page.get("LastEvaluatedKey")
            if not start:
                return found

    def full_export(self, s3: Any, bucket: str) -> BuiltExport:
        """A full export of the table as it is now (and the start of the next window)."""
        self.pending = []
        return write_native_export(s3, bucket, "full", [[full_line(item) for item in self.items()]])

    def window(self, s3: Any, bucket: str, files: int = 2) -> tuple[BuiltExport, datetime, datetime]:
        """An incremental export of the writes since the last export (spread over ``files``), and its window."""
        lines, self.pending = self.pending, []
        export = write_native_export(
            s3, bucket, "changes", [lines[index::files] for index in range(files)], incremental=True
        )
        start, self.window_end = self.window_end, self.window_end + timedelta(hours=1)
        return export, start, self.window_end


def _json_canonical(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, Decimal)):
        return Decimal(value)
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (set, frozenset)):
        return sorted((_json_canonical(nested) for nested in value), key=lambda v: json.dumps(v, default=str))
    if isinstance(value, (list, tuple)):
        return [_json_canonical(nested) for nested in value]
    if isinstance(value, dict):
        return {name: _json_canonical(nested) for name, nested in value.items()}
    raise TypeError(type(value))


def canonical(item: Mapping[str, Any]) -> dict[str, Any]:
    """An item as the comparison sees it (see the module docstring); null attributes are left out."""
    return {name: _json_canonical(value) for name, value in item.items() if value is not None}


def _parse_json(text: str) -> Any:
    return json.loads(text, parse_float=Decimal, parse_int=Decimal)


def mirror_items(table: Any, *, snapshot_id: int | None = None) -> list[dict[str, Any]]:
    """
    The mirror's rows (pyiceberg scan to Arrow) as canonical items: each column's value, JSON columns and the
    extra column parsed, numbers as ``Decimal``.
    """
    from airflow_dynamoscan.iceberg.schema import LAYOUT_PROPERTY, MirrorLayout

    layout = MirrorLayout.from_json(table.properties[LAYOUT_PROPERTY])
    types = {column.name: column.type for column in layout.schema.columns}
    rows = table.scan(snapshot_id=snapshot_id).to_arrow().to_pylist()
    items = []
    for row in rows:
        item: dict[str, Any] = {}
        for name, value in row.items():
            if value is None:
                continue
            if name == layout.schema.extra_column:
                item.update(_parse_json(value))
            elif types[name] in ("json", "number"):
                item[name] = _parse_json(value)
            else:
                item[name] = value
        items.append(canonical(item))
    return items


def sort_items(items: list[dict[str, Any]], keys: list[str]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda item: tuple(str(item[name]) for name in keys))


def assert_mirror_equals(table: Any, source: SourceTable) -> list[dict[str, Any]]:
    """The mirror holds exactly the source table's items; return them (canonical, sorted by key)."""
    expected = sort_items([canonical(item) for item in source.items()], source.keys)
    found = sort_items(mirror_items(table), source.keys)
    assert found == expected
    return found
