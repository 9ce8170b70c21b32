"""
Encoders that turn pages of items into the bytes of one export part, without losing a value.

The formats (:data:`FILE_FORMATS`):

``jsonl``
    One JSON object per line, fed plain Python items. Numbers (``decimal.Decimal``, ``int``) are written as
    their exact text, any precision (``12345678901234567890.123456789`` appears verbatim, integers have no
    ``.0``), so ``json.loads(line, parse_float=Decimal, parse_int=Decimal)`` reads them back exactly; sets become
    sorted arrays, ``bytes`` base64 text, maps and lists nest as JSON objects and arrays.
``dynamodb_json``
    One ``{"Item": {...}}`` per line holding AttributeValues, DynamoDB's own S3-export layout: fed items in
    botocore's client shape (scan with ``deserialize=False``); ``N`` values stay strings and ``B``/``BS`` values
    become base64 text. See :func:`needs_attribute_values`.
``csv``
    A header, then one row per item. The columns are the ``columns`` argument if given (other attributes are
    left out), else the sorted union of the top-level attributes of the items in that part. Strings are written
    as they are, numbers as exact text, booleans as ``true``/``false``, ``None`` and missing attributes as an
    empty cell, ``bytes`` as base64, maps, lists and sets as JSON text (sets sorted); rows end with CRLF
    (RFC 4180). CSV keeps every value's text exactly but not its type: an empty string and ``None`` both give an
    empty cell. A part without items is header-only with ``columns``, an empty file without. With gzip and
    without ``columns`` the header and the rows are two gzip members of one file, read as one stream by gzip
    readers (Python's ``gzip``, ``zcat``, Hadoop, Spark, pandas).
``parquet``
    Written with ``pyarrow`` (``pip install 'airflow-dynamoscan[parquet]'``), one column per top-level
    attribute (sorted, or the ``columns`` argument), the schema inferred from the whole part. Column types:

    * strings -> ``string``; booleans -> ``bool``; ``bytes`` -> ``binary``; floats -> ``float64``;
    * numbers (``Decimal``/``int``), never rounded:

      1. every value an integer within the int64 range -> ``int64``;
      2. otherwise, if ``p = max integer digits + max fraction digits`` is at most 38 ->
         ``decimal128(p, max fraction digits)`` (a value reads back numerically equal, at the column's scale);
      3. otherwise -> ``string`` holding each number's exact text;

    * maps, lists and sets -> ``string`` holding JSON text, encoded as in ``jsonl``;
    * an attribute whose values have different types in the part (say a string in one item and a number in
      another) -> ``string`` holding each value as JSON text (``"abc"`` with its quotes, ``12.5``, ``true``);
    * an attribute that is ``None`` or missing in every item -> ``null``; otherwise missing values are null.

Compression: ``jsonl``, ``dynamodb_json`` and ``csv`` accept ``None`` (or ``"none"``) and ``"gzip"``
(:data:`TEXT_COMPRESSIONS`); ``parquet`` compresses inside the file and accepts ``"snappy"`` (the default,
also when ``None`` is given), ``"zstd"``, ``"gzip"`` and ``"none"`` (:data:`PARQUET_COMPRESSIONS`).

Memory and ``bytes_written``: ``jsonl``, ``dynamodb_json`` and ``csv`` with ``columns`` stream each page to the
file. ``csv`` without ``columns`` and ``parquet`` need the whole part before they can write its header or schema,
so they spool the part to an anonymous temporary file (never more than one page in memory; ``parquet`` also
holds at most one row group of Arrow data) and write the file on :meth:`PartEncoder.close`. Until then their
``bytes_written`` is the size of the spool: for ``csv`` the compressed rows, almost exactly the final size; for
``parquet`` the pickled items, about the size DynamoDB reports for them, so Parquet parts come out smaller than
the ``max_file_bytes`` they were rotated at.
"""

from __future__ import annotations

