"""
Where an export's files go: a local directory or an S3 prefix.

Every file is written aside and committed whole, so a reader never sees half a part and a retry simply
overwrites: a local part goes to a temporary file in its final directory and is renamed over the final name with
``os.replace``; an S3 part goes to a local temporary file that is uploaded under the final key only once the
writing block has finished without an error. If the block raises, nothing appears under the final name.

This module takes an S3 client from the caller and never imports Airflow.
"""

from __future__ import annotations

import abc
import builtins
import contextlib
import errno
import logging
import os
import re
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import BotoCoreError, ClientError

from airflow_dynamoscan.exceptions import DestinationError, InvalidScanArgumentError, MissingBucketError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

_S3_ERRORS = (ClientError, BotoCoreError, S3UploadFailedError)
_S3_DELETE_BATCH = 1000
_BUCKET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$")
_ALLOWED_DESTINATIONS = "s3://bucket/prefix, a local directory path, or file:///absolute/path"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


def _bad_name_components(name: str) -> bool:
    return any(component in ("", ".", "..") for component in name.split("/")) or "\\" in name or "\0" in name


class Destination(abc.ABC):
    """
    The root of an export: files are named relative to it with ``/`` separators (``segment-00000-of-00004/...``).

    :ivar uri: the root, without a trailing slash: ``s3://bucket/prefix`` or an absolute local path
    """

    uri: str

    def child_uri(self, relative: str) -> str:
        """Return the URI (S3) or absolute path (local) of the file ``relative`` under the root."""
        return f"{self.uri.rstrip('/')}/{self._check_name(relative)}"

    @abc.abstractmethod
    def open_part(self, relative: str) -> contextlib.AbstractContextManager[IO[bytes]]:
        """
        Return a context manager yielding a writable binary file that becomes ``relative`` when the block ends.

        The file is committed (renamed, or uploaded) only if the block exits without an exception; an existing
        file of the same name is replaced whole. If the block raises, the final name is left as it was.

        :raises DestinationError: the file cannot be created or committed; names the destination.
        """

    def write_bytes(self, relative: str, data: bytes) -> None:
        """
        Write ``data`` as the file ``relative``, atomically, replacing any file of that name.

        :raises DestinationError: the file cannot be written; names the destination.
        """
        with self.open_part(relative) as part:
            part.write(data)

    @abc.abstractmethod
    def create_bytes(self, relative: str, data: bytes) -> bool:
        """
        Write ``data`` as the file ``relative`` unless that file exists, in one step no other writer can split.

        Of several callers that create the same name at once, exactly one gets ``True``; a reader sees either no
        file or all of ``data``, never a part of it.

        :return: whether this call created the file (``False``: it was already there, and is left as it was)
        :raises DestinationError: the file cannot be written; names the destination.
        """

    @abc.abstractmethod
    def parent(self) -> Destination | None:
        """Return the folder (local) or prefix (S3) that holds this destination, or ``None`` at the top."""

    @abc.abstractmethod
    def read_bytes(self, relative: str) -> bytes:
        """
        Return the content of the file ``relative``.

        :raises FileNotFoundError: there is no such file.
        :raises DestinationError: the file cannot be read; names the destination.
        """

    @abc.abstractmethod
    def exists(self, relative: str) -> bool:
        """Return whether the file ``relative`` exists."""

    @abc.abstractmethod
    def list(self, relative_prefix: str = "") -> builtins.list[str]:
        """
        Return the sorted relative names of the files whose name starts with ``relative_prefix``.

        Like an S3 listing the prefix is plain text: ``"segment-00001-of-00004/"`` lists that folder.

        :raises DestinationError: the destination cannot be listed.
        """

    @abc.abstractmethod
    def delete(self, relative_names: Iterable[str]) -> None:
        """
        Delete the files ``relative_names``; names that do not exist are skipped.

        :raises DestinationError: a file cannot be deleted.
        """

    @staticmethod
    def _listed(relative_prefix: str) -> str:
        """How an error names what it could not list: ``'segment-00001-of-00004/'``, or the whole destination."""
        return repr(relative_prefix) if relative_prefix else "its files"

    def _check_name(self, relative: str) -> str:
        if not isinstance(relative, str) or not relative or relative.startswith("/") or _bad_name_components(relative):
            raise InvalidScanArgumentError(
                f"Destination {self.uri!r}: {relative!r} is not a valid file name; it must be a relative name of "
                f"'/'-separated parts, without empty, '.' or '..' parts."
            )
        return relative

    def _check_prefix(self, relative_prefix: str) -> str:
        if relative_prefix:
            self._check_name(relative_prefix.removesuffix("/"))
        return relative_prefix

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"


