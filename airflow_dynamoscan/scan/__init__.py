"""
The read side: segment planning, page and item iterators, decoding, retries, read-capacity pacing and progress.
No Airflow.
"""

from __future__ import annotations

from airflow_dynamoscan.scan.decode import deserialize_attribute_value, deserialize_item, install_fast_decoding
from airflow_dynamoscan.scan.pacing import ReadCapacityPacer, TokenBucket, read_capacity_budget
from airflow_dynamoscan.scan.progress import ScanProgress, ScanStats, ScanStatsSnapshot
from airflow_dynamoscan.scan.retry import RetryPolicy, call_with_retries, retryable_error_code
from airflow_dynamoscan.scan.scanner import (
    HOOK_OWNED_SCAN_KEYWORDS,
    ScanControl,
    ScanPage,
    count_items,
    parallel_scan_items,
    parallel_scan_pages,
    scan_items,
    scan_pages,
)
from airflow_dynamoscan.scan.segments import (
    DEFAULT_BYTES_PER_SEGMENT,
    MAX_TOTAL_SEGMENTS,
    plan_segment_count,
    validate_max_workers,
    validate_segment,
    validate_total_segments,
)

__all__ = [
    "DEFAULT_BYTES_PER_SEGMENT",
    "HOOK_OWNED_SCAN_KEYWORDS",
    "MAX_TOTAL_SEGMENTS",
    "ReadCapacityPacer",
    "RetryPolicy",
    "ScanControl",
    "ScanPage",
    "ScanProgress",
    "ScanStats",
    "ScanStatsSnapshot",
    "TokenBucket",
    "call_with_retries",
    "count_items",
    "deserialize_attribute_value",
    "deserialize_item",
    "install_fast_decoding",
    "parallel_scan_items",
    "parallel_scan_pages",
    "plan_segment_count",
    "read_capacity_budget",
    "retryable_error_code",
    "scan_items",
    "scan_pages",
    "validate_max_workers",
    "validate_segment",
    "validate_total_segments",
]
