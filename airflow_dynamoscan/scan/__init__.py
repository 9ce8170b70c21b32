"""
The scan engine: segment planning, page and item iterators, decoding, batch writes, transforms, retries,
read-capacity pacing and progress. No Airflow.
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
from airflow_dynamoscan.scan.transform import TransformCounts, key_attribute_names, transform_items, values_equal
from airflow_dynamoscan.scan.writer import MAX_BATCH_SIZE, BatchWriter, describe_key, serialize_item

__all__ = [
    "DEFAULT_BYTES_PER_SEGMENT",
    "HOOK_OWNED_SCAN_KEYWORDS",
    "MAX_BATCH_SIZE",
    "MAX_TOTAL_SEGMENTS",
    "BatchWriter",
    "ReadCapacityPacer",
    "RetryPolicy",
    "ScanControl",
    "ScanPage",
    "ScanProgress",
    "ScanStats",
    "ScanStatsSnapshot",
    "TokenBucket",
    "TransformCounts",
    "call_with_retries",
    "count_items",
    "describe_key",
    "deserialize_attribute_value",
    "deserialize_item",
    "install_fast_decoding",
    "key_attribute_names",
    "parallel_scan_items",
    "parallel_scan_pages",
    "plan_segment_count",
    "read_capacity_budget",
    "retryable_error_code",
    "scan_items",
    "scan_pages",
    "serialize_item",
    "transform_items",
    "validate_max_workers",
    "validate_segment",
    "validate_total_segments",
    "values_equal",
]
