"""Read every part of an export back as ONE dataset (pyarrow.dataset, DuckDB, Python's csv) and rebuild the items."""

from __future__ import annotations

import base64
import csv
import gzip
import io
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds

from tests.unit.export.readback import json_view, loads_exact


def item_view(item: dict[str, Any]) -> dict[str, Any]:
    """What an export keeps of an item in every column format: non-null attributes, as JSON would hold them."""
    return {name: json_view(value) for name, value in item.items() if value is not None}


def _cell_view(column_type: str, value: Any) -> Any:
    """A value read from a typed column, in the terms of :func:`item_view`."""
    if column_type == "json":
        return loads_exact(value)
    if column_type == "binary":
        return base64.b64encode(value).decode("ascii")
    if column_type in ("int64", "number") or column_type.startswith("decimal"):
        return Decimal(value)
    return value


def rebuild(rows: list[dict[str, Any]], schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The items behind rows of a Parquet dataset: typed columns plus what the extra column holds."""
    types = {column["name"]: column["type"] for column in schema["columns"]}
    extra = schema["extra_column"]
    items = []
    for row in rows:
        item = {
            name: _cell_view(types[name], value) for name, value in row.items() if name in types and value is not None
        }
        if extra and row.get(extra) is not None:
            overflow = loads_exact(row[extra])
            assert not set(overflow) & set(item), "an attribute is both in its column and in the extra column"
            item.update(overflow)
        items.append(item)
    return sorted(items, key=lambda item: item["pk"])


def part_files(root: Path, extension: str) -> list[Path]:
    return sorted(path for path in root.rglob(f"*{extension}") if "_checkpoints" not in path.parts)


def read_parquet_dataset(root: Path) -> pa.Table:
    """Every Parquet part under ``root`` as one dataset: fails if the parts' schemas differ."""
    files = part_files(root, ".parquet")
    assert files
    dataset = ds.dataset([str(path) for path in files], format="parquet")
    # A dataset takes the first file's schema; reading every fragment with it fails on a part that differs.
    return dataset.to_table()


def read_parquet_duckdb(root: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """Every Parquet part under ``root`` through DuckDB's ``read_parquet('**/*.parquet')``."""
    connection = duckdb.connect()
    try:
        relation = connection.sql(f"SELECT * FROM read_parquet('{root}/**/*.parquet')")
        names = list(relation.columns)
        return names, [dict(zip(names, row, strict=True)) for row in relation.fetchall()]
    finally:
        connection.close()


def read_csv_duckdb(root: Path, extension: str) -> tuple[list[str], list[dict[str, Any]]]:
    """Every CSV part under ``root`` as one DuckDB table, every column text (``all_varchar``)."""
    connection = duckdb.connect()
    try:
        relation = connection.sql(
            f"SELECT * FROM read_csv('{root}/**/*{extension}', header=true, all_varchar=true, union_by_name=false)"
        )
        names = list(relation.columns)
        return names, [dict(zip(names, row, strict=True)) for row in relation.fetchall()]
    finally:
        connection.close()


def read_csv_parts(root: Path, extension: str) -> tuple[list[list[str]], list[dict[str, str]]]:
    """Every CSV part under ``root`` with Python's ``csv`` module: each part's header, and all the rows."""
    headers, rows = [], []
    for path in part_files(root, extension):
        data = path.read_bytes()
        text = (gzip.decompress(data) if extension.endswith(".gz") else data).decode("utf-8")
        reader = csv.DictReader(io.StringIO(text, newline=""))
        rows.extend(reader)
        headers.append(list(reader.fieldnames or []))
    return headers, rows


def rebuild_csv(rows: list[dict[str, Any]], schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The items behind CSV rows (cells are text; empty and NULL cells are no value), in :func:`item_view` terms."""
    types = {column["name"]: column["type"] for column in schema["columns"]}
    extra = schema["extra_column"]
    items = []
    for row in rows:
        item: dict[str, Any] = {}
        for name, cell in row.items():
            if name == extra or cell in ("", None):
                continue
            column_type = types[name]
            if column_type == "bool":
                item[name] = {"true": True, "false": False}[cell]
            elif column_type == "binary" or column_type == "string":
                item[name] = cell
            else:
                item[name] = _cell_view(column_type, cell)
        if extra and row.get(extra) not in ("", None):
            item.update(loads_exact(row[extra]))
        items.append(item)
    return sorted(items, key=lambda item: item["pk"])