import abc
import base64
import csv
import gzip
import io
import logging
import math
import pickle
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from itertools import islice
from typing import IO, Any

import orjson

from airflow_dynamoscan.exceptions import InvalidScanArgumentError

log = logging.getLogger(__name__)

#: The export file formats.
FILE_FORMATS = ("jsonl", "dynamodb_json", "csv", "parquet")

#: Compressions of the line and CSV formats; the file gets a ``.gz`` suffix with gzip. ``"none"`` means ``None``.
TEXT_COMPRESSIONS = (None, "gzip")

#: Compressions inside a Parquet file; ``None`` means :data:`DEFAULT_PARQUET_COMPRESSION`.
PARQUET_COMPRESSIONS = ("snappy", "zstd", "gzip", "none")

#: What a Parquet file is compressed with when the caller gives ``compression=None``.
DEFAULT_PARQUET_COMPRESSION = "snappy"

#: gzip level of ``.gz`` parts: zlib's default, which compresses almost as well as 9 at several times the speed.
GZIP_LEVEL = 6

_EXTENSIONS = {"jsonl": ".jsonl", "dynamodb_json": ".json", "csv": ".csv", "parquet": ".parquet"}
_COLUMN_FORMATS = ("csv", "parquet")
_ATTRIBUTE_VALUE_TAGS = frozenset({"S", "N", "B", "SS", "NS", "BS", "BOOL", "NULL", "L", "M"})
_BYTES_TYPES = (bytes, bytearray, memoryview)
_CONTAINER_TYPES = (dict, list, tuple, set, frozenset)
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_DECIMAL128_MAX_PRECISION = 38
# Arrow data gathered before it is written as one Parquet row group.
_ROW_GROUP_BYTES = 64 * 1024 * 1024
_CSV_ROWS_PER_WRITE = 2000


def validate_format(file_format: object, compression: object, *, table_name: str | None) -> str | None:
    """
    Check a file format and its compression; return the compression to use.

    :param file_format: one of :data:`FILE_FORMATS`
    :param compression: for the text formats ``None``, ``"none"`` or ``"gzip"``; for ``parquet`` ``None`` (which
        means ``"snappy"``), ``"snappy"``, ``"zstd"``, ``"gzip"`` or ``"none"``
    :param table_name: the table being exported, named in the error message (``None`` if unknown)
    :return: ``None`` or ``"gzip"`` for the text formats; one of :data:`PARQUET_COMPRESSIONS` for ``parquet``.
    :raises InvalidScanArgumentError: naming the table, the parameter, the bad value and the allowed values.
    """
    where = f"Table {table_name!r}: " if table_name else ""
    if file_format not in FILE_FORMATS:
        raise InvalidScanArgumentError(
            f"{where}file_format={file_format!r} is not allowed; allowed: {', '.join(FILE_FORMATS)}."
        )
    if file_format == "parquet":
        if compression is None:
            return DEFAULT_PARQUET_COMPRESSION
        if compression in PARQUET_COMPRESSIONS:
            return str(compression)
        allowed = "'snappy' (the default, also for None), 'zstd', 'gzip', 'none'"
    else:
        if compression is None or compression == "none":
            return None
        if compression == "gzip":
            return "gzip"
        allowed = "None (or 'none'), 'gzip'"
    raise InvalidScanArgumentError(
        f"{where}compression={compression!r} is not allowed with file_format={file_format!r}; allowed: {allowed}."
    )


def needs_attribute_values(file_format: str) -> bool:
    """
    Return whether ``file_format`` is fed AttributeValue items (botocore's client shape, ``deserialize=False``).

    Only ``dynamodb_json`` is; every other format is fed plain Python items.

    :raises InvalidScanArgumentError: ``file_format`` is not one of :data:`FILE_FORMATS`.
    """
    validate_format(file_format, None, table_name=None)
    return file_format == "dynamodb_json"


