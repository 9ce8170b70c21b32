"""
The Iceberg mirror's engine: an Apache Iceberg table kept equal to a DynamoDB table (pyiceberg and pyarrow only).

:mod:`~airflow_dynamoscan.iceberg.schema` maps items to the table's columns, :mod:`~airflow_dynamoscan.iceberg.mirror`
loads, merges and replaces in one transaction per commit, exactly once per window, and
:mod:`~airflow_dynamoscan.iceberg.catalog` opens a catalog from its properties. Install with
``pip install 'airflow-dynamoscan[iceberg]'``.
"""

from __future__ import annotations

from airflow_dynamoscan.iceberg.catalog import open_catalog, redacted
from airflow_dynamoscan.iceberg.mirror import (
    AppliedWindow,
    CommitResult,
    IcebergMirror,
    Window,
    WindowOrderError,
    applied_window,
    next_window,
)
from airflow_dynamoscan.iceberg.schema import MirrorLayout, plan_layout

__all__ = [
    "AppliedWindow",
    "CommitResult",
    "IcebergMirror",
    "MirrorLayout",
    "Window",
    "WindowOrderError",
    "applied_window",
    "next_window",
    "open_catalog",
    "plan_layout",
    "redacted",
]
