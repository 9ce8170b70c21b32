from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from moto import mock_aws

from airflow_dynamoscan.hooks.dynamodb_scan import DynamoDBScanHook
from airflow_dynamoscan.scan.scanner import SCAN_GC_THRESHOLD, relaxed_collector
from devtools.sample_data import load_sample_table
from tests.conftest import make_client


@pytest.fixture
def restore_thresholds() -> Iterator[tuple[int, int, int]]:
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield gc.get_threshold()
    gc.set_threshold(*before)


def test_nested_scans_share_the_setting_and_the_last_restores(restore_thresholds: tuple[int, int, int]) -> None:
    with relaxed_collector():
        assert gc.get_threshold() == (SCAN_GC_THRESHOLD, 10, 10)
        with relaxed_collector():
            assert gc.get_threshold() == (SCAN_GC_THRESHOLD, 10, 10)
        assert gc.get_threshold() == (SCAN_GC_THRESHOLD, 10, 10)
    assert gc.get_threshold() == restore_thresholds


def test_a_higher_threshold_of_the_user_is_kept(restore_thresholds: tuple[int, int, int]) -> None:
    gc.set_threshold(SCAN_GC_THRESHOLD * 2, 5, 5)
    with relaxed_collector():
        assert gc.get_threshold() == (SCAN_GC_THRESHOLD * 2, 5, 5)
    assert gc.get_threshold() == (SCAN_GC_THRESHOLD * 2, 5, 5)


def test_scans_restore_the_thresholds_when_done_or_closed_early(
    restore_thresholds: tuple[int, int, int], moto_connection_env: str
) -> None:
    with mock_aws():
        load_sample_table(make_client(), "orders", 60, padding=10)
        hook = DynamoDBScanHook()
        items = hook.scan("orders", Limit=10)
        next(items)
        assert gc.get_threshold()[0] == SCAN_GC_THRESHOLD
        items.close()  # type: ignore[attr-defined]
        assert gc.get_threshold() == restore_thresholds
        assert len(list(hook.parallel_scan("orders", total_segments=3, max_workers=3))) == 60
        assert gc.get_threshold() == restore_thresholds