def part_extension(file_format: str, compression: str | None) -> str:
    """
    Return the file name ending of a part: ``.jsonl``, ``.jsonl.gz``, ``.json(.gz)``, ``.csv(.gz)`` or ``.parquet``.

    :raises InvalidScanArgumentError: an unknown format or a compression the format does not allow.
    """
    effective = validate_format(file_format, compression, table_name=None)
    extension = _EXTENSIONS[file_format]
    if file_format != "parquet" and effective == "gzip":
        extension += ".gz"
    return extension


def number_text(value: Decimal | int | float) -> str:
    """
    Return the exact text of a number: ``str`` of a ``Decimal`` or ``int``, the shortest round-trip text of a float.

    The text is always a valid JSON number.

    :raises ValueError: for NaN or an infinity, which DynamoDB cannot store.
    """
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"Cannot export the number {value}: DynamoDB numbers are finite.")
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"Cannot export the number {value}: DynamoDB numbers are finite.")
        return repr(value)
    return str(value)


def _sorted_set(values: set[Any] | frozenset[Any]) -> list[Any]:
    try:
        return sorted(values)
    except TypeError:
        # A set of mixed types (never one DynamoDB returns): order by encoded text so the output stays stable.
        return sorted(values, key=encode_json)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(number_text(value))
    if isinstance(value, _BYTES_TYPES):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, (set, frozenset)):
        return _sorted_set(value)
    raise TypeError(f"Cannot export a value of type {type(value).__name__}: {value!r:.80}")


def _big_ints_as_text(value: Any) -> Any:
    # orjson only writes integers within 64 bits; wider ones become exact JSON number fragments.
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if _INT64_MIN <= value <= _INT64_MAX else orjson.Fragment(str(value))
    if isinstance(value, dict):
        return {name: _big_ints_as_text(nested) for name, nested in value.items()}
    if isinstance(value, (list, tuple)):
        return [_big_ints_as_text(nested) for nested in value]
    if isinstance(value, (set, frozenset)):
        return [_big_ints_as_text(nested) for nested in _sorted_set(value)]
    return value


def encode_json(value: Any, *, newline: bool = False) -> bytes:
    """
    Return the lossless JSON encoding of a plain Python value, as used by ``jsonl`` and the JSON text columns.

    ``Decimal`` and ``int`` -> exact number text, ``set`` -> sorted array, ``bytes`` -> base64 string.

    :param value: a plain Python value (``str``, ``Decimal``, ``int``, ``bool``, ``None``, ``bytes``, ``set``,
        ``list``, ``dict``) or an AttributeValue dict
    :param newline: end the text with ``\\n``
    :raises TypeError: a value of another type, naming it.
    :raises ValueError: a NaN or infinite ``Decimal``. (Python floats, which a scan never returns, are written
        by orjson, which turns a NaN float into ``null``.)
    """
    option = orjson.OPT_APPEND_NEWLINE if newline else 0
    try:
        return orjson.dumps(value, default=_json_default, option=option)
    except orjson.JSONEncodeError as error:
        # orjson wraps what the default hook raised in a vaguer message; raise the hook's own error.
        cause = error.__cause__
        if isinstance(cause, (TypeError, ValueError)):
            raise cause from None
        if cause is None and "64-bit" in str(error):
            return orjson.dumps(_big_ints_as_text(value), default=_json_default, option=option)
        raise


def _json_text(value: Any) -> str:
    return encode_json(value).decode("utf-8")


