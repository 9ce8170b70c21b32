"""Fixtures of the DAG tests: an Airflow metadata database for ``dag.test()``."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def airflow_db() -> str:
    """
    Create Airflow's metadata database once per test session, for ``dag.test()``; return its URL.

    ``tests/conftest.py`` points ``AIRFLOW_HOME`` at a temporary directory before Airflow is imported, so the
    database is a throwaway SQLite file there. ``initdb`` is what ``airflow db migrate`` runs, in-process: on an
    empty database it creates the tables from the ORM and stamps the newest migration (about 4 s), on an existing
    one it migrates. Any database but SQLite is refused, so that no test writes into a real Airflow installation.
    """
    from airflow import settings
    from airflow.utils.db import initdb

    url = str(settings.SQL_ALCHEMY_CONN)
    if not url.startswith("sqlite:"):
        pytest.fail(
            "dag.test() tests need a throwaway SQLite metadata database, but Airflow is configured with "
            f"{url.split(':')[0]!r}; unset AIRFLOW__DATABASE__SQL_ALCHEMY_CONN: the tests use a temporary AIRFLOW_HOME."
        )
    initdb()
    return url
