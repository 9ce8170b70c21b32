"""
Checkpoints of an export or a transform in progress, so that a retried task continues where the failed one stopped.

After each part is committed, the exporter writes ``_checkpoints/{prefix}.json`` at the destination: the parts
committed so far and, for every scan segment, the ``LastEvaluatedKey`` of the last page those parts hold whole (or
that the segment is done) and how many items of the next page they hold (a part may end within a page). A retry
that finds a checkpoint of the same export (same table, format, compression, schema, scan keywords and segment
count) keeps those parts, deletes anything else under the prefix, and resumes each segment from its key, leaving
out the items of its first page that the parts hold: the export still holds every item exactly once, and the
retry re-reads at most the pages of the part that was being written when the task failed. The checkpoint is
deleted when the export ends.

A transform with a checkpoint destination records, after each page whose writes DynamoDB has confirmed, the same
per-segment keys and its counts; its retry resumes after the last recorded page of each segment.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from airflow_dynamoscan.scan.decode import client_item_to_wire_item, wire_item_to_client_item
from airflow_dynamoscan.storage.destinations import Destination

log = logging.getLogger(__name__)

#: The folder of the checkpoints, at the destination root.
CHECKPOINT_FOLDER = "_checkpoints"

CHECKPOINT_FORMAT_VERSION = 1


def checkpoint_path(prefix: str) -> str:
    """The checkpoint of the parts under ``prefix``: ``_checkpoints/segment-00003-of-00016.json``."""
    return f"{CHECKPOINT_FOLDER}/{prefix.strip('/').replace('/', '__')}.json"


def export_fingerprint(**identity: Any) -> str:
    """A digest of what makes two export attempts the same export (table, format, scan keywords, ...)."""
    text = json.dumps(identity, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class SegmentProgress:
    """
    How far the committed parts reach in one scan segment.

    :param last_evaluated_key: where to resume (client shape), ``None`` with ``done`` or before the first page
    :param done: the segment's last page is in a committed part
    :param skip_items: items of the page after ``last_evaluated_key`` that are already in committed parts (a part
        that ended within a page); a retry reads that page again and leaves them out
    """

    last_evaluated_key: dict[str, Any] | None = None
    done: bool = False
    skip_items: int = 0


@dataclass
class ScanCheckpoint:
    """
    The state of one export prefix (its committed parts) or transform, and per scan segment how far it reaches.

    :param prefix: the parts' folder under the destination
    :param fingerprint: :func:`export_fingerprint` of the export; a checkpoint of another export is ignored
    :param scan_segments: the scan's segment numbers and their progress
    :param total_segments: the scan's segment count (``None`` for a serial scan)
    :param parts: the committed parts, as :func:`~airflow_dynamoscan.export.exporter.export_pages` reports them
    :param counts: counters carried over from earlier attempts (a transform's items read and written)
    """

    prefix: str
    fingerprint: str
    total_segments: int | None
    scan_segments: dict[int, SegmentProgress] = field(default_factory=dict)
    parts: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def start_keys(self, segments: list[int]) -> dict[int, dict[str, Any] | None]:
        """The segments of ``segments`` still to read, each with the key to resume from (``None``: its start)."""
        start: dict[int, dict[str, Any] | None] = {}
        for segment in segments:
            progress = self.scan_segments.get(segment)
            if progress is None:
                start[segment] = None
            elif not progress.done:
                start[segment] = progress.last_evaluated_key
        return start

    def record_page(self, segment: int | None, last_evaluated_key: dict[str, Any] | None) -> None:
        """Note that a page of ``segment`` ending at ``last_evaluated_key`` has been written."""
        self.scan_segments[segment or 0] = SegmentProgress(last_evaluated_key, done=last_evaluated_key is None)

    def to_json(self) -> bytes:
        document = {
            "format_version": CHECKPOINT_FORMAT_VERSION,
            "prefix": self.prefix,
            "fingerprint": self.fingerprint,
            "total_segments": self.total_segments,
            "parts": self.parts,
            "counts": self.counts,
            "segments": {
                str(segment): {
                    "last_evaluated_key": None
                    if progress.last_evaluated_key is None
                    else client_item_to_wire_item(progress.last_evaluated_key),
                    "done": progress.done,
                    "skip_items": progress.skip_items,
                }
                for segment, progress in sorted(self.scan_segments.items())
            },
            "updated_at": datetime.now(timezone.utc).isoformat(),
        }
        return json.dumps(document, indent=1).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> ScanCheckpoint:
        document = json.loads(data)
        if document.get("format_version") != CHECKPOINT_FORMAT_VERSION:
            raise ValueError(f"unknown checkpoint format_version {document.get('format_version')!r}")
        return cls(
            prefix=document["prefix"],
            fingerprint=document["fingerprint"],
            total_segments=document["total_segments"],
            parts=list(document["parts"]),
            counts={name: int(value) for name, value in document.get("counts", {}).items()},
            scan_segments={
                int(segment): SegmentProgress(
                    None
                    if state["last_evaluated_key"] is None
                    else wire_item_to_client_item(state["last_evaluated_key"]),
                    bool(state["done"]),
                    int(state.get("skip_items", 0)),
                )
                for segment, state in document["segments"].items()
            },
        )


def read_checkpoint(destination: Destination, prefix: str, fingerprint: str) -> ScanCheckpoint | None:
    """
    Return the checkpoint of the export ``fingerprint`` under ``prefix``, or ``None``.

    A checkpoint of another export (another table, format or filter at the same destination), or one that cannot
    be read, is ignored with a warning: the export then starts afresh, which is always correct.
    """
    path = checkpoint_path(prefix)
    if not destination.exists(path):
        return None
    try:
        checkpoint = ScanCheckpoint.from_json(destination.read_bytes(path))
    except (ValueError, KeyError, TypeError) as error:
        log.warning("Ignoring the unreadable checkpoint %s: %s", destination.child_uri(path), error)
        return None
    if checkpoint.fingerprint != fingerprint or checkpoint.prefix != prefix.strip("/"):
        log.warning("Ignoring the checkpoint %s: it belongs to another export", destination.child_uri(path))
        return None
    return checkpoint


def write_checkpoint(destination: Destination, checkpoint: ScanCheckpoint) -> None:
    """Write ``checkpoint`` atomically (a reader sees the previous one or this one, never half of it)."""
    destination.write_bytes(checkpoint_path(checkpoint.prefix), checkpoint.to_json())


def delete_checkpoint(destination: Destination, prefix: str) -> None:
    """Delete the checkpoint of ``prefix``, if any."""
    destination.delete([checkpoint_path(prefix)])


@dataclass
class ResumePlan:
    """
    Where a scan that writes starts: afresh, or from the checkpoint an earlier attempt left.

    :param checkpoint: the checkpoint to record progress in (the one found, or a new empty one)
    :param total_segments: the segment count of the scan (the checkpoint's on a resumed whole-table scan)
    :param start_keys: the segments still to read, each from its key (``None``: its start); ``None`` reads all
    """

    checkpoint: ScanCheckpoint
    total_segments: int | None
    start_keys: dict[int, dict[str, Any] | None] | None = None

    @property
    def resumed(self) -> bool:
        """Whether an earlier attempt's checkpoint was found."""
        return self.start_keys is not None


def plan_resume(
    destination: Destination,
    prefix: str,
    fingerprint: str,
    *,
    segment: int | None,
    total_segments: int | None,
    plan_total_segments: Callable[[], int],
    resume: bool = True,
) -> ResumePlan:
    """
    Plan a scan that records its progress under ``prefix``: the one resume mechanism of exports and transforms.

    :param segment: the one segment the task reads, or ``None`` for a whole-table scan
    :param total_segments: the segment count of the task's scan as given
    :param plan_total_segments: plans the segment count of a whole-table scan that does not resume (called only
        then: a resumed scan keeps the count its checkpoint was written with, so its keys stay valid)
    :param resume: look for a checkpoint of the same ``fingerprint``; ``False`` starts afresh
    """
    checkpoint = read_checkpoint(destination, prefix, fingerprint) if resume else None
    if segment is None:
        scan_total = checkpoint.total_segments if checkpoint else plan_total_segments()
        scan_segments = list(range(scan_total or 1))
    else:
        scan_total, scan_segments = total_segments, [segment]
    if checkpoint is None:
        return ResumePlan(ScanCheckpoint(prefix=prefix, fingerprint=fingerprint, total_segments=scan_total), scan_total)
    return ResumePlan(checkpoint, scan_total, checkpoint.start_keys(scan_segments))