def csv_cell(value: Any) -> str:
    """Return the CSV text of a value: see the module docstring."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (Decimal, int, float)):
        return number_text(value)
    if isinstance(value, _BYTES_TYPES):
        return base64.b64encode(value).decode("ascii")
    return _json_text(value)


def _csv_text(rows: Sequence[Sequence[str]]) -> bytes:
    text = io.StringIO()
    csv.writer(text).writerows(rows)
    return text.getvalue().encode("utf-8")


class _CountingWriter:
    """A binary writer that passes bytes to ``fileobj`` and counts them; never closes ``fileobj``."""

    closed = False

    def __init__(self, fileobj: IO[bytes]) -> None:
        self._fileobj = fileobj
        self.count = 0

    def write(self, data: Any) -> int:
        self._fileobj.write(data)
        size = memoryview(data).nbytes
        self.count += size
        return size

    def flush(self) -> None:
        self._fileobj.flush()


class _Output:
    """Bytes to a file, through gzip if asked, counting what reaches the file."""

    def __init__(self, fileobj: IO[bytes] | _CountingWriter, *, gzip_compressed: bool) -> None:
        self._counter = fileobj if isinstance(fileobj, _CountingWriter) else _CountingWriter(fileobj)
        # mtime=0 and no file name in the header: the same items always give the same bytes.
        self._gzip = (
            gzip.GzipFile(fileobj=self._counter, mode="wb", compresslevel=GZIP_LEVEL, mtime=0)
            if gzip_compressed
            else None
        )

    @property
    def bytes_written(self) -> int:
        return self._counter.count

    def write(self, data: bytes) -> None:
        if self._gzip is not None:
            self._gzip.write(data)
        else:
            self._counter.write(data)

    def end_page(self) -> None:
        # A sync flush pushes out what zlib holds back, so bytes_written follows the data page by page; the
        # compression window is kept, so the cost is a few bytes per page.
        if self._gzip is not None:
            self._gzip.flush()

    def finish(self) -> None:
        if self._gzip is not None:
            self._gzip.close()
        self._counter.flush()


class PartEncoder(abc.ABC):
    """
    Writes pages of items into one part file.

    :ivar items: items written so far
    :ivar bytes_written: bytes written to the file so far, compressed (for spooled formats, the spool's size
        until :meth:`close`; see the module docstring); exact after :meth:`close`
    """

    items: int

    def __init__(self) -> None:
        self.items = 0
        self._closed = False

    @property
    @abc.abstractmethod
    def bytes_written(self) -> int:
        """Bytes written so far; exact after :meth:`close`."""

    @abc.abstractmethod
    def write_items(self, items: Sequence[Mapping[str, Any]]) -> None:
        """
        Encode one page of items.

        :raises TypeError: a value of a type the format cannot encode.
        :raises ValueError: a NaN or infinite number.
        """

    def close(self) -> None:
        """Finish the file (gzip trailer, CSV header and rows, Parquet footer); the file object stays open."""
        if not self._closed:
            self._closed = True
            self._finish()

    @abc.abstractmethod
    def _finish(self) -> None: ...


class _LineEncoder(PartEncoder):
    """``jsonl`` and ``dynamodb_json``: one JSON document per item and line."""

    def __init__(self, fileobj: IO[bytes], *, gzip_compressed: bool, attribute_values: bool) -> None:
        super().__init__()
        self._output = _Output(fileobj, gzip_compressed=gzip_compressed)
        self._attribute_values = attribute_values

    @property
    def bytes_written(self) -> int:
        return self._output.bytes_written

    def write_items(self, items: Sequence[Mapping[str, Any]]) -> None:
        if not items:
            return
        if self._attribute_values:
            _check_attribute_value_item(items[0])
            data = b"".join(encode_json({"Item": item}, newline=True) for item in items)
        else:
            data = b"".join(encode_json(item, newline=True) for item in items)
        self._output.write(data)
        self._output.end_page()
        self.items += len(items)

    def _finish(self) -> None:
        self._output.finish()


def _check_attribute_value_item(item: Mapping[str, Any]) -> None:
    for name, value in item.items():
        if not (isinstance(value, dict) and len(value) == 1 and next(iter(value)) in _ATTRIBUTE_VALUE_TAGS):
            raise InvalidScanArgumentError(
                f"file_format='dynamodb_json' needs items of AttributeValues (scan with deserialize=False), "
                f"but attribute {name!r} is {value!r:.80}."
            )


class _CsvEncoder(PartEncoder):
    """
    CSV with a header. With ``columns`` the rows stream to the file; without, they are spooled (compressed like
    the file) in the order columns were first seen, and the header is known only at :meth:`close`.
    """

    def __init__(self, fileobj: IO[bytes], *, gzip_compressed: bool, columns: Sequence[str] | None) -> None:
        super().__init__()
        self._gzip_compressed = gzip_compressed
        self._file = _CountingWriter(fileobj)
        self._spool: IO[bytes] | None = None
        self._reordered = False
        if columns is not None:
            self._columns = list(columns)
            self._rows = _Output(self._file, gzip_compressed=gzip_compressed)
            self._rows.write(_csv_text([self._columns]))
        else:
            self._columns = []
            # Lives until close(); an anonymous file, so the system removes it even if close() never comes.
            self._spool = tempfile.TemporaryFile()  # noqa: SIM115
            self._rows = _Output(self._spool, gzip_compressed=gzip_compressed)

    @property
    def bytes_written(self) -> int:
        if self._spool is None or self._closed:
            return self._file.count
        return self._rows.bytes_written

    def write_items(self, items: Sequence[Mapping[str, Any]]) -> None:
        if not items:
            return
        if self._spool is not None:
            self._learn_columns(items)
        columns = self._columns
        self._rows.write(_csv_text([[csv_cell(item.get(name)) for name in columns] for item in items]))
        self._rows.end_page()
        self.items += len(items)

    def _learn_columns(self, items: Sequence[Mapping[str, Any]]) -> None:
        known = set(self._columns)
        new = {name for item in items for name in item if name not in known}
        if not new:
            return
        if self.items == 0:
            self._columns = sorted(known | new)
        else:
            # Rows already spooled lack these cells; close() puts every row in header order.
            self._columns.extend(sorted(new))
            self._reordered = True

    def _finish(self) -> None:
        self._rows.finish()
        if self._spool is None:
            return
        spool = self._spool
        try:
            header = sorted(self._columns)
            output = _Output(self._file, gzip_compressed=self._gzip_compressed)
            if header:
                output.write(_csv_text([header]))
            spool.seek(0)
            if not self._reordered:
                # The spooled rows are already final: append them as they are (with gzip, a second gzip member,
                # which gzip readers read on through as one stream).
                output.finish()
                shutil.copyfileobj(spool, self._file)
            else:
                self._write_reordered(spool, header, output)
                output.finish()
        finally:
            spool.close()

    def _write_reordered(self, spool: IO[bytes], header: list[str], output: _Output) -> None:
        positions = {name: index for index, name in enumerate(self._columns)}
        order = [positions[name] for name in header]
        source: IO[bytes] | gzip.GzipFile = gzip.GzipFile(fileobj=spool, mode="rb") if self._gzip_compressed else spool
        reader = csv.reader(io.TextIOWrapper(source, encoding="utf-8", newline=""))
        while batch := list(islice(reader, _CSV_ROWS_PER_WRITE)):
            output.write(_csv_text([[row[index] if index < len(row) else "" for index in order] for row in batch]))


class _ColumnProfile:
    """What the values of one attribute in a part look like: their kinds, and the digits their numbers need."""

    __slots__ = ("fits_int64", "integer_digits", "kinds", "scale")

    def __init__(self) -> None:
        self.kinds: set[str] = set()
        self.fits_int64 = True
        self.integer_digits = 0
        self.scale = 0

    def observe(self, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, str):
            kind = "string"
        elif isinstance(value, bool):
            kind = "boolean"
        elif isinstance(value, Decimal):
            kind = "number"
            self._observe_decimal(value)
        elif isinstance(value, int):
            kind = "number"
            self._observe_int(value)
        elif isinstance(value, float):
            kind = "float"
        elif isinstance(value, _BYTES_TYPES):
            kind = "binary"
        elif isinstance(value, _CONTAINER_TYPES):
            kind = "json"
        else:
            raise TypeError(f"Cannot export a value of type {type(value).__name__}: {value!r:.80}")
        self.kinds.add(kind)

    def _observe_int(self, value: int) -> None:
        if not _INT64_MIN <= value <= _INT64_MAX:
            self.fits_int64 = False
        self.integer_digits = max(self.integer_digits, len(str(abs(value))))

    def _observe_decimal(self, value: Decimal) -> None:
        number_text(value)  # refuses NaN and infinities
        _, digits, exponent = value.as_tuple()
        assert isinstance(exponent, int)
        if exponent >= 0:
            integer_digits = len(digits) + exponent
            if self.fits_int64 and (integer_digits > 19 or not _INT64_MIN <= int(value) <= _INT64_MAX):
                self.fits_int64 = False
        else:
            integer_digits = max(len(digits) + exponent, 0)
            self.scale = max(self.scale, -exponent)
            self.fits_int64 = False
        self.integer_digits = max(self.integer_digits, integer_digits)


def _as_decimal(value: Decimal | int) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(value)


def _column_plan(profile: _ColumnProfile, pa: Any) -> tuple[Any, Callable[[Any], Any] | None]:
    """Return the Arrow type of a column and how to convert each non-null value (``None``: as it is)."""
    kinds = profile.kinds
    if not kinds:
        return pa.null(), None
    if len(kinds) > 1 or "json" in kinds:
        return pa.string(), _json_text
    kind = next(iter(kinds))
    if kind == "number":
        if profile.fits_int64:
            return pa.int64(), int
        precision = profile.integer_digits + profile.scale
        if precision <= _DECIMAL128_MAX_PRECISION:
            return pa.decimal128(max(precision, 1), profile.scale), _as_decimal
        return pa.string(), number_text
    simple_types = {"string": pa.string(), "boolean": pa.bool_(), "binary": pa.binary(), "float": pa.float64()}
    return simple_types[kind], None


def _import_pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as error:
        raise ImportError(
            "file_format='parquet' needs pyarrow, which is not installed: pip install 'airflow-dynamoscan[parquet]'"
        ) from error
    return pyarrow, pyarrow.parquet


def _pickled_pages(spool: IO[bytes]) -> Iterator[list[dict[str, Any]]]:
    spool.seek(0)
    while True:
        try:
            # The spool is this encoder's own anonymous temporary file, so unpickling it is safe.
            yield pickle.load(spool)
        except EOFError:
            return


class _ParquetEncoder(PartEncoder):
    """Parquet: pages are spooled (pickled) while the columns' types are learnt, then written at close()."""

    def __init__(self, fileobj: IO[bytes], *, compression: str, columns: Sequence[str] | None) -> None:
        super().__init__()
        self._pa, self._pq = _import_pyarrow()
        self._file = _CountingWriter(fileobj)
        self._compression = compression
        self._columns = list(columns) if columns is not None else None
        self._profiles: dict[str, _ColumnProfile] = {name: _ColumnProfile() for name in self._columns or ()}
        # Lives until close(); an anonymous file, so the system removes it even if close() never comes.
        self._spool: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115

    @property
    def bytes_written(self) -> int:
        return self._file.count if self._closed else self._spool.tell()

    def write_items(self, items: Sequence[Mapping[str, Any]]) -> None:
        if not items:
            return
        profiles = self._profiles
        if self._columns is None:
            for item in items:
                for name, value in item.items():
                    profile = profiles.get(name)
                    if profile is None:
                        profile = profiles[name] = _ColumnProfile()
                    profile.observe(value)
            page = list(items)
        else:
            page = [{name: item[name] for name in self._columns if name in item} for item in items]
            for item in page:
                for name, value in item.items():
                    profiles[name].observe(value)
        pickle.dump(page, self._spool, protocol=pickle.HIGHEST_PROTOCOL)
        self.items += len(items)

    def _finish(self) -> None:
        pa = self._pa
        try:
            names = self._columns if self._columns is not None else sorted(self._profiles)
            plans = [_column_plan(self._profiles[name], pa) for name in names]
            schema = pa.schema([pa.field(name, arrow_type) for name, (arrow_type, _) in zip(names, plans, strict=True)])
            writer = self._pq.ParquetWriter(self._file, schema, compression=self._compression)
            batches: list[Any] = []
            buffered = 0
            for page in _pickled_pages(self._spool):
                arrays = [
                    pa.array(_column_values(page, name, convert), type=arrow_type)
                    for name, (arrow_type, convert) in zip(names, plans, strict=True)
                ]
                batch = pa.RecordBatch.from_arrays(arrays, schema=schema)
                batches.append(batch)
                buffered += batch.nbytes
                if buffered >= _ROW_GROUP_BYTES:
                    writer.write_table(pa.Table.from_batches(batches, schema=schema))
                    batches, buffered = [], 0
            if batches:
                writer.write_table(pa.Table.from_batches(batches, schema=schema))
            writer.close()
        finally:
            self._spool.close()


