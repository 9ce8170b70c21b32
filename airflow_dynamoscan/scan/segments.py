"""Validation of segment arguments and planning of a segment count from a table's size."""

from __future__ import annotations

import math

from airflow_dynamoscan.exceptions import InvalidScanArgumentError

#: DynamoDB accepts ``TotalSegments`` from 1 to 1,000,000.
MAX_TOTAL_SEGMENTS = 1_000_000

#: AWS suggests about one parallel-scan segment per 2 GB of table data.
DEFAULT_BYTES_PER_SEGMENT = 2 * 1024**3


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_total_segments(total_segments: object, table_name: str) -> int:
    """
    Return ``total_segments`` if it is an int in ``1..1,000,000``.

    :raises InvalidScanArgumentError: naming the table, the value and the allowed range.
    """
    if not _is_int(total_segments) or not 1 <= total_segments <= MAX_TOTAL_SEGMENTS:  # type: ignore[operator]
        raise InvalidScanArgumentError(
            f"Table {table_name!r}: total_segments={total_segments!r} is not allowed; "
            f"it must be an integer from 1 to {MAX_TOTAL_SEGMENTS:,}."
        )
    return total_segments  # type: ignore[return-value]


def validate_segment(segment: object, total_segments: object, table_name: str) -> tuple[int, int]:
    """
    Return ``(segment, total_segments)`` if both are valid and ``0 <= segment < total_segments``.

    :raises InvalidScanArgumentError: naming the table, the values and the allowed range.
    """
    total = validate_total_segments(total_segments, table_name)
    if not _is_int(segment) or not 0 <= segment < total:  # type: ignore[operator]
        raise InvalidScanArgumentError(
            f"Table {table_name!r}: segment={segment!r} is not allowed with total_segments={total}; "
            f"it must be an integer from 0 to {total - 1}."
        )
    return segment, total  # type: ignore[return-value]


def validate_max_workers(max_workers: object, table_name: str) -> int:
    """
    Return ``max_workers`` if it is an int of at least 1.

    :raises InvalidScanArgumentError: naming the table and the value.
    """
    if not _is_int(max_workers) or max_workers < 1:  # type: ignore[operator]
        raise InvalidScanArgumentError(
            f"Table {table_name!r}: max_workers={max_workers!r} is not allowed; it must be an integer >= 1."
        )
    return max_workers  # type: ignore[return-value]


def plan_segment_count(
    table_size_bytes: int,
    *,
    bytes_per_segment: int = DEFAULT_BYTES_PER_SEGMENT,
    min_segments: int = 1,
    max_segments: int = MAX_TOTAL_SEGMENTS,
) -> int:
    """
    Return how many segments to scan a table of ``table_size_bytes`` with.

    The rule: ``ceil(table_size_bytes / bytes_per_segment)``, raised to ``min_segments`` and lowered to
    ``max_segments`` (which itself may not exceed 1,000,000). With the default of 2 GiB per segment a 10 GiB
    table gets 5 segments and an empty table gets ``min_segments``.

    :raises InvalidScanArgumentError: if a bound is not a positive integer or ``min_segments > max_segments``.
    """
    for name, value in (
        ("bytes_per_segment", bytes_per_segment),
        ("min_segments", min_segments),
        ("max_segments", max_segments),
    ):
        if not _is_int(value) or value < 1:
            raise InvalidScanArgumentError(f"{name}={value!r} is not allowed; it must be an integer >= 1.")
    if max_segments > MAX_TOTAL_SEGMENTS:
        raise InvalidScanArgumentError(
            f"max_segments={max_segments!r} is not allowed; DynamoDB accepts at most {MAX_TOTAL_SEGMENTS:,}."
        )
    if min_segments > max_segments:
        raise InvalidScanArgumentError(f"min_segments={min_segments} is greater than max_segments={max_segments}.")
    if table_size_bytes < 0:
        raise InvalidScanArgumentError(f"table_size_bytes={table_size_bytes!r} must be >= 0.")
    wanted = math.ceil(table_size_bytes / bytes_per_segment)
    return max(min_segments, min(max_segments, wanted))
