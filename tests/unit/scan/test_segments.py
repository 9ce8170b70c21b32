from __future__ import annotations

import pytest

from airflow_dynamoscan.exceptions import InvalidScanArgumentError
from airflow_dynamoscan.scan.segments import (
    DEFAULT_BYTES_PER_SEGMENT,
    MAX_TOTAL_SEGMENTS,
    plan_segment_count,
    validate_max_workers,
    validate_segment,
    validate_total_segments,
)


@pytest.mark.parametrize("total", [1, 2, 4096, MAX_TOTAL_SEGMENTS])
def test_valid_total_segments_are_returned(total: int) -> None:
    assert validate_total_segments(total, "orders") == total


@pytest.mark.parametrize("total", [0, -1, MAX_TOTAL_SEGMENTS + 1, 2.0, "4", None, True])
def test_invalid_total_segments_name_table_value_and_range(total: object) -> None:
    with pytest.raises(InvalidScanArgumentError) as info:
        validate_total_segments(total, "orders")
    message = str(info.value)
    assert "'orders'" in message
    assert f"total_segments={total!r}" in message
    assert "1 to 1,000,000" in message


@pytest.mark.parametrize(("segment", "total"), [(0, 1), (3, 4), (999_999, MAX_TOTAL_SEGMENTS)])
def test_valid_segments(segment: int, total: int) -> None:
    assert validate_segment(segment, total, "orders") == (segment, total)


@pytest.mark.parametrize(("segment", "total"), [(4, 4), (-1, 4), (None, 4), ("1", 4)])
def test_segment_out_of_range_names_allowed_range(segment: object, total: int) -> None:
    with pytest.raises(
        InvalidScanArgumentError, match=r"segment=.* total_segments=4; it must be an integer from 0 to 3"
    ):
        validate_segment(segment, total, "orders")


def test_segment_with_bad_total_reports_total() -> None:
    with pytest.raises(InvalidScanArgumentError, match="total_segments=0"):
        validate_segment(0, 0, "orders")


@pytest.mark.parametrize("workers", [0, -3, 1.5, None])
def test_max_workers_below_one_is_refused(workers: object) -> None:
    with pytest.raises(InvalidScanArgumentError, match=r"'orders': max_workers=.* must be an integer >= 1"):
        validate_max_workers(workers, "orders")


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (0, 1),
        (1, 1),
        (DEFAULT_BYTES_PER_SEGMENT, 1),
        (DEFAULT_BYTES_PER_SEGMENT + 1, 2),
        (10 * DEFAULT_BYTES_PER_SEGMENT, 10),
        (10**18, MAX_TOTAL_SEGMENTS),
    ],
)
def test_plan_is_one_segment_per_2_gib_within_bounds(size: int, expected: int) -> None:
    assert plan_segment_count(size) == expected


def test_plan_honours_custom_rule_and_bounds() -> None:
    assert plan_segment_count(1000, bytes_per_segment=100) == 10
    assert plan_segment_count(1000, bytes_per_segment=100, max_segments=4) == 4
    assert plan_segment_count(0, min_segments=8) == 8


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"bytes_per_segment": 0}, "bytes_per_segment=0"),
        ({"min_segments": 0}, "min_segments=0"),
        ({"max_segments": MAX_TOTAL_SEGMENTS + 1}, "at most 1,000,000"),
        ({"min_segments": 5, "max_segments": 4}, "min_segments=5 is greater than max_segments=4"),
    ],
)
def test_plan_rejects_bad_bounds(kwargs: dict[str, int], match: str) -> None:
    with pytest.raises(InvalidScanArgumentError, match=match):
        plan_segment_count(100, **kwargs)