class LocalDestination(Destination):
    """
    A directory on the local file system, created when the first file is written.

    :param path: the directory, absolute or relative to the working directory
    :raises DestinationError: ``path`` exists and is not a directory.
    """

    def __init__(self, path: str) -> None:
        self.root = os.path.abspath(path)
        self.uri = self.root
        if os.path.exists(self.root) and not os.path.isdir(self.root):
            raise DestinationError(f"Destination {self.uri!r} exists and is not a directory.")

    def _path(self, relative: str) -> str:
        return os.path.join(self.root, *self._check_name(relative).split("/"))

    def _error(self, action: str, relative: str, error: OSError, *, what: str | None = None) -> DestinationError:
        reason = error.strerror or str(error)
        what = repr(relative) if what is None else what
        return DestinationError(f"Destination {self.uri!r}: cannot {action} {what}: {reason} ({error}).")

    @contextlib.contextmanager
    def _open_part(self, relative: str, *, exclusive: bool = False) -> Iterator[IO[bytes]]:
        target = self._path(relative)
        directory, name = os.path.split(target)
        aside = os.path.join(directory, f".{name}.{uuid.uuid4().hex}.tmp")
        try:
            os.makedirs(directory, exist_ok=True)
            # os.open with 0o666 lets the umask decide the permissions, as for any file the user writes.
            part = os.fdopen(os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb")
        except OSError as error:
            raise self._error("write", relative, error) from error
        committed = False
        try:
            with part:
                yield part
                try:
                    part.flush()
                    os.fsync(part.fileno())
                except OSError as error:
                    raise self._error("write", relative, error) from error
            try:
                if exclusive:
                    _link_unless_exists(aside, target)
                else:
                    os.replace(aside, target)
            except FileExistsError:
                raise
            except OSError as error:
                raise self._error("commit", relative, error) from error
            committed = not exclusive  # a hard link leaves the hidden name behind: it goes below
        finally:
            if not committed:
                with contextlib.suppress(OSError):
                    os.unlink(aside)

    def open_part(self, relative: str) -> contextlib.AbstractContextManager[IO[bytes]]:
        """See :meth:`Destination.open_part`: written to a hidden file in the same directory, then renamed."""
        return self._open_part(relative)

    def create_bytes(self, relative: str, data: bytes) -> bool:
        """
        See :meth:`Destination.create_bytes`: written to a hidden file in the same directory, then hard-linked to
        ``relative``, which fails if that name exists.
        """
        try:
            with self._open_part(relative, exclusive=True) as part:
                part.write(data)
        except FileExistsError:
            return False
        return True

    def parent(self) -> LocalDestination | None:
        """See :meth:`Destination.parent`: the directory above, or ``None`` for ``/``."""
        above = os.path.dirname(self.root)
        return None if above == self.root else LocalDestination(above)

    def read_bytes(self, relative: str) -> bytes:
        """See :meth:`Destination.read_bytes`."""
        path = self._path(relative)
        try:
            with open(path, "rb") as source:
                return source.read()
        except FileNotFoundError:
            raise
        except OSError as error:
            raise self._error("read", relative, error) from error

    def exists(self, relative: str) -> bool:
        """See :meth:`Destination.exists`."""
        return os.path.isfile(self._path(relative))

    def list(self, relative_prefix: str = "") -> builtins.list[str]:
        """See :meth:`Destination.list`; hidden files left by an interrupted write are listed too."""
        self._check_prefix(relative_prefix)
        directory = relative_prefix.rpartition("/")[0]
        start = os.path.join(self.root, *directory.split("/")) if directory else self.root

        def refuse(error: OSError) -> None:
            if not isinstance(error, FileNotFoundError):
                raise self._error("list", relative_prefix, error, what=self._listed(relative_prefix)) from error

        names: builtins.list[str] = []
        for folder, _, files in os.walk(start, onerror=refuse):
            for file_name in files:
                relative = os.path.relpath(os.path.join(folder, file_name), self.root).replace(os.sep, "/")
                if relative.startswith(relative_prefix):
                    names.append(relative)
        return sorted(names)

    def delete(self, relative_names: Iterable[str]) -> None:
        """
        See :meth:`Destination.delete`; a folder under the root left empty goes too, as it would on S3.

        The root itself stays, so the destination remains a directory.
        """
        folders: set[str] = set()
        for relative in relative_names:
            try:
                os.unlink(self._path(relative))
            except FileNotFoundError:
                continue
            except OSError as error:
                raise self._error("delete", relative, error) from error
            folder = relative.rpartition("/")[0]
            while folder:
                folders.add(folder)
                folder = folder.rpartition("/")[0]
        # Deepest first, so that a parent is empty once its children are gone; a folder still holding files stays.
        for folder in sorted(folders, key=lambda name: name.count("/"), reverse=True):
            with contextlib.suppress(OSError):
                os.rmdir(self._path(folder))


class S3Destination(Destination):
    """
    A prefix in an S3 bucket.

    :param bucket: the bucket name
    :param prefix: the key prefix of the export, without leading or trailing slashes (``""`` for the bucket root)
    :param s3_client: a boto3 ``s3`` client
    """

    def __init__(self, bucket: str, prefix: str, s3_client: S3Client) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.client = s3_client
        self.uri = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"

    def _key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def _error(self, action: str, relative: str, error: Exception, *, what: str | None = None) -> DestinationError:
        what = repr(relative) if what is None else what
        if isinstance(error, ClientError) and error.response.get("Error", {}).get("Code") == "NoSuchBucket":
            # No retry creates the bucket: the task fails at once (see MissingBucketError).
            return MissingBucketError(
                f"Destination {self.uri!r}: cannot {action} {what}: the bucket {self.bucket!r} does not exist "
                "(NoSuchBucket); create it, or give a destination in an existing bucket "
                "(destination='s3://bucket/prefix')."
            )
        return DestinationError(f"Destination {self.uri!r}: cannot {action} {what}: {error}")

    @contextlib.contextmanager
    def _open_part(self, relative: str) -> Iterator[IO[bytes]]:
        key = self._key(self._check_name(relative))
        with tempfile.TemporaryFile() as part:
            yield part
            part.flush()
            part.seek(0)
            try:
                self.client.upload_fileobj(part, self.bucket, key)
            except _S3_ERRORS as error:
                raise self._error("upload", relative, error) from error

    def open_part(self, relative: str) -> contextlib.AbstractContextManager[IO[bytes]]:
        """See :meth:`Destination.open_part`: written to a local temporary file, uploaded when the block ends."""
        return self._open_part(relative)

    def write_bytes(self, relative: str, data: bytes) -> None:
        """See :meth:`Destination.write_bytes`: one ``PutObject``, which S3 applies whole or not at all."""
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(self._check_name(relative)), Body=data)
        except _S3_ERRORS as error:
            raise self._error("write", relative, error) from error

    def create_bytes(self, relative: str, data: bytes) -> bool:
        """
        See :meth:`Destination.create_bytes`: one conditional ``PutObject`` (``If-None-Match: *``); a store that
        does not implement conditional writes gets a look-up, then a plain ``PutObject``.
        """
        key = self._key(self._check_name(relative))
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, IfNoneMatch="*")
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if code in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409"):
                return False
            if code not in ("NotImplemented", "501"):
                raise self._error("write", relative, error) from error
        except _S3_ERRORS as error:
            raise self._error("write", relative, error) from error
        else:
            return True
        if self.exists(relative):
            return False
        self.write_bytes(relative, data)
        return True

    def parent(self) -> S3Destination | None:
        """See :meth:`Destination.parent`: the prefix above (``s3://bucket`` last), or ``None`` at the bucket root."""
        if not self.prefix:
            return None
        return S3Destination(self.bucket, self.prefix.rpartition("/")[0], self.client)

    def read_bytes(self, relative: str) -> bytes:
        """See :meth:`Destination.read_bytes`."""
        key = self._key(self._check_name(relative))
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise FileNotFoundError(f"{self.child_uri(relative)} does not exist.") from error
            raise self._error("read", relative, error) from error
        except BotoCoreError as error:
            raise self._error("read", relative, error) from error

    def exists(self, relative: str) -> bool:
        """See :meth:`Destination.exists`."""
        key = self._key(self._check_name(relative))
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise self._error("look up", relative, error) from error
        except BotoCoreError as error:
            raise self._error("look up", relative, error) from error
        return True

    def list(self, relative_prefix: str = "") -> builtins.list[str]:
        """
        See :meth:`Destination.list`. The empty objects whose key ends in ``/`` are folders (the S3 console makes
        them, e.g. ``prefix/`` for the destination itself), not files: they are not listed.
        """
        self._check_prefix(relative_prefix)
        root = f"{self.prefix}/" if self.prefix else ""
        names: builtins.list[str] = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=root + relative_prefix
            ):
                names.extend(
                    entry["Key"][len(root) :]
                    for entry in page.get("Contents", [])
                    if not (entry["Key"].endswith("/") and entry.get("Size", 0) == 0)
                )
        except _S3_ERRORS as error:
            raise self._error("list", relative_prefix, error, what=self._listed(relative_prefix)) from error
        return sorted(names)

    def delete(self, relative_names: Iterable[str]) -> None:
        """See :meth:`Destination.delete`: ``DeleteObjects``, 1,000 keys a request."""
        keys = [self._key(self._check_name(relative)) for relative in relative_names]
        for start in range(0, len(keys), _S3_DELETE_BATCH):
            batch = keys[start : start + _S3_DELETE_BATCH]
            try:
                response = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True}
                )
            except _S3_ERRORS as error:
                raise self._error("delete", batch[0], error) from error
            errors: builtins.list[Any] = list(response.get("Errors", []))
            if errors:
                failed = ", ".join(f"{error.get('Key')} ({error.get('Code')})" for error in errors[:5])
                raise DestinationError(f"Destination {self.uri!r}: cannot delete {len(errors)} file(s): {failed}")


