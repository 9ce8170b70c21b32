"""Equality of plain-Python DynamoDB values as DynamoDB stores them. Nothing here imports Airflow."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

__all__ = ["values_equal"]


def values_equal(left: Any, right: Any) -> bool:
    """
    Return whether two plain-Python DynamoDB values would be stored as the same value.

    Unlike ``==``, a bool never equals a number (``True == 1`` would hide a changed type) and a float never equals
    anything (it cannot be stored); ``int`` and ``Decimal`` compare by value, lists and tuples alike.
    """
    if isinstance(left, bool) or isinstance(right, bool) or left is None or right is None:
        return left is right
    if isinstance(left, (int, Decimal)) and isinstance(right, (int, Decimal)):
        return left == right
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return left.keys() == right.keys() and all(values_equal(value, right[name]) for name, value in left.items())
    if isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
        return len(left) == len(right) and all(map(values_equal, left, right))
    if isinstance(left, (set, frozenset)) and isinstance(right, (set, frozenset)):
        return left == right
    if isinstance(left, (bytes, bytearray)) and isinstance(right, (bytes, bytearray)):
        return left == right
    return type(left) is type(right) and bool(left == right)
