"""
The chain of incremental windows: where the last committed incremental export ended, and which window comes next.

A chain is a destination root (``s3://bucket/changes/orders`` or a local directory) holding one converted export
per window, each in its own folder named by the window, ``{start}_{end}`` in UTC
(``20261206T000000Z_20261207T000000Z``), each committed by its ``manifest.json``, which records the window under
:data:`WINDOW_FIELD`. The chain's state is
those committed manifests and nothing else: the next window starts where the last committed one ended, whatever
the run's data interval says, so a retried, cleared or re-triggered run, a manual run without a logical date, a
paused DAG and catch-up neither skip a change nor export one twice.

* :func:`next_window` is the rule, a pure function: from the chain's end to the run's hint (or now), at most
  24 hours; ``None`` while less than 15 minutes have passed; an error once the chain's end has left the table's
  point-in-time recovery period (35 days at most), which only a new chain based on a full export can fix.
* :func:`committed_windows` and :func:`chain_end` read the chain at a destination and check that its windows
  follow one another without gap or overlap.
* :func:`check_window_commit` is the check made just before a window is committed: the window must start where
  the chain ends, so two runs that computed the same window never both commit it.

The module knows nothing of Airflow.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from airflow_dynamoscan.exceptions import DynamoScanError
from airflow_dynamoscan.export.manifest import MANIFEST_NAME
from airflow_dynamoscan.export.native import MAX_INCREMENTAL_WINDOW, MIN_INCREMENTAL_WINDOW, utc_datetime
from airflow_dynamoscan.storage.destinations import Destination

#: The key of a window in a chained export's results and in its ``manifest.json``.
WINDOW_FIELD = "incremental_window"

_STAMP = "%Y%m%dT%H%M%SZ"


class ChainError(DynamoScanError):
    """The chain of incremental windows cannot go on: a gap or overlap in it, or its end is no longer restorable."""


@dataclass(frozen=True)
class ExportWindow:
    """
    One window ``[start, end)`` of a chain, in UTC, to the second.

    :ivar start: the window's ``ExportFromTime``
    :ivar end: the window's ``ExportToTime``
    """

    start: datetime
    end: datetime

    @property
    def folder(self) -> str:
        """The window's folder under the chain's root: ``{start}_{end}``, which sorts in time order."""
        return f"{self.start.strftime(_STAMP)}_{self.end.strftime(_STAMP)}"

    def as_dict(self, chain_uri: str) -> dict[str, str]:
        """The window as a manifest records it: ``export_from_time``, ``export_to_time`` (ISO 8601) and ``chain``."""
        return {"export_from_time": self.start.isoformat(), "export_to_time": self.end.isoformat(), "chain": chain_uri}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> ExportWindow:
        """
        The inverse of :meth:`as_dict`.

        :raises ChainError: naming ``where``: not a window.
        """
        if not isinstance(data, dict):
            raise ChainError(f"{where} records no incremental window ({WINDOW_FIELD}: {data!r:.200}).")
        try:
            return cls(
                utc_datetime(data["export_from_time"], "export_from_time"),
                utc_datetime(data["export_to_time"], "export_to_time"),
            )
        except (KeyError, DynamoScanError) as error:
            raise ChainError(f"{where} records a malformed incremental window {data!r:.300}: {error}") from error

    def __str__(self) -> str:
        return f"{self.start.isoformat()} to {self.end.isoformat()}"


def _floor_second(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def _ceil_second(moment: datetime) -> datetime:
    return moment if moment.microsecond == 0 else moment.replace(microsecond=0) + timedelta(seconds=1)


def next_window(
    last_end: datetime,
    hint: datetime | None,
    now: datetime,
    earliest_restorable: datetime | None = None,
    *,
    table_name: str | None = None,
) -> tuple[datetime, datetime] | None:
    """
    Return the next window of a chain that ends at ``last_end``, or ``None`` while there is nothing to export yet.

    The window starts at ``last_end`` (to the second, rounded up) and ends at the earliest of ``hint`` (where the
    run should end, e.g. its data-interval end; ``None``: ``now``), ``now`` and ``last_end`` plus 24 hours,
    rounded down to the second. A chain behind by more than 24 hours (a paused DAG) catches up one 24-hour window
    per call, in order. A window shorter than 15 minutes (the run's hint is not far enough after the chain's end,
    e.g. a re-run of a day already exported) gives ``None``.

    :param last_end: where the last committed window ended (for a new chain, where it starts)
    :param hint: where the run should end, if it says
    :param now: the current time
    :param earliest_restorable: the table's ``EarliestRestorableDateTime``, if known
    :param table_name: named in the error
    :return: ``(start, end)`` in UTC, or ``None``.
    :raises ChainError: ``last_end`` is before ``earliest_restorable``: the changes since then can no longer be
        exported, and the message says how to start a new chain.
    """
    start = _ceil_second(utc_datetime(last_end, "last_end"))
    where = f"Table {table_name!r}: " if table_name else ""
    if earliest_restorable is not None:
        earliest = utc_datetime(earliest_restorable, "earliest_restorable")
        if start < earliest:
            raise ChainError(
                f"{where}the chain of incremental exports ends at {start.isoformat()}, before the table's earliest "
                f"restorable time {earliest.isoformat()}: point-in-time recovery keeps at most 35 days "
                "(RecoveryPeriodInDays), so the changes made since then can no longer be exported. Re-base the "
                "chain: run a full export (export_type='FULL_EXPORT') and start a new chain at its export time "
                "(chain_start=<that time>, in a new destination)."
            )
    limits = [utc_datetime(now, "now"), start + MAX_INCREMENTAL_WINDOW]
    if hint is not None:
        limits.append(utc_datetime(hint, "hint"))
    end = _floor_second(min(limits))
    if end - start < MIN_INCREMENTAL_WINDOW:
        return None
    return start, end


def committed_windows(chain: Destination) -> list[ExportWindow]:
    """
    Return the windows committed at the chain's root ``chain``, oldest first.

    A window counts once its folder holds ``manifest.json``; folders without one are windows still being written
    (or abandoned) and do not count.

    :raises ChainError: a manifest records no window or another folder's window, or two windows leave a gap or
        overlap (a folder was removed or added by hand).
    :raises DestinationError: the root cannot be listed or a manifest cannot be read.
    """
    windows: list[ExportWindow] = []
    for name in chain.list():
        folder, _, file_name = name.partition("/")
        if file_name != MANIFEST_NAME:
            continue
        where = chain.child_uri(name)
        try:
            manifest = json.loads(chain.read_bytes(name))
        except ValueError as error:
            raise ChainError(f"{where} is not valid JSON: {error}") from error
        window = ExportWindow.from_dict(manifest.get(WINDOW_FIELD) if isinstance(manifest, dict) else None, where)
        if window.folder != folder:
            raise ChainError(f"{where} records the window {window}, which belongs in {window.folder}/, not {folder}/.")
        windows.append(window)
    windows.sort(key=lambda window: window.start)
    for before, after in itertools.pairwise(windows):
        if after.start != before.end:
            kind = "a gap" if after.start > before.end else "an overlap"
            raise ChainError(
                f"The chain of incremental exports at {chain.uri} has {kind} between the windows {before} and "
                f"{after}; each window must start where the one before it ended. Restore the missing window's "
                "folder, or start a new chain in a new destination."
            )
    return windows


def chain_end(chain: Destination) -> datetime | None:
    """
    Return where the last committed window of the chain at ``chain`` ended, or ``None`` for a new chain.

    :raises ChainError: see :func:`committed_windows`.
    """
    windows = committed_windows(chain)
    return windows[-1].end if windows else None


def check_window_commit(chain: Destination, window: ExportWindow) -> None:
    """
    Check, just before committing ``window``, that it starts where the chain ends (or that the chain is new).

    Two runs that computed the same window export the same changes (the export's ``ClientToken`` is the window's),
    but only the first to commit extends the chain: the other is refused here.

    :raises ChainError: the window does not start where the chain ends, naming both.
    """
    windows = committed_windows(chain)
    if not windows or windows[-1].end == window.start:
        return
    if window in windows:
        raise ChainError(
            f"The window {window} of the chain at {chain.uri} is already committed (by another run); nothing to "
            "commit twice."
        )
    raise ChainError(
        f"The window {window} does not start where the chain at {chain.uri} ends ({windows[-1].end.isoformat()}): "
        "another run committed other windows meanwhile. The next run exports from the chain's end."
    )
