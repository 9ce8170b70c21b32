"""
Open a pyiceberg catalog from its properties, and show them without secrets.

Every catalog pyiceberg knows is opened by its own properties (``pyiceberg.catalog.load_catalog``): ``{"type":
"sql", "uri": "sqlite:////path/catalog.db", "warehouse": "file:///path/warehouse"}`` (or a PostgreSQL URI),
``{"type": "glue", "glue.region": ..., "warehouse": "s3://bucket/prefix"}``, ``{"type": "rest", "uri": ...,
"credential": ..., "warehouse": ...}`` (S3 Tables, Polaris, Nessie...), with ``s3.*`` properties for an S3
warehouse.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from airflow_dynamoscan.exceptions import InvalidScanArgumentError

#: Property names whose values are never shown: passwords, secrets, tokens, credentials, keys.
_SECRET_NAME = re.compile(r"secret|password|token|credential|session|key|signer", re.IGNORECASE)
_URI_PASSWORD = re.compile(r"(://[^:/@]+:)[^@]*@")


def redacted(properties: Mapping[str, Any]) -> dict[str, Any]:
    """The properties with every secret replaced by ``***`` (also a password inside a URI), safe to log."""
    shown: dict[str, Any] = {}
    for name, value in properties.items():
        if _SECRET_NAME.search(name) and not name.endswith("region"):
            shown[name] = "***"
        elif isinstance(value, str):
            shown[name] = _URI_PASSWORD.sub(r"\1***@", value)
        else:
            shown[name] = value
    return shown


def open_catalog(name: str, properties: Mapping[str, Any]) -> Any:
    """
    Return the pyiceberg catalog ``name`` of ``properties``.

    :raises InvalidScanArgumentError: pyiceberg refuses the properties (the message shows them without secrets).
    :raises ImportError: pyiceberg, or what the catalog type needs, is not installed, naming the extra to install.
    """
    try:
        from pyiceberg.catalog import load_catalog
    except ImportError as error:
        raise ImportError("The Iceberg mirror needs pyiceberg: pip install 'airflow-dynamoscan[iceberg]'") from error
    text = {key: str(value) for key, value in properties.items() if value is not None}
    try:
        return load_catalog(name, **text)
    except ImportError as error:
        raise ImportError(
            f"The Iceberg catalog {name!r} ({redacted(text)}) needs a module that is not installed: {error}. The SQL "
            "catalog needs SQLAlchemy 2 (pyiceberg[sql-sqlite] or [sql-postgres]; not with Airflow 2.11, which "
            "pins SQLAlchemy < 2: use the Glue or REST catalog there), Glue needs boto3."
        ) from error
    except (ValueError, KeyError, TypeError) as error:
        raise InvalidScanArgumentError(
            f"The Iceberg catalog {name!r} cannot be opened with the properties {redacted(text)}: {error}"
        ) from error
