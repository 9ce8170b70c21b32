"""
The memory budget of a scan or export: how many pages it holds at once, and how large a Parquet row group grows.

What a whole-table export holds beyond the process's own start-up memory is, almost all of it, Scan pages: a
1 MB page as ``orjson`` parses it is about 7 MB of Python objects (:data:`PAGE_MEMORY_MB` counts its body too).
A parallel scan holds one page per worker (read, waiting to be handed over), the pages waiting for the caller, and
the page the caller is writing; a Parquet part also holds the Arrow data of its current row group. ``max_memory_mb``
(default :data:`DEFAULT_MAX_MEMORY_MB`) bounds the sum: a quarter of it (at most 64 MiB) for the row group, the rest
for pages, which caps the workers (each worker holds a page) and the pages in flight. Fewer workers read less at
once: against a distant endpoint (latency per request) throughput falls with them; on a near one the process is
bound by its CPU (decoding and encoding) well before eight workers.
"""

from __future__ import annotations

from dataclasses import dataclass

from airflow_dynamoscan.exceptions import InvalidScanArgumentError

#: Memory of one full (1 MB) Scan page held in the wire shape: its parsed objects and its body, in MB.
PAGE_MEMORY_MB = 8

#: The budget when the caller gives none: with Airflow and the provider loaded (~130 MB), an export stays
#: near 200 MB.
DEFAULT_MAX_MEMORY_MB = 64

#: The smallest budget: one worker's page, one waiting and the caller's, and a small row group.
MIN_MAX_MEMORY_MB = 32

_MAX_ROW_GROUP_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class MemoryBudget:
    """
    What a budget of ``max_memory_mb`` allows.

    :param max_memory_mb: the budget, MB
    """

    max_memory_mb: int = DEFAULT_MAX_MEMORY_MB

    @property
    def row_group_bytes(self) -> int:
        """Arrow data a Parquet part gathers before writing it as one row group."""
        return min(_MAX_ROW_GROUP_BYTES, self.max_memory_mb * 1024 * 1024 // 4)

    @property
    def pages(self) -> int:
        """Full Scan pages the budget holds at once."""
        return max(3, (self.max_memory_mb - self.row_group_bytes // (1024 * 1024)) // PAGE_MEMORY_MB)

    def max_workers(self, workers: int) -> int:
        """The workers of a parallel scan within the budget: at most ``workers``, one page each, leaving two."""
        return max(1, min(workers, self.pages - 2))

    def pages_in_flight(self, workers: int) -> int:
        """Pages that may wait for the caller beside those ``workers`` and the caller hold (at least 1)."""
        return max(1, min(workers, self.pages - workers - 1))


def memory_budget(max_memory_mb: object, table_name: str | None = None) -> MemoryBudget:
    """
    Return the budget of ``max_memory_mb`` (``None``: :data:`DEFAULT_MAX_MEMORY_MB`).

    :param table_name: the table, named in the error message
    :raises InvalidScanArgumentError: not an integer of at least :data:`MIN_MAX_MEMORY_MB`, naming the table, the
        parameter and what is allowed.
    """
    if max_memory_mb is None:
        return MemoryBudget()
    if not isinstance(max_memory_mb, int) or isinstance(max_memory_mb, bool) or max_memory_mb < MIN_MAX_MEMORY_MB:
        where = f"Table {table_name!r}: " if table_name else ""
        raise InvalidScanArgumentError(
            f"{where}max_memory_mb={max_memory_mb!r} is not allowed; it must be None (the default, "
            f"{DEFAULT_MAX_MEMORY_MB}) or an integer >= {MIN_MAX_MEMORY_MB} (megabytes for pages in flight and "
            f"Parquet row groups)."
        )
    return MemoryBudget(max_memory_mb)
