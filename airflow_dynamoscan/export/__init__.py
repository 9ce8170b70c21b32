"""The export engine: encoders, the part writer, schemas and the manifest. It never imports Airflow."""

from __future__ import annotations

from airflow_dynamoscan.export.exporter import export_pages, segment_prefix
from airflow_dynamoscan.export.formats import (
    DEFAULT_PARQUET_COMPRESSION,
    FILE_FORMATS,
    PARQUET_COMPRESSIONS,
    TEXT_COMPRESSIONS,
    PartEncoder,
    arrow_schema,
    encode_json,
    needs_attribute_values,
    open_encoder,
    part_extension,
    validate_columns,
    validate_format,
)
from airflow_dynamoscan.export.manifest import (
    MANIFEST_FORMAT_VERSION,
    MANIFEST_NAME,
    build_manifest,
    read_manifest,
    write_manifest,
)
from airflow_dynamoscan.export.schema import ExportSchema, SchemaColumn, parse_schema, plan_schema

__all__ = [
    "DEFAULT_PARQUET_COMPRESSION",
    "FILE_FORMATS",
    "MANIFEST_FORMAT_VERSION",
    "MANIFEST_NAME",
    "PARQUET_COMPRESSIONS",
    "TEXT_COMPRESSIONS",
    "ExportSchema",
    "PartEncoder",
    "SchemaColumn",
    "arrow_schema",
    "build_manifest",
    "encode_json",
    "export_pages",
    "needs_attribute_values",
    "open_encoder",
    "parse_schema",
    "part_extension",
    "plan_schema",
    "read_manifest",
    "segment_prefix",
    "validate_columns",
    "validate_format",
    "write_manifest",
]
