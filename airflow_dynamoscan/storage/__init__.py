"""
Where bytes go: destinations (local, S3; normalised once where they enter), export ownership of a prefix, and
checkpoints, the one resume mechanism of exports and transforms. No Airflow.
"""

from __future__ import annotations

from airflow_dynamoscan.storage.destinations import (
    Destination,
    LocalDestination,
    S3Destination,
    normalize_destination,
    open_destination,
)

__all__ = [
    "Destination",
    "LocalDestination",
    "S3Destination",
    "normalize_destination",
    "open_destination",
]
