"""The scan engine: segment planning, page and item iterators, decoding. It never imports Airflow."""

from __future__ import annotations

from airflow_dynamoscan.scan.decode import deserialize_attribute_value, deserialize_item, install_fast_decoding
from airflow_dynamoscan.scan.scanner import (
    HOOK_OWNED_SCAN_KEYWORDS,
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
    "ScanPage",
    "count_items",
    "deserialize_attribute_value",
    "deserialize_item",
    "install_fast_decoding",
    "parallel_scan_items",
    "parallel_scan_pages",
    "plan_segment_count",
    "scan_items",
    "scan_pages",
    "validate_max_workers",
    "validate_segment",
    "validate_total_segments",
]
