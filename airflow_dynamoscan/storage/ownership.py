"""
Which export a destination belongs to, so that one export never writes over another's files unasked.

An export owns its destination. While it runs, ``_export.json`` at the destination root names it: its
:class:`ExportIdentity` (table, format, compression, segment count and the run that writes it). Every task of the
export writes the same marker once its scan has answered, before its first part, so the mapped tasks of one
export, a retried task and a re-run of the same Airflow run recognise each other's parts. Before it scans, a task
refuses a destination that is inside the folder of a complete export (that export would then hold files its manifest
does not list), or that holds

- a complete export (``manifest.json``), unless ``overwrite=True``;
- the unfinished export of another table, format, compression, segment count or run, or export files that no
  marker names, unless ``overwrite=True``;
- files that are no export's (anything outside the layout below), whatever ``overwrite`` says: an export never
  deletes files it did not write.

The layout of an export: ``manifest.json``, ``_export.json``, ``_checkpoints/...``, ``segment-NNNNN-of-NNNNN/...``
and the hidden files (``.manifest.json.<hex>.tmp``) of a write in progress, or left by an interrupted one, at the
root.

The tasks of one export start at the same instant on several workers, so every step holds under that race: the
check ignores the hidden files of a marker being written (it means nothing until its rename), and the claim
(:func:`claim_destination`) creates the marker in one step only the first writer wins; a task of the same export
finds its own marker and goes on, a task of another export is refused. A refusal that a later try may not meet
(:class:`~airflow_dynamoscan.exceptions.DestinationBusyError`) is left to the task's retries.

When the manifest commits an export, :func:`remove_stale_files` deletes every file of the layout that the manifest
does not list (the parts of an overwritten export, e.g. ``segment-*-of-00005/`` under a new 3-segment export, and
leftover checkpoints) and then the marker: a committed export holds its parts and ``manifest.json``, nothing else.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from airflow_dynamoscan.exceptions import DestinationBusyError, DestinationError
from airflow_dynamoscan.storage.destinations import Destination

log = logging.getLogger(__name__)

#: The marker of the export in progress at the destination root; removed when the manifest commits the export.
MARKER_NAME = "_export.json"

MARKER_FORMAT_VERSION = 1

_MANIFEST_NAME = "manifest.json"  # as export.manifest.MANIFEST_NAME, which imports this module
_LAYOUT = re.compile(
    r"^(?:segment-\d{5,}-of-\d{5,}/.+|_checkpoints/.+|manifest\.json|_export\.json"
    r"|\.(?:manifest\.json|_export\.json)\.[0-9a-f]{32}\.tmp)$"
)
_WRITE_IN_PROGRESS = re.compile(r"^\.(?:manifest\.json|_export\.json)\.[0-9a-f]{32}\.tmp$")
_LISTED_NAMES = 3
_CLAIM_ATTEMPTS = 3


@dataclass(frozen=True)
class ExportIdentity:
    """
    What makes the files at a destination one export.

    :param table_name: the exported table
    :param file_format: the parts' format
    :param compression: the parts' compression
    :param total_segments: the segment folders' count (``segment-*-of-NNNNN``; 1 for a whole-table export)
    :param run: the Airflow run that writes it, ``"dag_id/run_id/task_id"`` (the same for every mapped task of
        the export and every try), or ``None`` outside Airflow
    """

    table_name: str
    file_format: str
    compression: str | None
    total_segments: int
    run: str | None = None

    def describe(self) -> str:
        """``table 'orders' as jsonl (gzip), 4 segments, run 'dag/run/task'``."""
        compression = f" ({self.compression})" if self.compression else ""
        run = f", run {self.run!r}" if self.run else ""
        return (
            f"table {self.table_name!r} as {self.file_format}{compression}, "
            f"{self.total_segments} segment{'s' if self.total_segments != 1 else ''}{run}"
        )

    def to_json(self) -> bytes:
        # No timestamp: every task of the export writes the same bytes.
        return json.dumps({"format_version": MARKER_FORMAT_VERSION, **asdict(self)}, sort_keys=True).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> ExportIdentity:
        document = json.loads(data)
        if not isinstance(document, dict) or document.get("format_version") != MARKER_FORMAT_VERSION:
            raise ValueError("not an export marker of a known format_version")
        return cls(
            table_name=str(document["table_name"]),
            file_format=str(document["file_format"]),
            compression=document["compression"],
            total_segments=int(document["total_segments"]),
            run=document["run"],
        )


def in_export_layout(name: str) -> bool:
    """Whether ``name`` (relative to the destination) is a file an export of this package writes."""
    return bool(_LAYOUT.match(name))


def _some(names: list[str]) -> str:
    shown = ", ".join(repr(name) for name in names[:_LISTED_NAMES])
    return shown + (f" and {len(names) - _LISTED_NAMES} more" if len(names) > _LISTED_NAMES else "")


def read_marker(destination: Destination) -> ExportIdentity | None:
    """
    Return the identity that the marker at ``destination`` names, or ``None`` if there is none.

    :raises DestinationError: the marker cannot be read, or is not one this package wrote.
    """
    try:
        data = destination.read_bytes(MARKER_NAME)
    except FileNotFoundError:
        return None
    try:
        return ExportIdentity.from_json(data)
    except (ValueError, KeyError, TypeError) as error:
        raise DestinationError(
            f"Destination {destination.uri!r}: {MARKER_NAME} is not an export marker ({error}); remove it or "
            f"choose another destination."
        ) from error


def write_marker(destination: Destination, identity: ExportIdentity) -> None:
    """Mark ``destination`` as holding the export ``identity`` (atomically; the same bytes from every task)."""
    destination.write_bytes(MARKER_NAME, identity.to_json())


def claim_destination(destination: Destination, identity: ExportIdentity, *, overwrite: bool) -> None:
    """
    Mark ``destination`` as the export ``identity``'s, unless another export marked it first.

    The marker is created only where there is none, in one step (:meth:`Destination.create_bytes`): of tasks that
    claim at the same instant one creates it, and each of the others reads it back; the tasks of the same export
    all go on.

    :param overwrite: the marker of another export is replaced (as :func:`check_destination_owner` allowed)
    :raises DestinationError: another export holds the marker (no retry helps: that export owns the destination)
    :raises DestinationBusyError: the marker kept vanishing between the write and the read (a commit under way);
        a later try may succeed.
    """
    data = identity.to_json()
    for _attempt in range(_CLAIM_ATTEMPTS):
        if destination.create_bytes(MARKER_NAME, data):
            return
        owner = read_marker(destination)
        if owner == identity:
            return
        if owner is None:
            continue  # the marker went between the two calls (its export was committed): look again
        if overwrite:
            write_marker(destination, identity)
            return
        raise DestinationError(
            f"Table {identity.table_name!r}: destination {destination.uri} was claimed by the unfinished export of "
            f"{owner.describe()} while this export of {identity.describe()} started. Choose another destination or "
            f"pass overwrite=True to replace it."
        )
    raise DestinationBusyError(
        f"Table {identity.table_name!r}: destination {destination.uri}: {MARKER_NAME} was removed each time this "
        f"export tried to claim it ({_CLAIM_ATTEMPTS} times); another export is committing there. A later try "
        f"sees what it committed."
    )


def check_not_inside_an_export(destination: Destination, identity: ExportIdentity) -> None:
    """
    Refuse a destination inside the folder of a complete export (a ``manifest.json`` of this package above it).

    A folder that cannot be read (no permission above the prefix, on S3) is passed over.

    :raises DestinationError: naming the destination, the complete export above it and where to go instead.
    """
    above = destination.parent()
    while above is not None:
        try:
            manifest = above.read_bytes(_MANIFEST_NAME)
        except FileNotFoundError:
            manifest = None
        except DestinationError as error:
            log.debug("Cannot read %s under %s, going on: %s", _MANIFEST_NAME, above.uri, error)
            manifest = None
        committed = None if manifest is None else _identity_of_manifest(manifest)
        if committed is not None:
            raise DestinationError(
                f"Table {identity.table_name!r}: destination {destination.uri} is inside the complete export of "
                f"{committed.describe()} at {above.uri} ({_MANIFEST_NAME} is there): its folder would hold files "
                f"its manifest does not list. Choose a destination outside {above.uri}, e.g. beside it."
            )
        above = above.parent()


def check_destination_owner(destination: Destination, identity: ExportIdentity, *, overwrite: bool) -> None:
    """
    Refuse ``destination`` unless it is empty, holds only files of the export ``identity``, or may be overwritten.

    Call it before the scan: a refusal changes nothing.

    :param destination: the export's destination
    :param identity: the export about to write there
    :param overwrite: another export's files may be replaced (they are deleted when this export is committed)
    :raises DestinationError: naming the destination, what it holds, and ``overwrite=True`` where that would
        help: a destination inside a complete export, files that are no export's (both whatever ``overwrite``
        says); without ``overwrite``, a complete export, another export's files, or export files that no marker
        names. The hidden file of a marker another task is writing is not counted.
    """
    # A marker being written shows only as its hidden file until its rename: it names nothing yet.
    names = [name for name in destination.list() if not _WRITE_IN_PROGRESS.match(name)]
    check_not_inside_an_export(destination, identity)
    if not names:
        return
    where = f"Table {identity.table_name!r}: destination {destination.uri}"
    foreign = [name for name in names if not in_export_layout(name)]
    if foreign:
        raise DestinationError(
            f"{where} holds {len(foreign)} file(s) that are not part of an export ({_some(foreign)}); an export "
            f"writes only into an empty destination or over another export, and never deletes files it did not "
            f"write: choose another destination or remove them."
        )
    if overwrite:
        return
    owner = read_marker(destination)
    if _MANIFEST_NAME in names:
        raise DestinationError(
            f"{where} already holds a complete export{_committed(destination)} ({_MANIFEST_NAME} is there); "
            f"choose another destination or pass overwrite=True to replace it."
        )
    if owner is None:
        raise DestinationError(
            f"{where} holds the files of an unfinished export that names no owner ({_some(names)}); choose another "
            f"destination or pass overwrite=True to replace them."
        )
    if owner != identity:
        parts = [name for name in names if name.startswith("segment-")]
        raise DestinationError(
            f"{where} holds the unfinished export of {owner.describe()} ({len(parts)} part file(s)); this export is "
            f"of {identity.describe()}. Choose another destination or pass overwrite=True to replace it."
        )


def remove_stale_files(destination: Destination, keep: Iterable[str]) -> list[str]:
    """
    Delete the files of the export layout under ``destination`` that are not in ``keep``, except the marker.

    Called by the manifest step once every segment has reported: what goes are the parts of an export this one
    overwrote, checkpoints and files of interrupted writes. Files outside the layout are left, with a warning.

    :param keep: the relative names to keep (the committed parts)
    :return: the deleted names
    :raises DestinationError: the destination cannot be listed or a file cannot be deleted.
    """
    kept = set(keep) | {MARKER_NAME, _MANIFEST_NAME}
    names = destination.list()
    stale = [name for name in names if name not in kept and in_export_layout(name)]
    foreign = [name for name in names if not in_export_layout(name)]
    if foreign:
        log.warning(
            "Leaving %s file(s) under %s that are not part of an export: %s",
            len(foreign),
            destination.uri,
            _some(foreign),
        )
    if stale:
        log.info("Deleting %s file(s) under %s that the export does not hold", len(stale), destination.uri)
        destination.delete(stale)
    return stale


def _identity_of_manifest(data: bytes) -> ExportIdentity | None:
    """The export a ``manifest.json`` commits, or ``None`` if it is not a manifest of this package."""
    try:
        manifest = json.loads(data)
        return ExportIdentity(
            table_name=str(manifest["table_name"]),
            file_format=str(manifest["file_format"]),
            compression=manifest.get("compression"),
            total_segments=int(manifest["total_segments"]),
        )
    except (ValueError, KeyError, TypeError):
        return None


def _committed(destination: Destination) -> str:
    """`` of table 'orders' as jsonl, 4 segments``, from the manifest, or nothing if it cannot be read."""
    try:
        committed = _identity_of_manifest(destination.read_bytes(_MANIFEST_NAME))
    except OSError:
        return ""
    return "" if committed is None else f" of {committed.describe()}"


def remove_marker(destination: Destination) -> None:
    """Delete the marker once the manifest is written: the committed export holds its parts and manifest only."""
    destination.delete([MARKER_NAME])
