"""Tables on the local DynamoDB server shared by the integration tests."""

from __future__ import annotations

from typing import Any

import pytest

from devtools.sample_data import create_table, load_sample_table
from tests.conftest import unique_table_name

LARGE_TABLE_ITEMS = 5000


@pytest.fixture(scope="session")
def large_table(dynalite_client: Any) -> tuple[str, list[dict[str, Any]]]:
    """
    A table of 5,000 sample items of about 2 KB (about 10 MB: several 1 MB Scan pages) and the items written.

    Large in bytes, so that scans page, rather than in items, whose writing and decoding takes the time.
    """
    name = unique_table_name("large")
    return name, load_sample_table(dynalite_client, name, LARGE_TABLE_ITEMS, padding=1800)


@pytest.fixture(scope="session")
def empty_table(dynalite_client: Any) -> str:
    name = unique_table_name("empty")
    create_table(dynalite_client, name)
    return name


@pytest.fixture(scope="session")
def single_item_table(dynalite_client: Any) -> tuple[str, list[dict[str, Any]]]:
    name = unique_table_name("single")
    return name, load_sample_table(dynalite_client, name, 1)