def _column_values(page: list[dict[str, Any]], name: str, convert: Callable[[Any], Any] | None) -> list[Any]:
    if convert is None:
        return [item.get(name) for item in page]
    return [None if (value := item.get(name)) is None else convert(value) for item in page]


def validate_columns(file_format: str, columns: Sequence[str] | None) -> list[str] | None:
    """
    Check the ``columns`` argument of a format; return it as a list (``None`` stays ``None``).

    :raises InvalidScanArgumentError: ``columns`` given for a format other than ``csv`` and ``parquet``, or not
        a non-empty list of distinct attribute names.
    """
    if columns is None:
        return None
    if file_format not in _COLUMN_FORMATS:
        raise InvalidScanArgumentError(
            f"columns={columns!r} is not allowed with file_format={file_format!r}; it applies to "
            f"{' and '.join(_COLUMN_FORMATS)} only (use a ProjectionExpression to choose attributes)."
        )
    names = list(columns)
    if isinstance(columns, str) or not names or not all(isinstance(name, str) and name for name in names):
        raise InvalidScanArgumentError(
            f"columns={columns!r} is not allowed; it must be a non-empty list of attribute names."
        )
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise InvalidScanArgumentError(f"columns={columns!r} is not allowed; it names {duplicated} more than once.")
    return names


