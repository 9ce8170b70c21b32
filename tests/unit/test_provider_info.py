from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from airflow_dynamoscan import __version__
from airflow_dynamoscan.get_provider_info import get_provider_info


def test_provider_is_registered_under_its_canonical_name() -> None:
    (entry,) = [e for e in entry_points(group="apache_airflow_provider") if e.value.startswith("airflow_dynamoscan")]
    info = entry.load()()
    assert info["package-name"] == "airflow-dynamoscan"
    assert info["versions"] == [__version__]
    assert info["name"] and info["description"]


def test_every_listed_module_imports() -> None:
    info = get_provider_info()
    modules = [
        module
        for kind in ("hooks", "operators", "triggers")
        for entry in info[kind]
        for module in entry["python-modules"]
    ]
    assert "airflow_dynamoscan.hooks.dynamodb_scan" in modules
    assert "airflow_dynamoscan.operators.dynamodb_export" in modules
    assert "airflow_dynamoscan.operators.dynamodb_transform" in modules
    assert "airflow_dynamoscan.operators.dynamodb_native_export" in modules
    assert "airflow_dynamoscan.triggers.dynamodb_native_export" in modules
    for module in modules:
        assert importlib.import_module(module).__name__ == module
