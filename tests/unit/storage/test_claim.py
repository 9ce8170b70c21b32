"""Claiming a destination: the marker is created where there is none; another export's is refused or replaced."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_dynamoscan.exceptions import DestinationBusyError, DestinationError
from airflow_dynamoscan.operators.base import is_permanent_error
from airflow_dynamoscan.storage.destinations import LocalDestination
from airflow_dynamoscan.storage.ownership import MARKER_NAME, ExportIdentity, claim_destination, read_marker

ORDERS = ExportIdentity(table_name="orders", file_format="jsonl", compression=None, total_segments=4, run="d/r/t")
CUSTOMERS = ExportIdentity(table_name="customers", file_format="csv", compression=None, total_segments=2, run="d/r/t")


def test_first_claim_creates_the_marker_and_the_same_export_claims_again(tmp_path: Path) -> None:
    destination = LocalDestination(str(tmp_path))
    claim_destination(destination, ORDERS, overwrite=False)
    claim_destination(destination, ORDERS, overwrite=False)
    assert read_marker(destination) == ORDERS
    assert destination.list() == [MARKER_NAME]


def test_another_exports_marker_is_refused_for_good_or_replaced_with_overwrite(tmp_path: Path) -> None:
    destination = LocalDestination(str(tmp_path))
    claim_destination(destination, CUSTOMERS, overwrite=False)
    with pytest.raises(DestinationError) as error:
        claim_destination(destination, ORDERS, overwrite=False)
    assert str(error.value) == (
        f"Table 'orders': destination {tmp_path} was claimed by the unfinished export of table 'customers' as csv, "
        "2 segments, run 'd/r/t' while this export of table 'orders' as jsonl, 4 segments, run 'd/r/t' started. "
        "Choose another destination or pass overwrite=True to replace it."
    )
    assert is_permanent_error(error.value)
    assert read_marker(destination) == CUSTOMERS
    claim_destination(destination, ORDERS, overwrite=True)
    assert read_marker(destination) == ORDERS


class CommittingElsewhere(LocalDestination):
    """A destination where another export's marker appears and is removed (its commit) around each claim."""

    def create_bytes(self, relative: str, data: bytes) -> bool:
        super().create_bytes(relative, CUSTOMERS.to_json())
        self.delete([relative])
        return False


def test_a_marker_that_keeps_vanishing_is_a_refusal_a_retry_may_pass(tmp_path: Path) -> None:
    destination = CommittingElsewhere(str(tmp_path))
    with pytest.raises(DestinationBusyError) as error:
        claim_destination(destination, ORDERS, overwrite=False)
    assert str(error.value) == (
        f"Table 'orders': destination {tmp_path}: _export.json was removed each time this export tried to claim it "
        "(3 times); another export is committing there. A later try sees what it committed."
    )
    assert not is_permanent_error(error.value)
    assert destination.list() == []