def _link_unless_exists(source: str, target: str) -> None:
    """Give the file ``source`` the name ``target`` too, unless ``target`` exists (then ``FileExistsError``)."""
    try:
        os.link(source, target)
    except OSError as error:
        # A file system without hard links: the look-up and the rename are then two steps.
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, "File exists", target) from error
        os.replace(source, target)


def normalize_destination(text: str) -> str:
    """
    Return the one spelling of the destination ``text`` that the package compares, stores and prints.

    ``s3://bucket/prefix`` without a trailing slash (``s3://bucket`` for a bucket's root), or an absolute local
    path without a trailing slash. Applying it again returns the same text. Accepted spellings:

    - ``s3://bucket/prefix``, ``s3://bucket/prefix/``, ``s3://bucket``, ``S3://bucket/prefix`` (the scheme in any
      case); runs of slashes in the key prefix count as one (``s3://bucket/a//b/`` is ``s3://bucket/a/b``);
    - a local path, absolute or relative to the working directory (``out/exports``), with ``~`` for the home
      directory, trailing or doubled slashes, ``.`` and ``..`` parts, resolved where this function runs;
    - ``file:///absolute/path``, ``file://localhost/absolute/path`` and ``file:/absolute/path`` (percent-escapes
      decoded); a relative path is written without ``file:``.

    Surrounding whitespace is ignored.

    :param text: the destination as the user wrote it (after templating)
    :return: the normalised destination
    :raises InvalidScanArgumentError: naming the parameter ``destination`` and what is allowed: an empty value or
        not a string, an ``s3://`` URI without a valid bucket name or with a ``.``/``..`` key part, a ``file:``
        URI with a host or a relative path, or another scheme (``http://``, ``gs://``, ...).
    """

    def refuse(reason: str) -> InvalidScanArgumentError:
        return InvalidScanArgumentError(
            f"destination={text!r} is not allowed: {reason}; allowed: {_ALLOWED_DESTINATIONS}."
        )

    if not isinstance(text, str):
        raise refuse(f"it is a {type(text).__name__}, not text")
    if not text.strip():
        raise refuse("it is empty")
    stripped = text.strip()
    scheme = _SCHEME.match(stripped)
    if scheme is None:
        return _local_path(stripped)
    name = scheme.group(1).lower()
    if name == "s3" and stripped[scheme.end() : scheme.end() + 2] == "//":
        bucket, _, prefix = stripped[scheme.end() + 2 :].partition("/")
        if not _BUCKET_NAME.match(bucket):
            raise refuse(f"{bucket!r} is not a bucket name")
        prefix = "/".join(component for component in prefix.split("/") if component)
        if prefix and _bad_name_components(prefix):
            raise refuse("the key prefix has a '.' or '..' part")
        return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
    if name == "s3":
        raise refuse("an S3 destination is written s3://bucket/prefix")
    if name == "file":
        parts = urlsplit(stripped)
        if parts.netloc not in ("", "localhost"):
            raise refuse(f"file:// URIs name no host other than localhost, not {parts.netloc!r}")
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise refuse("a file: URI needs an absolute path (file:///path); write a relative path without file:")
        return _local_path(path)
    raise refuse(f"the scheme {name!r} is not supported")


