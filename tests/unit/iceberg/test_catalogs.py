"""Catalogs: the Glue catalog (moto) holds a mirror as the SQL catalog does; connections become properties, secrets
never show; the next window follows the last applied one."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from moto import mock_aws

from tests.conftest import aws_connection
from tests.iceberg_support import SQL_CATALOG_REASON

pytestmark = pytest.mark.skipif(
    SQL_CATALOG_REASON is not None and "not installed" in SQL_CATALOG_REASON, reason=SQL_CATALOG_REASON or ""
)

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)


def test_a_mirror_in_the_glue_catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_dynamoscan.export.native import FoldedChanges
    from airflow_dynamoscan.hooks.iceberg_catalog import IcebergCatalogHook
    from airflow_dynamoscan.iceberg import IcebergMirror, Window, plan_layout

    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", aws_connection())
    extra = {"type": "glue", "aws_conn_id": "aws_default", "warehouse": f"file://{tmp_path}"}
    monkeypatch.setenv("AIRFLOW_CONN_GLUE", json.dumps({"conn_type": "iceberg", "extra": extra}))
    with mock_aws():
        import boto3

        catalog = IcebergCatalogHook("glue").get_catalog()
        items = [{"pk": f"k{number}", "n": Decimal(number), "b": bytes([number])} for number in range(5)]
        mirror = IcebergMirror(catalog, "lake.orders", source_table="orders")
        mirror.create(plan_layout(items, [{"AttributeName": "pk", "AttributeType": "S"}]))
        staged = mirror.stage_items(items, load_id="load", name="all")
        mirror.load(Window(end=T0), paths=[staged["path"]])
        changes = FoldedChanges(upserts=[{"pk": "k1", "n": Decimal(10)}], deletes=[{"pk": "k2"}])
        result = mirror.merge(changes, Window(end=T0 + timedelta(hours=1), start=T0))
        rows = sorted(catalog.load_table("lake.orders").scan().to_arrow().to_pylist(), key=lambda row: row["pk"])
        glue = boto3.client("glue", region_name="us-east-1").get_table(DatabaseName="lake", Name="orders")["Table"]
    assert [(row["pk"], row["n"], row["b"]) for row in rows] == [
        ("k0", 0, b"\x00"),
        ("k1", 10, None),
        ("k3", 3, b"\x03"),
        ("k4", 4, b"\x04"),
    ]
    assert (result.catalog, result.rows_added, result.rows_deleted) == ("glue", 1, 1)
    assert glue["Parameters"]["table_type"] == "ICEBERG"
    assert glue["Parameters"]["metadata_location"].startswith(f"file://{tmp_path}/lake.db/orders/metadata/")


def test_connections_become_catalog_properties_and_secrets_never_show(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_dynamoscan.hooks.iceberg_catalog import IcebergCatalogHook
    from airflow_dynamoscan.iceberg import redacted

    rest = {"conn_type": "iceberg", "host": "https://catalog.example/api", "login": "client", "password": "s3cr3t"}
    rest["extra"] = json.dumps({"type": "rest", "warehouse": "lake", "name": "polaris"})  # type: ignore[assignment]
    monkeypatch.setenv("AIRFLOW_CONN_REST", json.dumps(rest))
    name, properties = IcebergCatalogHook("rest").catalog_properties()
    assert (name, properties) == (
        "polaris",
        {"type": "rest", "warehouse": "lake", "uri": "https://catalog.example/api", "credential": "client:s3cr3t"},
    )
    assert redacted(properties)["credential"] == "***"
    sql = {"type": "sql", "uri": "postgresql+psycopg2://mirror:pa55word@db:5432/catalog", "s3.secret-access-key": "x"}
    shown = redacted(sql)
    assert shown == {
        "type": "sql",
        "uri": "postgresql+psycopg2://mirror:***@db:5432/catalog",
        "s3.secret-access-key": "***",
    }
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", aws_connection(login="AKIDEXAMPLE", password="wJalrXUtnFEMI"))
    monkeypatch.setenv(
        "AIRFLOW_CONN_GLUE",
        json.dumps({"conn_type": "iceberg", "extra": {"type": "glue", "aws_conn_id": "aws_default"}}),
    )
    _, glue = IcebergCatalogHook("glue").catalog_properties()
    assert (glue["glue.access-key-id"], glue["s3.secret-access-key"], glue["glue.region"]) == (
        "AKIDEXAMPLE",
        "wJalrXUtnFEMI",
        "us-east-1",
    )
    assert "wJalrXUtnFEMI" not in json.dumps(redacted(glue)) and "AKIDEXAMPLE" not in json.dumps(redacted(glue))


def test_a_bad_catalog_is_named_without_its_secrets() -> None:
    from airflow_dynamoscan.exceptions import InvalidScanArgumentError
    from airflow_dynamoscan.iceberg import open_catalog

    with pytest.raises(InvalidScanArgumentError, match="'lake'") as info:
        open_catalog("lake", {"type": "nessie-like", "token": "t0ken"})
    assert "t0ken" not in str(info.value)


def test_the_next_window_follows_the_last_applied_one() -> None:
    from airflow_dynamoscan.iceberg import AppliedWindow, WindowOrderError, next_window

    applied = AppliedWindow("merge", T0, T0 - timedelta(hours=1), None, 1)
    assert next_window(applied, T0 + timedelta(hours=3)) == (T0, T0 + timedelta(hours=3))
    assert next_window(applied, T0 + timedelta(days=3)) == (T0, T0 + timedelta(hours=24))
    assert next_window(applied, T0 + timedelta(hours=3), max_length=timedelta(hours=1)) == (T0, T0 + timedelta(hours=1))
    assert next_window(applied, T0 + timedelta(minutes=14)) is None
    with pytest.raises(WindowOrderError, match="no load yet"):
        next_window(None, T0)
