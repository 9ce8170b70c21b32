"""
Scan or native export: what each costs, and which one ``method="auto"`` picks.

A **scan** reads the live table: every 1 MB page costs 128 read capacity units (eventually consistent; 256
strongly consistent). On an on-demand table that is billed per read request unit; on a provisioned table it uses
capacity the application may need, for as long as the scan runs. A **native export**
(``ExportTableToPointInTime``) reads DynamoDB's point-in-time backups, so it consumes no read capacity at all, is a
consistent snapshot, and is billed per GB of table (needs point-in-time recovery, itself billed per GB-month).

Per GiB of table, with the default list prices (us-east-1; check the current ones for your region):

* scan, on-demand, eventually consistent: 1024 pages x 128 = 131,072 read request units x $0.125 per million
  = about $0.016;
* native full export: about $0.10.

So a scan is cheaper in money, but a native export costs the live table nothing and scales to any size without
read-capacity planning. ``auto`` therefore picks the native export when point-in-time recovery is enabled and the
table is at least ``native_threshold_bytes`` (1 GiB by default), where a scan starts to compete with the
application for capacity for minutes to hours; otherwise it scans. Pass your own prices to :func:`estimate_costs`
to compare for your table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airflow_dynamoscan.exceptions import InvalidScanArgumentError

#: The methods of reading a whole table.
EXPORT_METHODS = ("scan", "native", "auto")

#: ``auto`` uses a native export for tables at least this large (when point-in-time recovery is enabled).
DEFAULT_NATIVE_THRESHOLD_BYTES = 1024**3

#: Read capacity units of one 1 MB Scan page, eventually consistent.
RCU_PER_MB_EVENTUALLY_CONSISTENT = 128

#: Default on-demand price of one million read request units, US dollars (us-east-1 list price).
DEFAULT_PRICE_PER_MILLION_READ_REQUEST_UNITS = 0.125

#: Default price of a native full export per GB of table, US dollars (us-east-1 list price).
DEFAULT_NATIVE_EXPORT_PRICE_PER_GB = 0.10


def estimate_costs(
    table_size_bytes: int,
    *,
    consistent_read: bool = False,
    price_per_million_read_request_units: float = DEFAULT_PRICE_PER_MILLION_READ_REQUEST_UNITS,
    native_export_price_per_gb: float = DEFAULT_NATIVE_EXPORT_PRICE_PER_GB,
) -> dict[str, float]:
    """
    Estimate what reading the whole table once costs by each method.

    :param table_size_bytes: the table's size, e.g. DescribeTable's ``TableSizeBytes``
    :param consistent_read: the scan reads strongly consistently (twice the units)
    :return: ``{"scan_read_units", "scan_usd", "native_usd"}``; ``scan_usd`` is the on-demand price (a
        provisioned table pays in capacity instead).
    """
    megabytes = table_size_bytes / 1024**2
    units = megabytes * RCU_PER_MB_EVENTUALLY_CONSISTENT * (2 if consistent_read else 1)
    return {
        "scan_read_units": units,
        "scan_usd": units / 1_000_000 * price_per_million_read_request_units,
        "native_usd": table_size_bytes / 1024**3 * native_export_price_per_gb,
    }


@dataclass(frozen=True)
class MethodChoice:
    """
    The method chosen to read a table, and why.

    :ivar method: ``"scan"`` or ``"native"``
    :ivar reason: one sentence for the task log
    """

    method: str
    reason: str


def validate_method(method: Any, *, table_name: str | None = None) -> str:
    """
    Return ``method`` if it is one of :data:`EXPORT_METHODS`.

    :raises InvalidScanArgumentError: naming the table and the allowed values.
    """
    if method not in EXPORT_METHODS:
        where = f"Table {table_name!r}: " if table_name else ""
        raise InvalidScanArgumentError(
            f"{where}method={method!r} is not allowed; allowed: {', '.join(EXPORT_METHODS)}."
        )
    return str(method)


def needs_recovery_status(
    method: str, table_size_bytes: int | None, native_threshold_bytes: int = DEFAULT_NATIVE_THRESHOLD_BYTES
) -> bool:
    """
    Return whether :func:`choose_export_method` needs the table's point-in-time recovery status
    (DescribeContinuousBackups, a permission of its own): for ``"native"``, and for ``"auto"`` with a table of at
    least ``native_threshold_bytes``.
    """
    return method == "native" or (method == "auto" and (table_size_bytes or 0) >= native_threshold_bytes)


def choose_export_method(
    method: str,
    *,
    table_name: str,
    table_size_bytes: int | None,
    point_in_time_recovery: bool | None,
    native_threshold_bytes: int = DEFAULT_NATIVE_THRESHOLD_BYTES,
) -> MethodChoice:
    """
    Decide between a scan and a native export.

    ``"scan"`` and ``"native"`` are taken as given. ``"auto"`` picks ``"native"`` when the table holds at least
    ``native_threshold_bytes`` and point-in-time recovery is enabled, else ``"scan"`` (see the module docstring);
    below the threshold the recovery status is not needed (see :func:`needs_recovery_status`).

    :param table_size_bytes: DescribeTable's ``TableSizeBytes`` (``None``: unknown, counts as 0)
    :param point_in_time_recovery: whether the table's point-in-time recovery is ``ENABLED``; ``None``: not asked
    :raises InvalidScanArgumentError: an unknown method, or ``"native"`` without point-in-time recovery (naming the
        table and the setting to change).
    """
    validate_method(method, table_name=table_name)
    size = table_size_bytes or 0
    if method == "native" and not point_in_time_recovery:
        raise InvalidScanArgumentError(
            f"Table {table_name!r}: method='native' needs point-in-time recovery, which is not enabled on the "
            "table; enable it (UpdateContinuousBackups with PointInTimeRecoveryEnabled=true, or the console's "
            "Backups tab) or use method='scan'."
        )
    if method != "auto":
        return MethodChoice(method, f"method={method!r} was asked for")
    if size < native_threshold_bytes:
        return MethodChoice(
            "scan",
            f"the table's {size} bytes (DescribeTable's TableSizeBytes, which DynamoDB refreshes about every six "
            f"hours) are below the native-export threshold of {native_threshold_bytes}",
        )
    if not point_in_time_recovery:
        return MethodChoice("scan", "point-in-time recovery is not enabled, so a native export is not possible")
    return MethodChoice(
        "native",
        f"point-in-time recovery is enabled and the table's {size} bytes reach the threshold of "
        f"{native_threshold_bytes}: a native export uses none of the table's read capacity",
    )