def _local_path(path: str) -> str:
    # abspath also normalises: "a//b/./c/" -> "a/b/c"; POSIX keeps a leading "//", which is the same as "/" here.
    normalised = os.path.abspath(os.path.expanduser(path))
    return "/" + normalised.lstrip("/") if normalised.startswith("//") else normalised


def open_destination(uri: str, *, s3_client: S3Client | None = None) -> Destination:
    """
    Return the destination at ``uri``, normalised by :func:`normalize_destination` (its ``uri`` is that form).

    :param uri: ``s3://bucket/prefix`` (or ``s3://bucket``), a local directory path, or ``file:///absolute/path``
    :param s3_client: a boto3 ``s3`` client, needed for an ``s3://`` URI
    :raises InvalidScanArgumentError: naming the parameter ``destination``: see :func:`normalize_destination`, or
        an ``s3://`` URI without ``s3_client``.
    :raises DestinationError: a local path that exists and is not a directory.
    """
    normalised = normalize_destination(uri)
    if not normalised.startswith("s3://"):
        return LocalDestination(normalised)
    if s3_client is None:
        raise InvalidScanArgumentError(
            f"destination={uri!r} is not allowed: an s3:// destination needs an S3 client (s3_client); "
            f"allowed: {_ALLOWED_DESTINATIONS}."
        )
    bucket, _, prefix = normalised[len("s3://") :].partition("/")
    return S3Destination(bucket, prefix, s3_client)