def open_encoder(
    file_format: str, fileobj: IO[bytes], *, compression: str | None, columns: Sequence[str] | None = None
) -> PartEncoder:
    """
    Return an encoder writing one part in ``file_format`` to ``fileobj``.

    :param file_format: one of :data:`FILE_FORMATS`
    :param fileobj: a writable binary file; the encoder writes to it and flushes it, never closes it
    :param compression: as accepted by :func:`validate_format`
    :param columns: for ``csv`` and ``parquet``, the attributes to write, in this order (others are left out);
        ``None`` writes every attribute of the part, sorted
    :raises InvalidScanArgumentError: an unknown format or compression, or ``columns`` given for a format
        without columns.
    :raises ImportError: ``parquet`` without pyarrow installed, naming ``pip install 'airflow-dynamoscan[parquet]'``.
    """
    effective = validate_format(file_format, compression, table_name=None)
    checked_columns = validate_columns(file_format, columns)
    if file_format == "parquet":
        assert effective is not None
        return _ParquetEncoder(fileobj, compression=effective, columns=checked_columns)
    gzip_compressed = effective == "gzip"
    if file_format == "csv":
        return _CsvEncoder(fileobj, gzip_compressed=gzip_compressed, columns=checked_columns)
    return _LineEncoder(fileobj, gzip_compressed=gzip_compressed, attribute_values=file_format == "dynamodb_json")
