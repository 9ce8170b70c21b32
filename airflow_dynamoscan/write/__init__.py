"""The write side: batch writes (UnprocessedItems retried), conditional writes, the transform engine. No Airflow."""

from __future__ import annotations

from airflow_dynamoscan.write.batch import MAX_BATCH_SIZE, BatchWriter, describe_key, serialize_item
from airflow_dynamoscan.write.conditional import CONFLICT_POLICIES, ConditionalWriter
from airflow_dynamoscan.write.transform import TransformCounts, key_attribute_names, transform_items
from airflow_dynamoscan.write.values import values_equal

__all__ = [
    "MAX_BATCH_SIZE",
    "BatchWriter",
    "CONFLICT_POLICIES",
    "ConditionalWriter",
    "TransformCounts",
    "describe_key",
    "key_attribute_names",
    "serialize_item",
    "transform_items",
    "values_equal",
]
